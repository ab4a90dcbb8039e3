"""``/_sim/*``: the simulator's own control API, for out-of-process users.

A benchmark or a real ComfyUI run talks to the simulator over HTTP only, so
everything a test does in-process (inject faults, release held answers,
script jobs, choose options, read the log, move time, reset) is also reachable
here: ``/_sim/faults`` and ``/_sim/scripts`` take one ``FaultRule`` /
``JobScript`` as a JSON object, or a list of them, with the same field names. These endpoints are not part of the
RunComfy API and live outside ``/v1``. They require the simulator's primary
token (the one the CLI prints), so a stray page in a browser cannot reconfigure
a running simulator. Nothing served here contains a token, except the answer
that creates an account (its caller needs the new token to use it).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Callable

from .billing import micros_to_usd
from .faults import FaultBook, FaultRule
from .jobs import JobScript, JobStore
from .log import RequestLog
from .options import Options
from .signin import SignIns
from .wire import Reply, bearer_token, error_reply, json_reply, plain_not_found


class Control:
    """Dispatches ``/_sim/...`` requests to the parts of a simulator they steer.

    ``options``/``configure`` read and change the simulator's options,
    ``reset`` puts the whole simulator back to its start, ``url`` is its base
    URL (known once it listens), ``account_name`` names the primary account.
    """

    def __init__(self, *, token: str, account_name: str, store: JobStore, faults: FaultBook, log: RequestLog,
                 options: Callable[[], Options], configure: Callable[..., Options], reset: Callable[[], None],
                 url: Callable[[], str], urls: Callable[[], dict[str, str]], sign_ins: SignIns) -> None:
        self._token, self._account_name = token, account_name
        self._store, self._faults, self._log = store, faults, log
        self._options, self._configure, self._reset, self._url = options, configure, reset, url
        self._urls, self._sign_ins = urls, sign_ins

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes, authorization: str | None) -> Reply:
        name = path[len("/_sim"):].strip("/")
        if name == "health" and method == "GET":
            return json_reply(200, {"ok": True})
        token = bearer_token(authorization)
        if token is None or not secrets.compare_digest(token.encode(), self._token.encode()):
            return error_reply(401, 400004, "Control endpoints need the simulator's own token as a Bearer token")
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError):
            return error_reply(422, 422001, "Body is not valid JSON")
        handler = getattr(self, f"_{method.lower()}_{name.replace('/', '_').replace('-', '_')}", None)
        if handler is None:
            return plain_not_found()
        try:
            return handler(payload, query)
        except (ValueError, TypeError, KeyError) as exc:
            return error_reply(422, 422001, f"{type(exc).__name__}: {exc}")

    def _get_state(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, {
            "url": self._url(),
            "urls": self._urls(),
            "options": self._options().to_json(),
            "accounts": self._accounts(),
            "jobs": len(self._store.jobs()),
            "faults": self._pending_faults(),
            "scripts": self._pending_scripts(),
            "log_records": len(self._log),
        })

    def _get_config(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, self._options().to_json())

    def _post_config(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        return json_reply(200, self._configure(**payload).to_json())

    def _post_reset(self, payload: Any, query: dict[str, str]) -> Reply:
        self._reset()
        return _ok()

    def _post_advance(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        self._store.advance(float(payload["seconds"]))
        return _ok()

    def _post_faults(self, payload: Any, query: dict[str, str]) -> Reply:
        rules = [FaultRule.from_json(item) for item in _as_list(payload)]
        return json_reply(200, {"faults": [self._faults.add(rule).to_json() for rule in rules]})

    def _get_faults(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, {"faults": self._pending_faults()})

    def _delete_faults(self, payload: Any, query: dict[str, str]) -> Reply:
        self._faults.clear()
        return _ok()

    def _post_release(self, payload: Any, query: dict[str, str]) -> Reply:
        """``{"id": <rule id>}``: let the requests a ``hold``/``delay`` rule holds go on."""
        _require_object(payload)
        self._faults.release(str(payload["id"]))
        return _ok()

    def _post_scripts(self, payload: Any, query: dict[str, str]) -> Reply:
        scripts = [JobScript.from_json(item) for item in _as_list(payload)]
        return json_reply(200, {"scripts": [self._store.add_script(script).to_json() for script in scripts]})

    def _get_scripts(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, {"scripts": self._pending_scripts()})

    def _delete_scripts(self, payload: Any, query: dict[str, str]) -> Reply:
        self._store.clear_scripts()
        return _ok()

    def _get_log(self, payload: Any, query: dict[str, str]) -> Reply:
        filters: dict[str, Any] = {k: v for k, v in query.items() if k in ("route", "method", "request_id", "model_id", "fault", "account", "base")}
        if "status" in query:
            filters["status"] = int(query["status"])
        return json_reply(200, {"records": [r.to_json() for r in self._log.records(**filters)]})

    def _delete_log(self, payload: Any, query: dict[str, str]) -> Reply:
        self._log.clear()
        return _ok()

    def _get_jobs(self, payload: Any, query: dict[str, str]) -> Reply:
        now = self._store.now()
        jobs = [
            {
                "request_id": job.request_id, "model_id": job.model_id, "account": job.account,
                "state": job.state(now), "outcome": job.script.outcome,
                "cost": micros_to_usd(job.net_cost_micros(now)), "num_images": job.num_images,
                "output_size": list(job.output_size) if job.output_size else None, "error": job.work_error,
            }
            for job in sorted(self._store.jobs().values(), key=lambda j: j.seq)
        ]
        return json_reply(200, {"jobs": jobs})

    def _get_accounts(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, {"accounts": self._accounts()})

    def _post_accounts(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        token = self._store.add_account(payload.get("token"), float(payload.get("balance", 10.0)), payload.get("name"))
        account = self._store.account_for_token(token)
        assert account is not None
        balance = micros_to_usd(self._store.balance_micros(account))
        return json_reply(200, {"name": account.name, "token": token, "balance": balance})

    def _post_balance(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        account = self._store.account_named(payload.get("account") or self._account_name)
        self._store.set_balance(account, float(payload["balance"]))
        return json_reply(200, {"accounts": self._accounts()})

    def _get_sign_ins(self, payload: Any, query: dict[str, str]) -> Reply:
        """The pending device sign-ins (user codes only: a device code is the tool's secret)."""
        return json_reply(200, {"pending": [s.user_code for s in self._sign_ins.pending()]})

    def _post_sign_ins(self, payload: Any, query: dict[str, str]) -> Reply:
        """``{"action": "approve"|"deny"|"expire", "user_code"?, "account"?}``: what the person
        does on the website; without ``user_code``, the newest pending sign-in. 404 if none."""
        _require_object(payload)
        try:
            sign_in = self._sign_ins.settle(str(payload.get("action")), user_code=payload.get("user_code"),
                                            account=payload.get("account"))
        except KeyError as missing:
            return error_reply(404, 404001, str(missing).strip("'\""))
        return json_reply(200, {"user_code": sign_in.user_code, "state": sign_in.state, "account": sign_in.account})

    def _accounts(self) -> list[dict[str, Any]]:
        store = self._store
        return [{"name": a.name, "balance": micros_to_usd(store.balance_micros(a))} for a in store.accounts()]

    def _pending_faults(self) -> list[dict[str, Any]]:
        return [dict(rule.to_json(), remaining=left) for rule, left in self._faults.pending()]

    def _pending_scripts(self) -> list[dict[str, Any]]:
        return [dict(script.to_json(), remaining=left) for script, left in self._store.scripts()]


def _ok() -> Reply:
    return json_reply(200, {"ok": True})


def _as_list(payload: Any) -> list[Any]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("items"), list):
        return payload["items"]
    return [payload]


def _require_object(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
