"""The freed pages of a burst go back to the system, and only after work was done."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from modelops.controllers import memory

BURST = """
import sys
from modelops.controllers.memory import release_free_memory

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

before = rss_mib()
burst = [bytes(1500) for _ in range(60_000)]  # above pymalloc's 512 bytes: glibc's own chunks
kept = bytes(1500)  # allocated after the burst: the heap's top is not free when the burst goes
del burst
freed = rss_mib()
released = release_free_memory()
print(before, freed, released, rss_mib())
"""


@pytest.mark.skipif(memory._TRIM is None, reason="not glibc")
def test_a_bursts_freed_pages_stay_with_the_process_until_released() -> None:
    out = subprocess.run([sys.executable, "-c", BURST], capture_output=True, text=True, check=True).stdout
    before, freed, released, after = out.split()
    assert float(freed) - float(before) > 60, "glibc keeps the freed burst (about 88 MiB)"
    assert released == "True"
    assert float(freed) - float(after) > 60, out


def test_memory_is_released_only_after_reconciles_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = [0, 0, 5, 5, 9]  # reconciles done at each look; the last stays
    trims: list[int] = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: trims.append(1) or True)

    def work_done() -> int:
        return counts.pop(0) if len(counts) > 1 else counts[0]

    async def run() -> None:
        task = asyncio.create_task(memory.release_after_work(0.01, work_done))
        async with asyncio.timeout(10):  # however slow the machine, every look is taken
            while len(counts) > 1 or len(trims) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # ten more idle looks
        task.cancel()

    asyncio.run(run())
    assert len(trims) == 2, "once after the 5 reconciles, once after the next 4, never when idle"
