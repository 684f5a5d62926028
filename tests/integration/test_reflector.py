"""The children's reflectors against the real API server: a paged list, then the watch from its
resourceVersion with the server's label selector. (A watch the server expires, 410 Gone, cannot be
had on cue from this API server, whose watch cache keeps every event since it started: the list
that follows one is tested in tests/unit/test_reflector.py.)"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from modelops.k8s.reflector import LISTED, Reflector
from tests.support.wait import eventually

SELECTOR = "app.kubernetes.io/managed-by=modelops"


class Sink:
    """What the reflector delivered, and the names it would hold (as the cache does)."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def event(self, kind: str, type_: str | None, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        with self._lock:
            self.events.append((type_, meta["name"]))
            if type_ == "DELETED":
                self.held.discard((meta["namespace"], meta["name"]))
            else:
                self.held.add((meta["namespace"], meta["name"]))

    def keys(self, kind: str) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.held)

    def names(self, type_: str | None) -> set[str]:
        with self._lock:
            return {name for t, name in self.events if t == type_}


def service(core: client.CoreV1Api, namespace: str, name: str, owned: bool = True) -> None:
    labels = {"app.kubernetes.io/managed-by": "modelops"} if owned else {"app": "someone-else"}
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}], "selector": {"x": name}},
        },
    )


def test_a_reflector_lists_in_pages_then_watches_only_what_is_labelled(api_client, namespace) -> None:
    core = client.CoreV1Api(api_client)
    for i in range(3):
        service(core, namespace, f"before-{i}")
    service(core, namespace, "not-ours", owned=False)
    sink = Sink()
    r = Reflector(api_client, "services", sink, namespace=namespace, selector=SELECTOR, page=2)
    r.start()
    try:
        assert r.synced.wait(30)
        assert sink.names(LISTED) == {"before-0", "before-1", "before-2"}
        service(core, namespace, "after")
        service(core, namespace, "after-not-ours", owned=False)
        core.delete_namespaced_service("before-0", namespace)
        eventually(lambda: "after" in sink.names("ADDED") and "before-0" in sink.names("DELETED"))
        core.patch_namespaced_service("after", namespace, {"metadata": {"annotations": {"a": "b"}}})
        eventually(lambda: "after" in sink.names("MODIFIED"))
        assert not {"not-ours", "after-not-ours"} & {name for _, name in sink.events}
    finally:
        r.stop()
