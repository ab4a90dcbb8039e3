"""The account endpoints, on the two bases besides the Model API (runcomfy-api.md, "Base and auth").

- www (``https://www.runcomfy.com``): ``GET /api/auth/me`` (who the token
  belongs to; 401 = rejected), ``POST /api/cli-auth/start`` and
  ``POST /api/cli-auth/poll`` (the device sign-in of ``runcomfy login``:
  ``pending`` / ``authorized`` with a fresh ``access_token`` / ``denied`` and
  ``expired`` with HTTP 410).
- api (``https://api.runcomfy.net``): ``GET /prod/v2/balance`` ->
  ``balance_usd``, ``currency``; one wallet for every RunComfy service.

Which error body goes with a 401 on these bases is not documented; the
simulator sends a small JSON object a client must not rely on.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

from .billing import Account, micros_to_usd
from .jobs import JobStore
from .options import Options
from .signin import AUTHORIZED, DENIED, EXPIRED, PENDING, SignIns
from .wire import Incoming, Reply, json_reply

UNAUTHORIZED = json_reply(401, {"error": "Unauthorized"}, [("WWW-Authenticate", 'Bearer realm="runcomfy"')])


class AccountApi:
    """``auth/me``, the device sign-in and the balance, over the simulator's accounts."""

    def __init__(self, store: JobStore, sign_ins: SignIns, options: Callable[[], Options]) -> None:
        self._store, self._sign_ins, self._options = store, sign_ins, options

    def _caller(self, req: Incoming) -> Account | None:
        account = self._store.account_for_token(req.token)
        if account is not None:
            req.account = account.name
        return account

    def auth_me(self, req: Incoming) -> Reply:
        account = self._caller(req)
        if account is None:
            return UNAUTHORIZED
        kind = self._store.token_kind(req.token or "")
        token_type, created = kind if kind is not None else ("api", None)
        created_at = datetime.fromtimestamp(created, timezone.utc).isoformat().replace("+00:00", "Z") if created else None
        return json_reply(200, {"id": account.user_id, "email": account.email, "token_type": token_type,
                                "token_created_at": created_at})

    def balance(self, req: Incoming) -> Reply:
        account = self._caller(req)
        if account is None:
            return UNAUTHORIZED
        return json_reply(200, {"balance_usd": micros_to_usd(self._store.balance_micros(account)), "currency": "USD"})

    def sign_in_start(self, req: Incoming) -> Reply:
        options = self._options()
        sign_in = self._sign_ins.start(options.sign_in_expires_in)
        return json_reply(200, {
            "device_code": sign_in.device_code,
            "user_code": sign_in.user_code,
            "verify_url": f"{req.base_url}/cli-auth?code={sign_in.user_code}",
            "expires_in": options.sign_in_expires_in,
            "poll_interval": options.sign_in_poll_interval,
        })

    def sign_in_poll(self, req: Incoming) -> Reply:
        try:
            body = json.loads(req.body.decode("utf-8")) if req.body.strip() else {}
        except (UnicodeDecodeError, ValueError):
            body = None
        device_code = body.get("device_code") if isinstance(body, dict) else None
        if not isinstance(device_code, str) or not device_code:
            return json_reply(400, {"error": "Send {\"device_code\": \"...\"} as JSON"})
        sign_in = self._sign_ins.poll(device_code)
        if sign_in is None:
            return json_reply(410, {"status": EXPIRED})
        auto = self._options().sign_in_auto
        if sign_in.state == PENDING and auto != "manual":
            self._sign_ins.settle(auto, user_code=sign_in.user_code)
        if sign_in.state == AUTHORIZED:
            token = self._sign_ins.hand_out(sign_in)
            if token is not None:
                req.account = sign_in.account
                return json_reply(200, {"status": AUTHORIZED, "access_token": token, "token_type": "cli"})
            return json_reply(410, {"status": EXPIRED})  # the grant was already collected
        if sign_in.state in (DENIED, EXPIRED):
            return json_reply(410, {"status": sign_in.state})
        return json_reply(200, {"status": PENDING})
