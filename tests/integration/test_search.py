"""Hyperparameter search through the real API server, the real Job controller and the real trainer
(its `search-shard` and `train` entry points as host processes run by the kubelet stand-in): an
Indexed Job whose pods each evaluate their share, then the final fit on the best parameters, which
must be the ones scikit-learn's own GridSearchCV finds on the same grid and folds."""

from __future__ import annotations

import json

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.integration.conftest import kubectl
from tests.support.wait import eventually

pytestmark = pytest.mark.cluster

GRID = {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]}
INDEX = "batch.kubernetes.io/job-completion-index"


def show(mvs, *args: str) -> str:
    """kubectl output, printed so a run with -s shows what a user sees (the README quotes it)."""
    out = kubectl(mvs.kubeconfig, "-n", mvs.ns, *args).stdout
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


def test_a_search_fans_out_as_an_indexed_job_and_finds_what_gridsearchcv_finds(mvs, kubelet, operator):
    mvs.create(
        "iris-hpo",
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
            "search": {"space": GRID, "cv": 4, "scoring": "accuracy", "parallelism": 3},
        },
    )
    job = eventually(
        lambda: next(iter(mvs.batch.list_namespaced_job(mvs.ns).items), None),
        timeout=60,
        what="the search Job",
    )
    assert job.metadata.name == "iris-hpo-search"
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == ("Indexed", 3, 3)
    # The operator dies mid-search and comes back: the search carries on and is adopted, not redone.
    operator.kill()
    operator.start()
    st = mvs.wait_phase("iris-hpo", "Serving", timeout=300)

    jobs = {j.metadata.name: j for j in mvs.batch.list_namespaced_job(mvs.ns).items}
    assert sorted(jobs) == ["iris-hpo-search", "iris-hpo-train"]
    search_job = jobs["iris-hpo-search"]
    assert search_job.metadata.uid == job.metadata.uid and search_job.status.succeeded == 3
    # Each index ran once, in its own pod, and saw its index as the downward API gives it.
    selector = "modelops.dev/version=iris-hpo,app.kubernetes.io/component=searcher"
    pods = mvs.core.list_namespaced_pod(mvs.ns, label_selector=selector).items
    assert sorted(p.metadata.annotations[INDEX] for p in pods) == ["0", "1", "2"]
    assert sorted(index for _, index in kubelet.searches) == ["0", "1", "2"], kubelet.searches
    assert len(kubelet.trainings) == 1, kubelet.trainings

    # Each index wrote its share to the artifact store: every candidate exactly once.
    folder = kubelet.volume("modelops-artifacts") / "iris" / "_search" / "iris-hpo" / job.metadata.uid
    shares = [json.loads((folder / f"shard-{i}-of-3.json").read_text()) for i in range(3)]
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
    artifact = kubelet.artifact_dir("modelops-artifacts", "iris", "iris-hpo")
    meta = json.loads((artifact / "metadata.json").read_text())
    assert meta["params"] == {"max_iter": 500, **search["bestParams"]}
    table = json.loads((artifact / "search.json").read_text())
    ranks = [t["rank"] for t in table["trials"]]
    assert ranks == [int(r) for r in gs.cv_results_["rank_test_score"]]
    card = json.loads((artifact / "model-card.json").read_text())
    assert card["search"]["bestParams"] == search["bestParams"]
    assert search["table"] == "pvc://modelops-artifacts/iris/iris-hpo/search.json"

    assert mvs.status("iris-hpo")["timestamps"].keys() >= {"searchStarted", "searched", "trainingStarted"}
    # SearchStarted may have died with the first operator: Events are posted after the status write.
    eventually(
        lambda: (
            {"Searched", "TrainingStarted"} <= {e.split(" ")[1].rstrip(":") for e in mvs.events("iris-hpo")}
        ),
        timeout=30,
        what="the search Events",
    )
    show(mvs, "get", "mv", "iris-hpo", "-o", "wide")
    show(mvs, "get", "jobs", "-o", "custom-columns=NAME:.metadata.name,MODE:.spec.completionMode,"
         "COMPLETIONS:.spec.completions,SUCCEEDED:.status.succeeded")  # fmt: skip
    show(mvs, "get", "pods", "-l", selector, "-o", "custom-columns=POD:.metadata.name,"
         "INDEX:.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index,PHASE:.status.phase")  # fmt: skip
    show(mvs, "get", "mv", "iris-hpo", "-o", "jsonpath={.status.training.search.bestParams}")
    show(mvs, "get", "mv", "iris-hpo", "-o", "jsonpath={.status.training.search.top[0:3]}")


def test_a_failed_search_index_fails_the_version_without_a_retry_or_a_final_fit(mvs, kubelet, operator):
    mvs.create(
        "iris-nodata",
        training={
            "dataset": {"uri": "file:///nonexistent/iris.csv", "target": "species"},
            "estimator": {"class": "LogisticRegression"},
            "search": {"space": {"C": [0.1, 1.0]}, "parallelism": 2},
        },
    )
    st = mvs.wait_phase("iris-nodata", "Failed", timeout=180)
    trained = mvs.condition("iris-nodata", "Trained")
    assert trained["reason"] == "SearchFailed", trained
    assert "search shard" in st["message"] and "/nonexistent/iris.csv" in st["message"], st["message"]
    assert st["history"][-1]["decision"] == "Failed" and st["history"][-1]["reason"] == "SearchFailed"
    job = mvs.batch.read_namespaced_job("iris-nodata-search", mvs.ns)
    assert any(c.type == "Failed" and c.status == "True" for c in job.status.conditions or [])
    # Bad input (exit code 2) fails its index at once: podFailurePolicy FailIndex, no retry.
    indexes = [index for _, index in kubelet.searches]
    assert indexes and len(indexes) == len(set(indexes)), kubelet.searches
    assert [j.metadata.name for j in mvs.batch.list_namespaced_job(mvs.ns).items] == ["iris-nodata-search"]
    assert kubelet.trainings == []
    show(mvs, "get", "mv", "iris-nodata")


def test_a_retrain_child_trains_once_on_its_parents_best_parameters(mvs, kubelet, operator):
    from tests.integration.test_retrainpolicy import Policies

    space = {"C": [0.01, 1.0]}
    mvs.create(
        "iris-v1",
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
            "search": {"space": space, "cv": 3, "parallelism": 2},
        },
    )
    best = mvs.wait_phase("iris-v1", "Serving", timeout=300)["training"]["search"]["bestParams"]
    assert best == {"C": 1.0}
    policies = Policies(mvs)
    policies.create("iris")
    policies.annotate("iris", "modelops.dev/retrain", "again-1")
    child = eventually(lambda: policies.children("iris"), timeout=60, what="the retrain child")[0]
    name = child["metadata"]["name"]
    assert "search" not in child["spec"]["training"]
    assert child["spec"]["training"]["estimator"]["params"] == {"max_iter": 500, **best}
    eventually(
        lambda: (mvs.condition(name, "Trained") or {}).get("status") == "True",
        timeout=240,
        what=f"{name} to train",
    )
    jobs = sorted(j.metadata.name for j in mvs.batch.list_namespaced_job(mvs.ns).items)
    assert jobs == sorted(["iris-v1-search", "iris-v1-train", f"{name}-train"])  # no second search
    assert mvs.status(name)["training"].get("search") is None
