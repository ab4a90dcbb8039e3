"""The benchmark runs end to end and prints every row (``--quick``: tiny sizes, no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "benchmark.py"
ROWS = (
    "job finished on the server → node has its IMAGE",
    "the same, first job of its kind",
    "node wall time − simulated generation time",
    "RGB IMAGE → request-ready data URI",
    "PNG results → IMAGE tensor",
    "text-to-image jobs at once through the node",
)


def test_quick_benchmark_prints_every_row():
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout
    assert report.startswith("RunComfy Nano Banana 2 pack benchmark") and "Machine: " in report
    table = [line for line in report.splitlines() if line.startswith("| ")]
    for row in ROWS:
        (line,) = [line for line in table if row in line]
        assert line.count(" | ") == 5, line  # figure, pack, baseline, ratio, target, result
    for size in ("| 0.5K |", "| 1K |"):  # growth with image size
        assert any(line.startswith(size) for line in table), size
    for count in ("| 1 |", "| 2 |"):  # growth with job count
        assert any(line.startswith(count) for line in table), count
    assert "Results are bit-identical between pack and baseline: True" in report
