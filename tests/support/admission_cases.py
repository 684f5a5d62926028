"""Objects the CRD schema accepts but the validating webhook must refuse, each with the field it names.

Shared by the unit test of `modelops.admission` (no cluster) and the integration test in which the
real API server calls the webhook the operator serves.
"""

from __future__ import annotations

import copy
from typing import Any

GOOD_MV: dict[str, Any] = {
    "apiVersion": "modelops.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"name": "iris-x"},
    "spec": {
        "model": "iris",
        "training": {"dataset": {"uri": "sklearn:iris"}, "estimator": {"class": "LogisticRegression"}},
    },
}
GOOD_RP: dict[str, Any] = {
    "apiVersion": "modelops.dev/v1alpha1",
    "kind": "RetrainPolicy",
    "metadata": {"name": "iris"},
    "spec": {"model": "iris"},
}
REGRESSOR = {"dataset": {"uri": "sklearn:diabetes"}, "estimator": {"class": "Ridge"}}
CSV = "file:///data/churn.csv"


def mv(name: str | None = None, **spec: Any) -> dict[str, Any]:
    """The good ModelVersion with top-level spec fields replaced (training merged one level down)."""
    body = copy.deepcopy(GOOD_MV)
    if name is not None:
        body["metadata"]["name"] = name
    training = spec.pop("training", None)
    if training:
        body["spec"]["training"].update(training)
    body["spec"].update(spec)
    return body


def rp(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD_RP)
    body["spec"].update(spec)
    return body


def params(**p: Any) -> dict[str, Any]:
    return {"estimator": {"class": "LogisticRegression", "params": p}}


def forest(**p: Any) -> dict[str, Any]:
    return {"estimator": {"class": "RandomForestClassifier", "params": p}}


def dataset(**d: Any) -> dict[str, Any]:
    return {"dataset": d}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    # names whose derived objects cannot exist
    ("version name starts with a digit", mv("1-iris"), "metadata.name"),
    ("version name with a dot", mv("iris.v1"), "metadata.name"),
    ("version name longer than a label", mv("v" * 64), "metadata.name"),
    ("model starts with a digit", mv(model="9iris"), "spec.model"),
    ("parent not a name", mv(parent="Iris_V1"), "spec.parent"),
    # metrics that do not fit the estimator's task, gates that can never pass
    ("rmse gate on a classifier", mv(validation={"gates": [{"metric": "rmse", "max": 1}]}), "spec.validation.gates[0].metric"),
    ("accuracy gate on a regressor", mv(training=REGRESSOR, validation={"gates": [{"metric": "accuracy", "min": 0.5}]}), "spec.validation.gates[0].metric"),
    ("r2 champion metric on a classifier", mv(validation={"champion": {"metric": "r2"}}), "spec.validation.champion.metric"),
    ("f1 champion metric on a regressor", mv(training=REGRESSOR, validation={"champion": {"metric": "f1"}}), "spec.validation.champion.metric"),
    ("accuracy min above 1", mv(validation={"gates": [{"metric": "accuracy", "min": 1.5}]}), "spec.validation.gates[0].min"),
    ("rmse max below 0", mv(training=REGRESSOR, validation={"gates": [{"metric": "rmse", "max": -1}]}), "spec.validation.gates[0].max"),
    ("second gate misfits", mv(validation={"gates": [{"metric": "accuracy", "min": 0.5}, {"metric": "mae", "max": 2}]}), "spec.validation.gates[1].metric"),
    # data the trainer would refuse
    ("unknown bundled data set", mv(training=dataset(uri="sklearn:titanic")), "spec.training.dataset.uri"),
    ("regression data for a classifier", mv(training=dataset(uri="sklearn:diabetes")), "spec.training.dataset.uri"),
    ("classification data for a regressor", mv(training={**REGRESSOR, **dataset(uri="sklearn:iris")}), "spec.training.dataset.uri"),
    ("file without a target", mv(training=dataset(uri=CSV)), "spec.training.dataset.target"),
    ("claim without a target", mv(training=dataset(uri="pvc://data/churn.parquet")), "spec.training.dataset.target"),
    ("target among the features", mv(training=dataset(uri=CSV, target="label", features=["a", "label"])), "spec.training.dataset.features"),
    ("a feature twice", mv(training=dataset(uri=CSV, target="label", features=["a", "a"])), "spec.training.dataset.features"),
    ("categorical not a feature", mv(training=dataset(uri=CSV, target="label", features=["a"], categorical=["b"])), "spec.training.dataset.categorical"),
    ("target categorical", mv(training=dataset(uri=CSV, target="label", categorical=["label"])), "spec.training.dataset.categorical"),
    ("exclude drops the target", mv(training=dataset(uri=CSV, target="label", exclude=["label"])), "spec.training.dataset.exclude"),
    ("exclude drops a feature", mv(training=dataset(uri=CSV, target="label", features=["a", "b"], exclude=["b"])), "spec.training.dataset.exclude"),
    # estimator parameters, as scikit-learn checks them
    ("unknown parameter", mv(training=params(max_iterations=10)), "spec.training.estimator.params.max_iterations"),
    ("negative C", mv(training=params(C=-1)), "spec.training.estimator.params.C"),
    ("unknown solver", mv(training=params(solver="magic")), "spec.training.estimator.params.solver"),
    ("zero trees", mv(training=forest(n_estimators=0)), "spec.training.estimator.params.n_estimators"),
    ("depth as text", mv(training=forest(max_depth="deep")), "spec.training.estimator.params.max_depth"),
    # hyperparameter search: the space against the estimator's own parameters, the scorer's task
    ("search: a parameter the estimator lacks", mv(training={"search": {"space": {"gamma": [1, 2]}}}), "spec.training.search.space.gamma"),
    ("search: a value scikit-learn refuses", mv(training={"search": {"space": {"C": [1.0, -1.0]}}}), "spec.training.search.space.C[1]"),
    ("search: a range bound scikit-learn refuses", mv(training={**forest(), "search": {"method": "random", "space": {"max_depth": {"low": 0, "high": 8, "type": "int"}}}}), "spec.training.search.space.max_depth.low"),
    ("search: a regression scorer for a classifier", mv(training={"search": {"space": {"C": [1.0]}, "scoring": "r2"}}), "spec.training.search.scoring"),
    ("search: a range on a grid", mv(training={"search": {"space": {"C": {"low": 0.1, "high": 10}}}}), "spec.training.search"),
    ("search: neither a list nor a range", mv(training={"search": {"space": {"C": 1.0}}}), "spec.training.search.space.C"),
    # golden set and storage
    ("golden set without a champion rule", mv(validation={"dataset": {"uri": "sklearn:iris"}}), "spec.validation.dataset"),
    ("golden set of the other task", mv(validation={"champion": {"metric": "accuracy"}, "dataset": {"uri": "sklearn:diabetes"}}), "spec.validation.dataset.uri"),
    ("artifacts mounted on /tmp", mv(storage={"mountPath": "/tmp"}), "spec.storage.mountPath"),
    ("artifacts mounted over the data claims", mv(storage={"mountPath": "/mnt"}), "spec.storage.mountPath"),
    ("artifacts mounted under /tmp", mv(storage={"mountPath": "/tmp/artifacts"}), "spec.storage.mountPath"),
    # RetrainPolicy
    ("policy: model starts with a digit", rp(model="9iris"), "spec.model"),
    ("policy: zero interval", rp(interval="0s"), "spec.interval"),
    ("policy: zero window", rp(window="0m"), "spec.window"),
    ("policy: accuracy with a ceiling", rp(triggers={"performance": {"metric": "accuracy", "ceiling": 0.5}}), "spec.triggers.performance.ceiling"),
    ("policy: mae with a floor", rp(triggers={"performance": {"metric": "mae", "floor": 0.5}}), "spec.triggers.performance.floor"),
    ("policy: accuracy floor above 1", rp(triggers={"performance": {"floor": 1.5}}), "spec.triggers.performance.floor"),
    ("policy: cron not a cron", rp(triggers={"schedule": {"cron": "every day"}}), "spec.triggers.schedule.cron"),
    ("policy: a drift feature twice", rp(triggers={"drift": {"features": ["a", "a"]}}), "spec.triggers.drift.features"),
    ("policy: template data over http", rp(template={"datasetUri": "http://example.com/x.csv"}), "spec.template.datasetUri"),
    ("policy: template changes the model", rp(template={"spec": {"model": "other"}}), "spec.template.spec.model"),
    ("policy: template with an unknown field", rp(template={"spec": {"trainng": {}}}), "spec.template.spec.trainng"),
]  # fmt: skip
