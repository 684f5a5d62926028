"""The cap on Service creations: a reconcile finding no slot free is told at once and woken later."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from modelops.controllers import runtime, watches
from modelops.k8s import kube as kube_module
from modelops.k8s.cache import Cache
from modelops.k8s.kube import Kube
from modelops.k8s.slots import Busy, Slots


def test_a_taker_beyond_the_limit_is_refused_at_once_and_the_first_waiter_is_woken_first() -> None:
    slots = Slots("Service creations", 2)
    woken: list[str] = []
    with slots.take(), slots.take():
        with pytest.raises(Busy, match="2 Service creations in flight"), slots.take():
            pass
        slots.when_free("a", lambda: woken.append("a"))
        slots.when_free("b", lambda: woken.append("b"))
        slots.when_free("a", lambda: woken.append("a"))  # asked again before its wake: once
        assert slots.waiting() == 2
    assert woken == ["a", "b"], "each release wakes one waiter, in the order they came"
    assert slots.taken == 0 and slots.waiting() == 0


def test_a_waiter_is_woken_at_once_when_a_slot_freed_before_it_asked() -> None:
    """A release between the refusal and `when_free` would otherwise be a wake-up lost."""
    slots = Slots("Service creations", 1)
    woken: list[str] = []
    slots.when_free("a", lambda: woken.append("a"))
    assert woken == ["a"] and slots.waiting() == 0


def test_a_freed_slot_wakes_one_waiter_and_its_invitation_passes_on_when_it_is_done() -> None:
    """Other reconciles ending wake nobody more: one freed slot, one waiter woken (waking one at
    every reconcile's end woke dozens per slot, all but one to find it taken). A woken version
    that no longer needs the slot (deleted, changed) passes it on when its reconcile ends."""
    slots = Slots("Service creations", 1)
    woken: list[str] = []
    with slots.take():
        for key in "abc":
            slots.when_free(key, lambda key=key: woken.append(key))
    assert woken == ["a"]
    for other in ("x", "y", "z"):
        slots.done(other)
    assert woken == ["a"], "a holds the free slot's invitation"
    slots.done("a")  # a's reconcile ended without taking the slot
    assert woken == ["a", "b"]
    with slots.take():  # b takes it
        slots.done("b")
        assert woken == ["a", "b"], "the slot is b's until b's creation returns"
    assert woken == ["a", "b", "c"] and slots.waiting() == 0


def test_a_negative_limit_is_refused_at_start_instead_of_refusing_every_creation() -> None:
    with pytest.raises(ValueError, match="give 0 \\(no cap\\) or more"):
        Slots("Service creations", -1)


def test_no_limit_never_refuses() -> None:
    slots = Slots("Service creations", 0)
    with slots.take(), slots.take(), slots.take():
        assert slots.taken == 3


def test_a_failed_creation_gives_its_slot_back() -> None:
    slots = Slots("Service creations", 1)
    with pytest.raises(RuntimeError), slots.take():
        raise RuntimeError("refused by the API server")
    with slots.take():
        assert slots.taken == 1


def test_the_limit_holds_across_threads() -> None:
    slots = Slots("Service creations", 2)
    inside, most, lock = [0], [0], threading.Lock()
    go = threading.Barrier(16)

    def creator() -> None:
        go.wait()
        for _ in range(200):
            try:
                with slots.take():
                    with lock:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    with lock:
                        inside[0] -= 1
            except Busy:
                pass

    threads = [threading.Thread(target=creator) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] <= 2 and slots.taken == 0


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    }


def test_only_a_new_service_needs_a_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a Service allocates a ClusterIP; changing one that exists does not."""
    applied: list[str] = []

    def apply(self: Kube, manifest: dict[str, Any], owner: Any = None) -> dict[str, Any]:
        applied.append(manifest["metadata"]["name"])
        return {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "2", "uid": "u"}}

    monkeypatch.setattr(kube_module.Kube, "apply", apply)
    cache = Cache()
    k = Kube(cache=cache, service_creations=1)
    existing = service("old")
    cache.wrote("services", {**existing, "metadata": {**existing["metadata"], "resourceVersion": "1"}})
    changed = service("old")
    changed["metadata"]["labels"]["tier"] = "gold"
    with k.service_slots.take():  # another worker is creating a Service
        with pytest.raises(Busy):
            k.ensure("services", service("new"))
        assert k.ensure("services", changed), "an update goes through"
        assert k.ensure("deployments", {**service("d"), "kind": "Deployment"}), "other kinds too"
    assert applied == ["old", "d"]
    assert k.ensure("services", service("new")) and applied[-1] == "new"
    assert k.service_slots.taken == 0


def test_a_version_waiting_for_a_slot_is_woken_by_the_slot_not_by_its_children(monkeypatch) -> None:
    """Its Deployment's progress woke it again and again, to find the slots taken each time (23 to
    35 reconciles a version in a burst over 100 models); a freed slot wakes it anyway."""

    class Queue:
        def __init__(self) -> None:
            self.keys: list[tuple[str, str]] = []

        def add(self, key: tuple[str, str], priority: int = 0) -> None:
            self.keys.append(key)

    def deployment(version: str) -> dict[str, Any]:
        labels = {**watches.OWNED, "modelops.dev/version": version, "modelops.dev/component": "server"}
        return {
            "metadata": {"name": version, "namespace": "ns", "labels": labels},
            "status": {"readyReplicas": 1},
        }

    slots = Slots("Service creations", 1)
    queue = Queue()
    monkeypatch.setattr(runtime, "_kube", SimpleNamespace(service_slots=slots))
    monkeypatch.setitem(runtime.queues, "ModelVersion", queue)
    with slots.take():
        slots.when_free(("ns", "waits"), lambda: queue.add(("ns", "waits")))
        for version in ("waits", "other"):
            watches._on_child("deployments", "MODIFIED", "ns", version, deployment(version))
        assert queue.keys == [("ns", "other")]
    assert queue.keys == [("ns", "other"), ("ns", "waits")], "the freed slot wakes it"
    assert not slots.awaits(("ns", "waits"))


def test_a_waiter_whose_next_reconcile_needed_no_wait_waits_no_more() -> None:
    """Woken by its own change, it took a free slot (or needed none): left waiting, its children's
    events would be held back until a stale wake (a shared-model burst took 451 s instead of 265)."""
    slots = Slots("Service creations", 1)
    woken: list[str] = []
    with slots.take():
        slots.when_free("a", lambda: woken.append("a"))
        slots.done("a")  # the reconcile that asked ends: still waiting
        assert slots.awaits("a")
        slots.done("a")  # a later reconcile, woken otherwise, that did not ask again
        assert not slots.awaits("a") and slots.waiting() == 0
    assert woken == []
