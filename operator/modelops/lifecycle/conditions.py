"""Kubernetes-style conditions, kept the way apimachinery's SetStatusCondition keeps them.

`lastTransitionTime` changes only when `status` flips; reason, message and
observedGeneration are always refreshed. kstatus conventions: `Ready` summarises,
`Reconciling` and `Stalled` are present only while True.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]
ABNORMAL_TRUE_ONLY = ("Reconciling", "Stalled")


@dataclass(frozen=True)
class Cond:
    type: str
    status: Status
    reason: str
    message: str = ""


def set_condition(
    existing: Iterable[dict[str, Any]], new: Cond, *, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """Return the conditions with `new` set in place (a copy; the input is not changed)."""
    out: list[dict[str, Any]] = []
    found = False
    for c in existing:
        c = dict(c)
        if c.get("type") == new.type:
            found = True
            if c.get("status") != new.status or not c.get("lastTransitionTime"):
                c["lastTransitionTime"] = now
            c.update(status=new.status, reason=new.reason, message=new.message, observedGeneration=generation)
        out.append(c)
    if not found:
        out.append(
            {
                "type": new.type,
                "status": new.status,
                "reason": new.reason,
                "message": new.message,
                "observedGeneration": generation,
                "lastTransitionTime": now,
            }
        )
    return out


def remove_condition(existing: Iterable[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [dict(c) for c in existing if c.get("type") != type_]


def apply_conditions(
    existing: Iterable[dict[str, Any]], wanted: Iterable[Cond], *, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """Set every wanted condition; drop Reconciling/Stalled unless wanted True (kstatus)."""
    conds = [dict(c) for c in existing]
    wanted = list(wanted)
    for w in wanted:
        if w.type in ABNORMAL_TRUE_ONLY and w.status != "True":
            conds = remove_condition(conds, w.type)
        else:
            conds = set_condition(conds, w, generation=generation, now=now)
    for t in ABNORMAL_TRUE_ONLY:
        if not any(w.type == t for w in wanted):
            conds = remove_condition(conds, t)
    return conds


def find(conditions: Iterable[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Iterable[dict[str, Any]], type_: str) -> bool:
    c = find(conditions, type_)
    return bool(c and c.get("status") == "True")


REFUSED = "ApiRefused"


def refusal(message: str) -> list[Cond]:
    """What a write refused by the API server leaves on the owner: not Ready and Stalled, with the
    server's own words, until the input changes or the retry (with backoff) goes through."""
    return [Cond("Ready", "False", REFUSED, message), Cond("Stalled", "True", REFUSED, message)]


def refusal_is_new(conditions: Iterable[dict[str, Any]], message: str) -> bool:
    """Whether to post a Warning Event: only when the refusal is not already shown (no Event storm)."""
    ready = find(conditions, "Ready")
    return not (ready and ready.get("reason") == REFUSED and ready.get("message") == message)
