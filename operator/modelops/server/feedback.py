"""Pending predictions awaiting ground truth, bounded by rows (oldest requests evicted first)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_ROWS = 100_000


@dataclass
class Pending:
    predictions: list[Any]  # str labels (classifier) or floats (regressor)
    labelled: bytearray
    remaining: int
    rows: Any = None
    """The served feature rows (an array), kept only when the server captures labelled data."""


class PendingPredictions:
    """An LRU of request id -> predictions; memory is O(max_rows) whatever the traffic."""

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.max_rows = max_rows
        self.rows = 0
        self._items: OrderedDict[str, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, request_id: str, predictions: np.ndarray, classification: bool, rows: Any = None) -> None:
        if len(predictions) > self.max_rows:
            return  # larger than the whole store: keeping it would evict everything else
        old = self._items.pop(request_id, None)
        if old is not None:
            self.rows -= len(old.predictions)
        values = (
            [str(p) for p in predictions.tolist()] if classification else predictions.astype(float).tolist()
        )
        self._items[request_id] = Pending(values, bytearray(len(values)), len(values), rows)
        self.rows += len(values)
        while self.rows > self.max_rows:
            _, evicted = self._items.popitem(last=False)
            self.rows -= len(evicted.predictions)

    def get(self, request_id: str) -> Pending | None:
        return self._items.get(request_id)

    def take(self, request_id: str, index: int) -> Any | None:
        """The prediction for one row, once: a second label for the same row does not count."""
        taken = self.take_row(request_id, index)
        return None if taken is None else taken[0]

    def take_row(self, request_id: str, index: int) -> tuple[Any, Any] | None:
        """The prediction and the served features (None unless kept) of one row, once."""
        pending = self._items.get(request_id)
        if pending is None or not 0 <= index < len(pending.predictions) or pending.labelled[index]:
            return None
        row = None if pending.rows is None else pending.rows[index]
        pending.labelled[index] = 1
        pending.remaining -= 1
        if not pending.remaining:
            del self._items[request_id]
            self.rows -= len(pending.predictions)
        return pending.predictions[index], row
