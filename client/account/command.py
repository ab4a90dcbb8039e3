"""The account commands of the command line: ``login``, ``logout``, ``whoami`` (RunComfy CLI's names).

``login`` runs the device sign-in in the terminal: it prints the code and the
link, waits (Ctrl-C cancels), and stores the token in ``token.json``, as
``runcomfy login`` does; ``--simulator`` signs in against a local simulator
that approves on its own, so a newcomer can try it with no account.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Mapping

from ..config.settings import Settings, load_settings
from ..errors import RunComfyError
from .balance import fetch_balance
from .device import AUTHORIZED, DeviceSignIn
from .identity import SIGNED_IN, fetch_identity
from .saving import remove_token
from .sources import ENVIRONMENT


async def login(settings: Settings, env: Mapping[str, str] = os.environ) -> int:
    """The device sign-in in a terminal; 0 when signed in."""
    if settings.token_kind == ENVIRONMENT:
        print(f"error: {settings.token_source} is set in the environment and wins over a sign-in; unset it first",
              file=sys.stderr)
        return 2
    sign_in = DeviceSignIn(settings, env)
    await sign_in.start()
    print(f"Open {sign_in.verify_url} and approve the code {sign_in.user_code}", flush=True)
    print("waiting for the approval (Ctrl-C cancels)...", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, sign_in.cancel)
    try:
        state = await sign_in.finish()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
    if state != AUTHORIZED:
        print(f"error: {sign_in.message or state}", file=sys.stderr)
        return 1
    return await whoami(load_settings(env), env)


async def whoami(settings: Settings, env: Mapping[str, str] = os.environ) -> int:
    """Who the token belongs to, the balance, where the token comes from; 0 when signed in."""
    if not settings.token:
        print("not signed in: run `python <pack folder> login` (or `runcomfy login`), or set RUNCOMFY_TOKEN",
              file=sys.stderr)
        return 1
    identity, balance = await asyncio.gather(fetch_identity(settings), fetch_balance(settings))
    print(identity.describe() if identity.state == SIGNED_IN else f"not signed in: {identity.describe()}")
    print(f"balance: {balance.describe()}")
    print(f"token from: {settings.token_source}")
    return 0 if identity.state == SIGNED_IN else 1


def logout(env: Mapping[str, str] = os.environ) -> int:
    """Remove ``token.json`` and the old ``api_token``; a variable in the environment stays (and is named)."""
    removed = remove_token(env)
    print("signed out: the token was removed" if removed else "no stored token to remove")
    for name in ("RUNCOMFY_TOKEN", "RUNCOMFY_API_TOKEN"):
        if env.get(name, "").strip():
            print(f"note: {name} is still set in the environment and is used", file=sys.stderr)
    return 0


def run(command: str, settings: Settings, env: Mapping[str, str] = os.environ) -> int:
    try:
        if command == "logout":
            return logout(env)
        return asyncio.run(login(settings, env) if command == "login" else whoami(settings, env))
    except RunComfyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
