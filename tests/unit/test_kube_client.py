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
from modelops.k8s.kube import Kube


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
