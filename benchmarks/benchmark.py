#!/usr/bin/env python3
"""How fast the pack is, side by side with the usual way, measured in one run.

    python3 benchmarks/benchmark.py            # full run (a few minutes on 2 cores)
    python3 benchmarks/benchmark.py --quick    # tiny smoke run (seconds)
    python3 benchmarks/benchmark.py --runs 5   # more repetitions per figure

Everything runs against the pack's own simulator, started in this process on
loopback. The pack is imported the way ComfyUI imports it (the repository
folder loaded as a package under a hyphenated name), and the nodes are the
real node classes, each prompt on its own ``asyncio.run`` as ComfyUI runs
them. Every baseline is implemented below, in plain httpx / Pillow / numpy,
and measured in the same run, so the table reports ratios rather than
absolute times. Medians are over several jobs or runs; the memory figures come
from fresh subprocesses so nothing else in this process skews them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import io
import json
import logging
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import httpx
import numpy as np
import PIL
import torch
from PIL import Image

PACK_ROOT = Path(__file__).resolve().parent.parent
TEXT_TO_IMAGE_NODE = "RunComfyNanoBanana2TextToImage"
PROMPT = "a lighthouse on a cliff at dawn, volumetric light, film grain"
TERMINAL = ("completed", "failed", "cancelled")
POLL_ROUTES = ("status", "result")
RAW_POLL_SECONDS = 0.5  # the minimal client polls at the pack's own budget, 2 calls a second
MIB = 1024 * 1024

logging.getLogger("runcomfy").setLevel(logging.WARNING)


# ---------------------------------------------------------------- loading the pack

# The same loader the tests use: the pack imported as ComfyUI imports it.
sys.path.insert(0, str(PACK_ROOT / "tests"))
from packloader import load_pack, pack_import as pack_module  # noqa: E402


# ---------------------------------------------------------------- what to run


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions; ``--quick`` shrinks everything to a smoke run."""

    quick: bool
    runs: int  # repetitions of each timed measurement (medians are taken over them)
    latency_jobs: int  # consecutive 1K jobs of one kind; the first has nothing learned yet
    latency_queue: tuple[float, float]  # simulated seconds in the queue (uniform jitter)
    latency_run: tuple[float, float]  # simulated generation seconds (uniform jitter)
    raw_run: tuple[float, float]  # generation seconds of the minimal client's jobs
    node_resolutions: tuple[str, ...]  # node sweep and results -> tensor sizes
    encode_sides: tuple[int, ...]  # square upload frames, the last one is the headline
    headline_resolution: str  # the "four 2K results" figure
    results_per_job: int
    job_counts: tuple[int, ...]
    headline_jobs: int
    concurrency_queue: float
    concurrency_run: float

    @classmethod
    def full(cls, runs: int) -> "Plan":
        return cls(
            quick=False, runs=runs, latency_jobs=9, latency_queue=(0.5, 1.5), latency_run=(5.0, 7.0),
            raw_run=(0.6, 1.0), node_resolutions=("1K", "2K", "4K"), encode_sides=(1024, 2048, 4096),
            headline_resolution="2K", results_per_job=4, job_counts=(1, 4, 8, 16), headline_jobs=8,
            concurrency_queue=0.2, concurrency_run=0.6,
        )

    @classmethod
    def tiny(cls, runs: int) -> "Plan":
        return cls(
            quick=True, runs=runs, latency_jobs=2, latency_queue=(0.1, 0.2), latency_run=(0.5, 0.8),
            raw_run=(0.3, 0.5), node_resolutions=("0.5K", "1K"), encode_sides=(256, 512),
            headline_resolution="1K", results_per_job=2, job_counts=(1, 2), headline_jobs=2,
            concurrency_queue=0.1, concurrency_run=0.3,
        )


# ---------------------------------------------------------------- small helpers


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def seconds(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1.0 else f"{value:.2f} s"


def mib(count: float) -> str:
    return f"{count / MIB:.1f} MiB"


def status_field(name: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in bytes (None off Linux)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{name}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


class PeakMemory:
    """Peak resident memory added by one block of work in this process.

    Resets the kernel's high-water mark (``5`` to /proc/self/clear_refs) when
    allowed; otherwise samples VmRSS from a thread every millisecond.
    """

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        self.method = "VmHWM"
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.method = "sampled VmRSS"
        self.start = status_field("VmRSS")
        self.peak = self.start
        self._stop = False
        if self.method != "VmHWM" and self.start is not None:
            import threading

            def sample() -> None:
                while not self._stop:
                    self.peak = max(self.peak or 0, status_field("VmRSS") or 0)
                    time.sleep(0.001)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        if self.method == "VmHWM":
            self.peak = status_field("VmHWM")
        else:
            self._thread.join()

    @property
    def extra(self) -> int | None:
        if self.start is None or self.peak is None:
            return None
        return max(0, self.peak - self.start)


# ---------------------------------------------------------------- the simulator and the node


@contextmanager
def simulator(**options: Any) -> Iterator[Any]:
    """A fresh in-process simulator, with the pack's environment pointed at it."""
    server = pack_module("simulator.server")
    names = ("RUNCOMFY_API_BASE_URL", "RUNCOMFY_API_TOKEN", "RUNCOMFY_TOKEN", "RUNCOMFY_CONFIG")
    saved = {name: os.environ.get(name) for name in names}
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
    node_class = load_pack().NODE_CLASS_MAPPINGS[TEXT_TO_IMAGE_NODE]
    required = node_class.INPUT_TYPES()["required"]
    inputs = {name: spec[1]["default"] for name, spec in required.items()}
    inputs.update({"prompt": PROMPT, **overrides})
    return inputs


async def timed_node(node_id: str, inputs: dict[str, Any]) -> tuple[torch.Tensor, float]:
    """One node execution; returns its IMAGE output and the moment it returned."""
    node = load_pack().NODE_CLASS_MAPPINGS[TEXT_TO_IMAGE_NODE]()
    images, _info = await node.generate(unique_id=node_id, **inputs)
    return images, time.monotonic()


def prompt_round(jobs: Sequence[dict[str, Any]]) -> tuple[float, list[float], list[torch.Tensor]]:
    """One ComfyUI prompt: ``asyncio.run`` over the node, once per list item, all at once.

    Returns the start, each job's return time and each IMAGE output.
    """
    async def run() -> list[tuple[torch.Tensor, float]]:
        return await asyncio.gather(*(timed_node(str(index), inputs) for index, inputs in enumerate(jobs)))

    started = time.monotonic()
    outcomes = asyncio.run(run())
    return started, [ended for _, ended in outcomes], [images for images, _ in outcomes]


@dataclass
class JobFacts:
    """One job as the simulator saw it, and when its client had the images."""

    request_id: str
    started: float  # client side, time.monotonic()
    ended: float
    created: float  # simulator side, converted to this process's time.monotonic()
    finished: float
    results_known: float  # when the completed /result answer was sent
    polls: list[float]
    submitted: float

    @property
    def latency(self) -> float:
        """Server finished → client has decoded images."""
        return self.ended - self.finished

    @property
    def noticed(self) -> float:
        """Server finished → the first poll answered after it (the rest is fetching and decoding)."""
        return min((t for t in self.polls if t >= self.finished), default=self.ended) - self.finished

    @property
    def fetching(self) -> float:
        """From the poll that saw the job done to decoded images in hand."""
        return self.latency - self.noticed

    @property
    def generation(self) -> float:
        return self.finished - self.created

    @property
    def overhead(self) -> float:
        """Client wall time minus the simulated generation time."""
        return (self.ended - self.started) - self.generation

    @property
    def poll_rate(self) -> float:
        life = max(self.polls[-1] - self.submitted, 1e-9)
        return len(self.polls) / life

    @property
    def max_polls_in_a_second(self) -> int:
        return max(sum(1 for t in self.polls[i:] if t < start + 1.0) for i, start in enumerate(self.polls))


def job_facts(sim: Any, request_id: str, started: float, ended: float) -> JobFacts:
    now = sim.store.now()
    shift = now - time.monotonic()  # simulator clock minus ours (0 unless time was advanced)
    job = sim.job(request_id)
    finished = job.finished_mono(now)
    if finished is None:
        raise RuntimeError(f"job {request_id} has not finished on the simulator")
    records = sim.requests(request_id=request_id)

    def at(record: Any) -> float:  # log times count from the simulator's start
        return sim.started_mono + record.time

    polls = sorted(at(r) for r in records if r.route in POLL_ROUTES)
    results = [at(r) for r in records if r.route == "result" and r.status == 200]
    (submitted,) = [at(r) for r in records if r.route == "submit"]
    return JobFacts(
        request_id, started, ended, job.created_mono - shift, finished - shift, max(results), polls, submitted
    )


def facts_by_seed(sim: Any, before: set[str], calls: Sequence[tuple[dict[str, Any], float, float]]) -> list[JobFacts]:
    """Match client calls (inputs, start, end) to the jobs created since ``before`` by their seeds."""
    jobs = sim.jobs
    by_seed = {jobs[rid].inputs["seed"]: rid for rid in set(jobs) - before}
    if len(by_seed) != len(calls) or len({inputs["seed"] for inputs, _, _ in calls}) != len(calls):
        raise RuntimeError(f"expected {len(calls)} new jobs with distinct seeds, found {len(by_seed)}")
    return [job_facts(sim, by_seed[inputs["seed"]], started, ended) for inputs, started, ended in calls]


def run_nodes(sim: Any, jobs: Sequence[dict[str, Any]]) -> list[JobFacts]:
    """Run ``jobs`` (distinct seeds) as one prompt round, all at once, and describe each job."""
    before = set(sim.jobs)
    started, ends, _ = prompt_round(jobs)
    return facts_by_seed(sim, before, [(inputs, started, ended) for inputs, ended in zip(jobs, ends)])


# ---------------------------------------------------------------- the usual way (baselines)


class RawClient:
    """The usual way, in plain httpx: submit, poll /status at a fixed interval,
    read /result, then download and decode each image one after another with
    the float conversion in numpy."""

    def __init__(self, sim: Any, poll_every: float) -> None:
        self.base = sim.url
        self.headers = {"Authorization": f"Bearer {sim.token}"}
        self.poll_every = poll_every

    async def generate(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, float, float]:
        """Returns (IMAGE batch, start, end) like the node's output."""
        started = time.monotonic()
        async with httpx.AsyncClient(trust_env=False, timeout=60.0) as http:
            submitted = await http.post(
                f"{self.base}/v1/models/google/nano-banana-2/text-to-image", json=inputs, headers=self.headers
            )
            request_id = submitted.json()["request_id"]
            while True:
                status = await http.get(f"{self.base}/v1/requests/{request_id}/status", headers=self.headers)
                if status.json()["status"] in TERMINAL:
                    break
                await asyncio.sleep(self.poll_every)
            result = (await http.get(f"{self.base}/v1/requests/{request_id}/result", headers=self.headers)).json()
            frames = []
            for url in result["output"]["images"]:
                data = (await http.get(url)).content
                with Image.open(io.BytesIO(data)) as image:
                    frames.append(np.asarray(image.convert("RGB")).astype(np.float32) / 255.0)
            images = torch.from_numpy(np.stack(frames))
        return images, started, time.monotonic()


def api_inputs(**overrides: Any) -> dict[str, Any]:
    """What the baseline sends: the node's defaults minus ComfyUI-only widgets."""
    schema = pack_module("client.schemas").get_schema(pack_module("client.schemas").TEXT_TO_IMAGE)
    inputs = node_inputs(**overrides)
    return {name: value for name, value in inputs.items() if name in schema.properties}


def run_raw(sim: Any, poll_every: float, inputs: dict[str, Any]) -> JobFacts:
    """One baseline job on its own, as one run of a script."""
    before = set(sim.jobs)
    _, started, ended = asyncio.run(RawClient(sim, poll_every).generate(inputs))
    (fact,) = facts_by_seed(sim, before, [(inputs, started, ended)])
    return fact


def run_raw_side_by_side(
    sim: Any, poll_every: float, jobs: Sequence[dict[str, Any]], stagger: float = 0.3
) -> list[JobFacts]:
    """Baseline jobs (distinct seeds) started ``stagger`` apart, each in its own
    thread and event loop as separate scripts would be, so their polls and
    fetches do not line up and wait on each other."""

    def one(index: int) -> tuple[torch.Tensor, float, float]:
        time.sleep(index * stagger)
        return asyncio.run(RawClient(sim, poll_every).generate(jobs[index]))

    before = set(sim.jobs)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        outcomes = list(pool.map(one, range(len(jobs))))
    return facts_by_seed(sim, before, [(inputs, started, ended) for inputs, (_, started, ended) in zip(jobs, outcomes)])


class Seeds:
    """Distinct seeds, so every job renders its own picture and can be found again."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def __call__(self) -> int:
        self._next += 1
        return self._next


# ---------------------------------------------------------------- figure: polling and node overhead


@dataclass
class PollingFigures:
    first: JobFacts  # the first job of its kind: nothing learned yet
    learned: list[JobFacts]
    every_5s: list[JobFacts]
    raw: list[JobFacts]  # minimal httpx, polling every 0.5 s


def measure_polling(plan: Plan, rng: random.Random, seeds: Seeds) -> PollingFigures:
    """Consecutive 1K node jobs with realistic, jittered generation times, then the baselines."""
    with simulator() as sim:
        ours = []
        for _ in range(plan.latency_jobs):
            sim.script_next_jobs(queue_seconds=rng.uniform(*plan.latency_queue), run_seconds=rng.uniform(*plan.latency_run))
            ours.extend(run_nodes(sim, [node_inputs(seed=seeds())]))
        # Clients polling every 5 s run side by side (they learn nothing, so order does not
        # matter), with generation times spread over 5 s so the finishes fall at every phase of
        # their poll interval.
        count = max(2, plan.latency_jobs - 1)
        queue = sum(plan.latency_queue) / 2
        for index in range(count):
            run = plan.latency_run[0] + index * 5.0 / count + rng.uniform(0.0, 0.3)
            sim.script_next_jobs(queue_seconds=queue, run_seconds=run)
        every_5s = run_raw_side_by_side(sim, 5.0, [api_inputs(seed=seeds()) for _ in range(count)])
        # The minimal client's overhead (wall time minus generation) does not depend on how long
        # the generation is, so its jobs are short and run one after another, undisturbed.
        raw = []
        for _ in range(count):
            sim.script_next_jobs(queue_seconds=0.2, run_seconds=rng.uniform(*plan.raw_run))
            raw.append(run_raw(sim, RAW_POLL_SECONDS, api_inputs(seed=seeds())))
    return PollingFigures(ours[0], ours[1:], every_5s, raw)


@dataclass
class SweepPoint:
    resolution: str
    ours: list[JobFacts]
    raw: list[JobFacts]


def measure_node_sweep(plan: Plan, seeds: Seeds) -> list[SweepPoint]:
    """The part of finish → IMAGE (and of the node's overhead) that grows with image size: from
    the poll that saw the job done to the decoded image, one image per job, by resolution."""
    points = []
    with simulator(queue_seconds=0.0, run_seconds=0.3) as sim:
        for resolution in plan.node_resolutions:
            ours = [run_nodes(sim, [node_inputs(seed=seeds(), resolution=resolution)])[0] for _ in range(plan.runs)]
            raw = [run_raw(sim, RAW_POLL_SECONDS, api_inputs(seed=seeds(), resolution=resolution)) for _ in range(plan.runs)]
            points.append(SweepPoint(resolution, ours, raw))
    return points


# ---------------------------------------------------------------- figure: upload encoding


def photo_like(height: int, width: int, seed: int) -> torch.Tensor:
    """A deterministic [H, W, 3] float frame that compresses like a photo, not like flat colour.

    Smooth colour fields at three scales, a fine grain whose strength varies
    across the frame (sky vs foliage), and hard edges (discs, a striped band).
    """
    rng = np.random.default_rng(seed)
    low_h, low_w = max(8, height // 8), max(8, width // 8)
    low = np.zeros((low_h, low_w, 3), np.float32)
    for cells, amplitude in ((3, 0.55), (12, 0.25), (60, 0.12)):
        for channel in range(3):
            grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32), "F")
            low[..., channel] += np.asarray(grid.resize((low_w, low_h), Image.Resampling.BICUBIC)) * amplitude
    image = np.empty((height, width, 3), np.float32)
    for channel in range(3):
        plane = Image.fromarray(np.ascontiguousarray(low[..., channel]), "F")
        image[..., channel] = np.asarray(plane.resize((width, height), Image.Resampling.BICUBIC))
    grain = Image.fromarray(rng.random((4, 4), dtype=np.float32) * (7 / 255), "F")
    strength = np.asarray(grain.resize((width, height), Image.Resampling.BICUBIC))[..., None]
    image += rng.standard_normal((height, width, 3), dtype=np.float32) * strength
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    for _ in range(4):
        cy, cx, radius = rng.random(3) * (0.8, 0.8, 0.15) + (0.1, 0.1, 0.03)
        disc = (ys - cy) ** 2 + (xs - cx) ** 2 < radius**2
        image[disc] += (rng.random(3).astype(np.float32) - 0.5) * 0.4
    band = (ys > 0.82) & (np.floor(xs * 48) % 2 == 0)
    image[band] *= 0.55
    np.clip(image, 0.0, 1.0, out=image)
    return torch.from_numpy(image)


def comfy_png_data_uri(images: torch.Tensor) -> str:
    """The usual way (ComfyUI's SaveImage and most API nodes): numpy float → uint8, Pillow's default PNG."""
    pixels = 255.0 * images[0].cpu().numpy()
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def psnr(decoded: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of uint8 pixels against the float frame scaled to 0..255, in row blocks."""
    total = 0.0
    for top in range(0, reference.shape[0], 256):
        difference = decoded[top : top + 256].astype(np.float32) - reference[top : top + 256] * 255.0
        total += float(np.square(difference, dtype=np.float64).sum())
    mse = total / reference.size
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def data_uri_bytes(uri: str) -> bytes:
    return base64.b64decode(uri.split(",", 1)[1])


@dataclass
class EncodePoint:
    side: int
    ours: list[float]
    baseline: list[float]
    ours_bytes: list[int]
    ours_psnr: list[float]
    png_bytes: list[int]
    jpeg95_bytes: list[int]
    jpeg95_psnr: list[float]
    within_budget: bool
    notes: tuple[str, ...]


def measure_encode(plan: Plan) -> list[EncodePoint]:
    """One RGB IMAGE frame → a request-ready data URI, through the edit node's own encoder."""
    edit = pack_module("nodes.edit")
    request = pack_module("client.request")
    limits = pack_module("client.limits")
    points = []
    for side in plan.encode_sides:
        point = EncodePoint(side, [], [], [], [], [], [], [], True, ())
        for run in range(plan.runs):
            frame = photo_like(side, side, seed=run)
            reference = frame.numpy()
            batch = frame[None]
            started = time.perf_counter()
            references, notes = asyncio.run(edit.encode_references({"images": batch}, []))
            request.JobRequest.checked(edit.EDIT, {"prompt": "x", "image_urls": references})  # the body, base64 and all
            point.ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            png_uri = comfy_png_data_uri(batch)
            json.dumps({"prompt": "x", "image_urls": [png_uri]}).encode()
            point.baseline.append(time.perf_counter() - started)
            ours = references[0].data
            point.ours_bytes.append(len(ours))
            point.within_budget &= len(ours) <= limits.MAX_INLINE_IMAGE_BYTES
            point.notes = tuple(notes)
            with Image.open(io.BytesIO(ours)) as image:
                point.ours_psnr.append(psnr(np.asarray(image.convert("RGB")), reference))
            point.png_bytes.append(len(data_uri_bytes(png_uri)))
            buffer = io.BytesIO()
            rounded = np.clip(reference * 255.0 + 0.5, 0, 255).astype(np.uint8)
            Image.fromarray(rounded).save(buffer, format="JPEG", quality=95)  # Pillow's defaults otherwise
            point.jpeg95_bytes.append(buffer.tell())
            with Image.open(buffer) as image:
                point.jpeg95_psnr.append(psnr(np.asarray(image), reference))
            del frame, batch, reference, references, png_uri
        points.append(point)
    return points


# ---------------------------------------------------------------- figure: results -> IMAGE tensor


@dataclass
class ResultsPoint:
    resolution: str
    count: int
    ours: list[float]  # completed /result answered → IMAGE batch in hand
    baseline: list[float]
    tensor_bytes: int
    identical: bool
    ours_memory: float | None = None  # peak extra RSS ÷ output tensor bytes
    baseline_memory: float | None = None
    memory_method: str = ""


def measure_results(plan: Plan, seeds: Seeds) -> list[ResultsPoint]:
    """Several results of one job → one IMAGE batch: the node's download path vs the usual way."""
    points = []
    with simulator(queue_seconds=0.0, run_seconds=0.2) as sim:
        for resolution in plan.node_resolutions:
            count = plan.results_per_job
            point = ResultsPoint(resolution, count, [], [], 0, True)
            for _ in range(plan.runs):
                inputs = node_inputs(seed=seeds(), resolution=resolution, num_images=count, output_format="png")
                before = set(sim.jobs)
                started, (ended,), (ours_images,) = prompt_round([inputs])
                (fact,) = facts_by_seed(sim, before, [(inputs, started, ended)])
                point.ours.append(fact.ended - fact.results_known)
                before = set(sim.jobs)
                raw_images, raw_started, raw_ended = asyncio.run(RawClient(sim, 0.1).generate(api_inputs(**inputs)))
                (fact,) = facts_by_seed(sim, before, [(inputs, raw_started, raw_ended)])
                point.baseline.append(fact.ended - fact.results_known)
                point.identical &= torch.equal(ours_images, raw_images)
                point.tensor_bytes = ours_images.numel() * ours_images.element_size()
                del ours_images, raw_images
            points.append(point)
        measure_results_memory(sim, points, seeds)
    return points


def measure_results_memory(sim: Any, points: list[ResultsPoint], seeds: Seeds) -> None:
    """Peak extra memory of each side, each in a fresh subprocess talking to this simulator."""
    children = []
    for point in points:
        for side in ("ours", "baseline"):
            command = [
                sys.executable, str(Path(__file__).resolve()), "--memory-child", side,
                "--resolution", point.resolution, "--count", str(point.count), "--seed", str(seeds()),
            ]
            children.append((point, side, subprocess.Popen(command, stdout=subprocess.PIPE, text=True)))
    for point, side, child in children:
        output, _ = child.communicate(timeout=300)
        if child.returncode != 0:
            raise RuntimeError(f"memory measurement ({side}, {point.resolution}) failed")
        report = json.loads(output.strip().splitlines()[-1])
        ratio = None if report["extra"] is None else report["extra"] / report["tensor"]
        setattr(point, f"{side}_memory", ratio)
        point.memory_method = report["method"]


def memory_child(side: str, resolution: str, count: int, seed: int) -> None:
    """Run in a fresh process: one job's results → IMAGE batch, reporting peak extra RSS as JSON."""
    load_pack()
    results = pack_module("nodes.result_images")
    warm = io.BytesIO()  # load the codecs and numpy/torch kernels before measuring
    Image.new("RGB", (64, 64), (10, 20, 30)).save(warm, format="PNG")
    results.results_to_tensor([results.inspect_result(warm.getvalue())])
    inputs = node_inputs(seed=seed, resolution=resolution, num_images=count, output_format="png")
    sim = _EnvSimulator()
    with PeakMemory() as peak:
        if side == "ours":
            _, _, (images,) = prompt_round([inputs])
        else:
            images, _, _ = asyncio.run(RawClient(sim, 0.1).generate(api_inputs(**inputs)))
    tensor = images.numel() * images.element_size()
    print(json.dumps({"extra": peak.extra, "tensor": tensor, "method": peak.method}))


class _EnvSimulator:
    """What ``RawClient`` needs of a simulator, taken from the environment (memory children)."""

    url = os.environ.get("RUNCOMFY_API_BASE_URL", "")
    token = os.environ.get("RUNCOMFY_API_TOKEN", "")


# ---------------------------------------------------------------- figure: many jobs at once


@dataclass
class CountPoint:
    count: int
    at_once: list[float]  # wall time of the prompt round
    one_after_another: float
    latencies: list[float]  # finish → images, per job
    poll_rates: list[float]
    max_window: int
    account_rate: float  # polls a second of all jobs together


def measure_concurrency(plan: Plan, seeds: Seeds) -> tuple[list[float], list[CountPoint]]:
    """N text-to-image jobs through the node in one prompt round vs one after another."""
    with simulator(queue_seconds=plan.concurrency_queue, run_seconds=plan.concurrency_run) as sim:
        run_nodes(sim, [node_inputs(seed=seeds())])  # teaches the pacer this kind of job, as a session would
        single = []
        for _ in range(plan.runs):
            (fact,) = run_nodes(sim, [node_inputs(seed=seeds())])
            single.append(fact.ended - fact.started)
        points = []
        for count in plan.job_counts:
            point = CountPoint(count, [], 0.0, [], [], 0, 0.0)
            rates = []
            for _ in range(plan.runs):
                facts = run_nodes(sim, [node_inputs(seed=seeds()) for _ in range(count)])
                point.at_once.append(max(f.ended for f in facts) - facts[0].started)
                point.latencies += [f.latency for f in facts]
                point.poll_rates += [f.poll_rate for f in facts]
                point.max_window = max([point.max_window] + [f.max_polls_in_a_second for f in facts])
                polls = sum(len(f.polls) for f in facts)
                rates.append(polls / (max(f.polls[-1] for f in facts) - min(f.submitted for f in facts)))
            point.account_rate = median(rates)
            started = time.monotonic()
            for _ in range(count if count > 1 else 0):  # one job after another is one job
                run_nodes(sim, [node_inputs(seed=seeds())])
            point.one_after_another = time.monotonic() - started if count > 1 else median(single)
            points.append(point)
    return single, points


# ---------------------------------------------------------------- the report


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads) · "
        f"{platform.system()} {platform.release()} {platform.machine()} · Python {platform.python_version()} · "
        f"torch {torch.__version__} · numpy {np.__version__} · Pillow {PIL.__version__} · httpx {httpx.__version__}"
    )


def verdict(ok: bool, plan: Plan) -> str:
    if plan.quick:
        return "n/a (quick)"  # tiny sizes say nothing about the targets
    return "PASS" if ok else "MISS"


def times(value: float) -> str:
    return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def report(
    plan: Plan,
    polling: PollingFigures,
    sweep: list[SweepPoint],
    encode: list[EncodePoint],
    results: list[ResultsPoint],
    single: list[float],
    counts: list[CountPoint],
    elapsed: float,
) -> str:
    lines = [
        f"RunComfy Nano Banana 2 pack benchmark · {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
        + (" · QUICK smoke run (tiny sizes, not for the README)" if plan.quick else ""),
        f"Machine: {machine()}",
        f"Medians of {plan.runs} run(s) per figure unless stated; in-process simulator on loopback; took {elapsed:.0f} s.",
        "",
    ]
    rows = []

    learned = polling.learned
    ours_latency = median([f.latency for f in learned])
    slow_latency = median([f.latency for f in polling.every_5s])
    rates = [f.poll_rate for f in learned]
    window = max(f.max_polls_in_a_second for f in learned)
    rows.append([
        f"job finished on the server → node has its IMAGE, 1K, median of {len(learned)} consecutive jobs "
        f"({plan.latency_queue[0]:g}–{plan.latency_queue[1]:g} s queued + {plan.latency_run[0]:g}–{plan.latency_run[1]:g} s generating)",
        f"{seconds(ours_latency)} (slowest {seconds(max(f.latency for f in learned))}); {median(rates):.2f} polls/s "
        f"per job (highest {max(rates):.2f}), at most {window} in any 1 s",
        f"{seconds(slow_latency)}; client polling every 5 s ({median([f.poll_rate for f in polling.every_5s]):.2f} polls/s)",
        f"{times(slow_latency / ours_latency)} sooner",
        "≤ 250 ms, ≤ 2 polls/s per job",
        verdict(ours_latency <= 0.25 and max(rates) <= 2.0, plan),
    ])
    first = polling.first
    rows.append([
        "the same, first job of its kind (nothing learned yet, 1 job)",
        f"{seconds(first.latency)}; {first.poll_rate:.2f} polls/s, at most {first.max_polls_in_a_second} in any 1 s",
        f"{seconds(slow_latency)} (as above)",
        f"{times(slow_latency / first.latency)} sooner",
        "reported, no target",
        "—",
    ])
    every = [polling.first, *learned]
    ours_overhead = median([f.overhead for f in every])
    raw_overhead = median([f.overhead for f in polling.raw])
    rows.append([
        f"node wall time − simulated generation time, one 1K image, median of {len(every)} jobs",
        seconds(ours_overhead),
        f"{seconds(raw_overhead)}; minimal raw httpx submit / poll every {RAW_POLL_SECONDS:g} s / download / decode, "
        f"median of {len(polling.raw)} short jobs one after another (its overhead does not depend on their length)",
        f"{times(ours_overhead / raw_overhead)} the baseline",
        "≤ 1.2×",
        verdict(ours_overhead <= 1.2 * raw_overhead, plan),
    ])
    big = encode[-1]
    speedup = median(big.baseline) / median(big.ours)
    quality_ok = big.within_budget and all(o >= j for o, j in zip(big.ours_psnr, big.jpeg95_psnr))
    rows.append([
        f"one {big.side}×{big.side} RGB IMAGE → request-ready data URI, photo-like images (edit node's encoder)",
        f"{seconds(median(big.ours))}; JPEG {mib(median(big.ours_bytes))}, PSNR {median(big.ours_psnr):.2f} dB"
        + (f" ({'; '.join(n.split(': ', 1)[-1] for n in big.notes)})" if big.notes else ""),
        f"{seconds(median(big.baseline))}; numpy float→uint8 + Pillow default PNG, {mib(median(big.png_bytes))}",
        f"{times(speedup)} faster",
        f"≥ 20×; ≤ 6 MiB; PSNR ≥ Pillow JPEG q95 ({median(big.jpeg95_psnr):.2f} dB, {mib(median(big.jpeg95_bytes))})",
        verdict(speedup >= 20 and quality_ok, plan),
    ])
    head = next(p for p in results if p.resolution == plan.headline_resolution)
    speedup = median(head.baseline) / median(head.ours)
    rows.append([
        f"{head.count} {head.resolution} PNG results → IMAGE tensor ({mib(head.tensor_bytes)}), from the completed /result answer",
        f"{seconds(median(head.ours))}; peak extra memory {ratio_text(head.ours_memory)} the tensor",
        f"{seconds(median(head.baseline))}; download, decode one after another, float in numpy; peak {ratio_text(head.baseline_memory)}",
        f"{times(speedup)} faster",
        "≥ 2×; peak extra memory ≤ 1.5× the tensor",
        verdict(speedup >= 2 and head.ours_memory is not None and head.ours_memory <= 1.5 and head.identical, plan),
    ])
    one_job = median(single)
    head_count = next(p for p in counts if p.count == plan.headline_jobs)
    at_once = median(head_count.at_once) / one_job
    rows.append([
        f"{head_count.count} text-to-image jobs at once through the node (1K, {plan.concurrency_queue:g} s queued + "
        f"{plan.concurrency_run:g} s generating), wall time ÷ one job ({seconds(one_job)})",
        f"{times(at_once)} one job",
        f"{times(head_count.one_after_another / one_job)} one job (the same {head_count.count} one after another)",
        f"{times(head_count.one_after_another / median(head_count.at_once))} faster",
        "≤ 1.3× one job",
        verdict(at_once <= 1.3, plan),
    ])
    lines += table(["figure", "pack", "baseline (same run)", "pack vs baseline", "target", "result"], rows)

    lines += ["", f"Growth with image size (medians of {plan.runs}; polling does not depend on size, so the node's "
              "finish → IMAGE and overhead grow only by the first column):", ""]
    size_rows = []
    for point, enc, res in zip(sweep, encode, results):
        size_rows.append([
            point.resolution,
            f"{seconds(median([f.fetching for f in point.ours]))} / {seconds(median([f.fetching for f in point.raw]))}",
            f"{enc.side}²: {seconds(median(enc.ours))} / {seconds(median(enc.baseline))} "
            f"({times(median(enc.baseline) / median(enc.ours))})",
            f"{res.count}× {res.resolution}: {seconds(median(res.ours))} / {seconds(median(res.baseline))} "
            f"({times(median(res.baseline) / median(res.ours))})",
            f"{ratio_text(res.ours_memory)} / {ratio_text(res.baseline_memory)} of {mib(res.tensor_bytes)}",
        ])
    lines += table(
        [
            "size", "node, 1 image, poll that saw it done → IMAGE: pack / raw httpx",
            "upload encode: pack / PNG", "results → IMAGE: pack / sequential",
            "peak extra memory: pack / sequential",
        ],
        size_rows,
    )
    lines += ["", f"Growth with job count (1K, {plan.concurrency_queue:g} s queued + {plan.concurrency_run:g} s generating; "
              "8 jobs per account run at once, more wait for a slot):", ""]
    count_rows = []
    for point in counts:
        count_rows.append([
            str(point.count),
            f"{times(median(point.at_once) / one_job)}",
            f"{times(point.one_after_another / one_job)}",
            seconds(median(point.latencies)),
            f"{median(point.poll_rates):.2f} (max {max(point.poll_rates):.2f}); at most {point.max_window} in any 1 s",
            f"{point.account_rate:.1f}",
        ])
    lines += table(
        ["jobs", "at once ÷ one job", "one after another ÷ one job", "finish → IMAGE, median",
         "polls/s per job, median", "polls/s, all jobs together"],
        count_rows,
    )
    memory_method = next((p.memory_method for p in results if p.memory_method), "n/a")
    lines += [
        "",
        "Polls are /status + /result calls in the simulator's log; a job's polls/s is its count over its life "
        "(submit → last poll). Jobs of a second or two poll more than 2/s: the first look after 0.25 s and the "
        "final /result are fixed costs.",
        f"Memory: peak RSS above the start ({memory_method}), each side in a fresh subprocess. Results are "
        f"bit-identical between pack and baseline: {all(p.identical for p in results)}.",
    ]
    return "\n".join(lines)


def ratio_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and short jobs: a smoke run of every row")
    parser.add_argument("--runs", type=int, default=None, help="repetitions per figure (default 3, 1 with --quick)")
    parser.add_argument("--memory-child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--resolution", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.resolution, args.count, args.seed)
        return 0
    plan = Plan.tiny(args.runs or 1) if args.quick else Plan.full(args.runs or 3)
    load_pack()
    rng = random.Random(4)
    seeds = Seeds()
    started = time.monotonic()

    def step(name: str, work: Callable[[], Any]) -> Any:
        print(f"[{time.monotonic() - started:5.0f} s] {name} …", file=sys.stderr, flush=True)
        return work()

    polling = step("finish → result latency and node overhead", lambda: measure_polling(plan, rng, seeds))
    sweep = step("fetching and decoding by image size", lambda: measure_node_sweep(plan, seeds))
    encode = step("upload encoding", lambda: measure_encode(plan))
    results = step("results → IMAGE tensor (and memory)", lambda: measure_results(plan, seeds))
    single, counts = step("jobs at once vs one after another", lambda: measure_concurrency(plan, seeds))
    print(report(plan, polling, sweep, encode, results, single, counts, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
