"""A fresh process that uses the pack, as a restarted ComfyUI or a second shell would.

The reuse tests need restarts and kills to be real (a new interpreter, with
nothing in memory but what is on disk), so they start this file with
``python tests/restart_harness.py ...``:

``node <NodeClass> <runs.json>``
    Loads the pack the way ComfyUI does (``packloader``) and runs the node's
    ``generate`` once per entry of the JSON list ``[{"inputs": {...}, "npy": path}]``,
    each on a new event loop (as ComfyUI runs each prompt), saving the IMAGE
    tensor to ``npy``. Prints one JSON line ``{"info": ...}`` per run on stdout;
    an error is printed as ``error: <type>: <message>`` on stderr, exit status 2.
    The pack logs at INFO on stderr, as in ComfyUI's console (the node's status
    lines, e.g. "resuming request <id>", among them).

``cli <arguments...>``
    The command line (``python <pack> <arguments...>``), except that every
    journal claim that finds another live run of the same inputs submitting
    prints ``harness: another run is submitting`` on stderr first, so a test can
    wait for that moment instead of sleeping.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
from pathlib import Path

ANOTHER_RUN_IS_SUBMITTING = "harness: another run is submitting"


def run_node(class_name: str, runs_file: str) -> int:
    import numpy as np

    from packloader import load_pack

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    node = load_pack().NODE_CLASS_MAPPINGS[class_name]()
    for run in json.loads(Path(runs_file).read_text()):
        try:
            images, info = asyncio.run(node.generate(unique_id="1", **run["inputs"]))
        except Exception as error:  # the test reads what a user would see
            print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
            return 2
        np.save(run["npy"], images.numpy())
        print(json.dumps({"info": info}), flush=True)
    return 0


def run_cli(arguments: list[str]) -> int:
    from packloader import PACK_ROOT

    spec = importlib.util.spec_from_file_location("pack_main", PACK_ROOT / "__main__.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    cli = entry.load("cli")
    journal = sys.modules[f"{cli.__package__}.client.ledger.journal"]
    claim = journal.Journal.claim

    def announcing_claim(self, *args, **kwargs):
        first = claim(self, *args, **{**kwargs, "wait": 0})
        if first.action is not journal.Action.BUSY:
            return first
        print(ANOTHER_RUN_IS_SUBMITTING, file=sys.stderr, flush=True)
        return claim(self, *args, **kwargs)

    journal.Journal.claim = announcing_claim
    return cli.main(arguments)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    mode, *rest = sys.argv[1:]
    sys.exit(run_node(*rest) if mode == "node" else run_cli(rest))
