"""Desired vs observed: the comparisons that keep the operator at 0 writes in a steady state."""

from __future__ import annotations

from typing import Any

import orjson

from modelops.k8s.cache import Cache, newer, pack, strip, unpack, written_last_by
from modelops.lifecycle.patches import contains, merge_diff, merge_patch


def test_merge_diff_is_empty_when_everything_desired_is_there():
    current = {"phase": "Serving", "serving": {"replicas": 1, "readyReplicas": 1}, "timestamps": {"a": "1"}}
    assert (
        merge_diff(current, {"phase": "Serving", "serving": {"replicas": 1}, "timestamps": {"a": "1"}}) == {}
    )


def test_merge_diff_sends_only_what_changed_and_deletes_with_null():
    current = {"phase": "Deploying", "serving": {"replicas": 1}, "timestamps": {"a": "1"}, "x": 1}
    desired = {"phase": "Serving", "serving": None, "timestamps": {"a": "1", "b": "2"}, "y": None}
    patch = merge_diff(current, desired)
    assert patch == {"phase": "Serving", "serving": None, "timestamps": {"b": "2"}}
    assert merge_diff(merge_patch(current, patch), desired) == {}


def test_merge_diff_replaces_lists_whole():
    assert merge_diff({"c": [1, 2]}, {"c": [1, 2]}) == {}
    assert merge_diff({"c": [1, 2]}, {"c": [2, 1]}) == {"c": [2, 1]}


def test_contains_ignores_what_the_api_server_defaults():
    desired = {
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "s", "ports": [{"containerPort": 8080}]}]}},
        }
    }
    observed = {
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "template": {
                "spec": {
                    "containers": [{"name": "s", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
                    "dnsPolicy": "ClusterFirst",
                }
            },
        },
        "status": {"readyReplicas": 2},
    }
    assert contains(observed, desired)


def test_contains_sees_a_changed_value_or_a_list_of_another_length():
    observed = {"spec": {"replicas": 2, "selector": {"a": "1"}, "ports": [{"port": 80}]}}
    assert not contains(observed, {"spec": {"replicas": 0}})
    assert not contains(observed, {"spec": {"selector": {"a": "2"}}})
    assert not contains(observed, {"spec": {"ports": [{"port": 80}, {"port": 81}]}})
    assert not contains(observed, {"spec": {"paused": False}})
    assert contains({"x": 1.0}, {"x": 1}) and not contains({"x": True}, {"x": 1})


def _obj(name: str, rv: str, uid: str = "u1", **extra: object) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": uid}, **extra}


class FakeStore(list):
    """Kopf's index store: an iterable of values."""


def test_cache_shows_our_write_until_the_watch_catches_up():
    index = {("ns", "a"): FakeStore([_obj("a", "10", spec={"v": 1})])}
    cache = Cache()
    cache.bind({"modelops_versions": index})
    cache.wrote("versions", _obj("a", "12", spec={"v": 2}))
    assert cache.get("versions", "ns", "a")["spec"] == {"v": 2}
    index[("ns", "a")] = FakeStore([_obj("a", "12", spec={"v": 2}, status={"watch": True})])
    assert cache.get("versions", "ns", "a")["status"] == {"watch": True}
    cache.caught_up("versions", "ns", "a", index[("ns", "a")][0])
    assert cache.overlay_size() == 0


def test_a_write_the_watch_delivered_first_or_that_changed_nothing_leaves_no_overlay_entry():
    """No event would come to drop such an entry: after a burst of 1,000 versions it held 332
    whole objects."""
    index = {("ns", "a"): FakeStore([pack(_obj("a", "12", spec={"v": 2}), "versions")])}
    cache = Cache()
    cache.bind({"modelops_versions": index})
    cache.wrote("versions", _obj("a", "12", spec={"v": 2}), settled=True)  # the watch was first
    assert cache.overlay_size() == 0
    assert cache.get("versions", "ns", "a")["spec"] == {"v": 2}
    assert not cache.echo("versions", "ns", "a", _obj("a", "13"))  # the next change wakes


def test_a_read_drops_an_overlay_entry_the_cache_has_caught_up_with():
    index = {("ns", "a"): FakeStore([_obj("a", "10")])}
    cache = Cache()
    cache.bind({"modelops_versions": index})
    cache.wrote("versions", _obj("a", "12", spec={"v": 2}))
    assert cache.overlay_size() == 1
    index[("ns", "a")] = FakeStore([_obj("a", "12", spec={"v": 2})])  # stored without caught_up
    assert cache.get("versions", "ns", "a")["spec"] == {"v": 2}
    assert cache.overlay_size() == 0


def test_cache_hides_what_we_deleted_but_not_a_new_object_of_the_same_name():
    index = {("ns", "a"): FakeStore([_obj("a", "10", uid="old")])}
    cache = Cache()
    cache.bind({"modelops_deployments": index})
    cache.deleted("deployments", "ns", "a", "old")
    assert cache.get("deployments", "ns", "a") is None
    index[("ns", "a")] = FakeStore([_obj("a", "20", uid="new")])
    assert cache.get("deployments", "ns", "a")["metadata"]["uid"] == "new"


def test_resource_versions_and_stripping():
    assert newer("12", "10") and newer("10", "10") and not newer("9", "10") and not newer(None, "1")
    body = {"metadata": {"name": "a", "managedFields": [{"manager": "x"}]}, "spec": {}}
    assert "managedFields" not in strip(body)["metadata"] and "managedFields" in body["metadata"]


def test_packed_cache_entries_read_back_whole_and_each_reader_gets_its_own_copy():
    body = _obj("a", "10", spec={"template": {"containers": [{"name": "server", "args": ["serve"]}]}})
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    cache = Cache()
    cache.bind({"modelops_jobs": {("ns", "a"): FakeStore([pack(body, "jobs")])}})
    first = cache.get("jobs", "ns", "a")
    assert first == strip(body)
    first["spec"]["template"]["containers"].clear()
    assert cache.get("jobs", "ns", "a") == strip(body), "a reader changed what the cache holds"


def test_objects_of_one_kind_are_deflated_against_the_first_and_read_back_exactly():
    def job(name: str, image: str) -> dict:
        body = _obj(
            name, "10", spec={"template": {"spec": {"containers": [{"name": "train", "image": image}]}}}
        )
        body["metadata"]["labels"] = {
            f"modelops.dev/{k}": f"{name}-{k}" for k in ("model", "version", "component")
        }
        body["status"] = {
            "conditions": [{"type": t, "status": "False"} for t in ("Complete", "Failed", "Suspended")]
        }
        return body

    first, second = job("fraud-v1", "modelops:1"), job("churn-v7", "modelops:2")
    packed = [pack(first, "unit-jobs"), pack(second, "unit-jobs")]
    assert packed[1].zdict is packed[0].zdict, "one dictionary per kind, never replaced"
    assert [unpack(p) for p in packed] == [strip(first), strip(second)]
    assert len(packed[1].data) < len(orjson.dumps(second)) / 3
    assert unpack(pack(second, "unit-other-jobs")) == strip(second)


def test_a_compare_and_swap_writer_planned_with_every_older_event():
    cache = Cache()
    cache.wrote("versions", _obj("a", "11"), settled=True)
    cache.wrote("versions", _obj("a", "12"), settled=True)  # written from 11, before 11's echo came
    assert cache.echo("versions", "ns", "a", _obj("a", "11"), older_too=True)
    assert cache.echo("versions", "ns", "a", _obj("a", "12"), older_too=True)
    assert not cache.echo("versions", "ns", "a", _obj("a", "13"), older_too=True)  # someone else's


def test_cache_shows_an_object_we_deleted_while_a_finalizer_holds_it():
    index = {("ns", "a"): FakeStore([_obj("a", "10", uid="u")])}
    cache = Cache()
    cache.bind({"modelops_versions": index})
    cache.deleted("versions", "ns", "a", "u")
    assert cache.get("versions", "ns", "a") is None
    held = _obj("a", "11", uid="u")
    held["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    index[("ns", "a")] = FakeStore([held])
    assert cache.get("versions", "ns", "a")["metadata"]["deletionTimestamp"]


def test_only_the_echo_of_a_settled_write_is_recognised_and_only_once():
    cache = Cache()
    cache.wrote("versions", _obj("a", "12"), settled=True)
    assert not cache.echo("versions", "ns", "a", _obj("a", "11"))  # an older event: still waiting
    assert cache.echo("versions", "ns", "a", _obj("a", "12"))
    assert not cache.echo("versions", "ns", "a", _obj("a", "12"))  # a replay wakes as usual
    cache.wrote("versions", _obj("a", "13"), settled=True)
    assert not cache.echo("versions", "ns", "a", _obj("a", "14"))  # someone wrote after us
    assert not cache.echo("versions", "ns", "a", _obj("a", "13"))
    cache.wrote("versions", _obj("a", "15"))  # not settled (e.g. the policy's write): wakes
    assert not cache.echo("versions", "ns", "a", _obj("a", "15"))
    cache.wrote("jobs", _obj("j", "16"), settled=True)
    cache.echo("jobs", "ns", "j", None)  # gone before its echo
    cache.caught_up("jobs", "ns", "j", None)
    cache.caught_up("versions", "ns", "a", _obj("a", "15"))
    assert cache.overlay_size() == 0


def _managed(*entries: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "managedFields": [
                {"manager": m, "operation": "Update", "subresource": sub, "time": t} for m, sub, t in entries
            ]
        }
    }


def test_the_newest_write_is_known_by_its_managers_timestamp_and_a_tie_is_someone_elses():
    created = ("kubectl", "", "2026-11-29T10:00:00Z")
    ours = ("modelops-operator", "status", "2026-11-29T10:00:01Z")
    assert written_last_by(_managed(created, ours), "modelops-operator", "status")
    report = ("OpenAPI-Generator", "status", "2026-11-29T10:00:05Z")
    assert not written_last_by(_managed(created, ours, report), "modelops-operator", "status")
    same_second = ("OpenAPI-Generator", "status", "2026-11-29T10:00:01Z")
    assert not written_last_by(_managed(created, ours, same_second), "modelops-operator", "status")
    # The same manager through the main resource (a finalizer) is another entry.
    meta = ("modelops-operator", "", "2026-11-29T10:00:09Z")
    assert not written_last_by(_managed(created, ours, meta), "modelops-operator", "status")
    assert not written_last_by({"metadata": {}}, "modelops-operator", "status")


def test_kopfs_index_handler_leaves_our_write_visible_until_kopf_has_stored_its_result(monkeypatch):
    """Kopf stores an index handler's result only after every index handler of the event has run,
    then runs the event handlers. A reconcile reading in between must still see our write: a version
    that had just promoted itself once read its status new, then old, and saw no champion."""
    import asyncio

    from modelops.controllers import runtime, watches

    cache = Cache()
    monkeypatch.setattr(runtime, "cache", cache)
    index = {("ns", "a"): FakeStore([pack(_obj("a", "10"), "versions")])}
    cache.bind({"modelops_versions": index})
    written = _obj("a", "12", status={"promoted": "now"})
    cache.wrote("versions", written, settled=True)
    asyncio.run(watches._whole("versions")(namespace="ns", name="a", body=written))
    assert cache.get("versions", "ns", "a")["status"] == {"promoted": "now"}  # Kopf has not stored it yet
    index[("ns", "a")] = FakeStore([pack(written, "versions")])  # Kopf stores, then runs the handlers
    watches._caught_up("versions", "ns", "a", "MODIFIED", written)
    assert cache.get("versions", "ns", "a")["status"] == {"promoted": "now"}
