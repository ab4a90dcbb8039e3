"""The benchmark runs end to end and reports every row of its table of targets.

``--quick --json``: tiny sizes, one JSON document. The test checks its shape
and that every figure was measured, never a timing or a verdict (tiny sizes
say nothing about the targets, and timings belong in README, not in tests).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
_spec = importlib.util.spec_from_file_location("benchmark_report", BENCHMARKS / "report.py")
assert _spec and _spec.loader
report = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses look it up there
_spec.loader.exec_module(report)


def measured(value: object) -> bool:
    return isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0)


def test_quick_benchmark_measures_every_row_of_the_targets_table():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "benchmark.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)

    assert document["about"]["quick"] is True and document["about"]["machine"]
    rows = {row["key"]: row for row in document["rows"]}
    assert list(rows) == [row.key for row in report.ROWS]
    for definition in report.ROWS:
        row = rows[definition.key]
        numbers = [*row["pack"].values(), *(v for b in row["baselines"] for v in b.values()), *row["ratios"]]
        assert numbers and all(measured(value) for value in numbers), row
        assert len(row["pack"]) == len(definition.pack) and len(row["baselines"]) == len(definition.baselines)
        assert len(row["targets"]) == len(definition.targets)
        assert all(isinstance(t["holds"], bool) and t["text"] for t in row["targets"])
        assert row["result"] == (report.QUICK if definition.targets else "—")

    # The latency row compares the learned pacing with a plain poller of the same budget and a slow one.
    assert {"latency.poll_0.5s", "latency.poll_5s"} <= {k for b in rows["latency"]["baselines"] for k in b}
    assert document["metrics"]["results.identical"]["value"] is True  # same pixels as the plain way

    assert len(document["growth"]) == len(report.GROWTH)
    for series, definition in zip(document["growth"], report.GROWTH):
        assert series["points"] == document["context"][definition.points]
        assert len(series["values"]) == len(series["points"]) >= 2
        assert all(measured(value) for line in series["values"] for value in line), series

    text = report.render_text(document)  # the tables a person reads come from the same document
    assert all(row["cells"][0] in text for row in document["rows"])
