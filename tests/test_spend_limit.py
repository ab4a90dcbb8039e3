"""Issue 15.7: the daily spend limit holds when jobs run at once and when costs are not reported.

Every job counts from the moment it is recorded: at its estimate (the one of
``pricing.estimate``: listed, learned from billed jobs, or the base price)
until RunComfy reports its cost. The limit is checked in the journal's write
transaction that records the job, so concurrent jobs (threads, event loops,
processes) cannot all pass one check. Submits are counted in the simulator's
log: what RunComfy would have billed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import jobs_for, settings_for
from packloader import pack_import
from userenv import pack_env

pytestmark = pytest.mark.anyio

errors = pack_import("client.errors")
journal_module = pack_import("client.ledger.journal")
billing = pack_import("simulator.billing")

T2I = "google/nano-banana-2/text-to-image"
BASE = billing.PRICES_USD["1K"]  # the plain-words catalog's base price; 1K is the default resolution
TWO_JOBS = round(2.5 * BASE, 2)  # room for two jobs at their estimate, not three
HARNESS = Path(__file__).with_name("spend_harness.py")


def submits(simulator) -> int:
    return len(simulator.requests(route="submit"))


def limited_jobs(simulator, tmp_path: Path, limit: float | None = TWO_JOBS):
    journal = journal_module.Journal(tmp_path / "data" / "journal.sqlite3")
    return jobs_for(settings_for(simulator, daily_spend_limit_usd=limit), journal=journal), journal


async def outcomes(runner, prompts: list[str]) -> list[str]:
    async def one(prompt: str) -> str:
        try:
            await runner.run(T2I, {"prompt": prompt})
        except errors.SpendLimitError as refused:
            assert "Refused before paying" in str(refused) and f"${TWO_JOBS:.2f}" in str(refused)
            return "refused"
        return "paid"

    return list(await asyncio.gather(*(one(prompt) for prompt in prompts)))


async def test_eight_jobs_at_once_under_a_two_job_limit_submit_exactly_two(simulator, tmp_path):
    runner, journal = limited_jobs(simulator, tmp_path)
    async with runner.client:
        results = await outcomes(runner, [f"a lighthouse, variant {n}" for n in range(8)])
    assert sorted(results) == ["paid"] * 2 + ["refused"] * 6
    assert submits(simulator) == 2
    assert len(journal.recent(account=runner.account)) == 2  # refusals leave no placeholder


async def test_a_simulator_that_reports_no_cost_still_stops_at_the_limit(simulator, tmp_path):
    simulator.configure(report_cost=False)
    runner, journal = limited_jobs(simulator, tmp_path)
    results = []
    async with runner.client:
        for n in range(4):  # one after the other: each earlier job has finished, without a cost
            results += await outcomes(runner, [f"a harbour, take {n}"])
    assert results == ["paid", "paid", "refused", "refused"] and submits(simulator) == 2
    finished = journal.recent(account=runner.account)
    assert [entry.cost for entry in finished] == [None, None]
    assert journal.spent_today(runner.account) == 0.0  # RunComfy reported nothing ...
    assert journal.counted_today(runner.account) == pytest.approx(2 * BASE)  # ... each kept its estimate


async def test_an_unknown_price_under_a_limit_is_refused_saying_why_not_counted_as_zero(simulator, tmp_path):
    simulator.configure(pricing="missing")
    runner, _ = limited_jobs(simulator, tmp_path, limit=100.0)
    async with runner.client:
        with pytest.raises(errors.SpendLimitError) as refused:
            await runner.run(T2I, {"prompt": "a lighthouse"})
    message = str(refused.value)
    assert "cannot be estimated" in message and "daily_spend_limit_usd" in message and "\n" not in message
    assert submits(simulator) == 0
    free, _ = limited_jobs(simulator, tmp_path, limit=None)  # without a limit it runs
    async with free.client:
        await free.run(T2I, {"prompt": "a lighthouse"})
    assert submits(simulator) == 1


async def test_what_was_billed_at_a_resolution_becomes_its_estimate_for_the_limit(simulator, tmp_path):
    runner, journal = limited_jobs(simulator, tmp_path, limit=None)
    async with runner.client:
        await runner.run(T2I, {"prompt": "a lighthouse", "resolution": "4K"})
        request = pack_import("client.model.request").JobRequest.checked(
            T2I, {"prompt": "x", "resolution": "4K", "num_images": 3})
        estimate = await runner.estimate(request)
    assert estimate.source == "billed" and estimate.usd == pytest.approx(3 * billing.PRICES_USD["4K"])
    assert "as RunComfy billed for 4K on" in estimate.describe()


def test_two_processes_of_four_jobs_under_a_two_job_limit_submit_exactly_two(simulator, tmp_path):
    config = tmp_path / "runcomfy" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"daily_spend_limit_usd": TWO_JOBS}))
    env = pack_env(config, RUNCOMFY_API_BASE_URL=simulator.url, RUNCOMFY_API_TOKEN=simulator.token)
    processes = [subprocess.Popen([sys.executable, str(HARNESS), "4", f"process {n}"], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for n in range(2)]
    try:
        for process in processes:  # both have their Jobs and journal before either starts
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        answers = []
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            answers += [json.loads(line)["outcome"] for line in out.splitlines()]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert sorted(answers) == ["paid"] * 2 + ["refused"] * 6
    assert submits(simulator) == 2
