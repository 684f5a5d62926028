"""`eventually`: tests.helpers.wait_for with the keyword names the operator tests read best with."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tests.helpers import wait_for

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 60, interval: float = 0.25, what: str = "") -> T:
    """Poll until `check` returns something truthy; an AssertionError inside counts as not yet."""
    return wait_for(
        check,
        timeout=timeout,
        message=what or getattr(check, "__name__", "condition"),
        interval=interval,
        ignore=(AssertionError,),
    )
