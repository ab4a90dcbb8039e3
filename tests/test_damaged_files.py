"""A result file RunComfy serves cut off the same way every time fails fast; a cut in transit is retried.

Over real HTTP against the simulator: ``file_content="truncated_image"`` is a
stored file that is always the first half of the render (same length, same
hash), the ``cut`` file fault a single answer cut at a chosen length. The
time a damaged file takes to fail is measured and reported (``-s`` shows it;
``record_property`` keeps it in a JUnit report), never asserted.
"""

from __future__ import annotations

import time

import pytest

from helpers import T2I, decodable
from packloader import pack_import

errors = pack_import("client.errors")
limits = pack_import("client.limits")

pytestmark = pytest.mark.anyio
SMALL = {"prompt": "a lighthouse", "resolution": "0.5K"}


async def test_the_same_cut_three_times_ends_the_job_with_its_request_id(simulator, jobs, record_property):
    simulator.script_next_jobs("completed", file_content="truncated_image")
    started = time.monotonic()
    with pytest.raises(errors.DownloadError) as caught:
        await jobs.run(T2I, SMALL)  # the job's own deadline (900 s), not a short test timeout
    took = time.monotonic() - started
    record_property("damaged_file_seconds", round(took, 3))
    print(f"\ndamaged file: failed after {took:.2f} s")
    error = caught.value
    assert not error.transient and not isinstance(error, errors.CutFileError)
    message = str(error)
    assert "RunComfy's file for image 1 is damaged" in message
    assert error.request_id in simulator.jobs and error.request_id in message
    assert "is billed" in message and "Result by Request ID" in message
    files = simulator.requests(route="file")
    assert len(files) == limits.SAME_CUT_LIMIT and all(record.status == 200 for record in files)
    assert len(simulator.requests(route="submit")) == 1


async def test_a_cut_that_differs_each_time_is_retried_until_the_file_arrives(simulator, jobs):
    for size in (4000, 5000, 6000, 7000):  # four different cuts, then the whole file
        simulator.add_fault("file", "cut", size=size)
    job = await jobs.run(T2I, SMALL)
    assert decodable(job.files)
    assert [record.fault for record in simulator.requests(route="file")] == ["cut"] * 4 + [None]


async def test_another_failure_between_two_equal_cuts_starts_the_count_again(simulator, jobs):
    for fault in ({"kind": "cut", "size": 4000}, {"kind": "cut", "size": 4000},
                  {"kind": "http_error", "status": 503}, {"kind": "cut", "size": 4000}, {"kind": "cut", "size": 4000}):
        simulator.add_fault("file", **fault)
    job = await jobs.run(T2I, SMALL)
    assert decodable(job.files)
    assert len(simulator.requests(route="file")) == 6


async def test_a_cut_file_fault_is_a_complete_answer_of_the_first_bytes(simulator, jobs):
    simulator.add_fault("file", "cut", size=1234, times=None)
    with pytest.raises(errors.DownloadError, match="damaged") as caught:
        await jobs.run(T2I, SMALL)
    assert "1234 bytes" in str(caught.value)
