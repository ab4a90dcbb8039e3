"""Running each workload on the pack and on its baselines, and turning what happened into metrics.

Times of a job come from both sides: the client's clock (when a call started,
when the IMAGE was in hand) and the simulator's public record of the job
(``sim.job``: when it was created and finished) and of every request
(``sim.requests``: each poll, the submit, the completed /result). Memory
figures come from fresh subprocesses so nothing else in this process skews
them. Every function returns ``report.Metric``s under the keys that
``report.ROWS`` and ``report.GROWTH`` name.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image

from baselines import Poller, jpeg_q95, png_body
from report import Metric
from workloads import (Plan, Seeds, api_inputs, load_pack, node_inputs, pack_import, photo_like, prompt_round, psnr,
                       simulator, to_uint8_reference)

T = TypeVar("T")
POLL_ROUTES = ("status", "result")
PLAIN_POLL_SECONDS = 0.5  # the plain poller's budget: 2 calls a second, the pack's own
SLOW_POLL_SECONDS = 5.0
# The simulator's clock is time.monotonic() plus whatever ``advance`` added; the benchmark
# never advances it, and the simulator has no public accessor for its clock.
simulator_now = time.monotonic


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class JobFacts:
    """One job as the simulator saw it, and when its client had the images (``time.monotonic()``)."""

    started: float
    ended: float
    created: float
    finished: float
    results_known: float  # when the completed /result answer was logged
    submitted: float
    polls: list[float]

    @property
    def latency(self) -> float:
        """Server finished → client has decoded images."""
        return self.ended - self.finished

    @property
    def overhead(self) -> float:
        """Client wall time minus the simulated generation time."""
        return (self.ended - self.started) - (self.finished - self.created)

    @property
    def poll_rate(self) -> float:
        return len(self.polls) / max(self.polls[-1] - self.submitted, 1e-9)

    @property
    def most_polls_in_a_second(self) -> int:
        return max(sum(1 for t in self.polls[i:] if t < start + 1.0) for i, start in enumerate(self.polls))


def job_facts(sim: Any, before: set[str], calls: Sequence[tuple[dict[str, Any], float, float]]) -> list[JobFacts]:
    """Match client calls (inputs, start, end) to the jobs created since ``before`` by their seeds."""
    jobs = sim.jobs
    by_seed = {jobs[rid].inputs["seed"]: rid for rid in set(jobs) - before}
    if len(by_seed) != len(calls) or len({inputs["seed"] for inputs, _, _ in calls}) != len(calls):
        raise RuntimeError(f"expected {len(calls)} new jobs with distinct seeds, found {len(by_seed)}")
    facts = []
    for inputs, started, ended in calls:
        request_id = by_seed[inputs["seed"]]
        job = sim.job(request_id)
        finished = job.finished_mono(simulator_now())
        if finished is None:
            raise RuntimeError(f"job {request_id} has not finished on the simulator")
        records = [(sim.started_mono + r.time, r) for r in sim.requests(request_id=request_id)]
        (submitted,) = [t for t, r in records if r.route == "submit"]
        results = [t for t, r in records if r.route == "result" and r.status == 200]
        polls = sorted(t for t, r in records if r.route in POLL_ROUTES)
        facts.append(JobFacts(started, ended, job.created_mono, finished, max(results), submitted, polls))
    return facts


def run_nodes(sim: Any, jobs: Sequence[dict[str, Any]]) -> list[JobFacts]:
    """Run ``jobs`` (distinct seeds) through the node as one prompt round, all at once."""
    before = set(sim.jobs)
    started, ends, _ = prompt_round(jobs)
    return job_facts(sim, before, [(inputs, started, ended) for inputs, ended in zip(jobs, ends)])


def run_poller(sim: Any, every: float, jobs: Sequence[dict[str, Any]], stagger: float = 0.3) -> list[JobFacts]:
    before = set(sim.jobs)
    outcomes = Poller(sim.url, sim.token, every).side_by_side(jobs, stagger)
    return job_facts(sim, before, [(inputs, started, ended) for inputs, (_, started, ended) in zip(jobs, outcomes)])


def measure_latency(plan: Plan, seeds: Seeds) -> dict[str, Metric]:
    """Consecutive 1K node jobs with jittered timings (the pack learns as a session would),
    then plain pollers every 0.5 s (the same call budget) and every 5 s, side by side."""
    rng = random.Random(4)
    with simulator() as sim:
        pack = []
        for _ in range(plan.latency_jobs):
            sim.script_next_jobs(queue_seconds=rng.uniform(*plan.latency_queue),
                                 run_seconds=rng.uniform(*plan.latency_run))
            pack += run_nodes(sim, [node_inputs(seed=seeds())])
        pollers = {}
        count = max(2, plan.latency_jobs - 1)
        for every in (PLAIN_POLL_SECONDS, SLOW_POLL_SECONDS):
            for index in range(count):  # finishes spread over every phase of the poll interval
                run = plan.latency_run[0] + (index + rng.random()) * every / count
                sim.script_next_jobs(queue_seconds=sum(plan.latency_queue) / 2, run_seconds=run)
            pollers[every] = run_poller(sim, every, [api_inputs(seed=seeds()) for _ in range(count)])
    first, learned = pack[0], pack[1:]
    rates = [f.poll_rate for f in learned]
    metrics = {
        "latency.learned": Metric(median([f.latency for f in learned]), "s", "finish → IMAGE"),
        "polls.learned": Metric(median(rates), "/s", "polls per job"),
        "polls.learned_highest": Metric(max(rates), "/s", "highest polls of a job"),
        "polls.learned_window": Metric(max(f.most_polls_in_a_second for f in learned), "n", "most polls in 1 s"),
        "latency.first": Metric(first.latency, "s", "finish → IMAGE"),
        "polls.first": Metric(first.poll_rate, "/s", "polls"),
        "overhead.pack": Metric(median([f.overhead for f in pack]), "s", "node overhead"),
    }
    for every, facts in pollers.items():
        name = f"poll_{every:g}s"
        metrics[f"latency.{name}"] = Metric(median([f.latency for f in facts]), "s", f"poller every {every:g} s")
        metrics[f"polls.{name}"] = Metric(median([f.poll_rate for f in facts]), "/s", "polls per job")
        metrics[f"overhead.{name}"] = Metric(median([f.overhead for f in facts]), "s", f"poller every {every:g} s")
    return metrics


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def measure_encode(plan: Plan) -> dict[str, Metric]:
    """One RGB IMAGE frame → a request body, through the edit node's own encoder and the
    pack's one pre-submit gate, vs Pillow's default PNG in a data URI."""
    edit = pack_import("nodes.edit")
    request = pack_import("client.model.request")
    metrics = {"encode.budget": Metric(pack_import("client.limits").MAX_INLINE_IMAGE_BYTES, "B", "per-image budget")}
    for side in plan.encode_sides:
        runs: dict[str, list[float]] = defaultdict(list)
        for run in range(plan.runs):
            frame = photo_like(side, side, seed=run)
            started = time.perf_counter()
            references, _notes = asyncio.run(edit.encode_references({"images": frame[None]}, []))
            request.JobRequest.checked(edit.EDIT, {"prompt": "x", "image_urls": references})
            runs["pack"].append(time.perf_counter() - started)
            started = time.perf_counter()
            _body, png_bytes = png_body(frame)
            runs["png"].append(time.perf_counter() - started)
            runs["bytes"].append(len(references[0].data))
            runs["png_bytes"].append(png_bytes)
            reference = to_uint8_reference(frame)
            runs["psnr"].append(psnr(decoded(references[0].data), reference))
            runs["jpeg95_psnr"].append(psnr(decoded(jpeg_q95(reference)), reference))
            del frame, references, _body, reference
        for key, unit, label in (("pack", "s", "pack"), ("png", "s", "PNG"), ("bytes", "B", "image sent"),
                                 ("png_bytes", "B", "PNG sent"), ("psnr", "dB", "PSNR"),
                                 ("jpeg95_psnr", "dB", "Pillow JPEG q95 PSNR")):
            metrics[f"encode.{side}.{key}"] = Metric(median(runs[key]), unit, label)
    return metrics


def measure_results(plan: Plan, seeds: Seeds) -> dict[str, Metric]:
    """Several PNG results of one job → one IMAGE batch: the node's download path vs the
    sequential way, timed from the completed /result answer; memory in fresh processes."""
    metrics: dict[str, Metric] = {}
    identical = True
    with simulator(queue_seconds=0.0, run_seconds=0.2) as sim:
        for resolution in plan.resolutions:
            pack, sequential = [], []
            for _ in range(plan.runs):
                inputs = node_inputs(seed=seeds(), resolution=resolution, num_images=plan.results_per_job,
                                     output_format="png")
                before = set(sim.jobs)
                started, (ended,), (pack_images,) = prompt_round([inputs])
                (fact,) = job_facts(sim, before, [(inputs, started, ended)])
                pack.append(fact.ended - fact.results_known)
                before = set(sim.jobs)
                poller_images, started, ended = asyncio.run(Poller(sim.url, sim.token, 0.1).generate(api_inputs(**inputs)))
                (fact,) = job_facts(sim, before, [(inputs, started, ended)])
                sequential.append(fact.ended - fact.results_known)
                identical &= torch.equal(pack_images, poller_images)
                tensor = pack_images.numel() * pack_images.element_size()
                del pack_images, poller_images
            memory = {side: run_child("memory", side=side, resolution=resolution, count=plan.results_per_job,
                                      seed=seeds()) for side in ("pack", "sequential")}
            memory = {side: None if m["extra"] is None else m["extra"] / m["tensor"] for side, m in memory.items()}
            metrics.update({
                f"results.{resolution}.pack": Metric(median(pack), "s", "pack"),
                f"results.{resolution}.sequential": Metric(median(sequential), "s", "sequential"),
                f"results.{resolution}.memory": Metric(memory["pack"], "x", "pack peak memory ÷ tensor"),
                f"results.{resolution}.sequential_memory": Metric(memory["sequential"], "x", "sequential peak memory ÷ tensor"),
                f"results.{resolution}.tensor": Metric(tensor, "B", "tensor"),
            })
    metrics["results.identical"] = Metric(identical, "bool", "pack's IMAGE bit-identical to sequential")
    return metrics


def status_field(name: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in bytes (None off Linux)."""
    try:
        match = re.search(rf"^{name}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def peak_extra_memory(work: Callable[[], T]) -> tuple[T, int | None]:
    """``work()``, and the peak resident memory it added: the kernel's high-water mark, reset
    first (``5`` to /proc/self/clear_refs); None where it cannot be reset (off Linux)."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return work(), None
    start = status_field("VmRSS")
    result = work()
    peak = status_field("VmHWM")
    return result, None if start is None or peak is None else max(0, peak - start)


def run_child(name: str, **arguments: Any) -> dict[str, Any]:
    """``CHILDREN[name](**arguments)`` in a fresh Python process: memory measured apart from
    everything else, or a ComfyUI restart. It finds this process's simulator (and data
    folder) through the environment and answers with one line of JSON."""
    command = [sys.executable, str(Path(__file__).with_name("benchmark.py")), "--child", name, json.dumps(arguments)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_child(side: str, resolution: str, count: int, seed: int) -> dict[str, Any]:
    """One job's results → IMAGE batch, by the pack or the sequential way, and the peak extra memory."""
    load_pack()
    results = pack_import("nodes.result_images")
    warm = io.BytesIO()  # load the codecs and numpy/torch kernels before measuring
    Image.new("RGB", (64, 64), (10, 20, 30)).save(warm, format="PNG")
    results.results_to_tensor([results.inspect_result(warm.getvalue())])
    inputs = node_inputs(seed=seed, resolution=resolution, num_images=count, output_format="png")
    poller = Poller(os.environ["RUNCOMFY_API_BASE_URL"], os.environ["RUNCOMFY_API_TOKEN"], 0.1)
    if side == "pack":
        images, extra = peak_extra_memory(lambda: prompt_round([inputs])[2][0])
    else:
        images, extra = peak_extra_memory(lambda: asyncio.run(poller.generate(api_inputs(**inputs)))[0])
    return {"extra": extra, "tensor": images.numel() * images.element_size()}


def node_child(inputs: dict[str, Any]) -> dict[str, Any]:
    """One text-to-image prompt in a process that has just started, as after a ComfyUI restart."""
    load_pack()
    started, (ended,), (images,) = prompt_round([inputs])
    return {"seconds": ended - started, "digest": hashlib.sha256(images.numpy().tobytes()).hexdigest()}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {"memory": memory_child, "node": node_child}


def measure_restart(plan: Plan, seeds: Seeds) -> dict[str, Metric]:
    """An unchanged workflow queued again after a ComfyUI restart: each run in a fresh process
    sharing the data folder; the second should be served by the journal and result store."""
    first, again, submits, identical = [], [], [], True
    with simulator(queue_seconds=plan.restart_queue, run_seconds=plan.restart_run) as sim:
        for _ in range(plan.runs):
            inputs = node_inputs(seed=seeds())
            runs = []
            for _ in range(2):
                before = len(sim.requests(route="submit"))
                runs.append(run_child("node", inputs=inputs))
                submits.append(len(sim.requests(route="submit")) - before)
            first.append(runs[0]["seconds"])
            again.append(runs[1]["seconds"])
            identical &= runs[0]["digest"] == runs[1]["digest"]
    return {
        "restart.first": Metric(median(first), "s", "first, paid run"),
        "restart.first_submits": Metric(max(submits[0::2]), "n", "submits"),
        "restart.again": Metric(median(again), "s", "images in hand"),
        "restart.again_submits": Metric(max(submits[1::2]), "n", "submits after the restart"),
        "restart.identical": Metric(identical, "bool", "same pixels as the first run"),
    }


def measure_concurrency(plan: Plan, seeds: Seeds) -> dict[str, Metric]:
    """N text-to-image jobs through the node in one prompt round vs one after another."""
    metrics: dict[str, Metric] = {}
    with simulator(queue_seconds=plan.concurrency_queue, run_seconds=plan.concurrency_run) as sim:
        run_nodes(sim, [node_inputs(seed=seeds())])  # teaches the pacer this kind of job, as a session would
        one_job = median([f.ended - f.started for _ in range(plan.runs) for f in run_nodes(sim, [node_inputs(seed=seeds())])])
        metrics["jobs.one"] = Metric(one_job, "s", "one job")
        for count in plan.job_counts:
            at_once, latencies, rates, account = [], [], [], []
            for _ in range(plan.runs):
                facts = run_nodes(sim, [node_inputs(seed=seeds()) for _ in range(count)])
                at_once.append(max(f.ended for f in facts) - facts[0].started)
                latencies += [f.latency for f in facts]
                rates += [f.poll_rate for f in facts]
                polls = sum(len(f.polls) for f in facts)
                account.append(polls / (max(f.polls[-1] for f in facts) - min(f.submitted for f in facts)))
            started = time.monotonic()
            for _ in range(count if count > 1 else 0):  # one job after another is one job
                run_nodes(sim, [node_inputs(seed=seeds())])
            one_after_another = time.monotonic() - started if count > 1 else one_job
            metrics.update({
                f"jobs.{count}.at_once": Metric(median(at_once) / one_job, "x", "at once ÷ one job"),
                f"jobs.{count}.one_after_another": Metric(one_after_another / one_job, "x", "one after another ÷ one job"),
                f"jobs.{count}.latency": Metric(median(latencies), "s", "finish → IMAGE"),
                f"jobs.{count}.polls": Metric(median(rates), "/s", "polls per job"),
                f"jobs.{count}.account_polls": Metric(median(account), "/s", "polls of all jobs"),
            })
    return metrics
