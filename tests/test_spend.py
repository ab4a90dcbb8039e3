"""client/ledger/spend.py: what RunComfy reported as spent since ComfyUI started."""

from __future__ import annotations

import threading

from packloader import pack_import

spend = pack_import("client.ledger.spend")


def test_spend_counts_each_request_once_and_adds_exactly():
    session = spend.SessionSpend()
    assert session.record("r1", 0.1) and session.record("r2", 0.2)
    assert not session.record("r1", 0.1), "a request seen twice counts once"
    assert session.record("r3", None)
    assert session.record("r3", 0.06), "a cost reported later fills the gap"
    assert not session.record("r3", 0.5)
    assert session.summary() == spend.SpendSummary(total_usd=0.36, jobs=3, jobs_without_cost=0)


def test_spend_from_many_threads_adds_up():
    session = spend.SessionSpend()

    def worker(start):
        for index in range(start, start + 250):
            session.record(f"req-{index}", 0.01)

    threads = [threading.Thread(target=worker, args=(n * 250,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert session.summary() == spend.SpendSummary(total_usd=20.0, jobs=2000, jobs_without_cost=0)
