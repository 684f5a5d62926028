"""Reads from the watch caches, with the operator's own writes visible at once.

The caches are fed by watch streams (`controllers/watches.py`): the operator's own resources
through Kopf indexes, its children through reflectors (`k8s/reflector.py`) that `put` them
here. The work queues start only once every one holds its initial listing, the equivalent of
controller-runtime's WaitForCacheSync. A reconcile reads only from here.

A watch delivers our own writes a moment later; meanwhile a reconcile woken by another
event would plan from stale data and write again. So every write's answer is kept in an
overlay until the watch catches up with it ("read your writes"): the overlay wins while
its resourceVersion is newer than the cached one, and is dropped once the cache has it.

Some writes are "settled": the reconcile that made them planned with their outcome already
(its own status, its own children), and planning again from their echo decides nothing new
(the planner tests check that fixed point). The watch's echo of such a write wakes no one
(`echo()`), which halves the reconciles of a burst of new versions.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

Obj = dict[str, Any]
Key = tuple[str, str, str]
"""(kind, namespace, name); kind is one of KINDS."""

KINDS = ("versions", "policies", "jobs", "deployments", "services", "hpas")
INDEX_PREFIX = "modelops_"
"""Kopf index handler ids are INDEX_PREFIX + kind (and `…_by_model`, `pods`)."""


KEPT_FIELDS = (
    ("f:metadata", "f:annotations", "f:modelops.dev/promote"),
    ("f:spec", "f:promotion", "f:request"),
    ("f:spec", "f:replicas"),
)
"""managedFields paths kept by `strip`: who wrote a promotion request goes into the audit trail;
who owns a Deployment's replicas decides whether they must be handed over to its autoscaler."""


def strip(body: Mapping[str, Any]) -> Obj:
    """A plain copy without managedFields (often half of an object's size) or Kopf's bookkeeping;
    only the managers of the KEPT_FIELDS survive, reduced to those paths."""
    meta = dict(body.get("metadata") or {})
    kept = []
    for entry in meta.pop("managedFields", None) or []:
        fields: dict[str, Any] = {}
        for path in KEPT_FIELDS:
            node: Any = entry.get("fieldsV1") or {}
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None:
                leaf = fields
                for key in path[:-1]:
                    leaf = leaf.setdefault(key, {})
                leaf[path[-1]] = {}
        if fields:
            kept.append(
                {"manager": entry.get("manager"), "operation": entry.get("operation"), "fieldsV1": fields}
            )
    if kept:
        meta["managedFields"] = kept
    return {**{k: v for k, v in body.items() if k != "metadata"}, "metadata": meta}


class Packed:
    """A cached object as compact JSON, deflated against a dictionary: the first object of its kind
    this process cached. Parsed dicts of Jobs and Deployments take about 19 KiB each in Python,
    their JSON about 3.5 KiB, and deflated against a sibling about 0.2 KiB, since objects of one
    kind differ in little but names, labels and times: at 10,000 versions the caches would hold
    about 600 MiB parsed and 110 MiB as JSON. A read inflates and parses it again (tens of
    microseconds), which also hands every reader its own copy, so no reconcile can change what
    the cache holds."""

    __slots__ = ("data", "zdict")

    def __init__(self, data: bytes, zdict: bytes) -> None:
        self.data, self.zdict = data, zdict


_ZDICTS: dict[str, bytes] = {}
"""kind → its dictionary; never replaced, so every entry of a kind inflates with the same one."""


def pack(body: Mapping[str, Any], kind: str) -> Packed:
    raw = orjson.dumps(strip(body))
    zdict = _ZDICTS.setdefault(kind, raw)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
    return Packed(deflate.compress(raw) + deflate.flush(), zdict)


def unpack(value: Any) -> Obj | None:
    if not isinstance(value, Packed):
        return value
    inflate = zlib.decompressobj(-15, value.zdict)
    return orjson.loads(inflate.decompress(value.data) + inflate.flush())


def newer(a: str | None, b: str | None) -> bool:
    """Whether resourceVersion `a` is at least `b` (etcd revisions; equality when not numeric)."""
    if not a or not b:
        return False
    if a.isdigit() and b.isdigit():
        return int(a) >= int(b)
    return a == b


def written_last_by(body: Mapping[str, Any], manager: str, subresource: str = "") -> bool:
    """Whether the newest write to the object was `manager`'s through `subresource`, by managedFields.

    Every write that changes an object stamps its writer's entry with the time (whole seconds), so
    an entry newer than all others is the write this event delivers. A tie (two writers in one
    second) counts as someone else's: the caller then wakes, as it would without this check. It
    catches the echo whose watch event outruns the API's answer to the writer.
    """
    mine, others = "", ""
    for entry in (body.get("metadata") or {}).get("managedFields") or []:
        when = entry.get("time") or ""
        if entry.get("manager") == manager and (entry.get("subresource") or "") == subresource:
            mine = max(mine, when)
        else:
            others = max(others, when)
    return bool(mine) and mine > others


def _first(store: Iterable[Any] | None) -> Any:
    if store is None:
        return None
    for value in list(store):  # list() copies in one step: Kopf updates the store from another thread
        return value
    return None


class Cache:
    def __init__(self) -> None:
        self._indexes: dict[str, Mapping[Any, Any]] = {}
        self._stores: dict[str, dict[tuple[str, str], Any]] = {}
        """Kinds fed by reflectors: (namespace, name) → the packed object."""
        self._groups: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        """Secondary indexes fed by reflectors: (namespace, key) → name → value (pods by owner)."""
        self._overlay: dict[Key, tuple[str | None, str | None, Obj | None]] = {}
        """key → (resourceVersion, uid, object or None for a deletion we made)."""
        self._settled: dict[Key, str | None] = {}
        """key → resourceVersion of the last settled write, until its echo arrives."""
        self._lock = threading.Lock()

    @property
    def bound(self) -> bool:
        return bool(self._indexes)

    def bind(self, indexes: Mapping[str, Any]) -> None:
        """Take the Kopf indexes from a handler's kwargs (they live as long as the operator)."""
        found = {k[len(INDEX_PREFIX) :]: v for k, v in indexes.items() if k.startswith(INDEX_PREFIX)}
        if found:
            self._indexes = found

    def _index(self, name: str) -> Mapping[Any, Any]:
        return self._indexes.get(name) or {}

    def _cached(self, kind: str, key: tuple[str, str]) -> Obj | None:
        store = self._stores.get(kind)
        if store is not None:
            return unpack(store.get(key))
        return unpack(_first(self._index(kind).get(key)))

    # --- the reflectors' side (each key is written by one reflector thread) --------------------
    def put(self, kind: str, namespace: str, name: str, value: Any) -> None:
        self._stores.setdefault(kind, {})[namespace, name] = value

    def pop(self, kind: str, namespace: str, name: str) -> Obj | None:
        return unpack(self._stores.setdefault(kind, {}).pop((namespace, name), None))

    def keys(self, kind: str) -> list[tuple[str, str]]:
        return list(self._stores.get(kind) or ())

    def put_grouped(self, index: str, namespace: str, key: str, name: str, value: Any) -> None:
        self._groups.setdefault(index, {}).setdefault((namespace, key), {})[name] = value

    def pop_grouped(self, index: str, namespace: str, key: str, name: str) -> None:
        group = self._groups.setdefault(index, {})
        members = group.get((namespace, key))
        if members is not None:
            members.pop(name, None)
            if not members:
                group.pop((namespace, key), None)

    # --- reads ---------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        cached = self._cached(kind, (namespace, name))
        key = (kind, namespace, name)
        with self._lock:
            entry = self._overlay.get(key)
        if entry is None:
            return cached
        rv, uid, obj = entry
        if obj is None:  # our deletion: hidden until the watch drops it, unless it came back anew
            if cached is None or cached["metadata"].get("uid") != uid:
                return cached
            if cached["metadata"].get("deletionTimestamp"):
                return cached  # held by a finalizer: its deletion is visible, and still to be handled
            return None
        if cached is not None and newer(cached["metadata"].get("resourceVersion"), rv):
            with self._lock:  # the watch has it: the entry only held memory (see `wrote`)
                if self._overlay.get(key) is entry:
                    del self._overlay[key]
            return cached
        return obj

    def names(self, index: str, namespace: str, key: str) -> list[str]:
        """Names from a secondary index (e.g. versions_by_model) under (namespace, key)."""
        store = self._index(index).get((namespace, key))
        return sorted(set(list(store))) if store is not None else []

    def values(self, index: str, namespace: str, key: str) -> list[Any]:
        if index in self._groups:
            return list((self._groups[index].get((namespace, key)) or {}).values())
        store = self._index(index).get((namespace, key))
        return list(store) if store is not None else []

    def versions_of(self, namespace: str, model: str) -> list[Obj]:
        names = set(self.names("versions_by_model", namespace, model))
        with self._lock:
            names |= {
                k[2]
                for k, (_, _, obj) in self._overlay.items()
                if k[0] == "versions" and k[1] == namespace and obj and obj["spec"].get("model") == model
            }
        return [mv for n in sorted(names) if (mv := self.get("versions", namespace, n)) is not None]

    # --- writes --------------------------------------------------------------------------------
    def wrote(self, kind: str, obj: Mapping[str, Any], *, settled: bool = False) -> None:
        """Remember the API server's answer to our write until the watch delivers it.

        `settled`: the writer is the reconcile of the key this object's events wake (for a model's
        stable Service: the champion that wrote it), and it already planned with this answer, so
        the echo need not wake it.
        """
        meta = obj["metadata"]
        key = (kind, meta["namespace"], meta["name"])
        rv = meta.get("resourceVersion")
        cached = self._cached(kind, key[1:])
        if cached is not None and newer(cached["metadata"].get("resourceVersion"), rv):
            # The watch delivered this write (or a later change) before its answer reached us, or
            # the write changed nothing: no event will come to drop an entry, which would hold a
            # whole object for good (332 Services and versions after a burst of 1,000 versions).
            with self._lock:
                self._overlay.pop(key, None)
                self._settled.pop(key, None)
            return
        with self._lock:
            self._overlay[key] = (rv, meta.get("uid"), strip(obj))
            if settled:
                self._settled[key] = rv
            else:
                self._settled.pop(key, None)

    def echo(
        self, kind: str, namespace: str, name: str, body: Mapping[str, Any] | None, *, older_too: bool = False
    ) -> bool:
        """Whether a watch event delivers exactly our last settled write of this object.

        `older_too`, for objects we write only as a compare-and-swap (a version's status): an event
        older than that write is one the writer planned with, such as the echo of its previous write
        arriving after its next one.
        """
        key = (kind, namespace, name)
        rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
        with self._lock:
            mine = self._settled.get(key)
            if mine is None:
                return False
            if body is None or rv == mine or newer(rv, mine):
                del self._settled[key]  # delivered, superseded or gone: nothing to wait for
                return body is not None and rv == mine
            return older_too and newer(mine, rv)

    def deleted(self, kind: str, namespace: str, name: str, uid: str | None) -> None:
        with self._lock:
            self._overlay[(kind, namespace, name)] = (None, uid, None)

    def caught_up(self, kind: str, namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
        """The watch delivered `body` (None: the object is gone): drop what it supersedes."""
        key = (kind, namespace, name)
        with self._lock:
            entry = self._overlay.get(key)
            if entry is None:
                return
            rv, uid, obj = entry
            meta = (body or {}).get("metadata") or {}
            if body is None:
                if obj is None or meta.get("uid") in (None, uid):
                    self._overlay.pop(key, None)
            elif obj is None:
                if meta.get("uid") != uid:
                    self._overlay.pop(key, None)
            elif newer(meta.get("resourceVersion"), rv):
                self._overlay.pop(key, None)

    def overlay_size(self) -> int:
        with self._lock:
            return len(self._overlay) + len(self._settled)
