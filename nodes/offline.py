"""Whether ComfyUI was started to make no calls to online services: the one owner of that fact.

ComfyUI has two switches for it. ``--disable-api-nodes`` (October 2025) keeps
its own API nodes from loading; the 2026 backend adds ``--offline`` and keeps
``--disable-api-nodes`` as its alias. A user who chose either expects no node
to reach the internet, so the pack's nodes and routes make no call to RunComfy
then (no token check, no catalog, no balance, no submit). What needs no call
still works: a result already in the pack's result store.

The flags are read from ``comfy.cli_args.args`` only when ComfyUI has already
imported it: importing it ourselves would parse this process's command line
(the pack's own CLI, a test run) as ComfyUI's.
"""

from __future__ import annotations

import sys
from typing import Any

# (attribute of ComfyUI's parsed arguments, the flag as the user typed it), the newer name first.
OFFLINE_FLAGS: tuple[tuple[str, str], ...] = (("offline", "--offline"), ("disable_api_nodes", "--disable-api-nodes"))


def offline_flag(args: Any = None) -> str | None:
    """The flag (e.g. ``"--offline"``) ComfyUI runs with that forbids online calls, or None.

    ``args``: ComfyUI's parsed arguments; by default those of the running ComfyUI
    (None outside ComfyUI, so the pack is online there).
    """
    if args is None:
        module = sys.modules.get("comfy.cli_args")
        args = getattr(module, "args", None)
    for attribute, flag in OFFLINE_FLAGS:
        if getattr(args, attribute, False) is True:
            return flag
    return None


def offline_message(flag: str) -> str:
    """Why a node refuses to run, in one line: what the flag means here and what to do."""
    return (f"ComfyUI runs with {flag}: the RunComfy nodes make no calls to RunComfy. Restart ComfyUI without "
            f"{flag} to run them; reusing a stored result still works.")


def offline_refusal(flag: str, undone: str) -> str:
    """Why a route did not do something that needs RunComfy (``undone``: e.g. "nothing was stored")."""
    return (f"ComfyUI runs with {flag}: the RunComfy pack makes no calls to RunComfy, so {undone}. Restart "
            f"ComfyUI without {flag} to do this.")
