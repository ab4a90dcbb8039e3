"""Device sign-ins (``runcomfy login``'s flow), as the www base keeps them.

A tool starts a sign-in and gets a ``device_code`` (its secret) and a
``user_code`` (what the person types or sees at ``verify_url``); the person
approves or denies it on the website, or lets it expire. Here "the website"
is a test or the control API (``approve``/``deny``/``expire``), or the
``auto`` option that settles every sign-in on its first poll, so
``python . login --simulator`` works with no account.

Approval mints a fresh token for the chosen account (``JobStore.mint_token``);
the poll that learns of it is the one answer that carries it, and the sign-in
is spent afterwards (a second poll says ``expired``), as a one-time grant is.
Time is the job store's clock, so ``Simulator.advance`` expires sign-ins too.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Callable

from .billing import Account

PENDING, AUTHORIZED, DENIED, EXPIRED = "pending", "authorized", "denied", "expired"
ACTIONS = ("approve", "deny", "expire")
_USER_CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread


@dataclass
class SignIn:
    """One device sign-in. ``token`` is set on approval and handed out once."""

    device_code: str = field(repr=False)
    user_code: str
    expires_mono: float
    state: str = PENDING
    account: str | None = None
    token: str | None = field(default=None, repr=False)
    handed_out: bool = False

    def current(self, now: float) -> str:
        if self.state == PENDING and now >= self.expires_mono:
            self.state = EXPIRED
        return self.state


class SignIns:
    """Every device sign-in of one simulator, behind one lock."""

    def __init__(self, now: Callable[[], float], mint: Callable[[Account], str],
                 default_account: Callable[[], Account], account_named: Callable[[str], Account]) -> None:
        self._now, self._mint = now, mint
        self._default_account, self._account_named = default_account, account_named
        self._lock = threading.Lock()
        self._by_device: dict[str, SignIn] = {}

    def start(self, expires_in: float) -> SignIn:
        code = "".join(secrets.choice(_USER_CODE_LETTERS) for _ in range(8))
        sign_in = SignIn(secrets.token_urlsafe(24), f"{code[:4]}-{code[4:]}", self._now() + expires_in)
        with self._lock:
            self._by_device[sign_in.device_code] = sign_in
        return sign_in

    def poll(self, device_code: str) -> SignIn | None:
        """The sign-in as the tool sees it now (None: no such device code)."""
        with self._lock:
            sign_in = self._by_device.get(device_code)
            if sign_in is None:
                return None
            sign_in.current(self._now())
            return sign_in

    def hand_out(self, sign_in: SignIn) -> str | None:
        """The token of an approved sign-in, once; afterwards the grant is spent (expired)."""
        with self._lock:
            if sign_in.state != AUTHORIZED or sign_in.handed_out:
                return None
            sign_in.handed_out = True
            token, sign_in.token = sign_in.token, None
            return token

    def settle(self, action: str, *, user_code: str | None = None, account: str | None = None) -> SignIn:
        """Approve, deny or expire a pending sign-in: the one named by ``user_code``, or the
        newest pending one. Approval signs in ``account`` (default: the primary one)."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        owner = self._account_named(account) if account else self._default_account()
        with self._lock:
            now = self._now()
            pending = [s for s in self._by_device.values() if s.current(now) == PENDING
                       and (user_code is None or s.user_code == user_code.strip().upper())]
            if not pending:
                which = f"with user code {user_code!r}" if user_code else "at all"
                raise KeyError(f"no pending sign-in {which}")
            sign_in = pending[-1]
            if action == "approve":
                sign_in.state, sign_in.account, sign_in.token = AUTHORIZED, owner.name, self._mint(owner)
            else:
                sign_in.state = DENIED if action == "deny" else EXPIRED
            return sign_in

    def pending(self) -> list[SignIn]:
        with self._lock:
            now = self._now()
            return [s for s in self._by_device.values() if s.current(now) == PENDING]

    def clear(self) -> None:
        with self._lock:
            self._by_device.clear()
