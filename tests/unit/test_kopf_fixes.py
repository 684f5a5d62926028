"""Kopf's start-up barrier with modelops.controllers.kopf_fixes applied: the same waits end at the
same moments, and a start among N objects wakes the waiting tasks O(N) times, not O(N²)."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from modelops.controllers import kopf_fixes

kopf_fixes.apply()


def counted(toggles: aiotoggles.ToggleSet) -> list[int]:
    """Count every evaluation of the set's state: what each woken waiter does first."""
    calls = [0]
    real = toggles.is_on

    def is_on() -> bool:
        calls[0] += 1
        return real()

    toggles.is_on = is_on  # type: ignore[method-assign]
    return calls


async def kopf_start(objects: int) -> tuple[int, list[int]]:
    """What Kopf's workers do at start-up (queueing.watcher, processing.process_resource_event):
    the resource kind's toggle is off until its listing ends; each object gets a toggle, drops it
    once indexed, then waits for the whole set. Returns the state checks and who finished when."""
    indexed = aiotoggles.ToggleSet(all)
    calls = counted(indexed)
    listing = await indexed.make_toggle(name="the resource's listing")
    finished: list[int] = []

    async def worker(i: int) -> None:
        mine = await indexed.make_toggle(name=f"object {i}")
        await asyncio.sleep(0)  # the object's index handlers run
        await indexed.drop_toggle(mine)
        await indexed.wait_for(True)
        finished.append(i)

    tasks = []
    for i in range(objects):  # the listing delivers the objects one after another
        tasks.append(asyncio.create_task(worker(i)))
        for _ in range(3):
            await asyncio.sleep(0)
    assert finished == []  # the listing is not over: nobody goes on
    await indexed.drop_toggle(listing)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    return calls[0], finished


def test_a_start_among_many_objects_wakes_the_waiters_linearly() -> None:
    n = 400
    checks, finished = asyncio.run(kopf_start(n))
    assert sorted(finished) == list(range(n))
    # Unpatched Kopf checks the state once per waiter per make or drop: about 80,000 here.
    assert checks < 10 * n, checks


def test_waiters_still_wake_when_the_state_changes() -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []
        toggles = aiotoggles.ToggleSet(all)  # no toggles: on

        async def wait(state: bool, label: str) -> None:
            await toggles.wait_for(state)
            seen.append(label)

        off = asyncio.create_task(wait(False, "off"))
        await asyncio.sleep(0)
        blocker = await toggles.make_toggle(False, name="blocker")  # the set turns off
        await asyncio.wait_for(off, timeout=5)
        on = asyncio.create_task(wait(True, "on"))
        second = await toggles.make_toggle(False, name="second")  # still off: no change
        await toggles.drop_toggle(blocker)
        await asyncio.sleep(0.01)
        assert not on.done()
        await second.turn_to(True)  # an individual toggle's change still wakes the set's waiters
        await asyncio.wait_for(on, timeout=5)
        await toggles.drop_toggle(second)  # dropping an "on" toggle of an "on" set changes nothing
        await toggles.drop_toggle(second)  # nor does dropping one twice
        return seen

    assert asyncio.run(scenario()) == ["off", "on"]


def test_apply_is_idempotent() -> None:
    kopf_fixes.apply()
    kopf_fixes.apply()
    assert aiotoggles.ToggleSet.make_toggle is kopf_fixes._make_toggle
    assert aiotoggles.ToggleSet.drop_toggle is kopf_fixes._drop_toggle
