"""Comparing desired with observed state, so the operator writes only differences.

Plain data in, plain data out; the controllers decide whether a write is needed from
these, and a steady state yields empty patches (0 writes).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_diff(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The smallest merge patch that makes `current` hold every key of `desired`.

    Keys `desired` leaves out are not touched (merge-patch semantics); a None in `desired`
    deletes the key, and is omitted when the key is absent already. Lists compare whole.
    An empty result means nothing to write.
    """
    current = current or {}
    out: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if want is None:
            if key in current and have is not None:
                out[key] = None
        elif isinstance(want, Mapping) and isinstance(have, Mapping):
            sub = merge_diff(have, want)
            if sub:
                out[key] = sub
        elif have != want:
            out[key] = want
    return out


def contains(observed: Any, desired: Any) -> bool:
    """Whether `observed` already holds everything `desired` sets (apimachinery's DeepDerivative).

    Fields the API server defaults (absent from `desired`) are ignored; lists must match
    in length and element by element. Used before server-side apply: equal means no write.
    """
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return False
        return all(contains(observed.get(k), v) for k, v in desired.items() if v is not None)
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(observed) != len(desired):
            return False
        return all(contains(o, d) for o, d in zip(observed, desired, strict=True))
    if isinstance(desired, bool) or isinstance(observed, bool):
        return desired is observed
    if isinstance(desired, int | float) and isinstance(observed, int | float):
        return float(desired) == float(observed)
    return desired == observed
