"""``python <pack folder> batch``, run as a user runs it, against the simulator over real HTTP.

Each test starts the command in a subprocess with its own config and data
folder (journal, result store), so resumes read the journal a real second run
would read. Ctrl-C is a real SIGINT and a crash a real SIGKILL to that process;
tests wait on the simulator's own log and state, never on a sleep.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from packloader import PACK_ROOT, pack_import
from userenv import pack_env

sim_images = pack_import("simulator.images")
LONG = 30.0  # simulated seconds a scripted phase lasts; tests step over it with simulator.advance()


@pytest.fixture
def user_env(simulator, tmp_path):
    return pack_env(tmp_path / "config" / "config.json", RUNCOMFY_API_BASE_URL=simulator.url,
                    RUNCOMFY_API_TOKEN=simulator.token)


def batch(*args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PACK_ROOT), "batch", *args], capture_output=True, text=True,
                          timeout=180, env=env, cwd=cwd, input=stdin)


def start_batch(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PACK_ROOT), "batch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def manifest(out: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {row["line"]: row for row in rows}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def prompts_submitted(simulator) -> list[str]:
    return [job.inputs["prompt"] for job in simulator.jobs.values()]


def test_mixed_jsonl_with_local_edit_images(simulator, user_env, tmp_path):
    (tmp_path / "refs").mkdir()
    Image.new("RGB", (320, 240), (200, 30, 30)).save(tmp_path / "refs" / "shoe.png")
    Image.new("RGB", (200, 200), (30, 30, 200)).save(tmp_path / "refs" / "logo.jpg", "JPEG")
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [
        {"id": "a", "prompt": "a red fox", "resolution": "0.5K", "aspect_ratio": "3:2"},
        {"id": "b", "model": "edit", "prompt": "on a beach", "image_urls": ["refs/shoe.png", "refs/logo.jpg"],
         "resolution": "0.5K"},
        {"id": "c", "model": "text-to-image", "prompt": "two owls", "num_images": 2, "resolution": "0.5K",
         "output_format": "webp"},
    ])
    out = tmp_path / "out"
    done = batch(str(jobs), "--out", str(out), "--yes", env=user_env)
    assert done.returncode == 0, done.stderr
    assert "3 job(s): 0 already done" in done.stderr and "3 to pay" in done.stderr
    rows = manifest(out)
    assert [rows[n]["status"] for n in (1, 2, 3)] == ["completed"] * 3
    assert rows[2]["kept"] == {"id": "b"} and rows[2]["input"]["image_urls"] == ["refs/shoe.png", "refs/logo.jpg"]
    edit_job = simulator.job(rows[2]["request_id"])
    assert [image.size for image in edit_job.images] == [(320, 240), (200, 200)]
    assert rows[1]["files"] == ["0001-a.png"] and rows[3]["files"] == ["0003-c-1.webp", "0003-c-2.webp"]
    with Image.open(out / "0001-a.png") as image:
        assert image.size == sim_images.expected_size("3:2", "0.5K")
    for name in rows[3]["files"]:
        with Image.open(out / name) as image:
            assert image.format == "WEBP"
    assert all(rows[n]["cost_usd"] > 0 for n in (1, 2, 3))
    assert "summary: 3 completed" in done.stderr and simulator.token not in done.stderr + done.stdout


def test_csv_with_extra_columns_names_files_and_writes_both_manifests(simulator, user_env, tmp_path):
    jobs = tmp_path / "products.csv"
    jobs.write_text("sku,colour,prompt,resolution,seed\n"
                    "MUG-1,red,a red mug,0.5K,7\n"
                    "MUG-2,blue,a blue mug,0.5K,8\n")
    out = tmp_path / "out"
    done = batch(str(jobs), "--out", str(out), "--yes", "--name", "{sku}_{colour}", "--output", "json", env=user_env)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [event["event"] for event in events][0] == "plan" and events[-1]["event"] == "summary"
    assert events[0]["to_pay"] == 2 and events[-1]["counts"] == {"completed": 2}
    with (out / "manifest.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [(row["line"], row["sku"], row["colour"], row["status"], row["files"]) for row in table] == [
        ("2", "MUG-1", "red", "completed", "MUG-1_red.png"), ("3", "MUG-2", "blue", "completed", "MUG-2_blue.png")]
    assert {job.inputs["seed"] for job in simulator.jobs.values()} == {7, 8}  # cells typed by the schema
    assert all(row["request_id"] in simulator.jobs for row in table)


def test_an_invalid_line_pays_nothing_unless_skipped(simulator, user_env, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [
        {"prompt": "fine", "resolution": "0.5K"},
        {"prompt": "too many", "num_images": 9},
        {"model": "edit", "prompt": "no such file", "image_urls": ["missing.png"]},
    ])
    out = tmp_path / "out"
    refused = batch(str(jobs), "--out", str(out), "--yes", env=user_env)
    assert refused.returncode == 2
    assert "line 2: num_images: must be at most 4" in refused.stderr
    assert "line 3: image_urls: cannot read missing.png" in refused.stderr
    assert "nothing was paid" in refused.stderr and simulator.requests() == []

    skipped = batch(str(jobs), "--out", str(out), "--yes", "--skip-invalid", env=user_env)
    assert skipped.returncode == 1, skipped.stderr
    rows = manifest(out)
    assert rows[1]["status"] == "completed" and rows[2]["status"] == rows[3]["status"] == "invalid"
    assert rows[2]["error"].startswith("num_images:") and len(simulator.jobs) == 1


def test_a_blocked_job_is_recorded_and_the_others_finish(simulator, user_env, tmp_path):
    simulator.script_next_jobs("blocked")
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": f"p{n}", "resolution": "0.5K"} for n in range(4)])
    out = tmp_path / "out"
    done = batch(str(jobs), "--out", str(out), "--yes", "--concurrency", "1", env=user_env)
    assert done.returncode == 1
    rows = manifest(out)
    assert [rows[n]["status"] for n in (1, 2, 3, 4)] == ["blocked", "completed", "completed", "completed"]
    assert rows[1]["request_id"] in simulator.jobs and "safety filter" in rows[1]["error"]
    assert rows[1]["request_id"] in rows[1]["error"]


def test_ctrl_c_cancels_queued_jobs_then_the_resume_pays_only_the_rest(simulator, user_env, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"sku": f"s{n}", "prompt": f"p{n}", "resolution": "0.5K"}
                                                 for n in range(6)])
    out = tmp_path / "out"
    simulator.script_next_jobs("completed", count=2)
    simulator.script_next_jobs("queued_forever", count=2)
    process = start_batch(str(jobs), "--out", str(out), "--yes", "--concurrency", "2", env=user_env)
    try:
        simulator.wait_until(lambda: len(simulator.jobs) == 4 and simulator.requests(route="status")
                             and sum(simulator.state(rid) == "completed" for rid in simulator.jobs) == 2, timeout=60)
        simulator.wait_until(lambda: len(simulator.requests(route="status")) >= 6, timeout=30)  # both queued followed
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    queued = [rid for rid, job in simulator.jobs.items() if simulator.state(rid) == "cancelled"]
    assert len(queued) == 2 and "2 queued job(s) cancelled" in stderr and "billed so far $" in stderr
    rows = manifest(out)
    assert sorted(row["status"] for row in rows.values()) == ["cancelled", "cancelled", "completed", "completed",
                                                              "skipped", "skipped"]
    first_run = dict(simulator.jobs)

    resumed = batch(str(jobs), "--out", str(out), "--yes", env=user_env)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 already done (reused, free)" in resumed.stderr and "4 to pay" in resumed.stderr
    new = {rid: job for rid, job in simulator.jobs.items() if rid not in first_run}
    completed_before = {job.inputs["prompt"] for rid, job in first_run.items() if simulator.state(rid) == "completed"}
    assert len(new) == 4 and not completed_before & {job.inputs["prompt"] for job in new.values()}
    rows = manifest(out)
    assert sorted(row["status"] for row in rows.values()) == ["completed"] * 4 + ["reused"] * 2
    assert sorted(name for row in rows.values() for name in row["files"]) == sorted(p.name for p in out.glob("*.png"))


def test_a_second_ctrl_c_quits_at_once(simulator, user_env, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": "p", "resolution": "0.5K"}])
    simulator.script_next_jobs("queued_forever")
    held = simulator.add_fault("cancel", "hold")  # the first Ctrl-C's cancel call waits here
    process = start_batch(str(jobs), "--out", str(tmp_path / "out"), "--yes", env=user_env)
    try:
        simulator.wait_until(lambda: simulator.requests(route="status"), timeout=60)
        process.send_signal(signal.SIGINT)
        simulator.wait_until(lambda: simulator.held(held) == 1, timeout=30)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        simulator.release(held)
        process.kill()
    assert process.returncode == 130
    assert "quit: jobs already submitted may still run and be billed" in stderr
    assert len(simulator.requests(route="submit")) == 1


def test_after_kill_9_the_resume_follows_the_jobs_instead_of_paying_again(simulator, user_env, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": f"p{n}", "resolution": "0.5K"} for n in range(3)])
    out = tmp_path / "out"
    simulator.script_next_jobs("completed", count=3, queue_seconds=LONG)
    process = start_batch(str(jobs), "--out", str(out), "--yes", env=user_env)
    try:
        simulator.wait_until(lambda: len(simulator.jobs) == 3 and len(simulator.requests(route="status")) >= 3,
                             timeout=60)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    simulator.advance(LONG)  # the jobs finish on RunComfy while nobody watches

    resumed = batch(str(jobs), "--out", str(out), "--yes", env=user_env)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 already paid and still to collect (free), 0 to pay" in resumed.stderr
    assert len(simulator.requests(route="submit")) == 3 and len(simulator.jobs) == 3
    rows = manifest(out)
    assert {row["request_id"] for row in rows.values()} == set(simulator.jobs)
    assert all(row["status"] == "completed" and (out / row["files"][0]).is_file() for row in rows.values())


def test_a_budget_refuses_an_estimate_over_it_and_stops_submitting_at_it(simulator, user_env, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": f"p{n}"} for n in range(5)])  # 1K jobs
    out = tmp_path / "out"
    over = batch(str(jobs), "--out", str(out), "--yes", "--max-usd", "0.2", env=user_env)
    assert over.returncode == 2 and "over --max-usd 0.20" in over.stderr and simulator.requests(route="submit") == []

    simulator.configure(pricing="missing")  # no estimate: only the reported spend can stop it
    stopped = batch(str(jobs), "--out", str(out), "--yes", "--max-usd", "0.2", "--concurrency", "1", env=user_env)
    assert "estimated total unknown" in stopped.stderr
    assert stopped.returncode == 1, stopped.stderr
    rows = manifest(out)
    paid = [row for row in rows.values() if row["status"] == "completed"]
    spent = sum(row["cost_usd"] for row in paid)
    assert len(simulator.jobs) == len(paid) and spent >= 0.2 and spent - paid[-1]["cost_usd"] < 0.2
    assert all("--max-usd" in row["error"] for row in rows.values() if row["status"] == "skipped")
    assert len(paid) < 5


def test_the_daily_spend_limit_applies_to_every_job_of_a_batch(simulator, user_env, tmp_path):
    config = Path(user_env["RUNCOMFY_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"daily_spend_limit_usd": 0.1}))
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": f"p{n}", "resolution": "1K"} for n in range(3)])
    done = batch(str(jobs), "--out", str(tmp_path / "out"), "--yes", "--concurrency", "1", env=user_env)
    assert done.returncode == 1
    rows = manifest(tmp_path / "out")
    assert [rows[n]["status"] for n in (1, 2, 3)] == ["completed", "failed", "skipped"]
    assert "daily spend limit" in rows[2]["error"] and len(simulator.jobs) == 1


def test_standard_input_and_the_shipped_example_against_the_built_in_simulator(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCOMFY_")}
    example = (PACK_ROOT / "examples" / "batch" / "products.csv").read_text()
    assert len(example.splitlines()) == 21  # a header and 20 jobs
    lines = "\n".join(example.splitlines()[:3]).replace(",1K,", ",0.5K,")
    done = batch("-", "--simulator", "--out", "out", env=env, cwd=tmp_path, stdin=lines)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "0002-MUG-01.png", "0003-MUG-02.png", "manifest.csv", "manifest.jsonl"]


def test_without_a_token_it_says_how_to_set_one_and_sends_nothing(simulator, user_env, tmp_path):
    del user_env["RUNCOMFY_API_TOKEN"]
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": "p"}])
    done = batch(str(jobs), "--out", str(tmp_path / "out"), "--yes", env=user_env)
    assert done.returncode == 2 and "RUNCOMFY_API_TOKEN" in done.stderr and simulator.requests() == []


def test_no_balance_refuses_the_job_and_stops_further_submits(simulator, user_env, tmp_path):
    simulator.set_balance(0.0)
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": f"p{n}", "resolution": "0.5K"} for n in range(3)])
    done = batch(str(jobs), "--out", str(tmp_path / "out"), "--yes", "--concurrency", "1", env=user_env)
    assert done.returncode == 1
    rows = manifest(tmp_path / "out")
    assert [rows[n]["status"] for n in (1, 2, 3)] == ["failed", "skipped", "skipped"]
    assert "balance" in rows[1]["error"].lower() and len(simulator.requests(route="submit")) == 1
    assert simulator.jobs == {}
