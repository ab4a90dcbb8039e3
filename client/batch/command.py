"""``python <pack folder> batch``: the steps in the order the user lives them.

Read and check the whole file; say what it will cost and ask; run; keep the
manifest current; end with a summary that says what was billed. The command
line (``cli.py``) only parses arguments, picks the target and handles Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config.settings import Settings
from ..job.jobs import Jobs, shared_storage
from ..job.stop import Stop
from ..limits import JOB_DEADLINE_SECONDS
from ..transport.api import RunComfyClient
from .jobfile import BatchFile, read_batch_file
from .manifest import Outcome, check_template, default_template, file_stems, write_manifest
from .plan import plan_batch
from .progress import FAILED_STATES, Progress
from .runner import MAX_CONCURRENCY, BatchRun, RunEvent

__all__ = ["BatchOptions", "run_batch"]

MANIFEST_SECONDS = 0.5  # the manifest is rewritten at most this often while running (and at the end)
EXIT_OK, EXIT_SOME_FAILED, EXIT_REFUSED, EXIT_STOPPED = 0, 1, 2, 130


@dataclass(frozen=True)
class BatchOptions:
    jobs: str
    out: Path
    yes: bool = False
    max_usd: float | None = None
    concurrency: int = MAX_CONCURRENCY
    skip_invalid: bool = False
    name: str | None = None
    output: str = "bar"  # bar, plain or json
    reuse: bool = True
    timeout: float = JOB_DEADLINE_SECONDS
    simulated: bool = False  # nothing is billed: no question asked


async def run_batch(settings: Settings, options: BatchOptions, stop: Stop, *, journalled: bool = True,
                    ask: Callable[[str], str] = input) -> int:
    """The whole command; returns its exit code. Nothing is paid before the file is valid and agreed to."""
    async with RunComfyClient(settings) as client:
        return await _run_batch(client, options, stop, journalled, ask)


async def _run_batch(client: RunComfyClient, options: BatchOptions, stop: Stop, journalled: bool,
                     ask: Callable[[str], str]) -> int:
    started = time.monotonic()
    try:
        batch = read_batch_file(options.jobs, local_api=client.local)
        template = options.name or default_template(batch.kept_columns)
        check_template(template, batch.kept_columns)
    except ValueError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    progress = Progress(options.output, len(batch.lines))
    for bad in batch.bad:
        progress.say(f"invalid: {bad}")
        progress.emit("invalid", line=bad.number, field=bad.field, error=bad.message)
    if batch.bad and not options.skip_invalid:
        progress.say(f"error: {len(batch.bad)} invalid line(s) in {options.jobs}; nothing was paid. "
                     "Fix them, or pass --skip-invalid to run the valid lines only")
        return EXIT_REFUSED
    client.settings.require_token()  # MissingTokenError says where to set it; nothing was sent
    journal, store = shared_storage(client.settings) if journalled else (None, None)
    jobs = Jobs(client, max_concurrent_jobs=min(options.concurrency, MAX_CONCURRENCY), journal=journal, store=store)
    plan = await plan_batch(jobs, batch.lines, reuse=options.reuse)
    progress.say(plan.describe())
    progress.emit("plan", jobs=len(plan.lines), reused=plan.reused, followed=plan.followed, to_pay=plan.to_pay,
                  estimate_usd=plan.estimate if plan.unknown_prices < plan.to_pay or not plan.to_pay else None,
                  unknown_prices=plan.unknown_prices, invalid=len(batch.bad))
    refused = _refusal(plan.estimate, plan.to_pay, options, ask)
    if refused:
        progress.say(f"error: {refused}; nothing was paid")
        return EXIT_REFUSED
    stems = file_stems(template, ((line.number, line.kept) for line in batch.lines))
    run = BatchRun(jobs, plan, options.out, stems, stop, concurrency=options.concurrency,
                   max_usd=options.max_usd, timeout=options.timeout, reuse=options.reuse)
    invalid = [Outcome(bad.number, "invalid", kept={}, input=bad.source, error=f"{bad.field}: {bad.message}")
               for bad in batch.bad]
    keeper = _ManifestKeeper(options.out, batch, run, invalid)

    def on_event(event: RunEvent) -> None:
        progress(event)
        if event.kind == "finished":
            keeper.maybe_write()

    run.on_event = on_event
    try:
        outcomes = await run.run()
    finally:
        keeper.write()
    progress.finish()
    return _summary(progress, [*outcomes.values(), *invalid], run, options, time.monotonic() - started, stop.is_set())


def _refusal(estimate: float, to_pay: int, options: BatchOptions, ask: Callable[[str], str]) -> str | None:
    """Why the batch must not start (a budget it passes, no yes); None to go ahead."""
    if options.max_usd is not None and estimate > options.max_usd + 1e-9:
        return f"the estimated total ${estimate:.2f} is over --max-usd {options.max_usd:.2f}"
    if not to_pay or options.yes or options.simulated:
        return None
    if options.jobs == "-" or not sys.stdin.isatty():
        return "not asking on a non-terminal: pass --yes to pay for this batch"
    try:
        answer = ask(f"Pay for {to_pay} job(s) now? [y/N] ")
    except EOFError:
        answer = ""
    return None if answer.strip().lower() in ("y", "yes") else "not confirmed"


class _ManifestKeeper:
    """Keeps ``manifest.jsonl``/``.csv`` current: every line, in order, pending until it ends."""

    def __init__(self, out: Path, batch: BatchFile, run: BatchRun, invalid: list[Outcome]) -> None:
        self.out, self.batch, self.run, self.invalid = out, batch, run, invalid
        self.pending = {line.number: Outcome(line.number, "pending", line.model_id, line.kept, line.source)
                        for line in batch.lines}
        self.written_at = 0.0

    def maybe_write(self) -> None:
        if time.monotonic() - self.written_at >= MANIFEST_SECONDS:
            self.write()

    def write(self) -> None:
        rows = {**self.pending, **self.run.outcomes}
        write_manifest(self.out, [*rows.values(), *self.invalid], kept_columns=self.batch.kept_columns,
                       as_csv=self.batch.kind == "csv")
        self.written_at = time.monotonic()


def _summary(progress: Progress, outcomes: list[Outcome], run: BatchRun, options: BatchOptions, seconds: float,
             stopped: bool) -> int:
    counts = Counter(outcome.status for outcome in outcomes)
    may_be_billed = [outcome for outcome in outcomes if outcome.status == "stopped"]
    text = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    progress.say(f"summary: {text}; reported cost ${run.spent:.2f}; {seconds:.1f} s; manifest: "
                 f"{options.out / 'manifest.jsonl'}")
    if stopped:
        cancelled = counts.get("cancelled", 0)
        progress.say(f"stopped: billed so far ${run.spent:.2f} as reported; {cancelled} queued job(s) cancelled "
                     "(not billed)")
    for outcome in may_be_billed:
        progress.say(f"  line {outcome.line}: request {outcome.request_id} was running and may still be billed")
    if stopped or may_be_billed or counts.get("skipped") or counts.get("failed"):
        progress.say("run the same command again: finished jobs are reused and running ones followed, never paid twice")
    progress.emit("summary", counts=dict(counts), cost_usd=run.spent, seconds=round(seconds, 3), stopped=stopped,
                  may_be_billed=[outcome.request_id for outcome in may_be_billed])
    if stopped:
        return EXIT_STOPPED
    unfinished = sum(counts.get(state, 0) for state in (*FAILED_STATES, "skipped", "invalid", "cancelled", "stopped"))
    return EXIT_SOME_FAILED if unfinished else EXIT_OK

