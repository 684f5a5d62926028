"""Opt-in capture (`serving.capture`): served rows joined with their `/feedback` labels, as a CSV
a retrain can train on.

A row is written only once its label arrives (joined by request id and row index, like the online
accuracy), so the file is a labelled data set in the training layout: the model's features in
schema order, minus the excluded columns (privacy: they never reach the disk), and the target.
Retention keeps the newest `max_rows` rows in memory (a bounded deque) and the file is rewritten
whole, atomically (temporary file + rename), at most once per `flush_seconds`: a reader (the
resolve Job, a trainer) never sees a half-written row, and the file never grows past the limit.
Rows already in the file are loaded at start, so a restarted server keeps its history.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("modelops.server.capture")


class Capture:
    def __init__(
        self,
        path: str | os.PathLike[str],
        features: Sequence[str],
        target: str,
        max_rows: int,
        exclude: Sequence[str] = (),
        flush_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        excluded = set(exclude)
        self.keep = [i for i, f in enumerate(features) if f not in excluded]
        self.columns = [features[i] for i in self.keep] + [target]
        self.rows: deque[list[str]] = deque(maxlen=max_rows)
        self.flush_seconds = flush_seconds
        self.dirty = False
        self._flushed = 0.0
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        reader = csv.reader(io.StringIO(text))
        if next(reader, None) != self.columns:  # another schema (or exclusions changed): start afresh
            log.warning("captured rows at %s have other columns; starting a new file", self.path)
            return
        self.rows.extend(row for row in reader if len(row) == len(self.columns))

    def add(self, features: Sequence[Any], label: Any) -> None:
        """One labelled row: the features as served (schema order), and the label fed back."""
        self.rows.append([_text(features[i]) for i in self.keep] + [_text(label)])
        self.dirty = True
        if time.monotonic() - self._flushed >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the kept rows as one new file that replaces the old one (never a partial file)."""
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".capture-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(self.columns)
                writer.writerows(self.rows)
            os.replace(tmp, self.path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.dirty = False
        self._flushed = time.monotonic()


def _text(value: Any) -> str:
    if hasattr(value, "item"):  # numpy scalars print as the number, not np.float64(...)
        value = value.item()
    return repr(value) if isinstance(value, float) else str(value)
