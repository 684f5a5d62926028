"""A retrain's training data: `template.datasetUri` templates, and whether the data is new.

Syntax of `template.datasetUri` (documented in the README):
- strftime fields of the trigger time, in UTC: `%Y %m %d %H %M %S %j %G %V %u %y %b` and `%%`,
  e.g. `pvc://data/iris/%Y-%m-%d.csv` is the file of the day the retrain was decided;
- a trailing `/` names a folder: its newest `.csv` or `.parquet` file (modification time, then
  name) is taken, e.g. `pvc://data/iris/` or `pvc://data/iris/%Y/%m/`.

The operator mounts no volumes, so it cannot look into a folder or hash a file: a small resolve
Job (`modelops resolve`, with the dataset's claim mounted) turns the template into one concrete
URI and the sha256 of its bytes, as the trainer would compute it, and reports both in its
termination message. The policy decides from that (pure, here): a drift or performance retrain
whose data has the parent's digest would learn nothing new, so no child is made (`NoNewData`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

FIELDS = "YmdHMSjGVuyb%"
_FIELD = re.compile(r"%(.)")
DATA_SUFFIXES = (".csv", ".parquet")
NEEDS_NEW_DATA = ("drift", "performance")
"""Triggers that retrain because the world changed: the same data cannot fix them."""


def template_error(template: str) -> str | None:
    """Why `template` is not a valid datasetUri template, or None."""
    bad = sorted({m.group(1) for m in _FIELD.finditer(template) if m.group(1) not in FIELDS})
    if bad:
        fields = " ".join(f"%{c}" for c in FIELDS if c != "%")
        return f"unsupported field(s) {' '.join('%' + c for c in bad)}; use {fields} or %%"
    if template.endswith("%"):
        return "a lone % at the end"
    return None


def is_dynamic(uri: str | None) -> bool:
    """Whether the URI must be resolved before training (time fields or a folder)."""
    return bool(uri) and ("%" in uri or uri.endswith("/"))  # type: ignore[operator]


def expand(template: str, when: datetime) -> str:
    """The template with the trigger time filled in (a folder stays a folder)."""
    return when.strftime(template) if "%" in template else template


def sample(template: str) -> str:
    """A concrete URI of the template's shape, to check it against the dataset URI pattern early."""
    uri = expand(template, datetime(2000, 1, 1))
    return uri + "newest.csv" if uri.endswith("/") else uri


@dataclass(frozen=True)
class Resolution:
    """What a resolve Job found: one concrete URI and the sha256 of its data, or why not."""

    uri: str | None = None
    digest: str | None = None
    error: str | None = None


def parse_resolution(message: str | None, failure: str | None) -> Resolution | None:
    """The resolve Job's report (its termination message), None while it has not finished."""
    if failure:
        return Resolution(error=failure)
    if not message:
        return None
    try:
        data = json.loads(message)
        return Resolution(uri=str(data["uri"]), digest=str(data["digest"]))
    except (ValueError, KeyError, TypeError):
        return Resolution(error=f"unreadable resolve report: {message[:200]}")


def same_data(resolution: Resolution, parent_digest: str | None) -> bool:
    """The resolved data is byte for byte what the parent was trained on."""
    return bool(parent_digest) and _hex(resolution.digest) == _hex(parent_digest)


def _hex(digest: str | None) -> str:
    return (digest or "").removeprefix("sha256:").lower()
