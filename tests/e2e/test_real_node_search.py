"""Hyperparameter search with every pod real: the operator pod fans a grid out as an Indexed Job
whose pods (containers of the project's image on the node) each evaluate their share and write it
to the real PV as uid 65532, then the final fit trains on the best parameters, which must be the
ones scikit-learn's own GridSearchCV finds on the same grid and folds.

Moved from the kwok suite, where the kubelet stand-in ran `search-shard` and `train` as host
processes: nothing here needs a fault on cue. The operator dying mid-search is its pod deleted
from under it (the Deployment brings a new one, which adopts the running search); a shard failing
is a real container failing to read a dataset that is not there. The node and the operator pod are
the session's (tests/e2e/conftest.py); this module has its own namespace and PV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.cluster.node import NODE_NAME
from tests.support.operator import OPERATOR_NS, OperatorDeployment
from tests.support.realnode import (
    GROUP,
    RUN_AS,
    VERSION,
    Versions,
    kubectl,
    marks,
    wait_status,
)
from tests.support.wait import eventually

pytestmark = marks()

NS = "real-search"
GRID = {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]}
INDEX = "batch.kubernetes.io/job-completion-index"
SEARCHERS = "app.kubernetes.io/component=searcher"


def show(mvs: Versions, *args: str) -> str:
    """kubectl output, printed so a run with -s shows what a user sees (the README quotes it)."""
    out = kubectl(mvs.real.kubeconfig, "-n", NS, *args).stdout
    print(f"\n$ kubectl {' '.join(args)}\n{out}")
    return out


def gridsearchcv_on_iris() -> GridSearchCV:
    """What the trainer is to match, built from scikit-learn alone: the ModelVersion's split
    (test size 0.25, seed 42, stratified), its pipeline (scaled numeric columns, the estimator
    seeded with the split's seed) and GridSearchCV's own folds for cv=4."""
    X, y = load_iris(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=42, stratify=y)
    pipeline = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numeric", StandardScaler(), [0, 1, 2, 3])])),
            ("estimator", LogisticRegression(max_iter=500, random_state=42)),
        ]
    )
    grid = {f"estimator__{k}": v for k, v in GRID.items()}
    return GridSearchCV(pipeline, grid, cv=4, scoring="accuracy").fit(X_train, y_train)


def restart_operator(mvs: Versions) -> None:
    """Delete the operator's pod, as a node drain or an eviction does; its Deployment makes another."""
    (old,) = mvs.core.list_namespaced_pod(
        OPERATOR_NS, label_selector="app.kubernetes.io/component=operator"
    ).items
    # Gone first (SIGTERM, Kopf's own shutdown), so that the Ready pod found next is the new one.
    kubectl(mvs.real.kubeconfig, "-n", OPERATOR_NS, "delete", "pod", old.metadata.name, "--timeout=90s")
    new = OperatorDeployment(mvs.real.kubeconfig, "").wait_ready(mvs.api)
    assert new.metadata.name != old.metadata.name


def test_a_search_fans_out_as_an_indexed_job_of_real_pods_and_finds_what_gridsearchcv_finds(
    mvs: Versions, store: Path, project_image: str
) -> None:
    mvs.create(
        "iris-hpo",
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
            "search": {"space": GRID, "cv": 4, "scoring": "accuracy", "parallelism": 3},
        },
    )
    job = eventually(lambda: mvs.jobs().get("iris-hpo-search"), timeout=120, what="the search Job")
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == ("Indexed", 3, 3)
    # The operator's pod goes mid-search; the new one adopts the search instead of redoing it.
    restart_operator(mvs)
    st = mvs.wait_phase("iris-hpo", "Serving")

    jobs = mvs.jobs()
    assert sorted(jobs) == ["iris-hpo-search", "iris-hpo-train"]
    assert jobs["iris-hpo-search"].metadata.uid == job.metadata.uid
    assert jobs["iris-hpo-search"].status.succeeded == 3
    # Each index ran once, in its own container of the project's image on the node.
    searchers = mvs.pods(f"modelops.dev/version=iris-hpo,{SEARCHERS}")
    assert sorted(p.metadata.annotations[INDEX] for p in searchers) == ["0", "1", "2"]
    assert all(
        p.spec.node_name == NODE_NAME
        and p.spec.containers[0].image == project_image
        and p.status.phase == "Succeeded"
        for p in searchers
    ), [(p.metadata.name, p.spec.node_name, p.status.phase) for p in searchers]
    assert len(mvs.pods("job-name=iris-hpo-train")) == 1

    # Each index wrote its share to the PV as uid 65532: every candidate exactly once.
    folder = store / "iris" / "_search" / "iris-hpo" / job.metadata.uid
    files = [folder / f"shard-{i}-of-3.json" for i in range(3)]
    assert all(f.stat().st_uid == RUN_AS for f in files), sorted(folder.iterdir())
    shares = [json.loads(f.read_text()) for f in files]
    assert [[t["candidate"] for t in s["trials"]] for s in shares] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert all(t["shard"] == s["shard"] for s in shares for t in s["trials"])

    gs = gridsearchcv_on_iris()
    search = st["training"]["search"]
    assert search["bestParams"] == {k.removeprefix("estimator__"): v for k, v in gs.best_params_.items()}
    assert search["bestScore"] == pytest.approx(gs.best_score_, abs=1e-12)
    assert search["bestStd"] == pytest.approx(gs.cv_results_["std_test_score"][gs.best_index_], abs=1e-12)
    assert (search["candidates"], search["shards"], search["method"]) == (8, 3, "grid")
    assert search["top"][0]["params"] == search["bestParams"]

    # The final fit trained on them; the full table and the card sit beside the model.
    artifact = store / "iris" / "iris-hpo"
    meta = json.loads((artifact / "metadata.json").read_text())
    assert meta["params"] == {"max_iter": 500, **search["bestParams"]}
    table = json.loads((artifact / "search.json").read_text())
    assert [t["rank"] for t in table["trials"]] == [int(r) for r in gs.cv_results_["rank_test_score"]]
    card = json.loads((artifact / "model-card.json").read_text())
    assert card["search"]["bestParams"] == search["bestParams"]
    assert search["table"] == "pvc://modelops-artifacts/iris/iris-hpo/search.json"
    assert st["timestamps"].keys() >= {"searchStarted", "searched", "trainingStarted"}

    show(mvs, "get", "mv", "iris-hpo", "-o", "wide")
    show(mvs, "get", "jobs", "-o", "custom-columns=NAME:.metadata.name,MODE:.spec.completionMode,"
         "COMPLETIONS:.spec.completions,SUCCEEDED:.status.succeeded")  # fmt: skip
    show(mvs, "get", "pods", "-l", SEARCHERS, "-o", "custom-columns=POD:.metadata.name,"
         "INDEX:.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index,PHASE:.status.phase")  # fmt: skip
    show(mvs, "get", "mv", "iris-hpo", "-o", "jsonpath={.status.training.search.bestParams}")
    show(mvs, "get", "mv", "iris-hpo", "-o", "jsonpath={.status.training.search.top[0:3]}")


def test_a_shard_container_that_cannot_read_its_data_fails_the_version_without_a_retry_or_a_final_fit(
    mvs: Versions,
) -> None:
    mvs.create(
        "iris-nodata",
        training={
            "dataset": {"uri": "file:///nonexistent/iris.csv", "target": "species"},
            "estimator": {"class": "LogisticRegression"},
            "search": {"space": {"C": [0.1, 1.0]}, "parallelism": 2},
        },
    )
    st = mvs.wait_phase("iris-nodata", "Failed")
    trained = next(c for c in st["conditions"] if c["type"] == "Trained")
    assert trained["reason"] == "SearchFailed", trained
    assert "search shard" in st["message"] and "/nonexistent/iris.csv" in st["message"], st["message"]
    assert st["history"][-1]["decision"] == "Failed" and st["history"][-1]["reason"] == "SearchFailed"
    job = mvs.jobs()["iris-nodata-search"]
    assert any(c.type == "Failed" and c.status == "True" for c in job.status.conditions or [])
    # Bad input exits 2, which fails its index at once (podFailurePolicy FailIndex): one pod an
    # index, each exit as the kubelet recorded it.
    selector = f"modelops.dev/version=iris-nodata,{SEARCHERS}"
    indexes = [p.metadata.annotations[INDEX] for p in mvs.pods(selector)]
    assert indexes and len(indexes) == len(set(indexes)), indexes

    def exits() -> list[Any] | None:
        ends = [
            cs.state.terminated
            for p in mvs.pods(selector)
            for cs in p.status.container_statuses or []
            if cs.state.terminated
        ]
        return ends or None

    ends = eventually(exits, timeout=60, what="a shard container's exit as the kubelet recorded it")
    assert all(e.exit_code == 2 for e in ends), ends
    assert [name for name in mvs.jobs() if name.startswith("iris-nodata")] == ["iris-nodata-search"]
    show(mvs, "get", "mv", "iris-nodata")


def test_a_retrain_child_trains_once_on_its_parents_best_parameters(mvs: Versions) -> None:
    """The policy is asked by hand (its annotation): it needs no Prometheus for that, and the node
    has none in the cluster. Its own model, so the first test's iris champion plays no part."""
    mvs.create(
        "flowers-v1",
        model="flowers",
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
            "search": {"space": {"C": [0.01, 1.0]}, "cv": 3, "parallelism": 2},
        },
    )
    best = mvs.wait_phase("flowers-v1", "Serving")["training"]["search"]["bestParams"]
    assert best == {"C": 1.0}
    policy = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RetrainPolicy",
        "metadata": {"name": "flowers", "annotations": {"modelops.dev/retrain": "again-1"}},
        "spec": {"model": "flowers", "interval": "2s", "window": "20s", "cooldown": "1h"},
    }
    mvs.custom.create_namespaced_custom_object(GROUP, VERSION, NS, "retrainpolicies", policy)

    def children() -> list[dict[str, Any]] | None:
        found = mvs.custom.list_namespaced_custom_object(
            GROUP, VERSION, NS, "modelversions", label_selector="modelops.dev/policy=flowers"
        )["items"]
        return found or None

    (child,) = eventually(children, timeout=120, what="the retrain child")
    name = child["metadata"]["name"]
    assert "search" not in child["spec"]["training"]
    assert child["spec"]["training"]["estimator"]["params"] == {"max_iter": 500, **best}
    wait_status(
        mvs.real,
        mvs.api,
        name,
        lambda st: any(c["type"] == "Trained" and c["status"] == "True" for c in st.get("conditions", [])),
        f"{name} to train",
        ns=NS,
    )
    mine = sorted(n for n in mvs.jobs() if n.startswith(("flowers-", name)))
    assert mine == sorted(["flowers-v1-search", "flowers-v1-train", f"{name}-train"])  # no second search
    assert mvs.status(name)["training"].get("search") is None
    assert len(mvs.pods(f"job-name={name}-train")) == 1
