"""A cap on writes the API server can only do one at a time, that does not hold workers waiting.

kube-apiserver allocates every new Service's ClusterIP under one lock, held while it creates the
IPAddress object for it (1.35: `ipallocator.(*MetaAllocator).AllocateNextService`). Creations
sent at once queue there, each holding one of the operator's workers: in a burst of 1,000
versions, about 20 of the 32 workers waited in Service creations for 6 s each, while new versions
waited minutes for a worker to create their training Jobs. More creations in flight do not make
more ClusterIPs per second, so a few suffice; a reconcile that finds none free is told so at
once (`Busy`), goes back to the queue, and is woken when one frees.

Waiters are woken one per free slot, never more, and no timer polls them (a 5 s requeue for each
waiter made 35 reconciles per version in a 1,000-version burst over 100 models, against about
10 uncapped): a woken waiter is "invited" until its reconcile ends (`done`), whether it took the
slot or found it needed none (its version was deleted or changed), and only then is the next
one woken for that slot. While a key waits, the events of what it owns do not wake it
(`controllers/watches.py`): every reconcile till then would stop at the same write.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager


class Busy(Exception):
    """Every slot is taken: decide again once one frees (`Slots.when_free` wakes the caller)."""


class Slots:
    def __init__(self, what: str, limit: int) -> None:
        """`limit` 0: no cap."""
        if limit < 0:
            raise ValueError(f"at most {limit} {what} at once: give 0 (no cap) or more")
        self.what, self.limit = what, limit
        self._taken = 0
        self._waiting: OrderedDict[Hashable, Callable[[], None]] = OrderedDict()
        self._invited: set[Hashable] = set()
        """Woken waiters whose reconcile has not ended yet: each holds a free slot's invitation."""
        self._asked: set[Hashable] = set()
        """Keys that asked to wait in the reconcile now running for them (see `done`)."""
        self._lock = threading.Lock()

    @property
    def taken(self) -> int:
        return self._taken

    @contextmanager
    def take(self) -> Iterator[None]:
        """Hold a slot for the write in the block, or raise Busy at once."""
        with self._lock:
            if self.limit and self._taken >= self.limit:
                raise Busy(f"{self._taken} {self.what} in flight (at most {self.limit} at once)")
            self._taken += 1
        try:
            yield
        finally:
            with self._lock:
                self._taken -= 1
                wakes = self._invite()
            for wake in wakes:
                wake()

    def when_free(self, key: Hashable, wake: Callable[[], None]) -> None:
        """Call `wake` once a slot is free for `key`, first come first woken (at once if one is)."""
        with self._lock:
            self._waiting[key] = wake
            self._asked.add(key)
            wakes = self._invite()
        for w in wakes:
            w()

    def done(self, key: Hashable) -> None:
        """`key`'s reconcile ended: its invitation, if it had one, goes to the next waiter; and unless
        it asked to wait in this reconcile, it waits no more (it took a slot or needed none, woken by
        something else), so nothing holds back its wake-ups (`awaits`) or wakes it for a slot."""
        with self._lock:
            if key in self._asked:
                self._asked.discard(key)
            else:
                self._waiting.pop(key, None)
            if key not in self._invited:
                return
            self._invited.remove(key)
            wakes = self._invite()
        for wake in wakes:
            wake()

    def _invite(self) -> list[Callable[[], None]]:
        """Under the lock: the waiters to wake now, one per slot neither taken nor promised."""
        wakes = []
        while self._waiting and (not self.limit or self._taken + len(self._invited) < self.limit):
            key, wake = self._waiting.popitem(last=False)
            self._invited.add(key)
            wakes.append(wake)
        return wakes

    def awaits(self, key: Hashable) -> bool:
        """Whether `key` waits for a slot: it will be woken when one frees, whatever else happens."""
        with self._lock:
            return key in self._waiting

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)
