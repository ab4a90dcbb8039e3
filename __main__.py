"""``python <this folder> ...`` runs the pack's command line, without ComfyUI.

The folder is loaded as a package the way ComfyUI loads it, but its
``__init__`` (which registers the nodes and imports torch) is not executed:
the command line needs only the client, and ``simulator`` needs only the
simulator (which shares no code with the client, so it is started without it).
"""

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "runcomfy_nano_banana_2"


def load(module: str) -> ModuleType:
    """Import ``<pack>.<module>`` with the pack loaded as a package whose ``__init__`` is not run."""
    root = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0]).resolve() == root:
        sys.path.pop(0)  # keep our subpackages from shadowing top-level modules
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACKAGE, root / "__init__.py", submodule_search_locations=[str(root)])
        sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{PACKAGE}.{module}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["simulator"]:
        sys.exit(load("simulator.cli").main(arguments[1:]))
    sys.exit(load("cli").main(arguments))
