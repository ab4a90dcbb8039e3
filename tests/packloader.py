"""Import the pack the way ComfyUI does: as a package named after its folder.

ComfyUI loads ``custom_nodes/<folder>/__init__.py`` with
``spec_from_file_location`` under the folder's name, which often contains
hyphens. The tests do the same under a hyphenated name, so any absolute import
of the pack's own modules (which would break inside ComfyUI) breaks here too.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACK_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "ComfyUI-RunComfy-NanoBanana2"


def load_pack() -> ModuleType:
    """Execute the pack's ``__init__.py`` once, as ComfyUI would."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK_NAME]
        raise
    return module


def pack_import(dotted: str) -> ModuleType:
    """Import ``<pack>.<dotted>``, e.g. ``pack_import("client.transport.api")``."""
    load_pack()
    return importlib.import_module(f"{PACK_NAME}.{dotted}")
