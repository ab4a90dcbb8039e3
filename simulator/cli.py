"""Command line: run the simulator in the foreground for a demo, a benchmark
or a real ComfyUI run.

It prints the three base URLs (the Model API, and the ``www`` and ``api``
bases of the account calls) and the token to use, as environment variables
the pack reads. ``python <pack folder> simulator sign-in approve|deny|expire``
settles a device sign-in pending at a running simulator (what the person
would do on RunComfy's website). That token is the simulator's
own (random unless ``--token`` is given), not a RunComfy secret, so printing it
is fine. The server binds loopback unless ``--host`` names another address
explicitly, because it has no real security and accepts any loopback fetch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import urllib.error
import urllib.request
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
    parser.add_argument("--www-port", type=int, default=None,
                        help="port of the www base (auth/me, device sign-in; default: --port + 1, or any free port)")
    parser.add_argument("--api-port", type=int, default=None,
                        help="port of the api base (balance; default: --port + 2, or any free port)")
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
    parser.add_argument("--sign-in", dest="sign_in_auto", choices=CHOICES["sign_in_auto"], default=defaults.sign_in_auto,
                        help="device sign-ins: settled with 'simulator sign-in ...' (manual, the default), or "
                             "approved / denied / expired on their first poll")
    parser.add_argument("--sign-in-poll-interval", dest="sign_in_poll_interval", type=float,
                        default=defaults.sign_in_poll_interval,
                        help=f"poll_interval a device sign-in asks for (default {defaults.sign_in_poll_interval:g} s)")
    return parser


def build_sign_in_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python <pack folder> simulator sign-in",
        description="Approve, deny or expire a device sign-in pending at a running simulator.",
    )
    parser.add_argument("action", choices=("approve", "deny", "expire"))
    parser.add_argument("--code", default=None, help="the user code the tool shows (default: the newest pending)")
    parser.add_argument("--account", default=None, help="the account to sign in (approve; default: the primary one)")
    parser.add_argument("--url", default=os.environ.get("RUNCOMFY_API_BASE_URL") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",
                        help="the simulator's Model API base (default: $RUNCOMFY_API_BASE_URL or port 8189)")
    parser.add_argument("--token", default=None,
                        help="the simulator's printed token (default: $RUNCOMFY_API_TOKEN, then $RUNCOMFY_TOKEN)")
    return parser


def sign_in(argv: Sequence[str]) -> int:
    """``simulator sign-in approve|deny|expire``: one call to the control API."""
    args = build_sign_in_parser().parse_args(list(argv))
    token = args.token or os.environ.get("RUNCOMFY_API_TOKEN") or os.environ.get("RUNCOMFY_TOKEN")
    if not token:
        print("error: give the simulator's token with --token (it prints it when it starts)", file=sys.stderr)
        return 2
    body = {"action": args.action, "user_code": args.code, "account": args.account}
    request = urllib.request.Request(
        f"{args.url.rstrip('/')}/_sim/sign-ins", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as refused:
        print(f"error: the simulator said HTTP {refused.code}: {refused.read().decode(errors='replace')[:200]}",
              file=sys.stderr)
        return 1
    except (OSError, ValueError) as failed:
        print(f"error: cannot reach the simulator at {args.url} ({type(failed).__name__})", file=sys.stderr)
        return 1
    print(f"sign-in {answer['user_code']}: {answer['state']}" + (f" ({answer['account']})" if answer.get("account") else ""))
    return 0


def main(argv: Sequence[str] | None = None, *, ready: threading.Event | None = None,
         stop: threading.Event | None = None) -> int:
    """Run until Ctrl-C (or until ``stop`` is set, for embedding); returns the exit code.

    ``ready`` is set once the server listens, so an embedding caller (the
    pack's own command line, a test) knows when it can connect.
    """
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv[:1] == ["sign-in"]:
        return sign_in(argv[1:])
    args = build_parser().parse_args(argv)
    host = args.host or DEFAULT_HOST  # only an explicit --host can leave loopback
    if not is_loopback_host(host):
        print(f"warning: binding {host}: the simulator is reachable from other machines "
              "and its control endpoints accept the printed token", file=sys.stderr)
    try:
        names = {f.name for f in dataclasses.fields(Options)}
        values = {name: value for name, value in vars(args).items() if name in names}
        values["error_statuses"] = _pairs(args.error_statuses)
        options = Options(**values)
        ports = {"www": args.www_port, "api": args.api_port}
        for offset, base in enumerate(ports, start=1):
            if ports[base] is None:
                ports[base] = args.port + offset if args.port else 0
        sim = Simulator(host=host, port=args.port, www_port=ports["www"], api_port=ports["api"], token=args.token,
                        balance=args.balance, options=options).start()
    except (OSError, ValueError) as exc:
        print(f"cannot start the simulator: {exc}", file=sys.stderr)
        return 1
    print(f"RunComfy simulator listening on {sim.url}", flush=True)
    print(f"RUNCOMFY_API_BASE_URL={sim.url}", flush=True)
    print(f"RUNCOMFY_API_TOKEN={sim.token}", flush=True)
    print(f"RUNCOMFY_WWW_BASE_URL={sim.www_url}", flush=True)
    print(f"RUNCOMFY_ACCOUNT_BASE_URL={sim.api_url}", flush=True)
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
