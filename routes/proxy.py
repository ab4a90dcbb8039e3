"""The proxy routes: what proxy the pack uses (password hidden), and setting it from the editor.

``GET /runcomfy-nb2/proxy`` tells the settings panel which proxy RunComfy's
calls go through and where it was set; ``POST`` with ``{"proxy": "<url>"}``
saves one in the pack's per-user config file (where the token lives, 0600),
``{"proxy": null}`` removes it. A proxy URL may hold a password, so no answer,
log line or ComfyUI setting ever holds more than ``user:***@host:port``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from aiohttp import web

from ..client.config.settings import check_proxy_url, load_settings, proxy_variables, update_config_file
from ..client.errors import ConfigurationError
from ..client.transport.proxy import ProxySetup, describe_proxy
from .guard import Refusal, answer, read_json_object, refuse_cross_site
from .handlers import PREFIX, _guarded as guarded  # the same JSON answers for refusals and bugs

log = logging.getLogger("runcomfy")


class ProxyRoutes:
    """``/proxy``: read and change the config file's proxy."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.env = env

    def add_to(self, table: web.RouteTableDef) -> None:
        table.get(f"{PREFIX}/proxy")(guarded(self.show))
        table.post(f"{PREFIX}/proxy")(guarded(self.store))

    async def show(self, request: web.Request) -> web.Response:
        refuse_cross_site(request, changes_state=False)
        return answer({"proxy": self.state()})

    async def store(self, request: web.Request) -> web.Response:
        """``{"proxy": "http://[user:password@]host:port"}`` saves it, ``{"proxy": null}`` (or "") removes it."""
        body = await read_json_object(request)
        if set(body) != {"proxy"} or not (body["proxy"] is None or isinstance(body["proxy"], str)):
            raise Refusal(400, 'Send {"proxy": "http://host:port"} to use a proxy, or {"proxy": null} for none')
        value = (body["proxy"] or "").strip()
        try:
            if value:
                proxy = check_proxy_url(value, "The proxy")
                path = update_config_file({"proxy": proxy}, env=self.env)
                log.info("Saved the proxy %s in %s", describe_proxy(proxy), path)
            else:
                path = update_config_file({}, remove=("proxy",), env=self.env)
                log.info("Removed the proxy from %s", path)
        except ConfigurationError as exc:
            raise Refusal(400 if value else 409, str(exc)) from None
        return answer({"proxy": self.state()})

    def state(self) -> dict[str, Any]:
        """Which proxy RunComfy's calls use now, the saved one and the environment's, passwords hidden."""
        environment = [{"variable": name.upper(), "value": describe_proxy(value) if name != "no_proxy" else value}
                       for name, value in proxy_variables(self.env)]
        state: dict[str, Any] = {"in_use": None, "source": "none", "source_kind": "none", "saved": None,
                                 "environment": environment, "error": None}
        try:
            settings = load_settings(self.env)
            setup = ProxySetup.from_settings(settings)
        except ConfigurationError as exc:
            state["error"] = str(exc)
            return state
        proxy = setup.for_url(settings.base_url)
        kind = "config_file" if settings.proxy else "environment" if setup.active else "none"
        state.update(in_use=describe_proxy(proxy) if proxy else None, source=setup.source, source_kind=kind,
                     saved=describe_proxy(settings.proxy) if settings.proxy else None)
        return state
