"""The reflectors' pure parts: paging, what a re-list finds gone, namespace scope, and the sink
that files children in the cache and wakes their owners."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from kubernetes.client.exceptions import ApiException

from modelops.controllers import runtime, watches
from modelops.k8s.cache import Cache
from modelops.k8s.reflector import LISTED, Reflector, scope
from modelops.lifecycle import naming


def obj(namespace: str, name: str, rv: str = "1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": rv, "labels": labels}}


class Pages:
    """A list call answering in pages of two, with continue tokens, as the API server pages."""

    def __init__(self, items: list[dict[str, Any]], rv: str = "42") -> None:
        self.items, self.rv, self.calls = items, rv, []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        start = int(kwargs.get("_continue") or 0)
        page = self.items[start : start + 2]
        more = start + 2 < len(self.items)
        meta = {"resourceVersion": self.rv, **({"continue": str(start + 2)} if more else {})}
        answer = {"apiVersion": "batch/v1", "kind": "JobList", "items": page, "metadata": meta}
        return SimpleNamespace(data=orjson.dumps(answer))


class Sink:
    def __init__(self, held: list[tuple[str, str]] | None = None) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.bodies: list[dict[str, Any]] = []
        self.held = held or []

    def event(self, kind: str, type_: str | None, body: dict[str, Any]) -> None:
        self.events.append((type_, body["metadata"]["name"]))
        self.bodies.append(body)

    def keys(self, kind: str) -> list[tuple[str, str]]:
        return list(self.held)


def reflector(sink: Sink, pages: Pages, **kwargs: Any) -> Reflector:
    r = Reflector(SimpleNamespace(), "jobs", sink, page=2, selector="app=x", **kwargs)  # type: ignore[arg-type]
    r._list = pages
    return r


def test_a_list_comes_in_pages_and_ends_at_its_resource_version() -> None:
    sink, pages = Sink(), Pages([obj("ns", f"j{i}") for i in range(5)])
    assert reflector(sink, pages).relist() == "42"
    assert sink.events == [(LISTED, f"j{i}") for i in range(5)]
    assert [c.get("_continue") for c in pages.calls] == [None, "2", "4"]
    assert all(c["limit"] == 2 and c["label_selector"] == "app=x" for c in pages.calls)


def test_listed_objects_are_cached_with_the_kind_a_watch_event_would_carry() -> None:
    """The API server leaves apiVersion and kind out of a list's items; without them every cached
    object differs from the manifest applied to it, and a restart re-applied them all."""
    sink = Sink()
    reflector(
        sink, Pages([obj("ns", "j0"), {**obj("ns", "j1"), "kind": "Job", "apiVersion": "batch/v1"}])
    ).relist()
    assert [(b["apiVersion"], b["kind"]) for b in sink.bodies] == [("batch/v1", "Job")] * 2


def test_a_relist_reports_what_went_while_no_watch_was_open() -> None:
    """After a 410 the watch starts over from a list: a child deleted meanwhile must still wake its
    owner, so whatever the cache holds that the list lacks is DELETED."""
    sink = Sink(held=[("ns", "kept"), ("ns", "gone"), ("other", "elsewhere")])
    reflector(sink, Pages([obj("ns", "kept")])).relist()
    assert sink.events == [(LISTED, "kept"), ("DELETED", "gone"), ("DELETED", "elsewhere")]


def test_a_namespace_reflector_relists_only_its_namespace() -> None:
    sink = Sink(held=[("ns", "gone"), ("other", "not-mine")])
    r = reflector(sink, Pages([]))
    r.namespace = "ns"
    r.relist()
    assert sink.events == [("DELETED", "gone")]


def test_an_expired_watch_lists_again_and_other_failures_retry_from_where_it_was() -> None:
    """410 Gone: the server no longer has the resourceVersion, so only a new list is complete.
    Anything else (the API server away, a connection reset) resumes the watch where it was."""
    sink = Sink(held=[("ns", "gone")])
    r = reflector(sink, Pages([obj("ns", "kept")], rv="50"), backoffs=(0.01,))
    r.resource_version = "7"
    watched: list[str | None] = []

    def watch() -> None:
        watched.append(r.resource_version)
        if len(watched) == 1:
            raise ApiException(status=410, reason="Expired")
        if len(watched) == 2:
            raise ConnectionResetError("reset by peer")
        r.stop()

    r.watch = watch  # type: ignore[method-assign]
    r.run()
    assert watched == ["7", "50", "50"]
    assert sink.events == [(LISTED, "kept"), ("DELETED", "gone")] and r.synced.is_set()


def test_scope_watches_names_one_by_one_and_patterns_cluster_wide() -> None:
    assert scope([])[0] == [None]
    names, keep = scope(["a", "b"])
    assert names == ["a", "b"] and keep("anything")
    names, keep = scope(["ml-*", "!ml-test"])
    assert names == [None]
    assert keep("ml-prod") and not keep("ml-test") and not keep("default")
    names, keep = scope(["!kube-system"])
    assert keep("default") and not keep("kube-system")


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Children on a cache of its own, its wake-ups run at once; the version queue records keys."""
    cache = Cache()
    woken: list[tuple[str, str]] = []
    monkeypatch.setattr(runtime, "cache", cache)
    monkeypatch.setitem(
        runtime.queues, "ModelVersion", SimpleNamespace(add=lambda key, p=0: woken.append(key))
    )
    monkeypatch.setitem(
        runtime.queues, "RetrainPolicy", SimpleNamespace(add=lambda key, p=0: woken.append(key))
    )
    monkeypatch.setattr(watches, "_seen", {})
    monkeypatch.setattr(watches, "_pod_failures", {})
    loop = SimpleNamespace(call_soon_threadsafe=lambda fn, *args: fn(*args))
    children = watches.Children(cache, loop)  # type: ignore[arg-type]
    children.woken = woken
    return children


def owned(namespace: str, name: str, version: str, component: str, **more: Any) -> dict[str, Any]:
    labels = {**watches.OWNED, naming.LABEL_VERSION: version, naming.LABEL_COMPONENT: component}
    body = obj(namespace, name, **labels)
    body.update(more)
    return body


def test_children_are_cached_whole_and_wake_their_version(sink: Any) -> None:
    sink.event("jobs", "ADDED", owned("ns", "v1-train", "v1", "trainer", status={"active": 1}))
    assert sink.cache.get("jobs", "ns", "v1-train")["status"] == {"active": 1}
    assert sink.woken == [("ns", "v1")]
    sink.event("jobs", "MODIFIED", owned("ns", "v1-train", "v1", "trainer", status={"active": 2}))
    assert sink.woken == [("ns", "v1")], "a running-pod count decides nothing"
    sink.event("jobs", "MODIFIED", owned("ns", "v1-train", "v1", "trainer", status={"succeeded": 1}))
    assert sink.woken == [("ns", "v1")] * 2
    sink.event("jobs", "DELETED", owned("ns", "v1-train", "v1", "trainer"))
    assert sink.cache.get("jobs", "ns", "v1-train") is None and sink.cache.keys("jobs") == []
    assert sink.woken == [("ns", "v1")] * 3


def test_a_child_found_gone_by_a_relist_wakes_its_version_from_the_cached_copy(sink: Any) -> None:
    sink.event("deployments", LISTED, owned("ns", "v1", "v1", "server", status={"readyReplicas": 1}))
    sink.woken.clear()
    sink.event("deployments", "DELETED", {"metadata": {"namespace": "ns", "name": "v1"}})
    assert sink.woken == [("ns", "v1")] and sink.cache.get("deployments", "ns", "v1") is None
    sink.event("deployments", "DELETED", {"metadata": {"namespace": "ns", "name": "never-seen"}})
    assert sink.woken == [("ns", "v1")]


def test_pods_are_filed_by_owner_and_wake_it_only_on_what_the_planner_reads(sink: Any) -> None:
    failed = {"containerStatuses": [{"state": {"terminated": {"exitCode": 1, "message": "bad data"}}}]}
    sink.event("pods", "ADDED", owned("ns", "p1", "v1", "trainer", status={}))
    assert [p.name for p in sink.cache.values("pods", "ns", "v1/trainer")] == ["p1"]
    assert sink.woken == [], "a pod without failure, report or pool label decides nothing"
    sink.event("pods", "MODIFIED", owned("ns", "p1", "v1", "trainer", status=failed))
    assert sink.cache.values("pods", "ns", "v1/trainer")[0].failure == "bad data"
    assert sink.woken == [("ns", "v1")]
    assert sink.keys("pods") == [("ns", "p1")]
    sink.event("pods", "DELETED", {"metadata": {"namespace": "ns", "name": "p1"}})  # found gone by a relist
    assert sink.cache.values("pods", "ns", "v1/trainer") == []
    assert sink.woken == [("ns", "v1"), ("ns", "v1")], "its failure went with it"
    assert sink.keys("pods") == []


def test_the_work_queues_wait_for_the_reflectors_first_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before its children are listed a version would plan as if it had none (a new Job, a new
    Deployment): controller-runtime's WaitForCacheSync."""
    r = Reflector(SimpleNamespace(), "jobs", Sink())  # type: ignore[arg-type]
    monkeypatch.setattr(runtime, "reflectors", [r])
    started: list[int] = []

    class Queue:
        async def run(self, workers: int, paused: object) -> None:
            started.append(workers)

    async def scenario() -> None:
        task = asyncio.create_task(runtime._serve(Queue(), 3, None))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert not started
        r.synced.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert started == [3]
