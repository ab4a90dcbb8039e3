"""Producing a job's output files in the background.

Rendering starts when the job is accepted, on a small pool of daemon threads,
so the files are usually ready by the time the lifecycle timer says the job
has finished, and a test never waits on a 4K render it did not ask to time.
The same worker fetches URL inputs (loopback only), which is when a real
backend would fetch them too, and records each fetch in the request log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import queue
import threading
from typing import Callable
from urllib.parse import urlsplit

from PIL import Image

from . import images
from .inputs import FetchError, InputError, inspect_image, fetch
from .jobs import Job
from .log import RequestLog

_STOP = object()


class RenderPool:
    """A fixed number of daemon worker threads, started on first use.

    ``concurrent.futures`` threads are joined at interpreter exit; daemon
    threads are not, so a test run never hangs behind an abandoned render.
    """

    def __init__(
        self,
        workers: int,
        log: RequestLog,
        clock: Callable[[], float],
        keep_files: Callable[[Job, list[bytes]], None],
    ) -> None:
        self._workers = max(1, workers)
        self._keep_files = keep_files
        self._log = log
        self._clock = clock
        self._queue: "queue.Queue[object]" = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, job: Job) -> None:
        """Queue the job's work (nothing to do for jobs scripted not to complete)."""
        if not job.needs_render:
            job.rendered.set()
            return
        with self._lock:
            if self._stopped:
                return
            if not self._threads:
                for number in range(self._workers):
                    thread = threading.Thread(target=self._run, name=f"sim-render-{number}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
        self._queue.put(job)

    def stop(self) -> None:
        """Drop queued work and let the workers exit after their current job."""
        with self._lock:
            self._stopped = True
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            for _ in self._threads:
                self._queue.put(_STOP)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            assert isinstance(job, Job)
            try:
                self._produce(job)
            except Exception as exc:  # a bug here must fail the job, not hang it
                job.work_error = f"Internal simulator error while rendering: {type(exc).__name__}: {exc}"
            finally:
                # The inputs were only needed to render; drop their bytes.
                job.images = [dataclasses.replace(item, data=None) for item in job.images]
                job.rendered_mono = self._clock()
                job.rendered.set()

    def _produce(self, job: Job) -> None:
        if job.cancelled_mono is not None:
            return
        digests: list[str] = []
        first: tuple[bytes | None, tuple[int, int] | None] = (None, None)
        for item in job.images:
            data, size = item.data, item.size
            if item.url is not None:
                try:
                    data = self._fetch(job, item.url)
                    size = inspect_image(data)
                except (FetchError, InputError) as exc:
                    job.work_error = f"Could not use {item.field} ({item.url}): {exc}"
                    return
            digests.append(item.digest if item.url is None else _digest(data))
            if item.index == 0:
                first = (data, size)
        ratios = job.script.aspect_ratios or (str(job.inputs.get("aspect_ratio", "auto")),)
        base = Image.open(io.BytesIO(first[0])) if first[0] is not None and first[1] is not None else None
        files, sizes = [], []
        for index in range(job.num_images):
            if job.cancelled_mono is not None:
                return
            resolution = job.script.output_resolution or str(job.inputs.get("resolution", "1K"))
            sizes.append(images.expected_size(ratios[index % len(ratios)], resolution, first[1]))
            if job.script.identical_images and files:
                files.append(files[0])
                continue
            seed = images.render_seed(str(job.inputs.get("prompt", "")), int(job.inputs.get("seed", 0)), index, digests)
            data = images.render(*sizes[-1], rng_seed=seed, output_format=str(job.inputs.get("output_format", "png")), base=base)
            files.append(data if job.script.file_content == "image" else images.defective(job.script.file_content, data))
        job.output_size = sizes[0]
        self._keep_files(job, files)

    def _fetch(self, job: Job, url: str) -> bytes:
        status: int | None = None
        note = None
        try:
            data, status = fetch(url)
            return data
        except FetchError as exc:
            status = exc.status
            note = str(exc)
            raise
        finally:
            self._log.add(method="GET", path=urlsplit(url).path or "/", route="input_fetch",
                          status=status, request_id=job.request_id, model_id=job.model_id, note=note)


def _digest(data: bytes | None) -> str:
    return hashlib.sha256(data or b"").hexdigest()
