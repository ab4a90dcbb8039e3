"""``python -m simulator [flags]``, run from the pack's folder.

The simulator imports the pack's ``client`` package relatively (as ComfyUI
requires), which fails when ``simulator`` is the top-level package. So this
entry point mounts the pack folder as a parent package of its own, without
executing the pack's ``__init__`` (which loads the ComfyUI nodes), and runs
``cli.main`` from there.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

_PARENT = "_runcomfy_simulator_pack"


def run() -> int:
    if _PARENT not in sys.modules:
        parent = types.ModuleType(_PARENT)
        parent.__path__ = [str(Path(__file__).resolve().parent.parent)]
        sys.modules[_PARENT] = parent
    cli = importlib.import_module(f"{_PARENT}.simulator.cli")
    return int(cli.main())


if __name__ == "__main__":
    raise SystemExit(run())
