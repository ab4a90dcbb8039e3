"""The pack's routes on ComfyUI's server: price and preferences (the account's are ``account.py``).

Every answer is JSON; errors are ``{"error": "<one line>"}`` with a 4xx/5xx
status. No answer ever holds the token, not even part of it: the editor only
learns whether one is set, where it comes from and whether RunComfy accepts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable, Mapping

from aiohttp import web

from ..client.config.settings import PREFERENCE_DEFAULTS, Settings, check_preference, load_settings, update_config_file
from ..client.errors import ConfigurationError
from ..client.pricing.model_info import OK, ModelInfoCache
from ..client.job.jobs import shared_storage
from ..client.ledger.fingerprint import account_fingerprint
from ..client.pricing.estimate import Billed, estimate_job
from ..client.model.schemas import EDIT, TEXT_TO_IMAGE, get_schema
from ..nodes.offline import offline_flag, offline_refusal
from .account import AccountRoutes
from .guard import Refusal, answer, read_json_object, refusal_answer, refuse_cross_site

log = logging.getLogger("runcomfy")

PREFIX = "/runcomfy-nb2"
# Which RunComfy model each node runs (the editor knows nodes, RunComfy knows models).
NODE_MODELS = {"RunComfyNanoBanana2TextToImage": TEXT_TO_IMAGE, "RunComfyNanoBanana2Edit": EDIT}

Handler = Callable[[web.Request], Any]


def _guarded(handler: Handler) -> Handler:
    """Turn a ``Refusal`` raised anywhere in ``handler`` into its JSON answer, and a bug into a JSON 500."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as refusal:
            return refusal_answer(refusal)
        except Exception as exc:  # the editor shows the one line; the console keeps the traceback
            log.error("RunComfy route %s %s failed", request.method, request.path, exc_info=True)
            return answer({"error": f"The RunComfy pack failed to answer ({type(exc).__name__}); "
                                    "see ComfyUI's console"}, status=500)

    guarded.__name__ = handler.__name__
    return guarded


class PackRoutes:
    """The handlers, with what they share: the model-info cache and the environment."""

    def __init__(self, env: Mapping[str, str] = os.environ, cache: ModelInfoCache | None = None) -> None:
        self.env = env
        self.cache = cache or ModelInfoCache()
        self.account = AccountRoutes(env)

    def add_to(self, table: web.RouteTableDef) -> None:
        table.get(f"{PREFIX}/price")(_guarded(self.price))
        self.account.add_to(table, PREFIX, _guarded)
        table.post(f"{PREFIX}/preferences")(_guarded(self.set_preferences))

    # -- price ---------------------------------------------------------------

    async def price(self, request: web.Request) -> web.Response:
        """``?node_type=&resolution=&num_images=`` -> the estimated cost of one run, or why unknown."""
        refuse_cross_site(request, changes_state=False)
        node_type = request.query.get("node_type", "")
        model_id = NODE_MODELS.get(node_type)
        if model_id is None:
            raise Refusal(400, f"Unknown node type {node_type[:80]!r}: use one of {', '.join(NODE_MODELS)}")
        properties = get_schema(model_id).properties
        resolutions = list(properties["resolution"]["enum"])
        resolution = request.query.get("resolution", "")
        if resolution not in resolutions:
            raise Refusal(400, f"resolution must be one of {', '.join(resolutions)}")
        low, high = properties["num_images"]["minimum"], properties["num_images"]["maximum"]
        try:
            num_images = int(request.query.get("num_images", ""))
        except ValueError:
            num_images = 0
        if not low <= num_images <= high:
            raise Refusal(400, f"num_images must be a whole number from {low} to {high}")

        result: dict[str, Any] = {"node_type": node_type, "model_id": model_id, "resolution": resolution,
                                  "num_images": num_images, "known": False, "estimate_usd": None}
        try:
            settings = load_settings(self.env)
        except ConfigurationError as exc:
            return answer({**result, "reason": str(exc)})
        flag = offline_flag()
        if flag is not None:  # no catalog call: only what RunComfy billed before (the journal) is known
            info, unknown = None, offline_refusal(flag, "its listed price is not read")
        else:
            lookup = await self.cache.get(settings, model_id)
            info = lookup.info if lookup.state == OK else None
            unknown = None if info is not None else lookup.message
        billed = await asyncio.to_thread(_last_billed, settings, self.env, model_id, resolution) if settings.token else None
        estimate = estimate_job(info, resolutions, resolution, num_images, billed, unknown_reason=unknown)
        billed_at = estimate.billed_at.astimezone() if estimate.billed_at is not None else None
        return answer({
            **result,
            "known": estimate.known,
            "estimate_usd": estimate.usd,
            "source": estimate.source,
            "per_image_usd": estimate.per_image_usd,
            "billed_on": billed_at.strftime("%m-%d") if billed_at else None,
            "billed_at": billed_at.isoformat(timespec="minutes") if billed_at else None,
            "varies_by_resolution": estimate.varies_by_resolution,
            "price_unit": info.get("price_unit") if info is not None else None,
            "pricing_note": estimate.pricing_note,
            "reason": estimate.reason if estimate.source != "listed" else None,
        })

    # -- preferences ---------------------------------------------------------

    async def set_preferences(self, request: web.Request) -> web.Response:
        """``{"reuse_results": bool, "daily_spend_limit_usd": number | null}`` (either or both)."""
        body = await read_json_object(request)
        unknown = sorted(set(body) - set(PREFERENCE_DEFAULTS))
        if unknown or not body:
            raise Refusal(400, f"Send one or more of {', '.join(PREFERENCE_DEFAULTS)}"
                               + (f"; unknown: {', '.join(name[:40] for name in unknown[:5])}" if unknown else ""))
        try:
            changes = {name: check_preference(name, value) for name, value in body.items()}
        except ConfigurationError as exc:
            raise Refusal(400, str(exc)) from None
        try:
            update_config_file(changes, env=self.env)
        except ConfigurationError as exc:
            raise Refusal(409, str(exc)) from None
        return answer({"preferences": {name: getattr(self._settings_or_refuse(), name) for name in PREFERENCE_DEFAULTS}})

    def _settings_or_refuse(self) -> Settings:
        try:
            return load_settings(self.env)
        except ConfigurationError as exc:
            raise Refusal(409, str(exc)) from None


def _last_billed(settings: Settings, env: Mapping[str, str], model_id: str, resolution: str) -> Billed | None:
    """What RunComfy last billed this account for ``model_id`` at ``resolution`` (the journal)."""
    journal, _ = shared_storage(settings, env)
    if journal is None:
        return None
    found = journal.last_billed(account_fingerprint(settings.base_url, settings.token or ""), model_id, resolution)
    return Billed(*found) if found else None
