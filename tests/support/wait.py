"""Polling with a deadline: tests never sleep a fixed time and always say what they waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 60, interval: float = 0.25, what: str = "") -> T:
    """Call `check` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last  # type: ignore[return-value]
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}: last {last!r}")
        time.sleep(interval)
