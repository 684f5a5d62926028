"""Small helpers shared by the cluster tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

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


def default_modelversion(name: str, model: str = "iris", **spec: Any) -> dict[str, Any]:
    """The cluster suites' default version, on kwok and on the real node alike: iris by
    LogisticRegression, gate accuracy 0.8, no drain; `spec` replaces whole top-level fields."""
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "training": {
                "dataset": {"uri": "sklearn:iris"},
                "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
            },
            "validation": {"gates": [{"metric": "accuracy", "min": 0.8}]},
            "serving": {"drainSeconds": 0},
            **spec,
        },
    }


def one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> str:
    """A command line's refusal as users see it: exit code 1 and one `error: ` line naming `words`."""
    assert out.returncode == 1, out
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, err
    return err
