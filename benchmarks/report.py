"""What the benchmark promises, as data: one table of targets, and the report built from it.

Each ``Row`` names a figure, says how it is measured, which measured numbers
are the pack's and which are the baselines' (run in the same process, in the
same run), and its targets as comparisons a program can check. The verdict,
the printed table and the JSON document all come from that one table, so a
target can never say one thing in the text and check another in the code.

Measurements deliver ``Metric``s under dotted keys (``"latency.learned"``);
keys and figure names may hold ``{placeholders}`` filled from the plan (the
headline frame side, resolution, job count...), because ``--quick`` measures
smaller things than a full run. Standard library only: the smoke test loads
this module to render a JSON document without running anything.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

MIB = 1024 * 1024
QUICK = "n/a (quick)"  # tiny sizes say nothing about the targets
OPERATORS = {"<=": (operator.le, "≤"), ">=": (operator.ge, "≥"), "==": (operator.eq, "=")}


@dataclass(frozen=True)
class Metric:
    """One measured number: ``unit`` is s, x (a ratio), B, dB, /s, n (a count) or bool."""

    value: float | bool | None  # None: not measurable here (e.g. memory off Linux)
    unit: str
    label: str


def show(value: float | bool | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1.0 else f"{value:.2f} s"
    if unit == "x":
        return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"
    if unit == "B":
        return f"{value / MIB:.1f} MiB"
    if unit == "dB":
        return f"{value:.2f} dB"
    if unit == "/s":
        return f"{value:.2f}/s"
    if unit == "bool":
        return "yes" if value else "no"
    return f"{value:g}"


Metrics = Mapping[str, Metric]


def quantity(metrics: Metrics, expression: str) -> Metric:
    """A metric by key, or ``"a ÷ b"``: the ratio of two metrics, labelled ``"A ÷ B"``."""
    if " ÷ " not in expression:
        return metrics[expression]
    top, bottom = (metrics[key] for key in expression.split(" ÷ "))
    value = top.value / bottom.value if top.value is not None and bottom.value else None
    return Metric(value, "x", f"{top.label} ÷ {bottom.label}")


@dataclass(frozen=True)
class Target:
    """A quantity (see ``quantity``) compared by ``op`` with ``limit``: a number, or the key
    of another metric of the same run."""

    quantity: str
    op: str  # "<=", ">=" or "=="
    limit: float | bool | str

    def check(self, metrics: Metrics) -> dict[str, Any]:
        """The target filled with this run's numbers: its text and whether it holds."""
        subject = quantity(metrics, self.quantity)
        bound = metrics[self.limit] if isinstance(self.limit, str) else Metric(self.limit, subject.unit, "")
        compare, sign = OPERATORS[self.op]
        holds = subject.value is not None and bound.value is not None and bool(compare(subject.value, bound.value))
        limit = show(bound.value, bound.unit)
        return {"text": f"{subject.label} {sign} " + (f"{bound.label} ({limit})" if bound.label else limit),
                "holds": holds}


@dataclass(frozen=True)
class Row:
    """One figure of the report: the pack's numbers beside the baselines', and its targets.

    ``pack`` and each of ``baselines`` are metric keys, the headline first
    (the comparison is baseline headline ÷ pack headline: above 1 the pack
    is ahead); the others are shown beside it.
    """

    key: str
    figure: str
    pack: tuple[str, ...]
    baselines: tuple[tuple[str, ...], ...]
    targets: tuple[Target, ...] = ()


ROWS: tuple[Row, ...] = (
    Row(
        "latency",
        "job finished on the server → node has its IMAGE, 1K, median of {learned_jobs} consecutive jobs "
        "({queue} s queued + {run} s generating)",
        pack=("latency.learned", "polls.learned", "polls.learned_highest", "polls.learned_window"),
        baselines=(("latency.poll_0.5s", "polls.poll_0.5s"), ("latency.poll_5s", "polls.poll_5s")),
        targets=(Target("latency.learned", "<=", 0.25), Target("polls.learned_highest", "<=", 2.0)),
    ),
    Row(
        "latency_first",
        "the same, first job of its kind (nothing learned yet, 1 job)",
        pack=("latency.first", "polls.first"),
        baselines=(("latency.poll_0.5s",), ("latency.poll_5s",)),
    ),
    Row(
        "overhead",
        "node wall time − simulated generation time, one 1K image, median of the jobs above",
        pack=("overhead.pack",),
        baselines=(("overhead.poll_0.5s",),),
        targets=(Target("overhead.pack ÷ overhead.poll_0.5s", "<=", 1.2),),
    ),
    Row(
        "encode",
        "one {side}×{side} RGB IMAGE → request body (photo-like frame, the edit node's encoder)",
        pack=("encode.{side}.pack", "encode.{side}.bytes", "encode.{side}.psnr"),
        baselines=(("encode.{side}.png", "encode.{side}.png_bytes"),),
        targets=(
            Target("encode.{side}.png ÷ encode.{side}.pack", ">=", 20.0),
            Target("encode.{side}.bytes", "<=", "encode.budget"),
            Target("encode.{side}.psnr", ">=", "encode.{side}.jpeg95_psnr"),
        ),
    ),
    Row(
        "results",
        "{results_per_job} {resolution} PNG results → IMAGE tensor, from the completed /result answer",
        pack=("results.{resolution}.pack", "results.{resolution}.memory", "results.{resolution}.tensor"),
        baselines=(("results.{resolution}.sequential", "results.{resolution}.sequential_memory"),),
        targets=(
            Target("results.{resolution}.sequential ÷ results.{resolution}.pack", ">=", 2.0),
            Target("results.{resolution}.memory", "<=", 1.5),
            Target("results.identical", "==", True),
        ),
    ),
    Row(
        "concurrency",
        "{jobs} text-to-image jobs at once through the node (1K, {concurrency_queue} s queued + "
        "{concurrency_run} s generating), wall time ÷ one job",
        pack=("jobs.{jobs}.at_once",),
        baselines=(("jobs.{jobs}.one_after_another",),),
        targets=(Target("jobs.{jobs}.at_once", "<=", 1.3),),
    ),
    Row(
        "restart",
        "an unchanged 1K workflow queued again after a ComfyUI restart (each run a fresh process; the "
        "first, paid one {restart_queue} s queued + {restart_run} s generating) → images in hand",
        pack=("restart.again", "restart.again_submits"),
        baselines=(("restart.first", "restart.first_submits"),),
        targets=(Target("restart.again_submits", "==", 0), Target("restart.identical", "==", True)),
    ),
    Row(
        "batch",
        "a {batch_lines}-line 1K batch file through the batch command ({batch_queue} s queued + {batch_run} s "
        "generating), wall time ÷ (jobs ÷ 8 × one job); Ctrl-C at half of {batch_resume_lines} lines, then resumed",
        pack=("batch.ratio", "batch.seconds", "batch.polls", "batch.polls_highest", "batch.resume_duplicates"),
        baselines=(("batch.cli_ratio", "batch.cli_seconds"),),
        targets=(Target("batch.ratio", "<=", 1.2), Target("batch.polls", "<=", 2.0),
                 Target("batch.resume_duplicates", "==", 0), Target("batch.resume_remaining_only", "==", True)),
    ),
)


@dataclass(frozen=True)
class Series:
    """A growth table: one line per point of the plan (``{point}`` in the quantities)."""

    title: str
    points: str  # the plan's context entry listing the points
    columns: tuple[str, ...]  # quantities (see ``quantity``)


GROWTH: tuple[Series, ...] = (
    Series("upload encode by frame side", "sides",
           ("encode.{point}.pack", "encode.{point}.png", "encode.{point}.png ÷ encode.{point}.pack")),
    Series("results → IMAGE by resolution", "resolutions",
           ("results.{point}.pack", "results.{point}.sequential", "results.{point}.sequential ÷ results.{point}.pack",
            "results.{point}.memory", "results.{point}.sequential_memory")),
    Series("jobs at once by count (8 per account run at once, the rest wait for a slot)", "job_counts",
           ("jobs.{point}.at_once", "jobs.{point}.one_after_another", "jobs.{point}.latency",
            "jobs.{point}.polls", "jobs.{point}.account_polls")),
)


def build_document(metrics: Metrics, context: Mapping[str, Any], about: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the run found, as JSON-ready data: the rows with their numbers,
    verdicts and table cells, the growth tables, and every metric."""
    rows = [_row(row, metrics, context, quick=bool(about.get("quick"))) for row in ROWS]
    growth = [_series(series, metrics, context) for series in GROWTH]
    return {
        "about": dict(about),
        "context": dict(context),
        "rows": rows,
        "growth": growth,
        "metrics": {key: {"value": _finite(m.value), "unit": m.unit, "label": m.label} for key, m in metrics.items()},
    }


def _row(row: Row, metrics: Metrics, context: Mapping[str, Any], *, quick: bool) -> dict[str, Any]:
    pack = [key.format(**context) for key in row.pack]
    baselines = [[key.format(**context) for key in keys] for keys in row.baselines]
    ratios = [quantity(metrics, f"{keys[0]} ÷ {pack[0]}").value for keys in baselines]
    checks = [Target(t.quantity.format(**context), t.op, t.limit.format(**context) if isinstance(t.limit, str)
                     else t.limit).check(metrics) for t in row.targets]
    result = "—" if not checks else QUICK if quick else "PASS" if all(c["holds"] for c in checks) else "FAIL"

    def cell(keys: Sequence[str], labelled: bool) -> str:
        first, *rest = (metrics[key] for key in keys)
        text = (f"{first.label}: " if labelled else "") + show(first.value, first.unit)
        return text + "".join(f"; {m.label} {show(m.value, m.unit)}" for m in rest)

    cells = [
        row.figure.format(**context),
        cell(pack, labelled=False),
        " · ".join(cell(keys, labelled=True) for keys in baselines),
        " · ".join((f"{metrics[keys[0]].label}: " if len(baselines) > 1 else "") + show(ratio, "x")
                   for ratio, keys in zip(ratios, baselines)),
        "; ".join(c["text"] for c in checks) or "reported, no target",
        result,
    ]
    return {
        "key": row.key,
        "pack": {key: _finite(metrics[key].value) for key in pack},
        "baselines": [{key: _finite(metrics[key].value) for key in keys} for keys in baselines],
        "ratios": [_finite(ratio) for ratio in ratios],
        "targets": checks,
        "result": result,
        "cells": cells,
    }


def _series(series: Series, metrics: Metrics, context: Mapping[str, Any]) -> dict[str, Any]:
    points = list(context[series.points])
    lines = [[quantity(metrics, column.format(point=point)) for column in series.columns] for point in points]
    return {
        "title": series.title,
        "header": [series.points.replace("_", " ")] + [m.label for m in lines[0]],
        "points": points,
        "values": [[_finite(m.value) for m in line] for line in lines],
        "cells": [[str(point)] + [show(m.value, m.unit) for m in line] for point, line in zip(points, lines)],
    }


def _finite(value: float | bool | None) -> float | bool | None:
    """JSON has no NaN or infinity: a number that is not finite is written as null."""
    if value is None or isinstance(value, bool):
        return value
    return float(value) if math.isfinite(value) else None  # numpy numbers become plain floats too


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(line) + " |" for line in lines]


def render_text(document: Mapping[str, Any]) -> str:
    """The report a person reads: the targets table, then the growth tables."""
    about = document["about"]
    lines = [
        f"RunComfy Nano Banana 2 pack benchmark · {about['date']}"
        + (" · QUICK smoke run (tiny sizes, not for the README)" if about.get("quick") else ""),
        f"Machine: {about['machine']}",
        f"Medians of {about['runs']} run(s) per figure unless stated; in-process simulator on loopback; "
        f"took {about['seconds']:.0f} s.",
        "",
    ]
    header = ["figure", "pack", "baselines (same run)", "baseline ÷ pack", "target", "result"]
    lines += _table(header, [row["cells"] for row in document["rows"]])
    for series in document["growth"]:
        lines += ["", f"Growth: {series['title']}", ""] + _table(series["header"], series["cells"])
    lines += ["", *about.get("notes", ())]
    return "\n".join(lines)
