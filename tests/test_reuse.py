"""Issue 9: the same inputs never cost twice, across restarts, over real HTTP.

Every restart here is a new process: the command line (``python <pack> ...``)
or a node run by ``restart_harness.py``, which has nothing in memory but what
the pack left on disk (the journal and the result store in the data folder,
the folder of ``$RUNCOMFY_CONFIG``). A kill is SIGKILL. Each test waits on the
simulator's request log or on a process's output, never on a bare sleep, and
asserts on the simulator's log: how many submits RunComfy would have billed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import numpy as np
import pytest
from PIL import Image

from packloader import PACK_ROOT, load_pack, pack_import
from restart_harness import ANOTHER_RUN_IS_SUBMITTING
from simhelpers import api, finished_result, submit
from userenv import apply_env, pack_env

pack = load_pack()
errors = pack_import("client.errors")
jobs_module = pack_import("client.job.jobs")
comfy_runtime = pack_import("nodes.comfy_runtime")
sim_images = pack_import("simulator.images")
TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
ResultById = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2ResultByRequestId"]

HARNESS = Path(__file__).with_name("restart_harness.py")
T2I = "google/nano-banana-2/text-to-image"
LONG = 30.0  # seconds a scripted phase lasts; the simulator's clock steps over it
START = 60.0  # how long a new process may take to reach the simulator on a busy machine
PROMPT = "a lighthouse at dawn"
CLI_INPUTS = ("text-to-image", "--prompt", PROMPT, "--resolution", "0.5K", "--seed", "7")
SIZE = sim_images.expected_size("auto", "0.5K")
WHEN = re.compile(r"from (\d{4}-\d\d-\d\d \d\d:\d\d), not billed again")


# -- running the pack in new processes ----------------------------------------------


@pytest.fixture
def user_env(simulator, tmp_path):
    """A user's environment aimed at the simulator; data folder = the config file's folder."""
    (tmp_path / "runcomfy").mkdir()
    config = tmp_path / "runcomfy" / "config.json"
    return pack_env(config, RUNCOMFY_API_BASE_URL=simulator.url, RUNCOMFY_API_TOKEN=simulator.token)


def cli(env: dict, *args: str, out: Path | None = None) -> subprocess.CompletedProcess:
    """``python <pack> <args>`` as a user runs it (``--out`` added for run commands)."""
    extra = ("--out", str(out)) if out is not None else ()
    return subprocess.run(
        [sys.executable, str(PACK_ROOT), *args, *extra], capture_output=True, text=True, timeout=120, env=env
    )


def start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def cli_command(*args: str, out: Path) -> list[str]:
    return [sys.executable, str(PACK_ROOT), *args, "--out", str(out)]


def node_command(tmp_path: Path, runs: list[tuple[dict, Path]], node: str = "RunComfyNanoBanana2TextToImage") -> list[str]:
    """A new process running ``node`` once per (inputs, .npy path), each on a new event loop."""
    runs_file = tmp_path / f"runs-{len(list(tmp_path.glob('runs-*')))}.json"
    runs_file.write_text(json.dumps([{"inputs": inputs, "npy": str(npy)} for inputs, npy in runs]))
    return [sys.executable, str(HARNESS), "node", node, str(runs_file)]


def run_node(env: dict, tmp_path: Path, runs: list[tuple[dict, Path]]) -> tuple[list[str], str]:
    """Run the node in a new process; the info outputs, one per run, and the process's stderr."""
    done = subprocess.run(node_command(tmp_path, runs), capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["info"] for line in done.stdout.splitlines()], done.stderr


def node_inputs(**changes) -> dict:
    """The text-to-image node's widget values, as a queued workflow sends them."""
    widgets = {name: spec[1]["default"] for name, spec in TextToImage.INPUT_TYPES()["required"].items()}
    return {**widgets, "prompt": PROMPT, "resolution": "0.5K", "seed": 7, **changes}


def written(done: subprocess.CompletedProcess) -> list[Path]:
    """The files the command line says it wrote (one path per stdout line)."""
    assert done.returncode == 0, done.stderr
    return [Path(line) for line in done.stdout.splitlines()]


def submits(simulator) -> int:
    return len(simulator.requests(route="submit"))


def only_job(simulator) -> str:
    (request_id,) = simulator.jobs
    return request_id


def finish(simulator, request_id: str) -> None:
    """Skip the job's scripted wait and let its render end."""
    simulator.advance_to_finish(request_id)
    simulator.wait_until(lambda: simulator.state(request_id) == "completed", timeout=30)


def killed_while_following(simulator, process: subprocess.Popen) -> str:
    """SIGKILL ``process`` once it has submitted and is polling its job; the job's request id."""
    try:
        simulator.wait_until(lambda: simulator.requests(route="status"), timeout=START)
        process.kill()
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    return only_job(simulator)


def stderr_lines(process: subprocess.Popen) -> "queue.Queue[str | None]":
    """The process's stderr, line by line, as it comes (None at its end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: "queue.Queue[str | None]", text: str, seen: list[str]) -> None:
    """Read lines into ``seen`` until one holds ``text`` (fails if the process ends first)."""
    while True:
        line = lines.get(timeout=START)
        assert line is not None, f"the process ended without saying {text!r}: {''.join(seen)}"
        seen.append(line)
        if text in line:
            return


def read_to_end(lines: "queue.Queue[str | None]", seen: list[str]) -> str:
    """Everything the process wrote on stderr, once it has ended."""
    while (line := lines.get(timeout=START)) is not None:
        seen.append(line)
    return "".join(seen)


# -- 1, 2. the same inputs after a restart; a new seed --------------------------------


def test_the_node_after_a_restart_reuses_identical_pixels_and_a_new_seed_pays_once(simulator, user_env, tmp_path):
    before = datetime.now().replace(second=0, microsecond=0)
    (first_info,), _ = run_node(user_env, tmp_path, [(node_inputs(), tmp_path / "first.npy")])
    request_id = only_job(simulator)
    assert submits(simulator) == 1 and request_id in first_info
    calls_about_it = len(simulator.requests(request_id=request_id))

    # "ComfyUI restarted": a new process queues the same workflow, then one with a new seed.
    (same_info, new_seed_info), stderr = run_node(
        user_env, tmp_path, [(node_inputs(), tmp_path / "same.npy"), (node_inputs(seed=8), tmp_path / "seed8.npy")]
    )
    first, same = np.load(tmp_path / "first.npy"), np.load(tmp_path / "same.npy")
    assert first.shape == (1, SIZE[1], SIZE[0], 3) and first.dtype == same.dtype == np.float32
    assert np.array_equal(first, same)
    assert f"reused the result of request {request_id} from " in same_info
    paid = datetime.strptime(WHEN.search(same_info).group(1), "%Y-%m-%d %H:%M")
    assert before <= paid <= datetime.now()
    assert f"reused the result of request {request_id}" in stderr  # the node's status line
    assert len(simulator.requests(request_id=request_id)) == calls_about_it  # not even a status call
    assert submits(simulator) == 2
    (new_job,) = [job for rid, job in simulator.jobs.items() if rid != request_id]
    assert new_job.inputs["seed"] == 8 and new_job.request_id in new_seed_info and "reused" not in new_seed_info
    assert np.load(tmp_path / "seed8.npy").shape == first.shape


def test_the_command_line_after_a_restart_writes_identical_bytes_without_a_submit(simulator, user_env, tmp_path):
    (first,) = written(cli(user_env, *CLI_INPUTS, out=tmp_path / "a"))
    request_id = only_job(simulator)
    requests_after_first = len(simulator.requests())

    again = cli(user_env, *CLI_INPUTS, out=tmp_path / "b")
    (second,) = written(again)
    assert second.read_bytes() == first.read_bytes() and second.name == first.name
    assert len(simulator.requests()) == requests_after_first  # not even a status call
    assert f"reused the result of request {request_id}" in again.stderr and "not billed again" in again.stderr

    (third,) = written(cli(user_env, *CLI_INPUTS, "--no-reuse", out=tmp_path / "c"))
    assert submits(simulator) == 2 and request_id not in third.name


def test_reuse_switched_off_in_the_config_file_pays_for_every_run(simulator, user_env, tmp_path):
    (tmp_path / "runcomfy" / "config.json").write_text(json.dumps({"reuse_results": False}))
    for number in (1, 2):
        written(cli(user_env, *CLI_INPUTS, out=tmp_path / str(number)))
        assert submits(simulator) == number


def test_the_same_inputs_under_another_account_are_not_reused(simulator, user_env, tmp_path):
    written(cli(user_env, *CLI_INPUTS, out=tmp_path / "a"))
    other = {**user_env, "RUNCOMFY_API_TOKEN": simulator.add_account(name="a-colleague")}
    again = cli(other, *CLI_INPUTS, out=tmp_path / "b")
    written(again)
    assert submits(simulator) == 2 and "reused" not in again.stderr


def test_a_damaged_stored_result_is_collected_again_free_not_paid_again(simulator, user_env, tmp_path):
    (first,) = written(cli(user_env, *CLI_INPUTS, out=tmp_path / "a"))
    (stored,) = [path for path in (tmp_path / "runcomfy" / "results").rglob("*.png")]
    assert stored.read_bytes() == first.read_bytes()  # kept as downloaded
    stored.write_bytes(first.read_bytes()[:-100] + bytes(100))

    again = cli(user_env, *CLI_INPUTS, out=tmp_path / "b")
    (second,) = written(again)
    assert second.read_bytes() == first.read_bytes() and submits(simulator) == 1
    assert "resuming request" in again.stderr and "damaged" in again.stderr


# -- 3. a process killed while it waits ------------------------------------------------


def test_a_command_line_killed_while_its_job_is_queued_is_resumed_by_the_next_run(simulator, user_env, tmp_path):
    simulator.script_next_jobs(queue_seconds=LONG)
    request_id = killed_while_following(simulator, start(cli_command(*CLI_INPUTS, out=tmp_path / "a"), user_env))
    assert simulator.state(request_id) == "in_queue"  # the kill left it on RunComfy, paid for
    finish(simulator, request_id)

    again = cli(user_env, *CLI_INPUTS, out=tmp_path / "b")
    (path,) = written(again)
    assert submits(simulator) == 1
    assert f"resuming request {request_id}" in again.stderr and request_id in path.name
    assert path.read_bytes() == simulator.job(request_id).files[0]


def test_a_node_killed_while_its_job_runs_is_resumed_by_the_next_run(simulator, user_env, tmp_path):
    simulator.script_next_jobs(run_seconds=LONG)
    process = start(node_command(tmp_path, [(node_inputs(), tmp_path / "killed.npy")]), user_env)
    request_id = killed_while_following(simulator, process)
    assert simulator.state(request_id) == "in_progress"
    finish(simulator, request_id)

    (info,), stderr = run_node(user_env, tmp_path, [(node_inputs(), tmp_path / "resumed.npy")])
    assert submits(simulator) == 1
    assert f"resuming request {request_id}" in stderr and f"request {request_id}" in info
    assert np.load(tmp_path / "resumed.npy").shape == (1, SIZE[1], SIZE[0], 3)


# -- 4. a download that failed ---------------------------------------------------------


def test_a_result_whose_download_failed_is_collected_by_the_next_run_without_a_submit(simulator, user_env, tmp_path):
    simulator.add_fault("file", "http_error", status=503, times=None)
    failed = cli(user_env, *CLI_INPUTS, "--timeout", "1", out=tmp_path / "a")
    request_id = only_job(simulator)
    assert failed.returncode == 2 and "Could not download" in failed.stderr
    assert f"result {request_id}" in failed.stderr  # how to collect it, free
    assert simulator.requests(route="file", status=503)

    simulator.clear_faults()
    again = cli(user_env, *CLI_INPUTS, out=tmp_path / "b")
    (path,) = written(again)
    assert submits(simulator) == 1 and f"resuming request {request_id}" in again.stderr
    assert path.read_bytes() == simulator.job(request_id).files[0]


# -- 5. failed and cancelled jobs are not reused ---------------------------------------


@pytest.mark.parametrize("outcome", ["failed", "blocked", "cancelled_by_server"])
def test_a_job_that_failed_or_was_cancelled_is_not_reused(simulator, user_env, tmp_path, outcome):
    simulator.script_next_jobs(outcome)
    assert cli(user_env, *CLI_INPUTS, out=tmp_path / "a").returncode == 2
    (first_id,) = simulator.jobs

    (path,) = written(cli(user_env, *CLI_INPUTS, out=tmp_path / "b"))
    assert submits(simulator) == 2 and first_id not in path.name


def test_a_job_cancelled_with_ctrl_c_is_not_reused(simulator, user_env, tmp_path):
    simulator.script_next_jobs("queued_forever")
    process = start(cli_command(*CLI_INPUTS, out=tmp_path / "a"), user_env)
    try:
        simulator.wait_until(lambda: simulator.requests(route="status"), timeout=START)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        process.kill()
    first_id = only_job(simulator)
    assert process.returncode == 130 and simulator.state(first_id) == "cancelled"

    (path,) = written(cli(user_env, *CLI_INPUTS, out=tmp_path / "b"))
    assert submits(simulator) == 2 and first_id not in path.name


@pytest.mark.anyio
async def test_a_job_runcomfy_has_forgotten_is_given_up_and_the_inputs_submitted_anew(
    account, user_env, tmp_path, monkeypatch
):
    account.script_next_jobs(queue_seconds=LONG)
    forgotten = killed_while_following(account, start(cli_command(*CLI_INPUTS, out=tmp_path / "a"), user_env))
    account.reset()  # RunComfy no longer knows the request (expired); same token and port
    # A resumed request has no just-submitted grace: its 404 is final at once.
    stopped = []
    monkeypatch.setattr(comfy_runtime, "processing_interrupted", lambda: bool(stopped))
    run = asyncio.ensure_future(TextToImage().generate(unique_id="1", **node_inputs()))

    def submitted_or_looping():
        return submits(account) or len(account.requests(request_id=forgotten, status=404)) >= 5

    await anyio.to_thread.run_sync(lambda: account.wait_until(submitted_or_looping, timeout=START))
    if not submits(account):
        stopped.append(True)  # end the loop the way a user would: Stop
        with contextlib.suppress(errors.JobCancelledError):
            await run
        pytest.fail(f"the run kept asking about the forgotten request {forgotten} instead of submitting")
    images, info = await run
    assert submits(account) == 1 and images.shape == (1, SIZE[1], SIZE[0], 3) and forgotten not in info


# -- 6. two processes at once ----------------------------------------------------------


def test_two_processes_running_the_same_inputs_at_once_submit_once(simulator, user_env, tmp_path):
    held = simulator.add_fault("submit", "hold")
    harness_cli = [sys.executable, str(HARNESS), "cli", *CLI_INPUTS, "--out"]
    first = start([*harness_cli, str(tmp_path / "a")], user_env)
    second = None
    try:
        simulator.wait_until(lambda: simulator.held(held) == 1, timeout=START)  # first is submitting
        second = start([*harness_cli, str(tmp_path / "b")], user_env)
        lines, seen = stderr_lines(second), []
        wait_for_line(lines, ANOTHER_RUN_IS_SUBMITTING, seen)  # the second waits for the first's id
        simulator.release(held)
        _, first_err = first.communicate(timeout=60)
        second_err = read_to_end(lines, seen)
        second.wait(timeout=60)
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
    request_id = only_job(simulator)
    assert first.returncode == 0 and second.returncode == 0, first_err + second_err
    assert submits(simulator) == 1 and f"resuming request {request_id}" in second_err
    (a,), (b,) = (tmp_path / "a").iterdir(), (tmp_path / "b").iterdir()
    assert a.read_bytes() == b.read_bytes() and request_id in a.name


# -- 7. storage that cannot be used never fails a run ---------------------------------


def test_an_unusable_data_folder_warns_gives_the_images_and_the_next_run_pays_again(simulator, user_env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    user_env["RUNCOMFY_DATA_DIR"] = str(blocker / "data")
    for number in (1, 2):
        done = cli(user_env, *CLI_INPUTS, out=tmp_path / str(number))
        (path,) = written(done)
        assert path.stat().st_size > 0 and "WARNING" in done.stderr and "journal" in done.stderr
        assert submits(simulator) == number  # nothing could be remembered: the truth is, it pays again


def test_a_corrupt_journal_is_moved_aside_with_a_warning_and_the_run_pays_once_more(simulator, user_env, tmp_path):
    data = tmp_path / "runcomfy"
    written(cli(user_env, *CLI_INPUTS, out=tmp_path / "a"))
    for leftover in data.glob("journal.sqlite3-*"):
        leftover.unlink()
    (data / "journal.sqlite3").write_bytes(b"this is not a journal" * 100)

    damaged = cli(user_env, *CLI_INPUTS, out=tmp_path / "b")
    (path,) = written(damaged)
    assert path.stat().st_size > 0 and "was unusable" in damaged.stderr and "moved it to" in damaged.stderr
    assert submits(simulator) == 2  # the record of the first job went with the damaged file
    assert len(list(data.glob("journal.sqlite3.corrupt-*"))) == 1

    written(cli(user_env, *CLI_INPUTS, out=tmp_path / "c"))
    assert submits(simulator) == 2  # the fresh journal works


def test_a_full_result_store_gives_the_images_and_the_next_run_collects_the_paid_job_again_free(
    simulator, user_env, tmp_path
):
    (tmp_path / "runcomfy" / "config.json").write_text(json.dumps({"result_store_gib": 0.000001}))
    first = cli(user_env, *CLI_INPUTS, out=tmp_path / "a")
    (path,) = written(first)
    request_id = only_job(simulator)
    assert path.stat().st_size > 1024 and "not kept" in first.stderr

    again = cli(user_env, *CLI_INPUTS, out=tmp_path / "b")
    (second,) = written(again)
    assert submits(simulator) == 1 and f"resuming request {request_id}" in again.stderr
    assert second.read_bytes() == path.read_bytes()


# -- 8. Result by Request ID, result and history ---------------------------------------


@pytest.fixture
def account(simulator, user_env, monkeypatch):
    """This test process configured like ``user_env`` (for nodes run in-process)."""
    apply_env(monkeypatch, user_env)
    return simulator


def finished_elsewhere(simulator, token: str | None = None) -> str:
    """A job submitted outside this pack (e.g. in RunComfy's playground), finished."""
    with api(simulator, token) as client:
        request_id = submit(client, T2I, {"prompt": PROMPT, "resolution": "0.5K"})
        finished_result(simulator, client, request_id)
    return request_id


def test_result_by_request_id_collects_a_finished_job_without_submitting(account):
    request_id = finished_elsewhere(account)
    images, info = asyncio.run(ResultById().generate(unique_id="3", request_id=f"  {request_id}\n"))
    assert images.shape == (1, SIZE[1], SIZE[0], 3) and float(images.std()) > 0.01
    assert f"request {request_id}" in info and "completed" in info
    assert submits(account) == 1 and account.requests(route="file", request_id=request_id)


def test_result_by_request_id_takes_a_job_this_pack_ran_from_the_store_without_any_call(
    account, user_env, tmp_path
):
    (path,) = written(cli(user_env, *CLI_INPUTS, out=tmp_path))
    request_id = only_job(account)
    calls = len(account.requests())
    images, info = asyncio.run(ResultById().generate(unique_id="3", request_id=request_id))
    assert len(account.requests()) == calls and f"reused the result of request {request_id}" in info
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    assert np.array_equal(images[0].numpy(), pixels)


def test_a_request_collected_once_is_taken_from_the_store_the_next_time(account):
    request_id = finished_elsewhere(account)
    first, _ = asyncio.run(ResultById().generate(unique_id="3", request_id=request_id))
    calls = len(account.requests())
    again, info = asyncio.run(ResultById().generate(unique_id="3", request_id=request_id))
    assert len(account.requests()) == calls and f"reused the result of request {request_id}" in info
    assert bool((again == first).all())


@pytest.mark.parametrize(
    "bad", ["", "   ", "abc", "../../v1/models/x", "a b c d", "id?x=1", "a/b/c/d", "x" * 200, "ü-1234"]
)
def test_a_malformed_request_id_is_refused_when_queued_and_when_run_before_any_call(account, bad):
    message = ResultById.VALIDATE_INPUTS(request_id=bad)
    assert isinstance(message, str) and "is not a RunComfy request id" in message and "\n" not in message
    with pytest.raises(errors.RequestValidationError, match="is not a RunComfy request id"):
        asyncio.run(ResultById().generate(unique_id="3", request_id=bad))
    assert account.requests() == []


def test_a_well_formed_or_linked_request_id_passes_validation():
    assert ResultById.VALIDATE_INPUTS(request_id="0f8e1c2a-1b2c-4d5e-8f90-123456789abc") is True
    assert ResultById.VALIDATE_INPUTS(request_id=None) is True  # linked: checked when it runs


def test_another_accounts_request_id_gives_runcomfys_answer(account):
    other = account.add_account(name="someone-else")
    request_id = finished_elsewhere(account, other)
    with pytest.raises(errors.NotFoundError) as caught:
        asyncio.run(ResultById().generate(unique_id="3", request_id=request_id))
    message = str(caught.value)
    assert "belongs to another RunComfy account" in message and request_id in message
    assert other not in message and account.token not in message
    assert submits(account) == 1 and not account.requests(route="file")


def test_the_result_command_writes_the_images_of_a_request(simulator, user_env, tmp_path):
    request_id = finished_elsewhere(simulator)
    done = cli(user_env, "result", request_id, out=tmp_path / "out")
    (path,) = written(done)
    assert path.name == f"{request_id}-1.png" and path.read_bytes() == simulator.job(request_id).files[0]
    assert submits(simulator) == 1 and f"request id: {request_id}" in done.stderr


def test_history_lists_recent_jobs_newest_first_with_time_model_state_cost_prompt_and_id(
    simulator, user_env, tmp_path
):
    long_prompt = "a very long prompt about " + "lighthouses and waves " * 6
    written(cli(user_env, "text-to-image", "--prompt", "the first picture", "--resolution", "0.5K", out=tmp_path))
    simulator.script_next_jobs("failed")
    assert cli(user_env, "text-to-image", "--prompt", "the second", "--resolution", "0.5K", out=tmp_path).returncode == 2
    written(cli(user_env, "text-to-image", "--prompt", long_prompt, "--resolution", "0.5K", out=tmp_path))
    ids = list(simulator.jobs)  # in submit order

    as_json = cli(user_env, "history", "--json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert [row["request_id"] for row in rows] == ids[::-1]
    assert [row["state"] for row in rows] == ["completed", "failed", "completed"]
    assert {row["model"] for row in rows} == {T2I}
    times = [datetime.fromisoformat(row["time"]) for row in rows]
    assert times == sorted(times, reverse=True) and times[0] - times[-1] < timedelta(minutes=5)
    assert rows[0]["cost_usd"] > 0 and rows[2]["cost_usd"] > 0
    assert rows[2]["prompt"] == "the first picture"
    assert rows[0]["prompt"].endswith("…") and long_prompt.startswith(rows[0]["prompt"][:-1])

    table = cli(user_env, "history")
    lines = table.stdout.splitlines()
    assert table.returncode == 0 and len(lines) == 3
    for line, row in zip(lines, rows):
        assert row["request_id"] in line and row["state"] in line and row["time"][:16] in line
        assert "text-to-image" in line and "google/" not in line  # the model's short name
    assert f"${rows[2]['cost_usd']:.3f}" in lines[2] and "the first picture" in lines[2]
    assert simulator.token not in as_json.stdout + table.stdout


# -- 9. the daily spend limit ----------------------------------------------------------


def test_the_daily_spend_limit_refuses_before_any_submit_but_never_a_reused_result(simulator, user_env, tmp_path):
    first = cli(user_env, *CLI_INPUTS, out=tmp_path / "a")
    written(first)
    cost = float(re.search(r"cost: \$(\d+\.\d+)", first.stderr).group(1))
    assert cost > 0
    limit = round(cost * 1.5, 2)  # room for one job a day, not two
    config = tmp_path / "runcomfy" / "config.json"
    config.write_text(json.dumps({"daily_spend_limit_usd": limit}))

    refused = cli(user_env, "text-to-image", "--prompt", PROMPT, "--resolution", "0.5K", "--seed", "8",
                  out=tmp_path / "b")
    message = refused.stderr.strip()
    assert refused.returncode == 2 and len(message.splitlines()) == 1, refused.stderr
    assert f"${limit:.2f}" in message and f"${cost:.2f} spent today" in message
    assert "daily_spend_limit_usd" in message and str(config) in message
    assert submits(simulator) == 1 and not (tmp_path / "b").exists()
    history = cli(user_env, "history", "--json")
    assert len(json.loads(history.stdout)) == 1, history.stdout  # the refusal left no placeholder behind

    reused = cli(user_env, *CLI_INPUTS, out=tmp_path / "c")
    written(reused)
    assert "not billed again" in reused.stderr and submits(simulator) == 1


def test_the_daily_spend_limit_never_refuses_resuming_a_job_already_paid_for(simulator, user_env, tmp_path):
    simulator.script_next_jobs(queue_seconds=LONG)
    request_id = killed_while_following(simulator, start(cli_command(*CLI_INPUTS, out=tmp_path / "a"), user_env))
    finish(simulator, request_id)
    (tmp_path / "runcomfy" / "config.json").write_text(json.dumps({"daily_spend_limit_usd": 0.01}))

    again = cli(user_env, *CLI_INPUTS, out=tmp_path / "b")
    written(again)
    assert submits(simulator) == 1 and f"resuming request {request_id}" in again.stderr
    refused = cli(user_env, *CLI_INPUTS[:-1], "8", out=tmp_path / "c")  # a new seed would pay: refused
    assert refused.returncode == 2 and "$0.01" in refused.stderr and submits(simulator) == 1
