"""Stop in ComfyUI, on both interrupt contracts, at every point of a job, against the simulator.

ComfyUI's ``InterruptProcessingException`` derives from ``Exception`` before
April 2026 and from ``BaseException`` since. Its progress hook reads *and
clears* the Stop flag and raises; since 2026 the bar calls the hook only when
100 ms and 0.5 % have passed since the last update it sent; and the newest
backends offer ``ComfyAPI.execution.set_progress``, which never touches the
flag. ``FakeComfy`` plays each of these as ComfyUI's own source does, so the
node layer runs against every combination; the simulator's log says what
reached RunComfy (submits, cancels).

A Stop is "pressed" inside a progress update the node sends at a chosen stage
(so the hook, when it runs, sees it before the node's own Stop check) or, for
waits that send no update, from the test while the job waits there.
"""

from __future__ import annotations

import asyncio
import sys
import time
import types
from typing import Any, Callable

import anyio
import pytest

from helpers import widget_defaults
from packloader import load_pack, pack_import

pack = load_pack()
client_pkg = pack_import("client")
comfy_runtime = pack_import("nodes.comfy_runtime")
TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
JobCancelledError = client_pkg.JobCancelledError

CONTRACTS = ("exception", "base_exception")
PROGRESS = ("hook", "throttled_hook", "set_progress")
# Progress steps (of 100) the nodes send at each stage (nodes/runner.py _STAGE_PROGRESS).
SUBMITTED, QUEUED, RUNNING, DOWNLOADING = 5, 8, 15, 90


class FakeComfy:
    """The parts of ComfyUI a node touches, with one of its two interrupt contracts
    and one of its three ways to show progress."""

    def __init__(self, contract: str, progress: str) -> None:
        base = BaseException if contract == "base_exception" else Exception
        self.Interrupt = type("InterruptProcessingException", (base,), {})
        self.progress_mode = progress
        self.flag = False
        self.hook_consumed = 0  # how often the hook read, cleared and raised
        self.updates: list[tuple[str | None, float]] = []  # what reached the editor
        self.texts: dict[str | None, list[str]] = {}
        self.press_at: dict[str | None, int] = {}  # node id -> press Stop in its first update >= this step
        fake = self

        def throw_exception_if_processing_interrupted() -> None:
            if fake.flag:
                fake.flag = False
                fake.hook_consumed += 1
                raise fake.Interrupt()

        def hook(value, total, preview, prompt_id=None, node_id=None):  # main.py's hijack_progress
            throw_exception_if_processing_interrupted()
            fake.updates.append((node_id, value))

        class ProgressBar:  # comfy.utils.ProgressBar, with 2026's throttle when asked
            def __init__(self, total, node_id=None):
                self.total, self.node_id = total, node_id
                self.last_time, self.last_sent = 0.0, -1

            def update_absolute(self, value, total=None, preview=None):
                fake.maybe_press(self.node_id, value)
                if fake.progress_mode == "throttled_hook" and not self._due(value):
                    return
                self.last_time, self.last_sent = time.perf_counter(), value
                hook(value, self.total, preview, node_id=self.node_id)

            def _due(self, value) -> bool:
                if self.last_sent < 0 or value >= self.total:
                    return True
                changed = (value - max(0, self.last_sent)) / self.total * 100
                return time.perf_counter() - self.last_time >= 0.1 and changed >= 0.5

        class Execution:  # comfy_api.latest ComfyAPI.execution: never reads the flag
            async def set_progress(self, value, max_value, node_id=None, preview_image=None,
                                   ignore_size_limit=False):
                fake.maybe_press(node_id, value)
                fake.updates.append((node_id, value))

        class ComfyAPI:
            def __init__(self) -> None:
                self.execution = Execution()

        self.modules = {
            "comfy": types.ModuleType("comfy"),
            "comfy.utils": types.SimpleNamespace(ProgressBar=ProgressBar),
            "comfy.model_management": types.SimpleNamespace(
                InterruptProcessingException=self.Interrupt,
                processing_interrupted=lambda: fake.flag,
                interrupt_current_processing=lambda value=True: setattr(fake, "flag", value),
                throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted,
            ),
            "server": types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=types.SimpleNamespace(
                send_progress_text=lambda text, node_id: fake.texts.setdefault(node_id, []).append(text)))),
        }
        self.modules["comfy"].utils = self.modules["comfy.utils"]
        self.modules["comfy"].model_management = self.modules["comfy.model_management"]
        if progress == "set_progress":
            self.modules["comfy_api"] = types.ModuleType("comfy_api")
            self.modules["comfy_api.latest"] = types.SimpleNamespace(ComfyAPI=ComfyAPI)
        else:
            self.modules["comfy_api"] = None  # an older backend: importing it fails

    def maybe_press(self, node_id: str | None, value: float) -> None:
        at = self.press_at.get(node_id)
        if at is not None and value >= at:
            del self.press_at[node_id]
            self.press()

    def press(self) -> None:
        """The Stop button (POST /interrupt): sets the flag, nothing else."""
        self.flag = True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        if self.modules["comfy_api"] is None:
            monkeypatch.setitem(sys.modules, "comfy_api.latest", None)


@pytest.fixture(params=[(c, p) for c in CONTRACTS for p in PROGRESS], ids=lambda cp: f"{cp[0]}-{cp[1]}")
def comfy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeComfy:
    fake = FakeComfy(*request.param)
    fake.install(monkeypatch)
    return fake


def run_node(node_id: str, prompt: str = "a red bicycle") -> Any:
    return TextToImage().generate(unique_id=node_id, **{**widget_defaults(TextToImage), "prompt": prompt})


async def until(predicate: Callable[[], Any]) -> None:
    """Poll a condition of the simulator or the fake; the test's own fail_after bounds it."""
    while not predicate():
        await asyncio.sleep(0.01)


def stopped_job(outcome: BaseException | Any, request_id: str | None = None) -> bool:
    """How a Stop after a submit ends a node: the job's error with its request id, which
    ComfyUI keeps in /history (an interrupt's message it keeps nowhere)."""
    return isinstance(outcome, JobCancelledError) and bool(outcome.request_id) and (
        request_id is None or outcome.request_id == request_id)


# -- one node, every point of a job ------------------------------------------------------------


@pytest.mark.anyio
async def test_stop_while_the_submit_is_on_its_way(account, comfy):
    """The job exists once the held submit is answered: it is cancelled, once."""
    account.script_next_jobs("queued_forever")
    held = account.add_fault("submit", "hold")

    async def press_then_answer():
        await until(lambda: account.held(held) == 1)
        comfy.press()
        account.release(held)

    presser = asyncio.create_task(press_then_answer())
    with anyio.fail_after(15), pytest.raises(JobCancelledError) as ended:
        await run_node("1")
    await presser
    (request_id,) = account.jobs
    assert stopped_job(ended.value, request_id)
    assert len(account.requests(route="submit")) == 1
    assert len(account.requests(route="cancel")) == 1
    assert account.state(request_id) == "cancelled"
    assert comfy.flag  # still set for the prompt's other nodes
    assert "nothing is billed" in comfy.texts["1"][-1] and request_id in comfy.texts["1"][-1]


@pytest.mark.anyio
async def test_stop_while_queued(account, comfy):
    account.script_next_jobs("queued_forever")
    comfy.press_at["1"] = QUEUED
    with anyio.fail_after(15), pytest.raises(JobCancelledError) as ended:
        await run_node("1")
    (request_id,) = account.jobs
    assert stopped_job(ended.value, request_id)
    assert len(account.requests(route="cancel")) == 1
    assert account.state(request_id) == "cancelled"
    assert comfy.flag
    assert "nothing is billed" in comfy.texts["1"][-1]
    if comfy.progress_mode == "hook":  # unthrottled: the hook really saw the Stop first
        assert comfy.hook_consumed == 1


@pytest.mark.anyio
async def test_stop_while_running(account, comfy):
    """A running job cannot be cancelled: asked once, and the node says it may be billed."""
    account.script_next_jobs("never_finishes", queue_seconds=0.0)
    comfy.press_at["1"] = RUNNING + 1
    with anyio.fail_after(15), pytest.raises(JobCancelledError) as ended:
        await run_node("1")
    (request_id,) = account.jobs
    assert stopped_job(ended.value, request_id)
    assert len(account.requests(route="cancel")) == 1
    assert account.state(request_id) == "in_progress"
    assert comfy.flag
    assert "already running" in comfy.texts["1"][-1] and request_id in comfy.texts["1"][-1]


@pytest.mark.anyio
async def test_stop_while_downloading(account, comfy):
    """The job is done and billed: nothing to cancel; the node says how to collect it."""
    held = account.add_fault("file", "hold", times=None)
    comfy.press_at["1"] = DOWNLOADING
    try:
        with anyio.fail_after(15), pytest.raises(JobCancelledError) as ended:
            await run_node("1")
    finally:
        account.release(held)
    (request_id,) = account.jobs
    assert stopped_job(ended.value, request_id)
    assert account.requests(route="cancel") == []
    assert comfy.flag
    assert "billed" in comfy.texts["1"][-1] and request_id in comfy.texts["1"][-1]


@pytest.mark.anyio
async def test_stop_while_waiting_out_a_rate_limit(account, comfy):
    account.add_fault("submit", "http_error", status=429, retry_after=30)

    async def press_once_turned_away():
        await until(lambda: account.requests(route="submit"))
        comfy.press()

    presser = asyncio.create_task(press_once_turned_away())
    with anyio.fail_after(15), pytest.raises(comfy.Interrupt):
        await run_node("1")
    await presser
    assert len(account.requests(route="submit")) == 1 and account.jobs == {}
    assert "nothing was billed" in comfy.texts["1"][-1]


@pytest.mark.anyio
async def test_stop_while_waiting_for_a_job_slot(account, comfy):
    """One slot: the first node's job holds it queued, the second waits; Stop ends both,
    the queued job is cancelled and the waiting node never submits."""
    jobs = client_pkg.shared_jobs(client_pkg.load_settings())
    jobs._slots = asyncio.Semaphore(1)
    account.script_next_jobs("queued_forever", count=2)
    first = asyncio.create_task(run_node("1", "first"))
    await until(lambda: account.jobs)
    second = asyncio.create_task(run_node("2", "second"))
    await until(lambda: jobs._slots._waiters)
    comfy.press()
    with anyio.fail_after(15):
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
    (request_id,) = account.jobs
    assert stopped_job(outcomes[0], request_id), outcomes  # its job was queued: cancelled, named
    assert isinstance(outcomes[1], comfy.Interrupt), outcomes  # it never submitted: ComfyUI's quiet end
    assert len(account.requests(route="submit")) == 1
    assert len(account.requests(route="cancel")) == 1
    assert account.state(request_id) == "cancelled"
    assert "nothing was billed" in comfy.texts["2"][-1]


# -- two nodes of one prompt, only one of them sees the Stop -------------------------------------


@pytest.mark.anyio
async def test_a_stop_only_one_node_sees_ends_every_node_and_cancels_both_jobs(account, comfy):
    """The hook of node 1 reads (and clears) the Stop; node 2 must still end by itself."""
    account.script_next_jobs("queued_forever", count=2)
    comfy.press_at["1"] = QUEUED
    with anyio.fail_after(15):
        outcomes = await asyncio.gather(run_node("1", "first"), run_node("2", "second"), return_exceptions=True)
    assert all(stopped_job(outcome) for outcome in outcomes), outcomes
    assert len(account.requests(route="submit")) == 2
    assert len(account.requests(route="cancel")) == 2
    assert all(account.state(request_id) == "cancelled" for request_id in account.jobs)
    assert comfy.flag


def test_when_comfyui_ends_the_prompt_at_the_first_interrupt_the_other_job_is_cancelled_too(account, comfy):
    """ComfyUI runs a prompt in ``asyncio.run``: once one node ended after the Stop the
    prompt ends and every node still running is cancelled at the loop's close. A job
    still queued then is cancelled on RunComfy all the same."""
    account.script_next_jobs("queued_forever", count=2)

    async def prompt() -> BaseException | None:
        async with asyncio.timeout(20):
            first = asyncio.create_task(run_node("1", "first"))
            second = asyncio.create_task(run_node("2", "second"))
            await until(lambda: len(account.jobs) == 2)
            comfy.press()  # the next update of either node, or its Stop check, sees it
            done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).exception()  # ComfyUI stops here; asyncio.run cancels the other

    first_end = asyncio.run(prompt())
    assert stopped_job(first_end)
    assert len(account.requests(route="submit")) == 2
    # A cancel call cut off by the loop's close may reach RunComfy without an answer (the
    # simulator logs only answered calls, and the node then asks again): the jobs' states tell.
    assert account.requests(route="cancel")
    assert [account.state(request_id) for request_id in account.jobs] == ["cancelled", "cancelled"]


# -- what the progress channel may and may not catch --------------------------------------------


@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_hook_takes_the_stop_and_hands_it_on(monkeypatch, contract):
    fake = FakeComfy(contract, "hook")
    fake.install(monkeypatch)
    seen = []
    feedback = comfy_runtime.NodeFeedback("7", on_stop=lambda: seen.append("stop"))
    fake.press()
    feedback.progress(0.5)  # the hook reads, clears and raises: taken, not raised
    assert fake.hook_consumed == 1 and seen == ["stop"] and fake.flag


@pytest.mark.parametrize("other", [KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit])
def test_a_base_exception_that_is_not_comfyuis_interrupt_goes_on(monkeypatch, other):
    fake = FakeComfy("base_exception", "hook")
    fake.install(monkeypatch)

    def raising(self, value, total=None, preview=None):
        raise other()

    monkeypatch.setattr(fake.modules["comfy.utils"].ProgressBar, "update_absolute", raising)
    feedback = comfy_runtime.NodeFeedback("7", on_stop=lambda: pytest.fail("not a Stop"))
    with pytest.raises(other):
        feedback.progress(0.5)


@pytest.mark.anyio
async def test_set_progress_is_used_where_the_backend_has_it(monkeypatch):
    fake = FakeComfy("base_exception", "set_progress")
    fake.install(monkeypatch)
    feedback = comfy_runtime.NodeFeedback("7")
    fake.press()
    feedback.progress(0.25)
    feedback.progress(0.5)
    await feedback.settle()
    assert fake.updates == [("7", 25), ("7", 50)]
    assert fake.flag and fake.hook_consumed == 0  # set_progress never touches the Stop flag
