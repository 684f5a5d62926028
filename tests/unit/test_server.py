"""The model server through its ASGI app: the v2 protocol and /predict, every bad input answered
with the right 4xx (never a 500), digests and pickles refused, /metrics and /feedback."""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_diabetes, load_iris
from starlette.testclient import TestClient

from modelops import artifacts
from modelops.api.modelversion import Training
from modelops.server import main as server_main
from modelops.server.app import App, Service, Settings
from modelops.server.metrics import COLLIDING, le_label
from modelops.server.model import ServedModel
from modelops.trainer.main import train

IRIS = load_iris()
NAMES = list(IRIS.feature_names)


def trained(store: Path, model: str, training: dict) -> Path:
    result = train(Training.model_validate(training), model, "v1", store)
    directory = store / model / "v1"
    assert result["artifact"]["sha256"] == artifacts.sha256_file(directory / "model.skops")
    return directory


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def iris_dir(store) -> Path:
    return trained(
        store, "iris", {"dataset": {"uri": "sklearn:iris"}, "estimator": {"class": "LogisticRegression"}}
    )


@pytest.fixture(scope="module")
def forest_dir(store) -> Path:
    return trained(
        store,
        "forest",
        {
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "RandomForestClassifier", "params": {"n_estimators": 5}},
        },
    )


@pytest.fixture(scope="module")
def diabetes_dir(store) -> Path:
    return trained(
        store, "diabetes", {"dataset": {"uri": "sklearn:diabetes"}, "estimator": {"class": "Ridge"}}
    )


@pytest.fixture(scope="module")
def mixed_dir(store, tmp_path_factory) -> Path:
    frame = load_iris(as_frame=True).frame
    frame["color"] = np.where(frame["sepal length (cm)"] > 5.8, "red", "blue")
    path = tmp_path_factory.mktemp("data") / "iris.parquet"
    frame.to_parquet(path)
    return trained(
        store,
        "mixed",
        {
            "dataset": {
                "uri": f"file://{path}",
                "target": "target",
                "features": ["petal width (cm)", "color"],
                "categorical": ["color"],
            },
            "estimator": {"class": "LogisticRegression"},
        },
    )


def make_app(directory: Path, model: str | None = None, **settings) -> App:
    sha = artifacts.sha256_file(directory / "model.skops")
    name = model or directory.parent.name
    service = Service(Settings(name, "v1", **settings))
    return App(service, loader=lambda: ServedModel.from_dir(directory, sha), background=False)


@pytest.fixture(scope="module")
def iris(iris_dir):
    with TestClient(make_app(iris_dir, max_rows=50, max_body_bytes=20_000)) as client:
        yield client


def tensor_2d(rows: np.ndarray, name: str = "input-0") -> dict:
    return {
        "inputs": [
            {"name": name, "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        ]
    }


def records(rows: np.ndarray) -> list[dict]:
    return [dict(zip(NAMES, map(float, r), strict=True)) for r in rows]


def metrics(client) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items (without model/version): value}."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            assert s.labels["model"] and s.labels["version"] == "v1", s
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("model", "version")))
            out.setdefault(s.name, {})[labels] = s.value
    return out


# -- protocol -----------------------------------------------------------------------------------------
def test_health_and_metadata(iris):
    assert iris.get("/v2/health/live").json() == {"live": True}
    assert iris.get("/v2/health/ready").json() == {"ready": True}
    assert iris.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert iris.get("/v2/models/iris/versions/v1/ready").status_code == 200
    meta = iris.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["versions"] == ["v1"] and meta["platform"] == "sklearn"
    assert [i["name"] for i in meta["inputs"]] == NAMES
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert iris.get("/v2").json()["name"] == "modelops"


def test_infer_with_a_2d_tensor_and_with_one_tensor_per_feature(iris, iris_dir):
    model = artifacts.load_model((iris_dir / "model.skops").read_bytes())
    rows = IRIS.data[::15]
    a = iris.post("/v2/models/iris/infer", json=tensor_2d(rows))
    assert a.status_code == 200, a.text
    body = a.json()
    assert body["model_name"] == "iris" and body["model_version"] == "v1"
    assert body["id"] == a.headers["x-request-id"]
    predict, proba = body["outputs"]
    assert predict["name"] == "predict" and predict["datatype"] == "INT64" and predict["shape"] == [len(rows)]
    assert predict["data"] == model.predict(rows).tolist()
    assert proba["shape"] == [len(rows), 3]
    assert np.allclose(np.reshape(proba["data"], proba["shape"]), model.predict_proba(rows))

    by_name = {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": "FP32", "data": rows[:, j].tolist()}
            for j, n in enumerate(NAMES)
        ],
        "outputs": [{"name": "predict"}],
    }
    b = iris.post("/v2/models/iris/versions/v1/infer", json=by_name).json()
    assert [o["name"] for o in b["outputs"]] == ["predict"]
    assert b["outputs"][0]["data"] == predict["data"]
    nested = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows[:2].tolist()}]}
    assert iris.post("/v2/models/iris/infer", json=nested).json()["outputs"][0]["data"] == predict["data"][:2]


def test_predict_with_instances_or_records_and_client_ids(iris):
    rows = IRIS.data[:3]
    r = iris.post("/predict", json={"instances": records(rows)}, headers={"X-Request-Id": "abc-1"})
    assert r.status_code == 200
    assert r.json()["id"] == "abc-1" == r.headers["x-request-id"]
    assert r.json()["predictions"] == [0, 0, 0] and r.json()["classes"] == [0, 1, 2]
    assert len(r.json()["probabilities"]) == 3
    extra = [{**rec, "customer": "x"} for rec in records(rows)]  # unknown keys are ignored
    assert iris.post("/predict", json={"records": extra}).json()["predictions"] == [0, 0, 0]


def test_forest_predictions_match_the_pipeline(forest_dir):
    model = artifacts.load_model((forest_dir / "model.skops").read_bytes())
    with TestClient(make_app(forest_dir)) as client:
        body = client.post("/predict", json={"instances": records(IRIS.data)}).json()
    assert body["predictions"] == model.predict(IRIS.data).tolist()
    assert np.allclose(body["probabilities"], model.predict_proba(IRIS.data))


def test_regressor_and_mixed_schema(diabetes_dir, mixed_dir):
    d = load_diabetes()
    model = artifacts.load_model((diabetes_dir / "model.skops").read_bytes())
    with TestClient(make_app(diabetes_dir)) as client:
        out = client.post("/v2/models/diabetes/infer", json=tensor_2d(d.data[:4])).json()["outputs"]
    assert [o["name"] for o in out] == ["predict"] and out[0]["datatype"] == "FP64"
    assert np.allclose(out[0]["data"], model.predict(d.data[:4]))

    with TestClient(make_app(mixed_dir)) as client:
        ok = client.post(
            "/predict",
            json={
                "instances": [
                    {"petal width (cm)": 0.2, "color": "red"},
                    {"petal width (cm)": 2.2, "color": "green"},
                ]
            },
        )
        assert ok.status_code == 200 and ok.json()["predictions"] == [0, 2]
        v2 = {
            "inputs": [
                {"name": "petal width (cm)", "shape": [1], "datatype": "FP64", "data": [0.2]},
                {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["blue"]},
            ]
        }
        assert client.post("/v2/models/mixed/infer", json=v2).json()["outputs"][0]["data"] == [0]
        bad = client.post("/predict", json={"instances": [{"petal width (cm)": 0.2, "color": None}]})
        assert bad.status_code == 422 and bad.json()["field"] == "color"
        seen = metrics(client)["modelops_server_feature_category_total"]
    assert seen[(("category", "red"), ("feature", "color"))] == 1
    assert seen[(("category", "blue"), ("feature", "color"))] == 1
    assert seen[(("category", "__other__"), ("feature", "color"))] == 1


# -- bad input: the right 4xx, a JSON error naming the field, and the server keeps serving -----------------
ONE = IRIS.data[0]
GOOD = records(IRIS.data[:1])[0]


def v2_by_name(**override) -> dict:
    inputs = [
        {"name": n, "shape": [1], "datatype": "FP64", "data": [float(ONE[j])]} for j, n in enumerate(NAMES)
    ]
    for name, change in override.items():
        for t in inputs:
            if t["name"] == name.replace("_", " ").replace("cm", "(cm)"):
                t.update(change)
    return {"inputs": inputs}


BAD = [
    ("post", "/v2/models/iris/infer", b"{not json", 400, "body"),
    ("post", "/predict", b"[1, 2", 400, "body"),
    ("post", "/predict", b"[]", 422, "body"),
    ("post", "/predict", {"rows": []}, 422, "instances"),
    ("post", "/predict", {"instances": {}}, 422, "instances"),
    ("post", "/predict", {"instances": []}, 422, "instances"),
    ("post", "/predict", {"instances": [1]}, 422, "instances[0]"),
    ("post", "/predict", {"instances": [{k: v for k, v in GOOD.items() if k != NAMES[2]}]}, 422, NAMES[2]),
    ("post", "/predict", {"instances": [{**GOOD, NAMES[1]: "3.5"}]}, 422, NAMES[1]),
    ("post", "/predict", {"instances": [{**GOOD, NAMES[1]: None}]}, 422, NAMES[1]),
    ("post", "/predict", {"instances": [{**GOOD, NAMES[0]: [1.0]}]}, 422, NAMES[0]),
    ("post", "/predict", {"instances": [{**GOOD, NAMES[0]: {"a": 1}}]}, 422, NAMES[0]),
    ("post", "/predict", {"instances": [{**GOOD, NAMES[3]: 10**400}]}, 400, "body"),  # overflows a double
    ("post", "/predict", {"instances": [GOOD] * 51}, 413, "instances"),
    ("post", "/predict", {"instances": [GOOD], "id": 5}, 422, "id"),
    ("post", "/predict", {"instances": [GOOD], "id": "a\r\nSet-Cookie: x"}, 422, "id"),
    ("post", "/predict", {"instances": [GOOD], "id": "x" * 129}, 422, "id"),
    ("post", "/v2/models/iris/infer", {"inputs": []}, 422, "inputs"),
    ("post", "/v2/models/iris/infer", {"inputs": "x"}, 422, "inputs"),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        422,
        "x",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3]}]},
        422,
        "x",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]}]},
        422,
        "x",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, "3", 4]}]},
        422,
        NAMES[2],
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [51, 4], "datatype": "FP64", "data": [1.0] * 204}]},
        413,
        "x",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": "4", "datatype": "FP64", "data": [1]}]},
        422,
        "x",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]},
        422,
        "inputs[0].name",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        v2_by_name(sepal_length_cm={"data": [1.0, 2.0], "shape": [2]}),
        422,
        NAMES[0],
    ),
    (
        "post",
        "/v2/models/iris/infer",
        v2_by_name(petal_width_cm={"datatype": "BYTES", "data": ["1"]}),
        422,
        NAMES[3],
    ),
    ("post", "/v2/models/iris/infer", v2_by_name(petal_width_cm={"name": "petal"}), 422, "petal"),
    ("post", "/v2/models/iris/infer", {**v2_by_name(), "outputs": [{"name": "explain"}]}, 422, "outputs"),
    (
        "post",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[1, 2], [3]]}]},
        422,
        "x",
    ),
    ("post", "/v2/models/other/infer", {"inputs": []}, 404, "model_name"),
    ("post", "/v2/models/iris/versions/v9/infer", {"inputs": []}, 404, "model_version"),
    ("get", "/v2/models/other", None, 404, "model_name"),
    ("get", "/v2/models/iris/explain", None, 404, "path"),
    ("get", "/nope", None, 404, "path"),
    ("get", "/predict", None, 405, "method"),
    ("post", "/metrics", b"", 405, "method"),
    ("post", "/predict", b"x" * 20_001, 413, "body"),
    ("post", "/feedback", b"{", 400, "body"),
    ("post", "/feedback", {"labels": [1]}, 422, "id"),
    ("post", "/feedback", {"id": "x", "labels": []}, 422, "labels"),
    ("post", "/feedback", {"items": [{"id": "x"}]}, 422, "items[0]"),
    ("post", "/feedback", {"items": [{"id": "x", "label": 1, "index": -1}]}, 422, "items[0].index"),
    ("post", "/feedback", {"items": [{"id": "x", "label": [1]}]}, 422, "items[0].label"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD)
def test_bad_input_gets_the_right_4xx_naming_the_field(iris, method, path, body, status, field):
    kwargs = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    r = getattr(iris, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["field"] == field and r.json()["error"]
    # ... and the server keeps serving
    assert iris.post("/predict", json={"instances": [GOOD]}).status_code == 200


def test_deep_nesting_is_a_400_not_a_crash(iris):
    r = iris.post("/predict", content=b"[" * 5000 + b"]" * 5000)
    assert r.status_code == 400


def test_chunked_body_over_the_limit_is_refused():
    """Without Content-Length the limit is enforced while reading."""
    service = Service(Settings("m", "v1", max_body_bytes=10))
    app = App(service)
    chunks = [{"type": "http.request", "body": b"x" * 6, "more_body": True}] * 3
    sent: list[dict] = []

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413 and len(chunks) == 1  # stopped reading early


def test_nothing_is_served_before_the_model_is_loaded():
    with TestClient(App(Service(Settings("m", "v1")))) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/models/m/ready").status_code == 503
        r = client.post("/v2/models/m/infer", json={"inputs": []})
        assert r.status_code == 503
        assert metrics(client)["modelops_server_model_ready"][()] == 0


# -- refusing artifacts ------------------------------------------------------------------------------------
class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_sha256_mismatch_exits_3_before_serving(iris_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(tmp_path / "termination-log"))
    actual = artifacts.sha256_file(iris_dir / "model.skops")
    code = server_main.main(
        [
            "--artifact-dir",
            str(iris_dir),
            "--sha256",
            "a" * 64,
            "--model",
            "iris",
            "--version",
            "v1",
            "--port",
            "1",
        ]
    )
    line = f"error: artifact sha256 mismatch: expected {'a' * 64}, got {actual}"
    assert code == 3
    assert capsys.readouterr().err.strip() == line
    assert (tmp_path / "termination-log").read_text().strip() == line


def test_planted_pickle_is_refused_and_its_payload_never_runs(iris_dir, tmp_path):
    marker = tmp_path / "pwned"
    planted = tmp_path / "planted"
    shutil.copytree(iris_dir, planted)
    (planted / "model.skops").write_bytes(pickle.dumps(Payload(marker)))
    sha = artifacts.sha256_file(planted / "model.skops")  # the right digest: only the format stops it
    with pytest.raises(artifacts.UntrustedArtifact):
        ServedModel.from_dir(planted, sha)
    app = App(
        Service(Settings("iris", "v1")), loader=lambda: ServedModel.from_dir(planted, sha), background=False
    )
    with TestClient(app) as client:
        assert client.get("/v2/health/ready").status_code == 503
        assert client.post("/predict", json={"instances": [GOOD]}).status_code == 503
    assert app.fatal is not None and app.fatal[0] == 3 and "not a valid skops file" in app.fatal[1]
    assert not marker.exists()


def test_metadata_that_does_not_fit_the_model_is_refused(iris_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(iris_dir, broken)
    meta = json.loads((broken / "metadata.json").read_text())
    meta["features"] = meta["features"][:2]
    (broken / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(artifacts.ArtifactError, match="expects 4 features"):
        ServedModel.from_dir(broken, artifacts.sha256_file(broken / "model.skops"))


# -- metrics and feedback -----------------------------------------------------------------------------------
def test_feature_histograms_use_the_reference_edges(iris_dir):
    meta = json.loads((iris_dir / "metadata.json").read_text())
    edges = meta["reference"][NAMES[2]]["edges"]
    # Values exactly on an edge land in that edge's bucket (le), beyond the last edge in +Inf only.
    values = [edges[0], edges[0] + 1e-9, edges[-1] + 1.0]
    rows = np.tile(IRIS.data[0], (3, 1))
    rows[:, 2] = values
    with TestClient(make_app(iris_dir)) as client:
        assert client.post("/v2/models/iris/infer", json=tensor_2d(rows)).status_code == 200
        m = metrics(client)
    buckets = {
        dict(k)["le"]: v
        for k, v in m["modelops_server_feature_value_bucket"].items()
        if dict(k)["feature"] == NAMES[2]
    }
    assert list(buckets) == [le_label(e) for e in edges] + ["+Inf"]
    assert buckets[le_label(edges[0])] == 1
    assert buckets[le_label(edges[1])] == 2
    assert buckets[le_label(edges[-1])] == 2 and buckets["+Inf"] == 3
    assert m["modelops_server_feature_value_count"][(("feature", NAMES[2]),)] == 3
    assert m["modelops_server_feature_value_sum"][(("feature", NAMES[2]),)] == pytest.approx(sum(values))
    shares = {
        dict(k)["bin"]: v
        for k, v in m["modelops_server_feature_reference_share"].items()
        if dict(k)["feature"] == NAMES[2]
    }
    assert list(shares) == list(buckets)
    assert list(shares.values()) == pytest.approx(meta["reference"][NAMES[2]]["shares"])
    assert m["modelops_server_rows_total"][()] == 3
    assert sum(m["modelops_server_prediction_class_total"].values()) == 3
    assert set(m["modelops_server_prediction_class_total"]) == {(("class", c),) for c in ("0", "1", "2")}
    assert m["modelops_server_requests_total"][(("code", "200"), ("handler", "infer"))] == 1
    assert m["modelops_server_request_duration_seconds_count"][(("handler", "infer"),)] == 1
    assert m["modelops_server_model_ready"][()] == 1


def test_inference_series_exist_at_zero_before_the_first_request(iris_dir):
    """`increase()` misses whatever a series counted before its first scrape: a burst served before
    then would never reach the canary or decay queries unless the series start at zero."""
    from modelops.drift import promql
    from modelops.server.metrics import INFERENCE_HANDLERS

    assert set(INFERENCE_HANDLERS) == set(promql.INFERENCE_HANDLERS.split("|"))
    with TestClient(make_app(iris_dir)) as client:
        m = metrics(client)
    for handler in INFERENCE_HANDLERS:
        assert m["modelops_server_requests_total"][(("code", "200"), ("handler", handler))] == 0
        assert m["modelops_server_request_duration_seconds_count"][(("handler", handler),)] == 0


@pytest.mark.parametrize("directory", ["iris_dir", "diabetes_dir", "mixed_dir"])
def test_no_label_collides_with_a_target_label(request, directory):
    """A label a scrape also attaches (PodMonitor: endpoint, namespace, pod, ...) would be renamed
    exported_<name> by Prometheus, and every query on it would find nothing."""
    with TestClient(make_app(request.getfixturevalue(directory))) as client:
        client.get("/v2/health/ready")
        client.post("/predict", json={"instances": "not rows"})
        client.post("/feedback", json={"id": "unknown", "labels": [0]})
        text = client.get("/metrics").text
    names = {
        name for family in text_string_to_metric_families(text) for s in family.samples for name in s.labels
    }
    assert names and not names & COLLIDING, sorted(names & COLLIDING)
    assert "handler" in names


def test_classifier_feedback_counts_correct_labels(iris_dir):
    rows = IRIS.data[[0, 60, 120]]
    with TestClient(make_app(iris_dir)) as client:
        r = client.post("/predict", json={"instances": records(rows)}).json()
        assert r["predictions"] == [0, 1, 2]
        # two right (one given as a string), one wrong
        assert client.post("/feedback", json={"id": r["id"], "labels": [0, "1", 0]}).json() == {
            "matched": 3,
            "unmatched": 0,
        }
        # the same rows again, and an unknown id: unmatched, never counted twice
        assert client.post("/feedback", json={"id": r["id"], "labels": [0, 1, 2]}).json()["unmatched"] == 3
        assert client.post("/feedback", json={"items": [{"id": "nope", "label": 1}]}).json()["unmatched"] == 1
        one = client.post("/predict", json={"instances": records(rows[:2])}).json()
        items = [{"id": one["id"], "label": 0}, {"id": one["id"], "index": 1, "label": 1.0}]
        assert client.post("/feedback", json={"items": items}).json() == {"matched": 2, "unmatched": 0}
        wrong_len = client.post("/predict", json={"instances": records(rows[:2])}).json()
        bad = client.post("/feedback", json={"id": wrong_len["id"], "labels": [1]})
        assert bad.status_code == 422 and bad.json()["field"] == "labels"
        m = metrics(client)
    assert m["modelops_server_feedback_labelled_total"][()] == 5
    assert m["modelops_server_feedback_correct_total"][()] == 4
    assert m["modelops_server_feedback_unmatched_total"][()] == 4


def test_regressor_feedback_sums_absolute_errors(diabetes_dir):
    d = load_diabetes()
    with TestClient(make_app(diabetes_dir)) as client:
        r = client.post(
            "/v2/models/diabetes/infer", json=tensor_2d(d.data[:2]), headers={"x-request-id": "q1"}
        )
        pred = r.json()["outputs"][0]["data"]
        client.post("/feedback", json={"id": "q1", "labels": [pred[0] + 10, pred[1] - 5]})
        m = metrics(client)
    assert m["modelops_server_feedback_absolute_error_sum"][()] == pytest.approx(15)
    assert m["modelops_server_feedback_absolute_error_count"][()] == 2
    assert m["modelops_server_feedback_labelled_total"][()] == 2
    assert "modelops_server_feedback_correct_total" not in m
    hist = m["modelops_server_prediction_value_bucket"]
    edges = json.loads((diabetes_dir / "metadata.json").read_text())["predictionReference"]["edges"]
    assert [dict(k)["le"] for k in hist] == [le_label(e) for e in edges] + ["+Inf"]
    assert hist[(("le", "+Inf"),)] == 2


def test_pending_predictions_are_bounded(iris_dir):
    with TestClient(make_app(iris_dir, pending_rows=4)) as client:
        ids = [
            client.post("/predict", json={"instances": records(IRIS.data[:2])}).json()["id"] for _ in range(3)
        ]
        service = client.app.service  # type: ignore[attr-defined]
        assert service.pending.rows == 4 and len(service.pending) == 2
        assert client.post("/feedback", json={"id": ids[0], "labels": [0, 0]}).json()["unmatched"] == 2
        assert client.post("/feedback", json={"id": ids[2], "labels": [0, 0]}).json()["matched"] == 2


def test_large_batches_run_off_the_event_loop(iris_dir):
    rows = np.tile(IRIS.data, (3, 1))  # 450 rows > INLINE_ROWS
    model = artifacts.load_model((iris_dir / "model.skops").read_bytes())
    with TestClient(make_app(iris_dir)) as client:
        body = client.post("/v2/models/iris/infer", json=tensor_2d(rows)).json()
    assert body["outputs"][0]["data"] == model.predict(rows).tolist()


def test_records_frame_matches_training_order(mixed_dir):
    """A mixed schema is fed in schema order whatever the key order of each record."""
    meta = json.loads((mixed_dir / "metadata.json").read_text())
    assert [f["name"] for f in meta["features"]] == ["petal width (cm)", "color"]
    frame = pd.DataFrame({"color": ["red"], "petal width (cm)": [2.3]})
    with TestClient(make_app(mixed_dir)) as client:
        r = client.post("/predict", json={"instances": frame.to_dict("records")})
    assert r.json()["predictions"] == [2]


def test_direct_column_transform_is_used_only_when_it_reproduces_the_pipeline(
    iris_dir, mixed_dir, monkeypatch
):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelops.server import model as served

    for directory in (iris_dir, mixed_dir):
        m = ServedModel.from_dir(directory, artifacts.sha256_file(directory / "model.skops"))
        assert isinstance(m._pre, served._Transform), directory
    assert served._direct_column_transform(make_pipeline(StandardScaler())) is None
    monkeypatch.setattr(served, "_direct_column_transform", lambda pre: lambda X: pre.transform(X) + 1e-12)
    m = ServedModel.from_dir(iris_dir, artifacts.sha256_file(iris_dir / "model.skops"))
    assert not isinstance(m._pre, served._Transform)
    assert m.predict(IRIS.data[:5])[0].tolist() == [0] * 5


# -- capture (serving.capture) ------------------------------------------------------------------------
def test_capture_writes_labelled_rows_joined_by_request_id_without_excluded_columns(iris_dir, tmp_path):
    out = tmp_path / "iris" / "_captured" / "v1.csv"
    app = make_app(
        iris_dir,
        capture_file=str(out),
        capture_max_rows=5,
        capture_exclude=("sepal width (cm)",),
        capture_target="target",
    )
    with TestClient(app) as client:
        r = client.post("/predict", json={"id": "a", "instances": records(IRIS.data[:4])})
        assert r.status_code == 200
        client.post("/predict", json={"id": "b", "instances": records(IRIS.data[100:104])})
        assert not out.exists() or len(pd.read_csv(out)) == 0, "nothing is captured before its label"
        fb = client.post("/feedback", json={"id": "a", "labels": [0, 0, 0, 0]})
        assert fb.json() == {"matched": 4, "unmatched": 0}
        client.post(
            "/feedback",
            json={"items": [{"id": "b", "index": 1, "label": 2}, {"id": "b", "index": 3, "label": 2}]},
        )
        client.post("/feedback", json={"id": "nope", "labels": [1]})  # unmatched: never captured
    # shutdown flushed the last second's rows; retention kept the newest 5 of 6
    frame = pd.read_csv(out)
    assert list(frame.columns) == [n for n in NAMES if n != "sepal width (cm)"] + ["target"]
    assert len(frame) == 5 and frame["target"].tolist() == [0, 0, 0, 2, 2]
    assert frame.iloc[-1]["petal length (cm)"] == IRIS.data[103][2]
    assert not list(out.parent.glob(".capture-*")), "no temporary file is left behind"


def test_a_restarted_capturing_server_keeps_its_rows_and_the_file_trains(iris_dir, tmp_path):
    out = tmp_path / "v1.csv"
    for start in (0, 50):  # two server lifetimes
        with TestClient(make_app(iris_dir, capture_file=str(out), capture_max_rows=1000)) as client:
            rows = IRIS.data[start : start + 50]
            client.post("/predict", json={"id": f"r{start}", "instances": records(rows)})
            labels = IRIS.target[start : start + 50].tolist()
            client.post("/feedback", json={"id": f"r{start}", "labels": labels})
    frame = pd.read_csv(out)
    assert len(frame) == 100 and frame["target"].tolist() == IRIS.target[:100].tolist()
    np.testing.assert_allclose(frame[NAMES].to_numpy(), IRIS.data[:100])
    result = train(
        Training.model_validate(
            {
                "dataset": {"uri": f"file://{out}", "target": "target"},
                "estimator": {"class": "LogisticRegression"},
            }
        ),
        "iris",
        "v2",
        tmp_path / "store",
    )
    assert result["metrics"]["accuracy"] >= 0.9


def test_without_capture_no_rows_are_kept_for_it(iris_dir):
    service = Service(Settings("iris", "v1"))
    with TestClient(
        App(
            service,
            loader=lambda: ServedModel.from_dir(iris_dir, artifacts.sha256_file(iris_dir / "model.skops")),
            background=False,
        )
    ) as client:
        client.post("/predict", json={"id": "x", "instances": records(IRIS.data[:2])})
        assert service.capture is None and service.pending.get("x").rows is None
