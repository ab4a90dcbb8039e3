"""The account routes: where the token comes from, who it belongs to, the balance, storing it, signing in.

The contract with the editor is ``/work/tools/prompts/account-routes-contract.md``
(kept in README's "Routes" list): ``GET /account``, ``POST``/``DELETE /token``
("Check and save", "Sign out") and ``POST``/``GET``/``DELETE /sign-in`` (the
device sign-in of ``runcomfy login``, polled here on the server, so the
browser only ever sees the user code, the link and the state). No answer holds
the token, not even during a sign-in.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Mapping

from aiohttp import web

from ..client.account.cache import shared_account_cache
from ..client.account.device import AUTHORIZED, IDLE, DeviceSignIn
from ..client.account.identity import NO_TOKEN, REJECTED, SIGNED_IN, fetch_identity
from ..client.account.saving import remove_token, store_token
from ..client.account.sources import (
    ENVIRONMENT, LEGACY_TOKEN_KEY, SAVED_HERE, TokenChoice, environment_conflict, find_token,
)
from ..client.config.paths import token_file_path
from ..client.config.settings import (
    PREFERENCE_DEFAULTS, Settings, check_token_text, default_config_path, load_settings, read_config_values,
)
from ..client.errors import ConfigurationError, RunComfyError
from ..client.ledger import spend
from ..nodes.offline import offline_flag, offline_refusal
from .guard import Refusal, answer, read_json_object, refuse_cross_site

log = logging.getLogger("runcomfy")

# What the settings panel shows as "check" (the answer's older key), from who-am-I's state.
_CHECK_STATES = {SIGNED_IN: "valid", REJECTED: "rejected", NO_TOKEN: "no_token"}


class AccountRoutes:
    """The handlers, with what they share: the environment and the one device sign-in under way."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.env = env
        self.accounts = shared_account_cache()
        self._sign_in: DeviceSignIn | None = None
        self._follower: asyncio.Task[None] | None = None

    def add_to(self, table: web.RouteTableDef, prefix: str, guarded: Any) -> None:
        table.get(f"{prefix}/account")(guarded(self.account))
        table.post(f"{prefix}/token")(guarded(self.store_token))
        table.delete(f"{prefix}/token")(guarded(self.remove_token))
        table.post(f"{prefix}/sign-in")(guarded(self.start_sign_in))
        table.get(f"{prefix}/sign-in")(guarded(self.sign_in_state))
        table.delete(f"{prefix}/sign-in")(guarded(self.cancel_sign_in))

    # -- account -------------------------------------------------------------

    async def account(self, request: web.Request) -> web.Response:
        """Where the token comes from, who it belongs to, the balance, preferences, session spend.

        ``?refresh=1`` asks RunComfy again instead of using the last minutes' answers.
        """
        refuse_cross_site(request, changes_state=False)
        return answer(await self.account_state(refresh=request.query.get("refresh") in ("1", "true")))

    async def account_state(self, *, refresh: bool = False) -> dict[str, Any]:
        summary = spend.summary()
        flag = offline_flag()
        state: dict[str, Any] = {
            "offline": {"flag": flag} if flag else None,
            "token": self._token_state(),
            "identity": {"state": NO_TOKEN, "email": None, "id": None, "message": None, "checked_at": None},
            "balance": {"state": NO_TOKEN, "usd": None, "currency": None, "message": None, "checked_at": None},
            "check": None,
            "spend": {"session_total_usd": summary.total_usd, "session_jobs": summary.jobs,
                      "jobs_without_cost": summary.jobs_without_cost},
            "preferences": None,
            "config_error": None,
        }
        try:
            settings = load_settings(self.env)
        except ConfigurationError as exc:
            state["config_error"] = str(exc)
            state["check"] = {"state": "error", "message": str(exc), "checked_at": None}
            state["identity"] = {**state["identity"], "state": "unknown", "message": str(exc)}
            state["balance"] = {**state["balance"], "state": "unknown", "message": str(exc)}
            return state
        state["preferences"] = {name: getattr(settings, name) for name in PREFERENCE_DEFAULTS}
        state.update(base_url=settings.base_url, www_base_url=settings.www_base_url,
                     account_base_url=settings.account_base_url)
        if flag is not None:  # no who-am-I, no balance: the panel says why
            reason = offline_refusal(flag, "the token and the balance are not checked")
            offline = {"state": "offline", "message": reason, "checked_at": None}
            state["identity"], state["balance"] = {**state["identity"], **offline}, {**state["balance"], **offline}
            state["check"] = offline
            return state
        if refresh:
            self.accounts.forget()
        identity, balance = await asyncio.gather(self.accounts.identity(settings), self.accounts.balance(settings))
        state["identity"], state["balance"] = identity.to_json(), balance.to_json()
        state["check"] = {"state": _CHECK_STATES.get(identity.state, "unreachable"),
                          "message": identity.describe(), "checked_at": identity.checked_at}
        return state

    def _token_state(self) -> dict[str, Any]:
        """Set or not, and from where; never the token itself."""
        config_path = default_config_path(self.env)
        try:
            _, values = read_config_values(self.env)
            in_file: bool | None = bool(str(values.get(LEGACY_TOKEN_KEY) or "").strip())
        except ConfigurationError:
            values, in_file = {}, None
        try:
            choice = find_token(self.env, values, config_path)
        except ConfigurationError:
            choice = TokenChoice()
        return {"set": choice.token is not None, "source": choice.kind, "variable": choice.variable,
                "path": str(choice.path) if choice.path else None, "conflict": choice.conflict,
                "sign_in_path": str(token_file_path(self.env)), "config_path": str(config_path),
                "saved_in_file": in_file}

    # -- Check and save, Sign out ----------------------------------------------

    async def store_token(self, request: web.Request) -> web.Response:
        """``{"token": "..."}``: checked with RunComfy's who-am-I first, stored in ``token.json`` only if accepted."""
        body = await read_json_object(request)
        if set(body) != {"token"}:
            raise Refusal(400, 'Send {"token": "<your RunComfy API token>"} and nothing else')
        try:
            token = check_token_text(body["token"])
        except ConfigurationError as exc:
            raise Refusal(400, str(exc)) from None
        settings = self._settings_without_environment_token()
        _refuse_offline("the token cannot be checked and nothing was stored")
        identity = await fetch_identity(settings, token)
        if identity.state == REJECTED:
            raise Refusal(422, f"{identity.message}. Nothing was stored")
        if identity.state != SIGNED_IN:
            raise Refusal(502, f"Could not check the token with RunComfy: {identity.message}. Nothing was stored; "
                               "try again")
        try:
            path = store_token(token, how=SAVED_HERE, env=self.env)
        except ConfigurationError as exc:
            raise Refusal(500, str(exc)) from None
        log.info("Stored the RunComfy API token (accepted by RunComfy) in %s", path)
        self.accounts.forget()
        self.accounts.remember_identity(self._settings_or_refuse(), identity)
        return answer({"stored": True, "account": await self.account_state()})

    async def remove_token(self, request: web.Request) -> web.Response:
        """Sign out: remove ``token.json`` and the old ``api_token`` (one in the environment stays, and the answer says so)."""
        await read_json_object(request, allow_empty=True)
        try:
            removed = remove_token(self.env)
        except ConfigurationError as exc:
            raise Refusal(409, str(exc)) from None
        if removed:
            log.info("Removed the RunComfy API token (signed out)")
        self.accounts.forget()
        return answer({"removed": removed, "account": await self.account_state()})

    # -- device sign-in ------------------------------------------------------

    async def start_sign_in(self, request: web.Request) -> web.Response:
        """``{}``: start a device sign-in (a pending one is cancelled); this server polls it."""
        await read_json_object(request, allow_empty=True)
        settings = self._settings_without_environment_token()
        _refuse_offline("no sign-in was started")
        self._drop_sign_in()
        sign_in = DeviceSignIn(settings, self.env)
        try:
            await sign_in.start()
        except RunComfyError as exc:
            raise Refusal(502, f"Could not start the sign-in with RunComfy: {exc}") from None
        self._sign_in = sign_in
        self._follower = asyncio.ensure_future(self._follow(sign_in))
        return answer(sign_in.snapshot())

    async def sign_in_state(self, request: web.Request) -> web.Response:
        refuse_cross_site(request, changes_state=False)
        return answer(await self._sign_in_answer())

    async def cancel_sign_in(self, request: web.Request) -> web.Response:
        await read_json_object(request, allow_empty=True)
        if self._sign_in is not None:
            self._sign_in.cancel()
        return answer(await self._sign_in_answer())

    async def _follow(self, sign_in: DeviceSignIn) -> None:
        """Poll until the sign-in ends; once signed in, forget the old account's answers and ask anew."""
        try:
            state = await sign_in.finish()
        except Exception:  # never lose the task's failure in silence
            log.error("The RunComfy sign-in failed", exc_info=True)
            sign_in.cancel()
            return
        if state == AUTHORIZED and sign_in is self._sign_in:
            self.accounts.forget()
            await self.account_state()  # who and how much, before the editor asks

    async def _sign_in_answer(self) -> dict[str, Any]:
        sign_in = self._sign_in
        if sign_in is None:
            return {"state": IDLE, "user_code": None, "verify_url": None, "expires_at": None, "poll_interval": None,
                    "message": None}
        snapshot = sign_in.snapshot()
        if sign_in.state == AUTHORIZED:
            if self._follower is not None and not self._follower.done():
                await asyncio.shield(self._follower)  # identity and balance are being asked: wait for them
            snapshot["account"] = await self.account_state()
        return snapshot

    def _drop_sign_in(self) -> None:
        if self._sign_in is not None:
            self._sign_in.cancel()
        self._sign_in = self._follower = None

    def _settings_without_environment_token(self) -> Settings:
        """The settings, refused (409) when a variable holds the token: it would win over one stored here."""
        conflict = environment_conflict(self.env)
        if conflict:
            raise Refusal(409, conflict)
        settings = self._settings_or_refuse()
        if settings.token_kind == ENVIRONMENT:
            raise Refusal(409, f"{settings.token_source} is set in ComfyUI's environment and wins over a saved "
                               "token: change or unset it where ComfyUI is started, then restart ComfyUI")
        return settings

    def _settings_or_refuse(self) -> Settings:
        try:
            return load_settings(self.env)
        except ConfigurationError as exc:
            raise Refusal(409, str(exc)) from None


def _refuse_offline(undone: str) -> None:
    """Refuse (409) a request that needs RunComfy while ComfyUI runs offline."""
    flag = offline_flag()
    if flag is not None:
        raise Refusal(409, offline_refusal(flag, undone))
