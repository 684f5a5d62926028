"""Clients of an iris model server: rows drawn from the training data, optionally shifted, labels fed back.

Used by the RetrainPolicy tests and the demo, so both drive drift and decay the same way.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from sklearn.datasets import load_iris

_IRIS = load_iris(as_frame=True)
ROWS: list[dict[str, float]] = _IRIS.data.to_dict("records")
LABELS: list[int] = [int(y) for y in _IRIS.target]


class IrisTraffic:
    """A bounded background client; `shift` may change while it runs (drift injected mid-way)."""

    def __init__(
        self,
        target: str | Callable[[], str | None],
        *,
        shift: dict[str, float] | None = None,
        wrong_labels: bool = False,
        limit: int = 20_000,
        pause: float = 0.05,
        seed: int = 1,
    ) -> None:
        self.target = target
        self.shift = dict(shift or {})
        self.wrong_labels, self.limit, self.pause = wrong_labels, limit, pause
        self.sent = 0
        self._rnd = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> IrisTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> IrisTraffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _url(self) -> str | None:
        return self.target if isinstance(self.target, str) else self.target()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as c:
            while not self._stop.is_set() and self.sent < self.limit:
                url = self._url()
                if url is None:  # no server to talk to yet
                    self._stop.wait(0.5)
                    continue
                idx = [self._rnd.randrange(len(ROWS)) for _ in range(10)]
                rows = [{k: v + self.shift.get(k, 0.0) for k, v in ROWS[i].items()} for i in idx]
                try:
                    r = c.post(f"{url}/predict", json={"instances": rows})
                    if r.status_code == 200:
                        self.sent += len(rows)
                        labels = [(LABELS[i] + 1) % 3 if self.wrong_labels else LABELS[i] for i in idx]
                        c.post(f"{url}/feedback", json={"id": r.json()["id"], "labels": labels})
                except httpx.HTTPError:
                    pass
                self._stop.wait(self.pause)


def write_iris_csv(path: Path, *, shift: dict[str, float] | None = None, seed: int | None = None) -> Path:
    """Iris as a CSV a ModelVersion can train on (`target` column): shifted like the traffic, and/or
    with the rows in another order (other bytes, same data: a new digest)."""
    frame = _IRIS.frame.copy()
    for column, delta in (shift or {}).items():
        frame[column] = frame[column] + delta
    if seed is not None:
        frame = frame.sample(frac=1.0, random_state=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
