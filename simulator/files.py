"""The output-file route, standing in for RunComfy's CDN.

Files are served without authentication, as a CDN serves pre-signed URLs; the
handler only records whether an Authorization header arrived, because the
client must never send its token to a file host. The file faults (redirects,
HTML instead of an image, endless or cut-off bodies, trickling) are the ways a
CDN download goes wrong that the client's downloader must survive.
"""

from __future__ import annotations

import re
import threading
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from .api import Incoming, file_base
from .faults import DEFAULT_SLOW_SECONDS, MAX_OVERSIZE_BYTES, FaultRule
from .images import FORMATS
from .jobs import JobStore
from .options import Options
from .wire import Reply

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
        data = files[index]
        reply = Reply(200, data, _CONTENT_TYPES[ext], [("Cache-Control", "public, max-age=86400")])
        return self._distort(reply, fault, req) if fault is not None else reply

    @staticmethod
    def _distort(reply: Reply, fault: FaultRule, req: Incoming) -> Reply:
        """Apply a file-only fault to a good answer."""
        if fault.kind == "redirect":
            return Reply(fault.status or 302, b"", None, [("Location", _redirect_target(fault, req))])
        if fault.kind == "not_image":
            return Reply(200, fault.body.encode("utf-8") if fault.body else _NOT_IMAGE,
                         fault.content_type or "text/html; charset=utf-8")
        if fault.kind == "oversize":
            size = MAX_OVERSIZE_BYTES if fault.size is None else fault.size
            return Reply(200, reply.body[:size], reply.content_type, mode="oversize", size=size, chunked=fault.chunked)
        if fault.kind == "truncated":
            size = len(reply.body) // 2 if fault.size is None else min(fault.size, len(reply.body) - 1)
            return Reply(200, reply.body, reply.content_type, mode="truncate", size=max(size, 0))
        if fault.kind == "slow":
            seconds = DEFAULT_SLOW_SECONDS if fault.seconds is None else fault.seconds
            return Reply(200, reply.body, reply.content_type, reply.headers, mode="trickle", seconds=seconds)
        return reply


def _extension(output_format: str) -> str:
    return FORMATS[output_format][1]


def _redirect_target(fault: FaultRule, req: Incoming) -> str:
    """``location`` as given, else the same path on ``host``, else on the same host.

    A same-host redirect adds ``?redirected=1`` so the target is a different
    URL that serves the file normally once the rule is used up.
    """
    if fault.location:
        return fault.location
    base = file_base(fault.host, req.base_url) if fault.host else req.base_url
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, req.path, "redirected=1", ""))
