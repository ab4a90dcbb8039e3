"""Command line: run the simulator in the foreground for a demo, a benchmark
or a real ComfyUI run.

It prints the base URL and the token to use. That token is the simulator's
own (random unless ``--token`` is given), not a RunComfy secret, so printing it
is fine. The server binds loopback unless ``--host`` names another address
explicitly, because it has no real security and accepts any loopback fetch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from typing import Sequence

from .inputs import is_loopback_host
from .options import CHOICES, Options
from .server import Simulator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8189


def build_parser() -> argparse.ArgumentParser:
    """Every argument after ``--balance`` is the ``Options`` field of the same name."""
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python <pack folder> simulator",
        description="Local RunComfy-compatible Model API (Nano Banana 2) for tests and demos.",
    )
    parser.add_argument("--host", default=None,
                        help=f"address to bind (default {DEFAULT_HOST}; anything but loopback must be explicit)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--token", default=None, help="token of the default account (default: a random one)")
    parser.add_argument("--balance", type=float, default=100.0, help="balance of the default account in USD (default 100)")
    parser.add_argument("--queue-seconds", type=float, default=defaults.queue_seconds,
                        help=f"time a job stays in_queue (default {defaults.queue_seconds:g})")
    parser.add_argument("--run-seconds", type=float, default=defaults.run_seconds,
                        help=f"time a job stays in_progress (default {defaults.run_seconds:g})")
    parser.add_argument("--error-status", dest="error_statuses", action="append", default=[], metavar="CODE=STATUS",
                        help="answer an error code with this HTTP status, e.g. 400004=400 (repeatable; "
                             "RunComfy's docs pair no code with a status)")
    parser.add_argument("--error-style", choices=CHOICES["error_style"], default=defaults.error_style,
                        help="a failed job's error as a string or as {message, code}")
    parser.add_argument("--output-style", choices=CHOICES["output_style"], default=defaults.output_style,
                        help="output keys of a completed result")
    parser.add_argument("--no-result-model-id", dest="result_model_id", action="store_false",
                        help="leave model_id out of results")
    parser.add_argument("--cancel-body", choices=CHOICES["cancel_body"], default=defaults.cancel_body,
                        help="which keys a cancel answer carries")
    parser.add_argument("--cancel-outcome", choices=CHOICES["cancel_outcome"], default=defaults.cancel_outcome,
                        help="the outcome word of a successful cancel")
    parser.add_argument("--public-catalog", action="store_true", help="answer GET /v1/models without a token")
    parser.add_argument("--refund-failed", action="store_true", help="refund failed jobs")
    parser.add_argument("--file-ttl-seconds", type=float, default=None, help="output files expire after this")
    parser.add_argument("--max-active-jobs", type=int, default=None, help="per-account limit of queued+running jobs (429)")
    parser.add_argument("--pricing", choices=CHOICES["pricing"], default=defaults.pricing,
                        help="how GET /v1/models/{id} states prices (and what a submit bills)")
    return parser


def main(argv: Sequence[str] | None = None, *, ready: threading.Event | None = None,
         stop: threading.Event | None = None) -> int:
    """Run until Ctrl-C (or until ``stop`` is set, for embedding); returns the exit code.

    ``ready`` is set once the server listens, so an embedding caller (the
    pack's own command line, a test) knows when it can connect.
    """
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    host = args.host or DEFAULT_HOST  # only an explicit --host can leave loopback
    if not is_loopback_host(host):
        print(f"warning: binding {host}: the simulator is reachable from other machines "
              "and its control endpoints accept the printed token", file=sys.stderr)
    try:
        names = {f.name for f in dataclasses.fields(Options)}
        values = {name: value for name, value in vars(args).items() if name in names}
        values["error_statuses"] = _pairs(args.error_statuses)
        options = Options(**values)
        sim = Simulator(host=host, port=args.port, token=args.token, balance=args.balance, options=options).start()
    except (OSError, ValueError) as exc:
        print(f"cannot start the simulator: {exc}", file=sys.stderr)
        return 1
    print(f"RunComfy simulator listening on {sim.url}", flush=True)
    print(f"RUNCOMFY_API_BASE_URL={sim.url}", flush=True)
    print(f"RUNCOMFY_API_TOKEN={sim.token}", flush=True)
    print(f"control: {sim.url}/_sim/state (Authorization: Bearer <the token above>)", flush=True)
    if ready is not None:
        ready.set()
    stop = stop or threading.Event()
    try:
        while not stop.wait(1):  # a timed wait stays interruptible by Ctrl-C everywhere
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0



def _pairs(items: Sequence[str]) -> dict[str, int]:
    """``--error-status 400004=400`` arguments as ``Options.error_statuses`` (checked there)."""
    pairs: dict[str, int] = {}
    for item in items:
        code, sep, status = item.partition("=")
        if not sep or not status.strip().isdigit():
            raise ValueError(f"--error-status wants CODE=STATUS, e.g. 400004=400; got {item!r}")
        pairs[code.strip()] = int(status)
    return pairs
