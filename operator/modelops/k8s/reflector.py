"""Reflectors: list, then watch from the list's resourceVersion, as client-go's reflector does.

The operator's children (Jobs, Deployments, Services, autoscalers, pods) are watched here rather
than by Kopf. Kopf gives every object it watches a worker task, a memory record and an index
store, and at a start it holds each worker, with its parsed body, until every index is filled:
at 1,000 versions that was about 6,000 children, some 11 MiB at steady state and half of a
restart's 400 MiB. A child needs none of it: its latest state in the cache and a call to wake
its owner. One thread per kind (and namespace) lists in pages of `page` and watches with the
`kubernetes` client's `Watch`, passing each object, as a plain dict, to its sink.

The client's own `informer.SharedInformer` is not used: it keeps every object as a deserialised
model (several times the JSON) and lists in one answer.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import Watch

Obj = dict[str, Any]
log = logging.getLogger(__name__)

LISTED = None
"""The event type of an object delivered by a list (Kopf's convention): neither added nor changed
as far as the reflector knows, only the state of the world at its start or after a re-list."""

APIS: dict[str, tuple[type, str]] = {
    "jobs": (client.BatchV1Api, "job"),
    "deployments": (client.AppsV1Api, "deployment"),
    "services": (client.CoreV1Api, "service"),
    "hpas": (client.AutoscalingV2Api, "horizontal_pod_autoscaler"),
    "pods": (client.CoreV1Api, "pod"),
}
"""kind → the generated API class and the resource's name in its method names."""


class Sink(Protocol):
    def event(self, kind: str, type_: str | None, body: Obj) -> None:
        """An object as listed (type None), ADDED, MODIFIED or DELETED. A re-list's DELETED for an
        object that went while no watch was open carries only its namespace and name."""

    def keys(self, kind: str) -> Iterable[tuple[str, str]]:
        """(namespace, name) of every object of `kind` the sink holds."""


def scope(namespaces: Iterable[str]) -> tuple[list[str | None], Callable[[str], bool]]:
    """The namespaces to watch (None: all) and which namespaces' objects to keep.

    Plain names are watched one by one; a glob pattern among them (Kopf accepts `ml-*`, and
    `!kube-system` to exclude) makes one cluster-wide watch, filtered here.
    """
    names = [n for n in namespaces if n]
    if not names:
        return [None], lambda _: True
    if not any(c in n for n in names for c in "*?[!"):
        return list(names), lambda _: True
    include = [n for n in names if not n.startswith("!")] or ["*"]
    exclude = [n[1:] for n in names if n.startswith("!")]

    def keep(namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, p) for p in include) and not any(
            fnmatch.fnmatchcase(namespace, p) for p in exclude
        )

    return [None], keep


class Reflector:
    """One kind in one namespace (None: all), with the server-side label selector `selector`."""

    def __init__(
        self,
        api_client: client.ApiClient,
        kind: str,
        sink: Sink,
        *,
        namespace: str | None = None,
        selector: str = "",
        keep: Callable[[str], bool] = lambda _: True,
        page: int = 500,
        server_timeout: int = 60,
        client_timeout: float = 70.0,
        backoffs: tuple[float, ...] = (0.5, 1, 2, 3, 5),
    ) -> None:
        api, resource = APIS[kind]
        instance = api(api_client)
        self.kind, self.namespace = kind, namespace
        self._list: Callable[..., Any] = (
            getattr(instance, f"list_{resource}_for_all_namespaces")
            if namespace is None
            else getattr(instance, f"list_namespaced_{resource}")
        )
        self._args: tuple[str, ...] = () if namespace is None else (namespace,)
        self._sink, self._selector, self._keep = sink, selector, keep
        self._page, self._server_timeout, self._client_timeout = page, server_timeout, client_timeout
        self._backoffs = backoffs
        self.resource_version: str | None = None
        """Where the next watch starts; None: list first (at start, and when the server expired it)."""
        self.synced = threading.Event()
        """Set once the first list has reached the sink: the cache holds every object as of then."""
        self._stop = threading.Event()
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None

    # --- the loop --------------------------------------------------------------------------------
    def start(self) -> None:
        where = self.namespace or "all namespaces"
        self._thread = threading.Thread(target=self.run, name=f"watch-{self.kind}-{where}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self.resource_version = self.relist()
                    self.synced.set()
                self.watch()
                failures = 0
            except ApiException as e:
                if e.status == 410:  # the server no longer has our resourceVersion: list again
                    log.info("%s: watch expired (%s), listing again", self.kind, e.reason)
                    self.resource_version = None
                    continue
                failures += 1
                log.warning("%s: %s (HTTP %s), retrying", self.kind, e.reason, e.status)
            except Exception as e:  # connection refused, reset, timed out: the API server is away
                failures += 1
                log.warning("%s: %s: %s, retrying", self.kind, type(e).__name__, e)
            if failures:
                self._stop.wait(self._backoffs[min(failures, len(self._backoffs)) - 1])

    def relist(self) -> str:
        """List in pages, hand each object to the sink, and the DELETED of whatever the sink holds
        that the list no longer has; return the list's resourceVersion."""
        seen: set[tuple[str, str]] = set()
        token: str | None = None
        rv = ""
        while True:
            kwargs: dict[str, Any] = {"limit": self._page, "_preload_content": False}
            if self._selector:
                kwargs["label_selector"] = self._selector
            if token:
                kwargs["_continue"] = token
            answer = orjson.loads(self._list(*self._args, **kwargs).data)
            # A list's items carry no apiVersion or kind (its answer does: "apps/v1", "DeploymentList");
            # a watch event's object does. Cached without them, every object listed at a start
            # differed from the manifest applied to it, so a restart among 10,000 versions re-applied
            # every Deployment and Service that had not changed.
            type_meta = {
                "apiVersion": answer.get("apiVersion"),
                "kind": (answer.get("kind") or "").removesuffix("List") or None,
            }
            for body in answer.get("items") or ():
                meta = body.get("metadata") or {}
                if not self._keep(meta.get("namespace", "")):
                    continue
                for field, value in type_meta.items():
                    if value and field not in body:
                        body[field] = value
                seen.add((meta.get("namespace", ""), meta.get("name", "")))
                self._sink.event(self.kind, LISTED, body)
            del answer["items"]
            meta = answer.get("metadata") or {}
            rv, token = meta.get("resourceVersion") or rv, meta.get("continue")
            if not token:
                break
        for namespace, name in list(self._sink.keys(self.kind)):
            mine = self.namespace in (None, namespace) and self._keep(namespace)
            if mine and (namespace, name) not in seen:
                self._sink.event(self.kind, "DELETED", {"metadata": {"namespace": namespace, "name": name}})
        return rv

    def watch(self) -> None:
        """Watch until the server ends the stream (`server_timeout`), then return to be called again."""
        self._watch = Watch()
        kwargs: dict[str, Any] = {
            "resource_version": self.resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self._server_timeout,
            "_request_timeout": (10, self._client_timeout),
            "deserialize": False,
        }
        if self._selector:
            kwargs["label_selector"] = self._selector
        try:
            for event in self._watch.stream(self._list, *self._args, **kwargs):
                if self._stop.is_set():
                    return
                type_, body = event.get("type"), event.get("object") or {}
                meta = body.get("metadata") or {}
                if type_ in ("ADDED", "MODIFIED", "DELETED") and self._keep(meta.get("namespace", "")):
                    self._sink.event(self.kind, type_, body)
                self.resource_version = meta.get("resourceVersion") or self.resource_version
        finally:
            self._watch = None
