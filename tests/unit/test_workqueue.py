"""The controller work queue: coalescing, per-key exclusivity, wake-ups from the plan, backoff, priority."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from modelops.controllers.workqueue import GONE, NEW, URGENT, WorkQueue


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_events_for_one_key_coalesce_while_it_waits():
    seen: list[str] = []

    async def main() -> None:
        q = WorkQueue("t", lambda k: seen.append(k) or GONE, resync=60)
        for _ in range(50):
            q.add("a")
        q.add("b")
        assert len(q) == 2
        task = asyncio.create_task(q.run(2))
        await until(lambda: len(seen) == 2)
        await asyncio.sleep(0.05)
        task.cancel()

    run(main())
    assert sorted(seen) == ["a", "b"]


def test_a_key_is_never_processed_twice_at_once_and_an_add_during_processing_is_not_lost():
    running: set[str] = set()
    overlaps: list[str] = []
    calls: list[str] = []
    release = threading.Event()

    def process(key: str) -> float:
        if key in running:
            overlaps.append(key)
        running.add(key)
        calls.append(key)
        if len(calls) == 1:
            release.wait(5)
        running.discard(key)
        return GONE

    async def main() -> None:
        q = WorkQueue("t", process, resync=60)
        q.add("a")
        task = asyncio.create_task(q.run(4))
        await until(lambda: len(calls) == 1)
        q.add("a")  # arrives while "a" is being processed by one worker; three others are idle
        q.add("a")
        await asyncio.sleep(0.05)
        assert len(calls) == 1
        release.set()
        await until(lambda: len(calls) == 2)
        await asyncio.sleep(0.05)
        task.cancel()

    run(main())
    assert overlaps == [] and calls == ["a", "a"]


def test_the_plan_decides_the_next_wake_up_and_the_latest_decision_wins():
    times: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        answers = iter([0.2, 30.0])

        def process(_: str) -> float:
            times.append(loop.time())
            return next(answers, GONE)

        q = WorkQueue("t", process, resync=60)
        q.add("a")
        task = asyncio.create_task(q.run(1))
        await until(lambda: len(times) == 2)
        assert times[1] - times[0] >= 0.19
        assert q.scheduled("a") == pytest.approx(30.0, abs=1.0)  # the second answer replaced the first
        q.add_after("a", 0.01)
        await until(lambda: len(times) == 3)
        assert q.scheduled("a") is None  # GONE forgets the key
        task.cancel()

    run(main())


def test_nothing_to_wait_for_means_the_slow_resync():
    async def main() -> None:
        q = WorkQueue("t", lambda _: None, resync=100)
        q.add("a")
        task = asyncio.create_task(q.run(1))
        await until(lambda: q.scheduled("a") is not None)
        assert 89 <= q.scheduled("a") <= 111  # resync with jitter
        task.cancel()

    run(main())


def test_failures_back_off_exponentially_up_to_a_cap():
    q = WorkQueue("t", lambda _: None, resync=60, base_backoff=1, max_backoff=10)
    assert [q.next_backoff("a") for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    assert q.next_backoff("b") == 1


def test_a_failing_key_is_retried_until_it_succeeds():
    outcomes = iter([RuntimeError, RuntimeError, RuntimeError, GONE])
    calls: list[int] = []

    def process(_: str) -> float:
        calls.append(1)
        r = next(outcomes)
        if r is RuntimeError:
            raise RuntimeError("api down")
        return r

    async def main() -> None:
        q = WorkQueue("t", process, resync=60, base_backoff=0.01, max_backoff=0.02)
        q.add("a")
        task = asyncio.create_task(q.run(1))
        await until(lambda: len(calls) == 4)
        await until(lambda: q.scheduled("a") is None)
        task.cancel()
        assert q.next_backoff("a") == 0.01  # success forgot the failures

    run(main())


def test_changes_to_existing_objects_and_new_ones_are_served_in_turn():
    order: list[str] = []

    async def main() -> None:
        q = WorkQueue("t", lambda k: order.append(k) or GONE, resync=60)
        for i in range(100):
            q.add(f"new-{i}", NEW)
        q.add("serving", URGENT)
        q.add("new-5", URGENT)  # a change to a queued new object: served with the changes
        task = asyncio.create_task(q.run(1))
        await until(lambda: len(order) == 101)
        task.cancel()

    run(main())
    assert order[:4] == ["serving", "new-0", "new-5", "new-1"]
    assert order.count("new-5") == 1


def test_a_stream_of_changes_does_not_starve_new_objects_nor_the_reverse():
    """Each reconcile of a changed object changes another (a busy lifecycle): with strict priority
    no new object would ever be served."""
    order: list[str] = []

    async def main() -> None:
        q: WorkQueue

        def process(key: str) -> float:
            order.append(key)
            if key.startswith("busy") and len(order) < 400:
                q.add_threadsafe(f"busy-{len(order)}", URGENT)
                q.add_threadsafe(f"busy-{len(order)}b", URGENT)
            return GONE

        q = WorkQueue("t", process, resync=60)
        for i in range(50):
            q.add(f"new-{i}", NEW)
        q.add("busy-0", URGENT)
        task = asyncio.create_task(q.run(1))
        await until(lambda: sum(k.startswith("new") for k in order) == 50)
        task.cancel()

    run(main())
    first_100 = order[:100]
    assert sum(k.startswith("new") for k in first_100) == 50  # every other pick while both wait
    assert all(order[i].startswith("busy") for i in range(0, 100, 2))


def test_the_queue_reports_depth_adds_and_waits_by_priority_as_client_go_does():
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"name": "metrics-t", **labels}) or 0.0

    async def main() -> None:
        q = WorkQueue("metrics-t", lambda k: GONE, resync=60)
        for _ in range(5):
            q.add("a", NEW)  # coalesced: one add
        q.add("b")
        assert sample("modelops_workqueue_depth") == 2
        assert sample("modelops_workqueue_adds_total", priority="new") == 1
        task = asyncio.create_task(q.run(1))
        await until(lambda: sample("modelops_workqueue_queue_duration_seconds_count", priority="new") == 1)
        task.cancel()

    run(main())
    assert sample("modelops_workqueue_queue_duration_seconds_count", priority="urgent") == 1
    assert sample("modelops_workqueue_depth") == 0


def test_a_reported_refusal_backs_off_exponentially_from_its_own_base_and_cap():
    from modelops.controllers.workqueue import Backoff

    q = WorkQueue("t", lambda k: GONE, resync=60, base_backoff=0.5, max_backoff=10)
    delays = [q.next_backoff("k", 5.0, 300.0) for _ in range(8)]
    assert delays[:4] == [5.0, 10.0, 20.0, 40.0] and delays[-1] == 300.0
    calls: list[str] = []

    def process(key: str) -> float:
        calls.append(key)
        raise Backoff("Job x refused", base=0.01, cap=0.02)

    async def main() -> None:
        q2 = WorkQueue("t", process, resync=60)
        q2.add("a")
        task = asyncio.create_task(q2.run(1))
        await until(lambda: len(calls) >= 3)
        assert q2._failures["a"] >= 2  # counted like any failure: the delay grows until a success
        task.cancel()

    run(main())


def test_a_paused_queue_takes_no_key_and_resumes_with_every_key_queued_meanwhile():
    """Kopf's peering pause (the very ToggleSet Kopf pauses with): keys and wake-ups queue, no
    reconcile starts, and all of them run once the peer is gone; a worker that was waiting for a
    key when the pause began takes nothing either."""
    from kopf._cogs.aiokits import aiotoggles

    seen: list[str] = []

    async def main() -> None:
        paused = aiotoggles.ToggleSet(any)
        conflict = await paused.make_toggle(False, name="a peer of higher priority")
        q = WorkQueue("paused-t", lambda k: seen.append(k) or 0.05, resync=60)
        task = asyncio.create_task(q.run(2, paused))
        q.add("a")
        await until(lambda: "a" in seen)
        await conflict.turn_to(True)  # the workers now wait for a key, then meet the pause
        runs = len(seen)
        q.add("b", NEW)
        q.add("c")
        await asyncio.sleep(0.3)  # "a" asked to be woken every 0.05 s
        assert len(seen) == runs, seen
        assert len(q) == 3
        await conflict.turn_to(False)
        await until(lambda: {"a", "b", "c"} <= set(seen[runs:]))
        task.cancel()

    run(main())


def test_a_stopped_queue_says_which_reconciles_still_run_and_waits_for_them_no_longer_than_told():
    """Cancelling `run` leaves a reconcile's thread running: the stopping operator waits for it
    until its grace ends, then knows which keys it exits without."""
    release = threading.Event()
    started = threading.Event()

    def process(key: str) -> float:
        started.set()
        release.wait(5)
        return GONE

    q = WorkQueue("t", process, resync=60)

    async def main() -> None:
        q.add("a")
        task = asyncio.create_task(q.run(2))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        await asyncio.sleep(0.05)
        assert q.longest_running() >= 0.05
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(main())
    t0 = time.monotonic()
    assert q.finish(time.monotonic() + 0.2) == ["a"]
    assert 0.15 < time.monotonic() - t0 < 2
    release.set()
    assert q.finish(time.monotonic() + 5) == []
    assert q.longest_running() == 0
