"""The output-file route, standing in for RunComfy's CDN.

Files are served without authentication, as a CDN serves pre-signed URLs; the
handler only records whether an Authorization header arrived, because the
client must never send its token to a file host. The file faults (redirects,
HTML instead of an image, endless or cut-off bodies, trickling) are the ways a
CDN download goes wrong that the client's downloader must survive. Where the
files appear to live (``file_base``) is decided here too, for result URLs and
redirects alike.
"""

from __future__ import annotations

import re
import threading
from typing import Callable
from urllib.parse import urlsplit

from .faults import DEFAULT_SLOW_SECONDS, MAX_OVERSIZE_BYTES, FaultRule
from .images import FORMATS
from .inputs import is_loopback_host
from .jobs import Job, JobStore
from .options import Options
from .wire import Incoming, Reply

_NAME = re.compile(r"^(\d+)\.(png|jpg|webp)$")
_CONTENT_TYPES = {ext: ctype for _, ext, ctype in FORMATS.values()}
_NOT_IMAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
    b"<body><h1>Please sign in to continue</h1></body></html>"
)


def _text(status: int, message: str) -> Reply:
    return Reply(status, message.encode("utf-8"), "text/plain; charset=utf-8")


class FileRoute:
    """``GET /files/{request_id}/{index}.{ext}``: waits for the render, then serves it."""

    def __init__(self, store: JobStore, options: Callable[[], Options], stopping: threading.Event) -> None:
        self._store = store
        self._options = options
        self._stopping = stopping

    def serve(self, req: Incoming, request_id: str, name: str, fault: FaultRule | None) -> Reply:
        job = self._store.get(request_id)
        match = _NAME.match(name)
        if job is None or match is None:
            return _text(404, "Not Found")
        req.model_id = job.model_id
        index, ext = int(match.group(1)), match.group(2)
        if job.needs_render and not job.rendered.is_set():
            deadline = self._options().file_wait_seconds
            waited = 0.0
            while not job.rendered.wait(0.05) and not self._stopping.is_set() and waited < deadline:
                waited += 0.05
        if not job.rendered.is_set():
            return _text(503, "File not ready")
        if index >= job.num_images or ext != _extension(job.inputs.get("output_format", "png")):
            return _text(404, "Not Found")
        ttl = self._options().file_ttl_seconds
        now = self._store.now()
        finished = job.finished_mono(now)
        expired = ttl is not None and finished is not None and now - finished > ttl
        if expired or job.files_evicted:
            return Reply(
                403,
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                b"<Message>Request has expired</Message></Error>",
                "application/xml",
            )
        files = job.files  # one read: eviction may swap the list meanwhile
        if index >= len(files):
            return _text(404, "Not Found")
        reply = Reply(200, files[index], _CONTENT_TYPES[ext], [("Cache-Control", "public, max-age=86400")])
        return _distort(reply, fault) if fault is not None else reply


def _distort(reply: Reply, fault: FaultRule) -> Reply:
    """Apply a file-only fault to a good answer."""
    if fault.kind == "not_image":
        return Reply(200, fault.body.encode("utf-8") if fault.body else _NOT_IMAGE,
                     fault.content_type or "text/html; charset=utf-8")
    if fault.kind == "oversize":
        size = MAX_OVERSIZE_BYTES if fault.size is None else fault.size
        return Reply(200, reply.body[:size], reply.content_type, mode="oversize", size=size, chunked=fault.chunked)
    if fault.kind == "truncated":
        size = len(reply.body) // 2 if fault.size is None else min(fault.size, len(reply.body) - 1)
        return Reply(200, reply.body, reply.content_type, mode="truncate", size=max(size, 0))
    if fault.kind == "cut":  # a whole answer, Content-Length and all, of a file that ends early
        size = len(reply.body) // 2 if fault.size is None else min(fault.size, len(reply.body) - 1)
        return Reply(200, reply.body[: max(size, 0)], reply.content_type, reply.headers)
    if fault.kind == "slow":  # the whole file in 50 pieces over ``seconds``
        seconds = DEFAULT_SLOW_SECONDS if fault.seconds is None else fault.seconds
        return Reply(200, reply.body, reply.content_type, reply.headers, mode="trickle",
                     size=max(1, -(-len(reply.body) // 50)), seconds=seconds / 50)
    # trickle: a fixed slow rate, however long that takes
    return Reply(200, reply.body, reply.content_type, reply.headers, mode="trickle",
                 size=fault.size or 1, seconds=2.0 if fault.seconds is None else fault.seconds)


def _extension(output_format: str) -> str:
    return FORMATS[output_format][1]


def file_urls(job: Job, base_url: str) -> list[str]:
    """The URLs of a job's output files, as its result lists them."""
    base = file_base(job.script.output_host, base_url)
    ext = _extension(job.inputs.get("output_format", "png"))
    return [f"{base}/files/{job.request_id}/{index}.{ext}" for index in range(job.num_images)]


def file_base(output_host: str | None, base_url: str) -> str:
    """Where output files appear to live.

    A loopback host keeps the simulator's scheme and port (e.g. 127.0.0.2, a
    different host that still answers on Linux when the simulator binds it);
    a name becomes ``https://name`` (e.g. the real CDN, which must never be
    reached from tests); a full ``scheme://host[:port]`` is used as given.
    """
    if not output_host:
        return base_url
    if "://" in output_host:
        return output_host.rstrip("/")
    if is_loopback_host(output_host):
        parts = urlsplit(base_url)
        host = f"[{output_host}]" if ":" in output_host else output_host
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"
    return f"https://{output_host}"
