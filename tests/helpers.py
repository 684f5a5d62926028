"""Small helpers shared by the cluster tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition polled by :func:`wait_for` did not hold in time (an assertion, so pytest shows it)."""


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    message: str = "condition",
    *,
    interval: float = 0.2,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    The cluster is eventually consistent, so tests poll with a deadline instead of sleeping. On timeout
    the error names ``message`` and the last value (or ignored exception) seen, which is usually
    enough to tell a slow cluster from a wrong expectation.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as e:
            last = e
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {message}; last seen: {last!r}")
        time.sleep(interval)
