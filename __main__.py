"""``python <this folder> ...`` runs the pack's command line, without ComfyUI.

The folder is loaded as a package the way ComfyUI loads it, but its
``__init__`` (which registers the nodes and imports torch) is not executed:
the command line only needs the client.
"""

import importlib
import importlib.util
import sys
from pathlib import Path


def _load_cli():
    root = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0]).resolve() == root:
        sys.path.pop(0)  # keep our subpackages from shadowing top-level modules
    name = "runcomfy_nano_banana_2"
    spec = importlib.util.spec_from_file_location(name, root / "__init__.py", submodule_search_locations=[str(root)])
    sys.modules[name] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{name}.cli")


if __name__ == "__main__":
    sys.exit(_load_cli().main())
