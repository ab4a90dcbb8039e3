"""The batch command as a user runs it: ``python <pack> batch FILE --yes --output json`` in a subprocess.

Three measurements against one in-process simulator (each job ``batch_queue``
s queued + ``batch_run`` s generating, 1K):

- a ``batch_lines`` batch, wall time ÷ (lines ÷ 8 × one job's time), one job's
  time being a 1-line batch of the same command; polls per job from the
  simulator's log (its /status + /result calls over its life);
- the baseline: one CLI call per line (``text-to-image``), one after another,
  timed over ``batch_baseline_lines`` lines and scaled to the batch;
- a ``batch_resume_lines`` batch stopped with a real SIGINT once about half
  its jobs finished, then run again: duplicate submits counted in the log.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from report import Metric
from workloads import PROMPT, Plan, Seeds, simulator

PACK = Path(__file__).resolve().parent.parent
SLOTS = 8
POLL_ROUTES = ("status", "result")


def measure_batch(plan: Plan, seeds: Seeds) -> dict[str, Metric]:
    with simulator(queue_seconds=plan.batch_queue, run_seconds=plan.batch_run) as sim, \
            tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        one_job = statistics.median(_run_batch(_file(work / f"one{n}.jsonl", seeds, 1), work / "out")
                                    for n in range(plan.runs))
        before = set(sim.jobs)
        took = _run_batch(_file(work / "batch.jsonl", seeds, plan.batch_lines), work / "out")
        polls = _polls_per_job(sim, set(sim.jobs) - before)
        started = time.monotonic()
        for _ in range(plan.batch_baseline_lines):
            _cli_call(seeds(), work / "cli")
        per_line = (time.monotonic() - started) / plan.batch_baseline_lines
        duplicates, remaining_only = _stop_then_resume(sim, _file(work / "resume.jsonl", seeds, plan.batch_resume_lines),
                                                       work / "resumed")
    ideal = plan.batch_lines / SLOTS * one_job
    return {
        "batch.ratio": Metric(took / ideal, "x", "batch ÷ (jobs ÷ 8 × one job)"),
        "batch.seconds": Metric(took, "s", "batch wall time"),
        "batch.one_job": Metric(one_job, "s", "one job"),
        "batch.polls": Metric(statistics.mean(polls), "/s", "polls per job"),
        "batch.polls_highest": Metric(max(polls), "/s", "highest job"),
        "batch.cli_ratio": Metric(per_line * plan.batch_lines / ideal, "x", "one CLI call per line ÷ (jobs ÷ 8 × one job)"),
        "batch.cli_seconds": Metric(per_line * plan.batch_lines, "s", "one CLI call per line"),
        "batch.resume_duplicates": Metric(duplicates, "n", "duplicate submits after the resume"),
        "batch.resume_remaining_only": Metric(remaining_only, "bool", "resume submitted exactly the rest"),
    }


def _file(path: Path, seeds: Seeds, lines: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"job{n}", "prompt": PROMPT, "seed": seeds(), "resolution": "1K"}) + "\n"
                            for n in range(lines)))
    return path


def _command(*args: str) -> list[str]:
    return [sys.executable, str(PACK), *args]


def _run_batch(jobs: Path, out: Path) -> float:
    """The batch's own wall time (its summary event), from reading the file to the last file written."""
    done = subprocess.run(_command("batch", str(jobs), "--out", str(out), "--yes", "--output", "json"),
                          capture_output=True, text=True, timeout=3600)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    if done.returncode != 0 or events[-1]["event"] != "summary":
        raise RuntimeError(f"batch failed: {done.stderr[-2000:]}")
    return float(events[-1]["seconds"])


def _cli_call(seed: int, out: Path) -> None:
    done = subprocess.run(_command("text-to-image", "--prompt", PROMPT, "--seed", str(seed), "--out", str(out)),
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"text-to-image failed: {done.stderr[-2000:]}")


def _polls_per_job(sim: Any, request_ids: set[str]) -> list[float]:
    """Each job's /status + /result calls ÷ its life on the client's side (submit → last poll)."""
    times: dict[str, list[float]] = defaultdict(list)
    submitted: dict[str, float] = {}
    for record in sim.requests():
        if record.request_id in request_ids:
            if record.route == "submit":
                submitted[record.request_id] = record.time
            elif record.route in POLL_ROUTES:
                times[record.request_id].append(record.time)
    return [len(polls) / max(max(polls) - submitted[rid], 1e-9) for rid, polls in times.items()]


def _stop_then_resume(sim: Any, jobs: Path, out: Path) -> tuple[int, bool]:
    """SIGINT once half the jobs finished, then the same command again; duplicate submits of
    inputs whose earlier job was not cancelled (a cancelled queued job is never billed)."""
    lines = len(jobs.read_text().splitlines())
    before = set(sim.jobs)
    process = subprocess.Popen(_command("batch", str(jobs), "--out", str(out), "--yes", "--output", "json"),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    finished = 0
    try:
        for line in process.stdout:
            finished += json.loads(line)["event"] == "job"
            if finished >= lines // 2:
                process.send_signal(signal.SIGINT)
                break
        process.communicate(timeout=600)
    finally:
        process.kill()
    first = set(sim.jobs) - before
    cancelled = {rid for rid in first if sim.state(rid) == "cancelled"}
    _run_batch(jobs, out)
    by_seed: dict[int, list[str]] = defaultdict(list)
    for rid in set(sim.jobs) - before:
        by_seed[sim.job(rid).inputs["seed"]].append(rid)
    duplicates = sum(len([rid for rid in rids if rid not in cancelled]) - 1 for rids in by_seed.values())
    return duplicates, len(by_seed) == lines and duplicates == 0
