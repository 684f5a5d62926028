"""A controller work queue: keys, not events, with the guarantees client-go's workqueue gives.

- A key is queued at most once however many events name it (events coalesce).
- A key is never processed by two workers at once; a key added while it is being
  processed is processed again right after (nothing is lost, nothing runs twice at once).
- Each processing returns when to look again (the plan's requeue, or the slow resync);
  one wake-up per key is kept, the latest decision replaces the earlier one.
- A failure is retried with a per-key exponential backoff, capped so that work resumes
  within seconds once the API server is back.
- While `paused` is on (Kopf's peering pause: another operator holds the objects), no key is
  taken; keys and wake-ups keep queueing, and the workers resume with them when it goes off.
- Two classes, served in turn while both wait: changes to objects already in the cluster and
  first sightings. A burst of new objects cannot starve a Serving version's events, nor can a
  busy lifecycle (Jobs finishing, servers becoming ready) keep new objects waiting for minutes,
  as strict priority did (1,000 versions at 20/s: new ones waited a p50 of 120 s).

Workers are asyncio tasks; the synchronous reconcile runs in a bounded thread pool, with
the context of the task that started the queue (Kopf's event poster lives in it).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from modelops import metrics

log = logging.getLogger(__name__)


class Backoff(Exception):
    """A failure the reconcile already reported on the object (condition + Event): retry with the
    key's exponential backoff, from `base` up to `cap` seconds, with one log line, no traceback."""

    def __init__(self, message: str, *, base: float = 5.0, cap: float = 300.0) -> None:
        super().__init__(message)
        self.base, self.cap = base, cap


class Pause(Protocol):
    """What the queue waits on while another operator holds the objects (Kopf's ToggleSet)."""

    def is_on(self) -> bool: ...

    async def wait_for(self, __state: bool) -> None: ...


URGENT, NEW = 0, 1
"""Classes: URGENT for objects that exist and changed, NEW for first sightings. A key in both is
URGENT (its first sighting is served with its change)."""
PRIORITY_NAMES = {URGENT: "urgent", NEW: "new"}


class WorkQueue:
    def __init__(
        self,
        name: str,
        process: Callable[[Any], float | None],
        *,
        resync: float,
        base_backoff: float = 0.5,
        max_backoff: float = 10.0,
    ) -> None:
        self.name = name
        self.process = process
        self.resync = resync
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        self._heaps: dict[int, list[tuple[int, Hashable]]] = {URGENT: [], NEW: []}
        """FIFO per class (by sequence number); an entry whose key moved class or left is skipped."""
        self._seq = itertools.count()
        self._turn = URGENT
        """The class served next when both wait."""
        self._queued: dict[Hashable, int] = {}
        self._since: dict[Hashable, float] = {}
        """When each queued key was first added (coalesced adds keep the first time)."""
        self._active: set[Hashable] = set()
        self._dirty: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused: Pause | None = None
        self.processed = 0
        self._running: dict[Hashable, float] = {}
        """Keys whose reconcile runs in a thread now, since when (time.monotonic()): a cancelled
        worker task leaves its thread running, so this, not `_active`, says what a stopping
        operator still waits for."""
        self._idle = threading.Condition()
        metrics.WORKQUEUE_LONGEST_RUNNING.labels(name).set_function(self.longest_running)

    # --- adding (from the event loop) -------------------------------------------------------
    def add(self, key: Hashable, priority: int = URGENT) -> None:
        if key in self._active:
            self._dirty[key] = min(priority, self._dirty.get(key, priority))
            return
        queued = self._queued.get(key)
        if queued is not None and queued <= priority:
            return
        self._queued[key] = priority
        self._since.setdefault(key, time.monotonic())
        heapq.heappush(self._heaps[priority], (next(self._seq), key))
        metrics.WORKQUEUE_ADDS.labels(self.name, PRIORITY_NAMES[priority]).inc()
        metrics.WORKQUEUE_DEPTH.labels(self.name).set(len(self._queued))
        self._ready.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Wake `key` after `delay` seconds, replacing its earlier wake-up."""
        loop = self._loop or asyncio.get_running_loop()
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_later(max(0.0, delay), self._wake, key)

    def add_threadsafe(self, key: Hashable, priority: int = URGENT) -> None:
        """For reconciles (worker threads) that wake other keys."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.add, key, priority)

    def forget(self, key: Hashable) -> None:
        """The object is gone: no wake-ups or backoff memory stay behind."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    def _wake(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        return len(self._queued)

    def scheduled(self, key: Hashable) -> float | None:
        """Seconds until `key`'s next wake-up (for tests and introspection)."""
        timer = self._timers.get(key)
        if timer is None or self._loop is None:
            return None
        return max(0.0, timer.when() - self._loop.time())

    # --- working -----------------------------------------------------------------------------
    def _waiting(self, priority: int) -> bool:
        """Whether a live entry of this class waits (stale entries at the front are dropped)."""
        heap = self._heaps[priority]
        while heap and self._queued.get(heap[0][1]) != priority:
            heapq.heappop(heap)
        return bool(heap)

    def pop(self) -> Hashable | None:
        """The next key to process, taking the two classes in turn while both wait."""
        urgent, new = self._waiting(URGENT), self._waiting(NEW)
        if not (urgent or new):
            return None
        priority = self._turn if (urgent and new) else (URGENT if urgent else NEW)
        self._turn = URGENT if priority == NEW else NEW
        _, key = heapq.heappop(self._heaps[priority])
        del self._queued[key]
        waited = time.monotonic() - self._since.pop(key, time.monotonic())
        metrics.WORKQUEUE_WAIT.labels(self.name, PRIORITY_NAMES[priority]).observe(waited)
        metrics.WORKQUEUE_DEPTH.labels(self.name).set(len(self._queued))
        return key

    async def _next(self) -> Hashable:
        """The next key once one waits and the queue is not paused (checked right before the pop,
        with no await between: a worker that waited through a pause's start takes nothing)."""
        while True:
            if self._paused is not None and self._paused.is_on():
                await self._paused.wait_for(False)
                continue
            if (key := self.pop()) is not None:
                return key
            self._ready.clear()
            await self._ready.wait()

    def next_backoff(self, key: Hashable, base: float | None = None, cap: float | None = None) -> float:
        """The delay before retrying `key` after one more failure."""
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        metrics.WORKQUEUE_RETRIES.labels(self.name).inc()
        base = self.base_backoff if base is None else base
        return min(self.max_backoff if cap is None else cap, base * 2 ** (n - 1))

    async def _worker(self, pool: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self._next()
            self._active.add(key)
            try:
                call = functools.partial(contextvars.copy_context().run, self._process, key)
                delay = await loop.run_in_executor(pool, call)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Backoff as e:
                delay = self.next_backoff(key, e.base, e.cap)
                log.warning("%s: %s: %s; retrying in %.1fs", self.name, key, e, delay)
            except Exception:
                delay = self.next_backoff(key)
                log.exception("%s: reconciling %s failed; retrying in %.1fs", self.name, key, delay)
            finally:
                self._active.discard(key)
                self.processed += 1
            if delay is None:
                delay = self.resync * random.uniform(0.9, 1.1)  # jitter: resyncs do not come in waves
            if delay < 0:
                self.forget(key)
            else:
                self.add_after(key, delay)
            again = self._dirty.pop(key, None)
            if again is not None:
                self.add(key, again)

    def _process(self, key: Hashable) -> float | None:
        with self._idle:
            self._running[key] = time.monotonic()
        try:
            return self.process(key)
        finally:
            with self._idle:
                self._running.pop(key, None)
                self._idle.notify_all()

    def longest_running(self) -> float:
        """Seconds the oldest reconcile running now has run (0: none), as client-go's
        workqueue_longest_running_processor_seconds."""
        with self._idle:
            oldest = min(self._running.values(), default=None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def finish(self, deadline: float) -> list[Hashable]:
        """After `run` was cancelled: wait until the reconciles still running end, or until
        `deadline` (time.monotonic()); the keys still running then."""
        with self._idle:
            self._idle.wait_for(lambda: not self._running, timeout=max(0.0, deadline - time.monotonic()))
            return sorted(self._running, key=str)

    async def run(self, workers: int, paused: Pause | None = None) -> None:
        """Run until cancelled, with `workers` reconciles at most at once, none while `paused` is on
        (reconciles already running finish)."""
        self._loop = asyncio.get_running_loop()
        self._paused = paused
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"reconcile-{self.name}")
        tasks = [
            asyncio.create_task(self._worker(pool), name=f"{self.name}-worker-{i}") for i in range(workers)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for timer in self._timers.values():
                timer.cancel()
            pool.shutdown(wait=False, cancel_futures=True)


GONE = -1.0
"""What a reconcile returns when the object no longer exists: forget the key."""
