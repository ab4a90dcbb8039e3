"""One pool of threads for the nodes' CPU work: encoding references, decoding results.

Pillow, numpy and torch release the GIL in their heavy loops, so a few threads
keep ComfyUI's event loop free. One pool for the whole process, because
``asyncio.to_thread`` would give every prompt's new event loop a pool of its own.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="runcomfy")
        return _pool


async def in_worker(function: Callable[..., T], *args, **kwargs) -> T:
    """Run ``function(*args, **kwargs)`` on the pool and await its result."""
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_get_pool(), call)
