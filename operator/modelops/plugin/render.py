"""What `kubectl modelops` prints and decides, as pure functions of the objects it read.

No I/O here: the command reads ModelVersions, RetrainPolicies and Events through the Kube
layer and hands plain dicts in; tests call these directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelops.api.base import try_parse_time
from modelops.lifecycle import naming

Obj = Mapping[str, Any]

CHAMPION_MARK = "★"
PHASE_COLOUR = {
    "Serving": "32",  # green
    "Canary": "33",  # yellow
    "Deploying": "33",
    "Training": "36",  # cyan
    "Pending": "36",
    "Failed": "31",  # red
    "Rejected": "31",
    "Superseded": "2",  # dim
    "Retired": "2",
}
BOLD = "1"
EPOCH = datetime.min.replace(tzinfo=UTC)
NOT_PROMOTABLE = {
    "Failed": "it failed; a failed version never serves",
    "Rejected": "it was rejected; a rejected version never serves",
    "Retired": "it is retired",
}


def paint(text: str, code: str | None, colour: bool) -> str:
    """ANSI colour only when asked (stdout is a terminal and NO_COLOR is unset)."""
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def age(since: str | None, now: datetime) -> str:
    """kubectl's short age: 42s, 7m, 3h, 12d."""
    t = try_parse_time(since)
    if t is None:
        return "<unknown>"
    s = max(0, int((now - t).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _meta(mv: Obj) -> Mapping[str, Any]:
    return mv.get("metadata") or {}


def _status(mv: Obj) -> Mapping[str, Any]:
    return mv.get("status") or {}


def model_of(mv: Obj) -> str:
    return str((mv.get("spec") or {}).get("model") or "")


def is_champion(mv: Obj) -> bool:
    return bool(_status(mv).get("champion"))


def _created(mv: Obj) -> str:
    return str(_meta(mv).get("creationTimestamp") or "")


@dataclass(frozen=True)
class Row:
    name: str
    prefix: str
    champion: bool
    phase: str
    metric: str
    age: str
    note: str = ""


def lineage_rows(versions: Iterable[Obj], now: datetime) -> list[Row]:
    """One model's versions as a tree by spec.parent, oldest first at every level; a version whose
    parent is gone (or of another namespace) is a root and says whose child it was."""
    items = sorted(versions, key=lambda mv: (_created(mv), _meta(mv).get("name", "")))
    names = {_meta(mv).get("name") for mv in items}
    children: dict[str | None, list[Obj]] = {}
    for mv in items:
        parent = (mv.get("spec") or {}).get("parent")
        children.setdefault(parent if parent in names else None, []).append(mv)
    rows: list[Row] = []

    def walk(mv: Obj, lead: str, last: bool, root: bool) -> None:
        name = str(_meta(mv).get("name"))
        parent = (mv.get("spec") or {}).get("parent")
        note = f"parent {parent}, gone" if root and parent else ""
        st = _status(mv)
        rows.append(
            Row(
                name=name,
                prefix="" if root else lead + ("└─ " if last else "├─ "),
                champion=is_champion(mv),
                phase=str(st.get("phase") or "Pending"),
                metric=str(st.get("primaryMetric") or ""),
                age=age(_created(mv), now),
                note=note,
            )
        )
        kids = children.get(name, [])
        below = "" if root else lead + ("   " if last else "│  ")
        for i, kid in enumerate(kids):
            walk(kid, below, i == len(kids) - 1, False)

    for mv in children.get(None, []):
        walk(mv, "", True, True)
    return rows


def version_tree(
    versions: Iterable[Obj],
    policies: Iterable[Obj],
    now: datetime,
    *,
    colour: bool = False,
    all_namespaces: bool = False,
) -> str:
    """`kubectl modelops get`: per model a header (champion, policies), then its lineage as a table."""
    by_model: dict[tuple[str, str], list[Obj]] = {}
    for mv in versions:
        by_model.setdefault((str(_meta(mv).get("namespace") or ""), model_of(mv)), []).append(mv)
    policy_names: dict[tuple[str, str], list[str]] = {}
    for p in policies:
        key = (str(_meta(p).get("namespace") or ""), model_of(p))
        policy_names.setdefault(key, []).append(str(_meta(p).get("name")))
    blocks = []
    for (ns, model), mvs in sorted(by_model.items()):
        rows = lineage_rows(mvs, now)
        champ = next((r.name for r in rows if r.champion), None)
        head = f"Model {paint(model, BOLD, colour)}"
        if all_namespaces:
            head += f" (namespace {ns})"
        head += f": champion {champ or '<none>'}"
        if pols := sorted(policy_names.get((ns, model), [])):
            head += f", RetrainPolicy {', '.join(pols)}"
        blocks.append(head + "\n" + _table(rows, colour))
    return "\n\n".join(blocks) if blocks else ""


def _table(rows: list[Row], colour: bool) -> str:
    header = ("NAME", "CHAMPION", "PHASE", "METRIC", "AGE")
    cells = [(r.prefix + r.name, CHAMPION_MARK if r.champion else "", r.phase, r.metric, r.age) for r in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r, c in zip(rows, cells, strict=True):
        padded = [v.ljust(w) for v, w in zip(c, widths, strict=True)]
        padded[1] = paint(padded[1], "33;1", colour and r.champion)
        padded[2] = paint(padded[2], PHASE_COLOUR.get(r.phase), colour)
        line = "  ".join(padded).rstrip()
        if r.note:
            line += f"  ({r.note})"
        lines.append(line)
    return "\n".join(lines)


# --- history ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    time: str
    version: str
    what: str
    by: str
    message: str
    warning: bool = False
    seq: int = 0
    """Tie-break within one second: an Event's resourceVersion (etcd's order of writes)."""


def _event_time(e: Obj) -> str:
    return str(
        e.get("lastTimestamp")
        or e.get("eventTime")
        or e.get("firstTimestamp")
        or (e.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def decisions(versions: Iterable[Obj], events: Iterable[Obj]) -> list[Decision]:
    """status.history of every version (the bounded audit trail, kept as long as the version) and
    the Events about them (every step, kept about an hour), time-ordered; an Event the history
    already records (same version, reason and words) is shown once."""
    out: list[Decision] = []
    seen: set[tuple[str, str, str]] = set()
    for mv in versions:
        name = str(_meta(mv).get("name"))
        for h in _status(mv).get("history") or []:
            seen.add((name, str(h.get("reason")), str(h.get("message"))))
            by = str(h.get("by") or "")
            if h.get("approvedBy"):
                by += f", approved by {h['approvedBy']}"
            out.append(
                Decision(
                    time=str(h.get("time") or ""),
                    version=name,
                    what=str(h.get("decision") or h.get("reason") or ""),
                    by=by,
                    message=str(h.get("message") or ""),
                    warning=h.get("decision") in ("Rejected", "Failed"),
                )
            )
    for e in events:
        name = str((e.get("involvedObject") or {}).get("name"))
        reason, message = str(e.get("reason") or ""), str(e.get("message") or "")
        if (name, reason, message) in seen:
            continue
        count = int(e.get("count") or 1)
        out.append(
            Decision(
                time=_event_time(e),
                version=name,
                what=reason,
                by="event" + (f" x{count}" if count > 1 else ""),
                message=message,
                warning=e.get("type") == "Warning",
                seq=_revision(e),
            )
        )
    return sorted(out, key=lambda d: (try_parse_time(d.time) or EPOCH, d.version, d.seq))


def _revision(e: Obj) -> int:
    rv = str((e.get("metadata") or {}).get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else 0


def history_table(rows: list[Decision], *, colour: bool = False) -> str:
    header = ("TIME", "VERSION", "DECISION", "BY", "MESSAGE")
    cells = [(d.time, d.version, d.what, d.by, d.message) for d in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header) - 1)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header[:-1], widths, strict=True)) + "  MESSAGE"]
    for d, c in zip(rows, cells, strict=True):
        padded = [v.ljust(w) for v, w in zip(c[:-1], widths, strict=True)]
        padded[2] = paint(padded[2], "31" if d.warning else None, colour)
        lines.append("  ".join(padded) + "  " + c[-1])
    return "\n".join(lines)


# --- decisions the commands make ---------------------------------------------------------------------


class Refusal(Exception):
    """A request the plugin will not send, with the reason in one line."""


def check_promotable(mv: Obj) -> None:
    """Refuse what the operator would never act on, instead of leaving a request that sits forever."""
    name, st = _meta(mv).get("name"), _status(mv)
    if is_champion(mv):
        raise Refusal(f"{name} is already the champion of {model_of(mv)}")
    if (mv.get("spec") or {}).get("retired"):
        raise Refusal(f"cannot promote {name}: spec.retired is true")
    why = NOT_PROMOTABLE.get(str(st.get("phase")))
    if why:
        raise Refusal(f"cannot promote {name}: {why}")


def previous_champion(versions: Iterable[Obj]) -> str:
    """The version that was champion last before the current one: of those promoted before and
    not champion now, the one superseded most recently (and not retired, failed or deleted)."""
    items = list(versions)
    current = next((mv for mv in items if is_champion(mv)), None)
    if current is None:
        raise Refusal(f"model {model_of(items[0]) if items else ''} has no champion to roll back from")
    candidates = []
    for mv in items:
        st = _status(mv)
        ts = st.get("timestamps") or {}
        if mv is current or not ts.get("promoted") or _meta(mv).get("deletionTimestamp"):
            continue
        if (mv.get("spec") or {}).get("retired") or st.get("phase") in NOT_PROMOTABLE:
            continue
        when = try_parse_time(ts.get("superseded")) or try_parse_time(ts.get("promoted"))
        candidates.append((when, str(_meta(mv).get("name"))))
    if not candidates:
        name = _meta(current).get("name")
        raise Refusal(f"no earlier champion of {model_of(current)} to roll back to ({name} is the first)")
    return max(candidates, key=lambda c: (c[0] or EPOCH, c[1]))[1]


def check_retirable(mv: Obj) -> None:
    name = _meta(mv).get("name")
    if is_champion(mv):
        raise Refusal(f"cannot retire {name}: it is the champion of {model_of(mv)}; promote another first")
    if (mv.get("spec") or {}).get("retired"):
        raise Refusal(f"{name} is already retired")


def promotion_patch(token: str, approved_by: str | None = None) -> dict[str, Any]:
    """The annotation the operator reads as a promotion request (and who approved it)."""
    ann = {naming.ANNOTATION_PROMOTE: token}
    if approved_by:
        ann[naming.ANNOTATION_APPROVED_BY] = approved_by
    return {"metadata": {"annotations": ann}}


def retrain_patch(token: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {naming.ANNOTATION_RETRAIN: token}}}


def card_path(model: str, markdown: bool) -> str:
    """The server's model card route (`/v2/models/{name}/card`, Markdown with ?format=markdown)."""
    return f"v2/models/{model}/card" + ("?format=markdown" if markdown else "")


def card_service(mv: Obj) -> str:
    """The version's own Service, which reaches this version's servers (the stable one may not)."""
    name, st = _meta(mv).get("name"), _status(mv)
    serving = st.get("serving") or {}
    if not serving.get("service"):
        where = (st.get("training") or {}).get("card")
        also = f"; the card file is at {where}" if where else ""
        raise Refusal(f"{name} has no server (phase {st.get('phase') or 'Pending'}){also}")
    if not serving.get("readyReplicas"):
        raise Refusal(f"{name} has no ready server (0/{serving.get('replicas', 0)} replicas ready)")
    return str(serving["service"])
