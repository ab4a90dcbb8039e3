"""Command line: run Nano Banana 2 from a shell, against RunComfy or the local simulator.

    python <pack folder> text-to-image --prompt "a red fox" --out out/
    python <pack folder> edit --prompt "make it night" --image photo.png --out out/
    python <pack folder> result <request id> --out out/               # collect a job (free)
    python <pack folder> history [--json]                              # recent jobs, newest first
    python <pack folder> batch jobs.csv --out out/                     # many jobs from a file, priced first
    python <pack folder> text-to-image --simulator --prompt "try it"   # no token needed
    python <pack folder> simulator --port 8189                          # serve the simulator
    python <pack folder> login | logout | whoami                       # sign in the RunComfy CLI's way
    python <pack folder> login --simulator                             # try the sign-in with no account

Options mirror the model schemas. Files are written as
``<out>/<request id>-<n>.<ext>``; the request id and the cost are printed.
Like the nodes, the same inputs are never paid twice: a stored result is
reused and a job of them already paid for is followed (see ``--no-reuse``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, Sequence

from .client import (
    FinishedJob,
    InlineImage,
    JobCancelledError,
    Jobs,
    RunComfyClient,
    RunComfyError,
    Settings,
    Stop,
    formats,
    load_settings,
)
from .client.batch.command import BatchOptions, run_batch
from .client.batch.jobfile import reference_image
from .client.batch.runner import MAX_CONCURRENCY
from .client.job.jobs import shared_storage
from .client.limits import JOB_DEADLINE_SECONDS, SEED_MAX, SEED_MIN
from .client.model.schemas import EDIT, TEXT_TO_IMAGE, get_schema


def _add_schema_options(parser: argparse.ArgumentParser, model_id: str) -> None:
    for name, spec in get_schema(model_id).properties.items():
        if name == "image_urls":
            continue
        flag = "--" + name.replace("_", "-")
        help_text = f"{spec.get('description', '')} (default: {spec.get('default')!r})"
        if name == "seed":
            help_text += f"; {SEED_MIN}..{SEED_MAX}"
        if spec["type"] == "boolean":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif spec["type"] == "integer":
            parser.add_argument(flag, dest=name, type=int, choices=spec.get("enum"), default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, choices=spec.get("enum"), default=None, help=help_text)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the result files (default: out)")
    parser.add_argument("--simulator", action="store_true",
                        help="run against a local simulator started for this command (no token, no cost)")
    parser.add_argument("--timeout", type=float, default=JOB_DEADLINE_SECONDS,
                        help=f"seconds to wait for the job (default {JOB_DEADLINE_SECONDS:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python <pack folder>", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command, model_id in (("text-to-image", TEXT_TO_IMAGE), ("edit", EDIT)):
        sub = commands.add_parser(command, help=f"run {model_id}")
        _add_schema_options(sub, model_id)
        if model_id == EDIT:
            sub.add_argument("--image", action="append", default=[], metavar="PATH_OR_URL",
                             help="reference image: a local PNG/JPEG/WebP file or a hosted URL (repeatable)")
        sub.add_argument("--no-reuse", action="store_true",
                         help="submit even if the same inputs were paid for before (billed again)")
        _add_run_options(sub)
    result = commands.add_parser("result", help="collect the images of an existing request (free)")
    result.add_argument("request_id", help="the RunComfy request id (from history, an error, or the dashboard)")
    _add_run_options(result)
    _add_batch_command(commands)
    history = commands.add_parser("history", help="list recent jobs of this account, newest first")
    history.add_argument("--limit", type=int, default=20, help="how many jobs (default 20)")
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    login = commands.add_parser("login", help="sign in with RunComfy (device code, as `runcomfy login`)")
    login.add_argument("--simulator", action="store_true",
                       help="sign in against a local simulator that approves on its own (your sign-in is untouched)")
    commands.add_parser("logout", help="remove the stored token (token.json, shared with RunComfy's CLI)")
    commands.add_parser("whoami", help="who the token belongs to, the balance, and where the token comes from")
    # Listed for --help only: main() hands everything after "simulator" to its own parser.
    commands.add_parser("simulator", help="serve the local RunComfy simulator until Ctrl-C (see: simulator --help)")
    return parser


def _add_batch_command(commands: Any) -> None:
    batch = commands.add_parser("batch", help="run every job of a JSONL or CSV file: priced first, resumable")
    batch.add_argument("jobs", metavar="JOBS", help="a .jsonl or .csv file, one job a line/row; - reads standard input")
    batch.add_argument("--yes", action="store_true", help="pay without asking once the price is shown")
    batch.add_argument("--max-usd", type=float, default=None, metavar="N",
                       help="refuse a batch estimated over N dollars; stop submitting before reported spend passes N")
    batch.add_argument("--concurrency", type=int, default=MAX_CONCURRENCY, choices=range(1, MAX_CONCURRENCY + 1),
                       metavar=f"1..{MAX_CONCURRENCY}", help=f"jobs at once (default {MAX_CONCURRENCY}, the account's slots)")
    batch.add_argument("--skip-invalid", action="store_true", help="run the valid lines of a file with invalid ones")
    batch.add_argument("--name", default=None, metavar="TEMPLATE",
                       help="file names from the columns, e.g. '{sku}-{line}' (default: line number + first kept column)")
    batch.add_argument("--output", choices=("bar", "plain", "json"), default=None,
                       help="progress bar (a terminal's default), plain lines (otherwise), or JSON events on stdout")
    batch.add_argument("--no-reuse", action="store_true",
                       help="submit even lines whose inputs were paid for before (billed again)")
    _add_run_options(batch)


def _image_input(value: str) -> str | InlineImage:
    """A URL as is, or a local file as an inline image."""
    try:
        return reference_image(value, Path.cwd())
    except ValueError as problem:
        raise SystemExit(f"error: --image {problem}")


def _request_body(args: argparse.Namespace, model_id: str) -> dict[str, Any]:
    schema = get_schema(model_id)
    body = {name: getattr(args, name) for name in schema.properties if getattr(args, name, None) is not None}
    if model_id == EDIT:
        body["image_urls"] = [_image_input(value) for value in args.image]
    body.setdefault("prompt", schema.properties["prompt"]["default"])
    return body


@contextlib.contextmanager
def _target(use_simulator: bool) -> Iterator[Settings]:
    """Settings for the real API, or for a simulator living as long as the command."""
    if not use_simulator:
        yield load_settings()
        return
    from .simulator.server import Simulator

    with Simulator(queue_seconds=0.5, run_seconds=1.5) as simulator:
        print(f"simulator: {simulator.url} (local, nothing is billed)", file=sys.stderr)
        yield Settings(base_url=simulator.url, token=simulator.token, token_source="simulator",
                       www_base_url=simulator.www_url, account_base_url=simulator.api_url)


def _stop_on_ctrl_c(second: Callable[[], None] | None = None) -> Stop:
    """Ctrl-C asks the job to stop (cancelling it on RunComfy if still queued), as
    ComfyUI's Stop does; a second Ctrl-C interrupts at once (or calls ``second``)."""
    stop = Stop()
    loop = asyncio.get_running_loop()

    def first_ctrl_c() -> None:
        print("  stopping (Ctrl-C again to quit at once)", file=sys.stderr)
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)
        if second is not None:
            loop.add_signal_handler(signal.SIGINT, second)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C stays KeyboardInterrupt
        loop.add_signal_handler(signal.SIGINT, first_ctrl_c)
    return stop


Work = Callable[[Jobs, Stop, Callable[[Any], None]], Awaitable[FinishedJob[bytes]]]


async def _run(settings: Settings, work: Work, out: Path, *, journalled: bool) -> int:
    """Run ``work`` with this account's jobs (and the user's journal), write the files, say what it cost."""

    def show(update) -> None:
        print(f"  {update.describe()}", file=sys.stderr)

    journal, store = shared_storage(settings) if journalled else (None, None)
    stop = _stop_on_ctrl_c()
    async with RunComfyClient(settings) as client:
        try:
            job = await work(Jobs(client, journal=journal, store=store), stop, show)
        except JobCancelledError as stopped:
            if not stop.is_set():
                raise
            print(f"stopped: {stopped}", file=sys.stderr)
            return 130
    out.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(job.files, start=1):
        kind = formats.sniff(data)
        path = out / f"{job.request_id}-{index}.{kind.extension if kind else 'bin'}"
        path.write_bytes(data)
        print(path)
    if job.reused_at is not None:
        cost = f"reused from {job.reused_at.astimezone():%Y-%m-%d %H:%M}, not billed again"
    else:
        cost = f"${job.cost:.3f}" if job.cost is not None else "not reported"
    print(f"request id: {job.request_id}  cost: {cost}", file=sys.stderr)
    return 0


def _history(limit: int, as_json: bool) -> int:
    """Recent jobs of the configured account (all accounts when no token is set), newest first."""
    from .client.ledger.fingerprint import account_fingerprint

    settings = load_settings()
    journal, _ = shared_storage(settings)
    if journal is None or not journal.available:
        print("error: the job journal cannot be used (see the warning above)", file=sys.stderr)
        return 2
    account = account_fingerprint(settings.base_url, settings.token) if settings.token else None
    entries = journal.recent(limit, account=account)
    rows = [
        {
            "time": entry.created_at.astimezone().isoformat(timespec="seconds"), "model": entry.model_id,
            "state": entry.state.value, "cost_usd": entry.cost, "prompt": entry.prompt_preview,
            "request_id": entry.request_id,
        }
        for entry in entries
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        cost = f"${row['cost_usd']:.3f}" if row["cost_usd"] is not None else "-"
        model = row["model"].rsplit("/", 1)[-1]
        print(f"{row['time'][:16]}  {model:<13} {row['state']:<10} {cost:>7}  {row['prompt'][:40]:<40}  "
              f"{row['request_id'] or '(no id)'}")
    if not rows:
        print("no jobs yet", file=sys.stderr)
    return 0


async def _batch(settings: Settings, args: argparse.Namespace) -> int:
    """The batch command; a second Ctrl-C quits at once: every paid job is in the journal, so
    running the same command again follows it instead of paying again."""

    def quit_now() -> None:
        print("quit: jobs already submitted may still run and be billed; run the same command again to "
              "collect them (free)", file=sys.stderr, flush=True)
        os._exit(130)

    output = args.output or ("bar" if sys.stderr.isatty() else "plain")
    options = BatchOptions(
        jobs=args.jobs, out=args.out, yes=args.yes, max_usd=args.max_usd, concurrency=args.concurrency,
        skip_invalid=args.skip_invalid, name=args.name, output=output, reuse=not args.no_reuse,
        timeout=args.timeout, simulated=args.simulator,
    )
    return await run_batch(settings, options, _stop_on_ctrl_c(quit_now), journalled=not args.simulator)


def _account(args: argparse.Namespace) -> int:
    """login / logout / whoami; ``login --simulator`` keeps the user's own sign-in file untouched."""
    from .client.account import command

    if not getattr(args, "simulator", False):
        try:
            settings = load_settings()
        except RunComfyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return command.run(args.command, settings)
    import tempfile

    from .simulator.server import Simulator

    with Simulator(sign_in_auto="approve", sign_in_poll_interval=0.5) as simulator, \
            tempfile.TemporaryDirectory(prefix="runcomfy-sim-") as folder:
        print(f"simulator: {simulator.url} (local, approves the sign-in on its own)", file=sys.stderr)
        env = {name: value for name, value in os.environ.items() if not name.startswith("RUNCOMFY_")}
        env.update(RUNCOMFY_CONFIG_DIR=folder, RUNCOMFY_CONFIG=str(Path(folder) / "config.json"),
                   RUNCOMFY_API_BASE_URL=simulator.url, RUNCOMFY_WWW_BASE_URL=simulator.www_url,
                   RUNCOMFY_ACCOUNT_BASE_URL=simulator.api_url)
        return command.run("login", load_settings(env), env)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("RUNCOMFY_LOG_LEVEL", "WARNING"), format="%(levelname)s %(message)s")
    if argv[:1] == ["simulator"]:
        from .simulator.cli import main as simulator_main

        return simulator_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command in ("login", "logout", "whoami"):
        return _account(args)
    try:
        if args.command == "history":
            return _history(args.limit, args.json)
        if args.command == "batch":
            with _target(args.simulator) as settings:
                return asyncio.run(_batch(settings, args))
        if args.command == "result":
            async def work(jobs: Jobs, stop: Stop, show: Callable[[Any], None]) -> FinishedJob[bytes]:
                return await jobs.collect(args.request_id, on_update=show, stop=stop, timeout=args.timeout)
        else:
            model_id = TEXT_TO_IMAGE if args.command == "text-to-image" else EDIT
            body = _request_body(args, model_id)

            async def work(jobs: Jobs, stop: Stop, show: Callable[[Any], None]) -> FinishedJob[bytes]:
                reuse = jobs.client.settings.reuse_results and not args.no_reuse
                return await jobs.run(model_id, body, on_update=show, stop=stop, timeout=args.timeout, reuse=reuse)
        with _target(args.simulator) as settings:
            return asyncio.run(_run(settings, work, args.out, journalled=not args.simulator))
    except RunComfyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: a job already submitted may still run and be billed; see your RunComfy dashboard",
              file=sys.stderr)
        return 130
