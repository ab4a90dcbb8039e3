"""A second process that runs jobs under the daily spend limit, for the cross-process test.

``python tests/spend_harness.py <count> <prompt prefix>``: builds the pack's
``Jobs`` as ComfyUI or the command line would (the user's journal in the data
folder of ``$RUNCOMFY_CONFIG``, the limit from the config file), prints
``ready``, waits for one line on stdin (so two processes start their jobs
together), runs ``count`` jobs at once and prints one JSON line per job:
``{"outcome": "paid" | "refused", "message": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys


async def main(count: int, prefix: str) -> None:
    from packloader import pack_import

    client = pack_import("client")
    jobs_module = pack_import("client.job.jobs")
    errors = pack_import("client.errors")
    settings = client.load_settings()
    runner = jobs_module.shared_jobs(settings)
    print("ready", flush=True)
    sys.stdin.readline()

    async def one(number: int) -> dict:
        try:
            await runner.run("google/nano-banana-2/text-to-image", {"prompt": f"{prefix} {number}"})
        except errors.SpendLimitError as refused:
            return {"outcome": "refused", "message": str(refused)}
        return {"outcome": "paid", "message": ""}

    async with runner.client:
        for answer in await asyncio.gather(*(one(n) for n in range(count))):
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
