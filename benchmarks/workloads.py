"""What the benchmark runs: sizes and timings, the simulator, the pack's node, the test frames.

The pack is imported the way ComfyUI imports it (the repository folder loaded
as a package under a hyphenated name, via the tests' ``packloader``), and the
node is the real node class, each prompt on its own ``asyncio.run`` as
ComfyUI runs them. The simulator is started in this process on loopback and
steered only through its public methods.

Adding a workload: a function that runs it (here, or a child in ``measure.CHILDREN``
when it needs a fresh process), a step in ``benchmark.STEPS`` that measures it
into metrics, and a row in ``report.ROWS``. Test frames and node widget
defaults come from the tests' shared ``helpers``, so both measure the same things.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import photo_like, psnr, to_uint8_reference, widget_defaults  # noqa: E402  (shared with the tests)
from packloader import load_pack, pack_import  # noqa: E402  (the loader the tests use)

__all__ = ["Plan", "Seeds", "api_inputs", "load_pack", "node_inputs", "pack_import", "photo_like", "prompt_round",
           "psnr", "simulator", "to_uint8_reference"]
TEXT_TO_IMAGE_NODE = "RunComfyNanoBanana2TextToImage"
PROMPT = "a lighthouse on a cliff at dawn, volumetric light, film grain"
ENVIRONMENT = ("RUNCOMFY_API_BASE_URL", "RUNCOMFY_API_TOKEN", "RUNCOMFY_TOKEN", "RUNCOMFY_CONFIG")


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions; ``--quick`` shrinks everything to a smoke run of every row."""

    quick: bool
    runs: int  # repetitions of each timed measurement (medians are taken over them)
    latency_jobs: int  # consecutive 1K jobs of one kind; the first has nothing learned yet
    latency_queue: tuple[float, float]  # simulated seconds in the queue (uniform jitter)
    latency_run: tuple[float, float]  # simulated generation seconds (uniform jitter)
    resolutions: tuple[str, ...]  # results → tensor sizes
    headline_resolution: str
    encode_sides: tuple[int, ...]  # square upload frames, the last one is the headline
    results_per_job: int
    job_counts: tuple[int, ...]
    headline_jobs: int
    concurrency_queue: float
    concurrency_run: float
    restart_queue: float  # the first, paid run of the restart pair
    restart_run: float
    batch_lines: int  # the batch command's file, 1K text-to-image lines
    batch_queue: float
    batch_run: float
    batch_baseline_lines: int  # one CLI call per line is timed over this many, then scaled to batch_lines
    batch_resume_lines: int  # the Ctrl-C-at-half then resume pair

    @classmethod
    def full(cls, runs: int) -> "Plan":
        return cls(
            quick=False, runs=runs, latency_jobs=9, latency_queue=(0.5, 1.5), latency_run=(5.0, 7.0),
            resolutions=("1K", "2K", "4K"), headline_resolution="2K", encode_sides=(1024, 2048, 4096), results_per_job=4,
            job_counts=(1, 4, 8, 16), headline_jobs=8, concurrency_queue=0.2, concurrency_run=0.6,
            restart_queue=1.0, restart_run=6.0,
            batch_lines=500, batch_queue=0.5, batch_run=2.5, batch_baseline_lines=8, batch_resume_lines=64,
        )

    @classmethod
    def tiny(cls, runs: int) -> "Plan":
        return cls(
            quick=True, runs=runs, latency_jobs=2, latency_queue=(0.1, 0.2), latency_run=(0.5, 0.8),
            resolutions=("0.5K", "1K"), headline_resolution="1K", encode_sides=(256, 512), results_per_job=2,
            job_counts=(1, 2), headline_jobs=2, concurrency_queue=0.1, concurrency_run=0.3,
            restart_queue=0.1, restart_run=0.3,
            batch_lines=12, batch_queue=0.1, batch_run=0.3, batch_baseline_lines=2, batch_resume_lines=8,
        )

    def context(self) -> dict[str, Any]:
        """What the report's figure names and metric keys refer to (see ``report.ROWS``)."""
        return {
            "learned_jobs": self.latency_jobs - 1,
            "queue": "–".join(f"{s:g}" for s in self.latency_queue),
            "run": "–".join(f"{s:g}" for s in self.latency_run),
            "side": self.encode_sides[-1],
            "resolution": self.headline_resolution,
            "results_per_job": self.results_per_job,
            "jobs": self.headline_jobs,
            "concurrency_queue": self.concurrency_queue,
            "concurrency_run": self.concurrency_run,
            "restart_queue": self.restart_queue,
            "restart_run": self.restart_run,
            "batch_lines": self.batch_lines,
            "batch_queue": self.batch_queue,
            "batch_run": self.batch_run,
            "batch_baseline_lines": self.batch_baseline_lines,
            "batch_resume_lines": self.batch_resume_lines,
            "sides": list(self.encode_sides),
            "resolutions": list(self.resolutions),
            "job_counts": list(self.job_counts),
        }


class Seeds:
    """Distinct seeds, so every job renders its own picture and can be found again."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def __call__(self) -> int:
        self._next += 1
        return self._next


@contextmanager
def simulator(**options: Any) -> Iterator[Any]:
    """A fresh in-process simulator, with the pack's environment pointed at it."""
    server = pack_import("simulator.server")
    saved = {name: os.environ.get(name) for name in ENVIRONMENT}
    with tempfile.TemporaryDirectory() as folder, server.Simulator(balance=100_000.0, **options) as sim:
        os.environ.pop("RUNCOMFY_TOKEN", None)
        os.environ.update(
            RUNCOMFY_API_BASE_URL=sim.url,
            RUNCOMFY_API_TOKEN=sim.token,
            RUNCOMFY_CONFIG=str(Path(folder) / "absent" / "config.json"),
        )
        try:
            yield sim
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def node_inputs(**overrides: Any) -> dict[str, Any]:
    """The text-to-image node's widget defaults, as ComfyUI would pass them, plus ``overrides``."""
    return {**widget_defaults(load_pack().NODE_CLASS_MAPPINGS[TEXT_TO_IMAGE_NODE]), "prompt": PROMPT, **overrides}


def api_inputs(**overrides: Any) -> dict[str, Any]:
    """What a baseline sends: the node's defaults minus ComfyUI-only widgets."""
    schemas = pack_import("client.model.schemas")
    properties = schemas.get_schema(schemas.TEXT_TO_IMAGE).properties
    return {name: value for name, value in node_inputs(**overrides).items() if name in properties}


def prompt_round(jobs: Sequence[dict[str, Any]]) -> tuple[float, list[float], list[torch.Tensor]]:
    """One ComfyUI prompt: ``asyncio.run`` over the node, once per list item, all at once.

    Returns the start, each node's return time and each IMAGE output.
    """
    async def one(node_id: str, inputs: dict[str, Any]) -> tuple[torch.Tensor, float]:
        node = load_pack().NODE_CLASS_MAPPINGS[TEXT_TO_IMAGE_NODE]()
        images, _info = await node.generate(unique_id=node_id, **inputs)
        return images, time.monotonic()

    async def run() -> list[tuple[torch.Tensor, float]]:
        return await asyncio.gather(*(one(str(index), inputs) for index, inputs in enumerate(jobs)))

    started = time.monotonic()
    outcomes = asyncio.run(run())
    return started, [ended for _, ended in outcomes], [images for images, _ in outcomes]

