"""The operator's API client as its worker pool uses it: enough connections, one discovery."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3
from kubernetes import client

from modelops.k8s import kube as kube_module
from modelops.k8s.kube import Conflict, Kube
from modelops.lifecycle import naming, resources


def test_the_connection_pool_holds_a_connection_per_worker() -> None:
    """urllib3 would keep cpu_count * 5 and open (and throw away) one more per request beyond."""
    k = Kube(connections=64, qps=100, burst=200)
    assert k.api.configuration.connection_pool_maxsize >= 64
    assert k.api.rest_client.pool_manager.connection_pool_kw["maxsize"] >= 64


def test_the_dynamic_client_is_built_once_however_many_workers_ask_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []
    lock = threading.Lock()

    class SlowDiscovery:
        """Stands in for DynamicClient, whose constructor reads the API server's discovery."""

        def __init__(self, api: Any) -> None:
            time.sleep(0.05)
            with lock:
                built.append(1)

    monkeypatch.setattr(kube_module, "DynamicClient", SlowDiscovery)
    k = Kube(connections=32)
    start = threading.Barrier(32)

    def first_reconcile(_: int) -> object:
        start.wait()
        return k.dyn

    with ThreadPoolExecutor(32) as pool:
        clients = set(map(id, pool.map(first_reconcile, range(32))))
    assert built == [1] and len(clients) == 1


def test_a_request_that_gets_no_answer_fails_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API server that accepted the connection and went silent (a half-open connection after a
    fail-over) must not hold a worker forever; a call's own timeout still wins."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    conf = client.Configuration()
    conf.host = f"http://127.0.0.1:{listener.getsockname()[1]}"
    conf.retries = False
    monkeypatch.setattr(client.Configuration, "get_default_copy", classmethod(lambda cls: conf))
    try:
        k = Kube(timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            k.core.list_namespace()
        assert 0.25 < time.monotonic() - t0 < 3
        t0 = time.monotonic()
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            k.core.list_namespace(_request_timeout=0.8)
        assert 0.75 < time.monotonic() - t0 < 3
    finally:
        listener.close()
        for s in held:
            s.close()


class _Core:
    """Records the Service patches a Kube sends; answers each as the API server would (a new resourceVersion)."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_namespaced_service(self, name: str, namespace: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(patch)
        rv = str(int(patch["metadata"]["resourceVersion"]) + 1)
        selector = {k: v for k, v in patch["spec"]["selector"].items() if v is not None}
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv, "uid": "svc"},
            "spec": {"selector": selector},
        }


def _champion_world(champion: str) -> tuple[Kube, _Core]:
    """iris-v1 and iris-r1, both validated; the stable Service selects `champion`, as the cache has it."""
    k = Kube()
    core = _Core()
    k.core = core  # type: ignore[assignment]
    for i, name in enumerate(("iris-v1", "iris-r1")):
        k.cache.wrote(
            "versions",
            {
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(10 + i), "uid": name},
                "spec": {"model": "iris"},
                "status": {"conditions": [{"type": "Validated", "status": "True"}]},
            },
        )
    k.cache.wrote(
        "services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "iris", "namespace": "ns", "resourceVersion": "20", "uid": "svc"},
            "spec": {"selector": naming.server_selector("iris", champion)},
        },
    )
    return k, core


def test_a_champion_acting_on_a_stale_plan_cannot_take_back_the_stable_service() -> None:
    """iris-v1 planned as the champion; iris-r1's promotion took the stable Service before iris-v1
    acted. The compare-and-swap on the cached resourceVersion would pass (the cache has r1's
    write), so the champion the plan saw is checked too: a Conflict, and no write (a CI run saw
    iris-v1 take the Service back and supersede the child its policy had just promoted)."""
    k, core = _champion_world("iris-r1")
    with pytest.raises(Conflict, match="selects iris-r1, not iris-v1"):
        k.set_stable_selector("ns", "iris", naming.server_selector("iris", "iris-v1"), champion="iris-v1")
    assert core.patches == []
    assert k.set_stable_selector("ns", "iris", naming.pool_selector("iris"), champion="iris-r1")
    assert core.patches[-1]["metadata"]["resourceVersion"] == "20"


def test_a_promotion_decided_against_another_champion_is_decided_again() -> None:
    k, core = _champion_world("iris-r1")
    desired = resources.stable_service("iris", "ns", "iris-v1")
    owner = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "iris-v1", "uid": "v1"},
    }
    with pytest.raises(Conflict, match="selects iris-r1, not no champion"):
        k.take_stable_service(desired, owner, model="iris", replacing=None)
    assert core.patches == []
    assert k.take_stable_service(desired, owner, model="iris", replacing="iris-r1") == "iris-r1"
    # Holding it by its own write in this pass (a champion restoring its Service) is no race.
    assert k.take_stable_service(desired, owner, model="iris", replacing=None) == "iris-v1"
