"""How long a result file that RunComfy serves cut off the same way every time takes to fail.

Before issue 15 such a file was retried like a cut in transit, for up to
``DOWNLOAD_SECONDS`` (300 s), before the user learned anything. Now the same
bytes three downloads in a row end the job at once. This runs the real
text-to-image node (the pack's default retry policy, as in ComfyUI) against
the simulator with ``file_content="truncated_image"`` and prints the time from
the job being done on the server to the node's error, and for comparison the
same job with a cut that mends (two different cuts, then the whole file).

    python3 benchmarks/damaged_file.py [--runs 5]

No test asserts these times; README's "Speed" section quotes a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from workloads import load_pack, node_inputs, pack_import, simulator

TEXT_TO_IMAGE = "RunComfyNanoBanana2TextToImage"


def one_run(damaged: bool) -> tuple[float, int, str]:
    """(seconds from the job's finish to the node's end, file downloads, the outcome's first words)."""
    errors = pack_import("client.errors")
    with simulator(queue_seconds=0.2, run_seconds=0.5) as sim:
        if damaged:
            sim.script_next_jobs("completed", file_content="truncated_image")
        else:
            for size in (4000, 6000):
                sim.add_fault("file", "cut", size=size)
        node = load_pack().NODE_CLASS_MAPPINGS[TEXT_TO_IMAGE]()
        outcome = "images"
        started = time.monotonic()
        try:
            asyncio.run(node.generate(unique_id="1", **node_inputs(resolution="1K")))
        except errors.DownloadError as error:
            outcome = str(error)[:60]
        ended = time.monotonic()
        finished_at = started + 0.2 + 0.5  # the simulator's own queue + run time
        return ended - finished_at, len(sim.requests(route="file")), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    for damaged in (True, False):
        results = [one_run(damaged) for _ in range(runs)]
        seconds = statistics.median(r[0] for r in results)
        label = "same cut every time (damaged)" if damaged else "two different cuts, then whole"
        print(f"{label}: median {seconds:.2f} s after the job finished, {results[0][1]} downloads, "
              f"max {max(r[0] for r in results):.2f} s -> {results[0][2]}")


if __name__ == "__main__":
    main()
