#!/usr/bin/env python3
"""How fast the pack is, side by side with the usual way, measured in one run.

    python3 benchmarks/benchmark.py            # full run (a few minutes on 2 cores)
    python3 benchmarks/benchmark.py --quick    # tiny smoke run of every row (seconds)
    python3 benchmarks/benchmark.py --json     # the same figures as one JSON document
    python3 benchmarks/benchmark.py --runs 5   # more repetitions per figure

Where things live: ``workloads.py`` (what runs: sizes, the simulator, the
node, test frames), ``batch.py`` (the batch command, its baseline and resume), ``baselines.py`` (the usual way each figure is compared
with), ``measure.py`` (runs both, turns them into metrics), ``report.py``
(the one table of targets, verdicts, text and JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import httpx
import numpy as np
import PIL
import torch

import batch
import measure
import report
from workloads import Plan, Seeds, load_pack

# What runs, in order; each step returns metrics for ``report.ROWS``. A new row adds a step here.
STEPS: tuple[tuple[str, Callable[[Plan, Seeds], dict[str, report.Metric]]], ...] = (
    ("finish → IMAGE latency and node overhead", measure.measure_latency),
    ("upload encoding", lambda plan, seeds: measure.measure_encode(plan)),
    ("results → IMAGE tensor and memory", measure.measure_results),
    ("jobs at once vs one after another", measure.measure_concurrency),
    ("an unchanged workflow after a ComfyUI restart", measure.measure_restart),
    ("a batch file through the batch command", batch.measure_batch),
)
NOTES = (
    "Polls are /status + /result calls in the simulator's log; a job's polls/s is its count over its life "
    "(submit → last poll). Jobs of a second or two poll more than 2/s: the first look and the final /result "
    "are fixed costs.",
    "Memory: peak RSS above the start (VmHWM after a reset), each side in a fresh subprocess.",
)


def machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    return (
        f"{model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads) · "
        f"{platform.system()} {platform.release()} {platform.machine()} · Python {platform.python_version()} · "
        f"torch {torch.__version__} · numpy {np.__version__} · Pillow {PIL.__version__} · httpx {httpx.__version__}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and short jobs: a smoke run of every row")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    parser.add_argument("--runs", type=int, default=None, help="repetitions per figure (default 3, 1 with --quick)")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "JSON"), help=argparse.SUPPRESS)  # measure.run_child
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("runcomfy").setLevel(logging.WARNING)
    if args.child:
        name, arguments = args.child
        print(json.dumps(measure.CHILDREN[name](**json.loads(arguments))))
        return 0
    plan = Plan.tiny(args.runs or 1) if args.quick else Plan.full(args.runs or 3)
    load_pack()
    seeds = Seeds()
    started = time.monotonic()
    metrics: dict[str, report.Metric] = {}
    for name, step in STEPS:
        print(f"[{time.monotonic() - started:5.0f} s] {name} …", file=sys.stderr, flush=True)
        metrics.update(step(plan, seeds))
    about: dict[str, Any] = {
        "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "machine": machine(), "quick": plan.quick,
        "runs": plan.runs, "seconds": time.monotonic() - started, "notes": NOTES,
    }
    document = report.build_document(metrics, plan.context(), about)
    print(json.dumps(document, indent=1, ensure_ascii=False) if args.json else report.render_text(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
