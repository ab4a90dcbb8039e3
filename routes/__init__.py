"""The pack's HTTP routes on ComfyUI's server, used by its editor extension (``web/``).

aiohttp and ComfyUI are imported only when the routes are added, so the pack
(and its tests) import anywhere. ``add_routes`` takes any aiohttp
``RouteTableDef``: ComfyUI's (``register_with_comfyui``) or a test's own.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

log = logging.getLogger("runcomfy")


def add_routes(table: Any, env: Mapping[str, str] = os.environ) -> Any:
    """Add the routes to an aiohttp ``RouteTableDef``; returns the object that serves them."""
    from .handlers import PackRoutes
    from .proxy import ProxyRoutes
    from .switching import SwitchingRoutes

    routes = PackRoutes(env)
    routes.add_to(table)
    ProxyRoutes(env).add_to(table)
    SwitchingRoutes().add_to(table)
    return routes


def register_with_comfyui() -> bool:
    """Add the routes to the running ComfyUI server; False (and nothing done) outside ComfyUI."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None or not hasattr(instance, "routes"):
        return False
    add_routes(instance.routes)
    return True
