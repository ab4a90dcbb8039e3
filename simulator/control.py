"""``/_sim/*``: the simulator's own control API, for out-of-process users.

A benchmark or a real ComfyUI run talks to the simulator over HTTP only, so
everything a test does in-process (inject faults, script jobs, read the log,
move time, reset) is also reachable here. These endpoints are not part of the
RunComfy API and live outside ``/v1``. They require the simulator's primary
token (the one the CLI prints), so a stray page in a browser cannot reconfigure
a running simulator. Nothing served here contains a token, except the answer
that creates an account (its caller needs the new token to use it).
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from .api import bearer_token
from .billing import micros_to_usd
from .faults import FaultRule
from .jobs import JobScript
from .wire import Reply, error_reply, json_reply, plain_not_found

if TYPE_CHECKING:
    from .server import Simulator


class Control:
    """Dispatches ``/_sim/...`` requests to ``Simulator`` methods."""

    def __init__(self, sim: "Simulator") -> None:
        self._sim = sim

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes, authorization: str | None) -> Reply:
        name = path[len("/_sim"):].strip("/")
        if name == "health" and method == "GET":
            return json_reply(200, {"ok": True})
        token = bearer_token(authorization)
        if token is None or not secrets.compare_digest(token.encode(), self._sim.token.encode()):
            return error_reply(401, 400004, "Control endpoints need the simulator's own token as a Bearer token")
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError):
            return error_reply(422, 422001, "Body is not valid JSON")
        handler = getattr(self, f"_{method.lower()}_{name.replace('/', '_')}", None)
        if handler is None:
            return plain_not_found()
        try:
            return handler(payload, query)
        except (ValueError, TypeError, KeyError) as exc:
            return error_reply(422, 422001, f"{type(exc).__name__}: {exc}")

    # -- state -------------------------------------------------------------------
    def _get_state(self, payload: Any, query: dict[str, str]) -> Reply:
        sim = self._sim
        return json_reply(200, {
            "url": sim.url,
            "options": sim.options.to_json(),
            "accounts": self._accounts(),
            "jobs": len(sim.jobs),
            "faults": [dict(rule.to_json(), remaining=left) for rule, left in sim.faults.pending()],
            "scripts": [dict(script.to_json(), remaining=left) for script, left in sim.store.scripts()],
            "log_records": len(sim.log),
        })

    def _get_config(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, self._sim.options.to_json())

    def _post_config(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        return json_reply(200, self._sim.configure(**payload).to_json())

    def _post_reset(self, payload: Any, query: dict[str, str]) -> Reply:
        self._sim.reset()
        return json_reply(200, {"ok": True})

    def _post_advance(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        self._sim.advance(float(payload["seconds"]))
        return json_reply(200, {"ok": True})

    # -- faults and scripts ----------------------------------------------------------
    def _post_faults(self, payload: Any, query: dict[str, str]) -> Reply:
        rules = [FaultRule.from_json(item) for item in _as_list(payload)]
        for rule in rules:
            self._sim.faults.add(rule)
        return json_reply(200, {"faults": [rule.to_json() for rule in rules]})

    def _get_faults(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, {"faults": [dict(r.to_json(), remaining=n) for r, n in self._sim.faults.pending()]})

    def _delete_faults(self, payload: Any, query: dict[str, str]) -> Reply:
        self._sim.clear_faults()
        return json_reply(200, {"ok": True})

    def _post_scripts(self, payload: Any, query: dict[str, str]) -> Reply:
        scripts = [JobScript.from_json(item) for item in _as_list(payload)]
        for script in scripts:
            self._sim.store.add_script(script)
        return json_reply(200, {"scripts": [script.to_json() for script in scripts]})

    def _get_scripts(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, {"scripts": [dict(s.to_json(), remaining=n) for s, n in self._sim.store.scripts()]})

    def _delete_scripts(self, payload: Any, query: dict[str, str]) -> Reply:
        self._sim.store.clear_scripts()
        return json_reply(200, {"ok": True})

    # -- log, jobs, accounts ---------------------------------------------------------
    def _get_log(self, payload: Any, query: dict[str, str]) -> Reply:
        filters: dict[str, Any] = {k: v for k, v in query.items() if k in ("route", "method", "request_id", "model_id", "fault", "account")}
        if "status" in query:
            filters["status"] = int(query["status"])
        return json_reply(200, {"records": [r.to_json() for r in self._sim.requests(**filters)]})

    def _delete_log(self, payload: Any, query: dict[str, str]) -> Reply:
        self._sim.log.clear()
        return json_reply(200, {"ok": True})

    def _get_jobs(self, payload: Any, query: dict[str, str]) -> Reply:
        now = self._sim.store.now()
        jobs = [
            {
                "request_id": job.request_id, "model_id": job.model_id, "account": job.account,
                "state": job.state(now), "outcome": job.script.outcome,
                "cost": micros_to_usd(job.net_cost_micros(now)), "num_images": job.num_images,
                "output_size": list(job.output_size) if job.output_size else None, "error": job.work_error,
            }
            for job in sorted(self._sim.jobs.values(), key=lambda j: j.seq)
        ]
        return json_reply(200, {"jobs": jobs})

    def _get_accounts(self, payload: Any, query: dict[str, str]) -> Reply:
        return json_reply(200, {"accounts": self._accounts()})

    def _post_accounts(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        token = self._sim.add_account(float(payload.get("balance", 10.0)), name=payload.get("name"),
                                      token=payload.get("token"))
        account = self._sim.store.account_for_token(token)
        assert account is not None
        return json_reply(200, {"name": account.name, "token": token, "balance": self._sim.balance(token)})

    def _post_balance(self, payload: Any, query: dict[str, str]) -> Reply:
        _require_object(payload)
        account = self._sim.store.account_named(payload.get("account") or self._sim.account_name)
        self._sim.store.set_balance(account, float(payload["balance"]))
        return json_reply(200, {"accounts": self._accounts()})

    def _accounts(self) -> list[dict[str, Any]]:
        store = self._sim.store
        return [{"name": a.name, "balance": micros_to_usd(store.balance_micros(a))} for a in store.accounts()]


def _as_list(payload: Any) -> list[Any]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("items"), list):
        return payload["items"]
    return [payload]


def _require_object(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
