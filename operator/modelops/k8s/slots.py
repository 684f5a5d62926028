"""A cap on writes the API server can only do one at a time, that does not hold workers waiting.

kube-apiserver allocates every new Service's ClusterIP under one lock, held while it creates the
IPAddress object for it (1.35: `ipallocator.(*MetaAllocator).AllocateNextService`). Creations
sent at once queue there, each holding one of the operator's workers: in a burst of 1,000
versions, 22 of the 32 workers waited in Service creations for 6 s each, while new versions
waited minutes for a worker to create their training Jobs. More creations in flight do not make
more ClusterIPs per second, so a few suffice; a reconcile that finds none free is told so at
once (`Busy`), goes back to the queue, and is woken when one frees.
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
        self.what, self.limit = what, limit
        self._taken = 0
        self._waiting: OrderedDict[Hashable, Callable[[], None]] = OrderedDict()
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
                wake = self._waiting.popitem(last=False)[1] if self._waiting else None
            if wake is not None:
                wake()

    def when_free(self, key: Hashable, wake: Callable[[], None]) -> None:
        """Call `wake` once a slot frees, first come first woken (at once if one is free now)."""
        with self._lock:
            free = not self.limit or self._taken < self.limit
            if not free:
                self._waiting[key] = wake
        if free:
            wake()

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)
