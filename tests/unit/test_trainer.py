"""The trainer on real scikit-learn data sets: determinism, metrics, reference bins, data sources,
every bad-input case (exit 2 and one line), the allow-list, and the status report it sends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.metrics import f1_score, mean_squared_error

from modelops import artifacts
from modelops.api.estimators import ALLOWED, CLASSIFIERS
from modelops.api.modelversion import Training, TrainingResult
from modelops.trainer import data, report
from modelops.trainer import main as trainer
from modelops.trainer.errors import BadInput, ReportError
from modelops.trainer.estimators import ESTIMATOR_MODULES, estimator_class, make_estimator
from modelops.trainer.reference import bin_index, category_bins, numeric_bins


def spec(uri: str = "sklearn:iris", cls: str = "LogisticRegression", **extra) -> Training:
    dataset = {"uri": uri, **extra.pop("dataset", {})}
    return Training.model_validate(
        {"dataset": dataset, "estimator": {"class": cls, "params": extra.pop("params", {})}, **extra}
    )


def load_model(store: Path, model: str = "m", version: str = "v1"):
    return artifacts.load_model((store / model / version / "model.skops").read_bytes())


def predictions_digest(model, X) -> str:
    return hashlib.sha256(np.asarray(model.predict(X)).tobytes()).hexdigest()


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Isolate the environment: no reporting, termination log in tmp, pvc root in tmp."""
    for var in (
        "MODELOPS_MV_NAME",
        "MODELOPS_MV_NAMESPACE",
        "MODELOPS_MV_UID",
        "MODELOPS_JOB_UID",
        "MODELOPS_TRAINING_SPEC",
        "MODELOPS_ARTIFACT_PVC",
        "MODELOPS_MODEL",
        "MODELOPS_VERSION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(tmp_path / "termination-log"))
    monkeypatch.setenv("MODELOPS_PVC_ROOT", str(tmp_path / "pvc"))
    return tmp_path


# -- the allow-list ---------------------------------------------------------------------------------
def test_every_allowed_name_maps_to_its_sklearn_class():
    assert set(ESTIMATOR_MODULES) == set(ALLOWED)
    for name in ALLOWED:
        cls = estimator_class(name)
        assert cls.__name__ == name and cls.__module__.startswith("sklearn.")


def test_unknown_estimator_is_refused_naming_the_allowed_ones():
    with pytest.raises(BadInput) as exc:
        estimator_class("os.system")
    assert "not allowed" in str(exc.value)
    assert all(name in str(exc.value) for name in ALLOWED)


def test_params_are_checked_against_the_estimator():
    with pytest.raises(BadInput) as exc:
        make_estimator("LogisticRegression", {"C": 1.0, "depth": 3}, seed=1)
    message = str(exc.value)
    assert "unknown parameter(s) for LogisticRegression: depth" in message
    assert "valid: " in message and "max_iter" in message
    est = make_estimator("RandomForestClassifier", {"n_estimators": 3}, seed=7)
    assert est.random_state == 7  # seeded from split.seed
    assert make_estimator("RandomForestClassifier", {"random_state": 1}, seed=7).random_state == 1


# -- determinism and metrics --------------------------------------------------------------------------
def test_same_seed_gives_the_same_model_and_metrics(env):
    s = spec(cls="RandomForestClassifier", params={"n_estimators": 10})
    a = trainer.train(s, "m", "v1", env / "a")
    b = trainer.train(s, "m", "v1", env / "b")
    X = load_iris().data
    assert a["metrics"] == b["metrics"]
    assert a["reference"] == b["reference"] and a["predictionReference"] == b["predictionReference"]
    assert predictions_digest(load_model(env / "a"), X) == predictions_digest(load_model(env / "b"), X)
    other = trainer.train(
        spec(cls="RandomForestClassifier", params={"n_estimators": 10}, split={"seed": 3}),
        "m",
        "v1",
        env / "c",
    )
    assert other["rows"] == a["rows"]
    assert predictions_digest(load_model(env / "c"), X) != predictions_digest(load_model(env / "a"), X)


def test_binary_classifier_metrics(env):
    result = trainer.train(spec("sklearn:breast_cancer", params={"max_iter": 500}), "m", "v1", env)
    assert set(result["metrics"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert all(0.9 < v <= 1.0 for v in result["metrics"].values())
    assert result["task"] == "classification"
    assert result["rows"] == {"total": 569, "train": 426, "test": 143}


def test_multiclass_metrics_are_macro_averaged(env):
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    result = trainer.train(spec("sklearn:wine", cls="GaussianNB"), "m", "v1", env)
    wine = load_wine()
    _, X_test, _, y_test = train_test_split(
        wine.data, wine.target, test_size=0.25, random_state=42, stratify=wine.target
    )
    pred = load_model(env).predict(X_test)
    assert result["metrics"]["f1"] == pytest.approx(f1_score(y_test, pred, average="macro"))
    assert "roc_auc" in result["metrics"]


def test_regressor_metrics(env):
    result = trainer.train(spec("sklearn:diabetes", cls="Ridge"), "m", "v1", env)
    m = result["metrics"]
    assert set(m) == {"rmse", "mae", "r2"}
    assert 0 < m["mae"] < m["rmse"] and 0.2 < m["r2"] < 1
    assert result["task"] == "regression" and "edges" in result["predictionReference"]
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    d = load_diabetes()
    _, X_test, _, y_test = train_test_split(d.data, d.target, test_size=0.25, random_state=42)
    assert m["rmse"] ** 2 == pytest.approx(mean_squared_error(y_test, load_model(env).predict(X_test)))


def test_classifier_without_predict_proba_has_no_auc(env):
    result = trainer.train(spec(cls="RidgeClassifier"), "m", "v1", env)
    assert "roc_auc" not in result["metrics"] and "accuracy" in result["metrics"]


# -- reference bins -----------------------------------------------------------------------------------
def test_bin_index_has_prometheus_le_semantics():
    # A value equal to an edge belongs to that edge's bin (le), anything above the last edge to +Inf.
    assert bin_index([1.0, 2.0], np.array([0.5, 1.0, 1.5, 2.0, 2.5])).tolist() == [0, 0, 1, 1, 2]


def test_numeric_bins_by_hand():
    ref = numeric_bins(np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3]), bins=2)
    assert ref == {"edges": [2.0], "shares": [0.8, 0.2], "samples": 10}  # median 2: the 2s are in bin 1
    const = numeric_bins(np.array([5.0] * 7), bins=10)
    assert const == {"edges": [5.0], "shares": [1.0, 0.0], "samples": 7}  # de-duplicated edges
    deciles = numeric_bins(np.arange(100.0), bins=10)
    assert len(deciles["edges"]) == 9 and deciles["edges"] == sorted(deciles["edges"])
    assert deciles["shares"] == pytest.approx([0.1] * 10)


def test_category_bins_keep_zero_share_categories():
    assert category_bins(["b", "a", "b", "b"], ["a", "b", "c"]) == {
        "categories": ["a", "b", "c"],
        "shares": [0.25, 0.75, 0.0],
        "samples": 4,
    }


def test_reference_of_a_trained_model(env):
    result = trainer.train(spec(reference_bins=5), "m", "v1", env)
    assert [f["name"] for f in result["features"]] == load_iris().feature_names
    for ref in result["reference"].values():
        assert len(ref["shares"]) == len(ref["edges"]) + 1 <= 5
        assert sum(ref["shares"]) == pytest.approx(1.0)
        assert ref["edges"] == sorted(set(ref["edges"]))
    assert result["predictionReference"]["categories"] == ["0", "1", "2"]
    assert sum(result["predictionReference"]["shares"]) == pytest.approx(1.0)


# -- data sources -------------------------------------------------------------------------------------
def iris_frame(with_color: bool = True) -> pd.DataFrame:
    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns={"target": "species"})
    if with_color:
        frame["color"] = np.where(frame["sepal length (cm)"] > 5.8, "red", "blue")
    return frame


def test_csv_on_a_pvc_and_parquet_on_file_give_the_same_model(env):
    frame = iris_frame()
    csv = env / "pvc" / "datasets" / "iris" / "iris.csv"
    csv.parent.mkdir(parents=True)
    frame.to_csv(csv, index=False)
    parquet = env / "iris.parquet"
    frame.to_parquet(parquet)
    ds = {"target": "species", "categorical": ["color"]}
    a = trainer.train(spec("pvc://datasets/iris/iris.csv", dataset=ds), "m", "v1", env / "a")
    b = trainer.train(spec(f"file://{parquet}", dataset=ds), "m", "v1", env / "b")
    assert a["metrics"] == b["metrics"]
    assert a["datasetDigest"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert a["datasetDigest"] != b["datasetDigest"]
    color = next(f for f in a["features"] if f["name"] == "color")
    assert color == {"name": "color", "dtype": "category", "categories": ["blue", "red"]}
    assert a["reference"]["color"]["categories"] == ["blue", "red"]


def test_feature_subset(env):
    parquet = env / "iris.parquet"
    iris_frame().to_parquet(parquet)
    result = trainer.train(
        spec(
            f"file://{parquet}",
            dataset={
                "target": "species",
                "features": ["petal width (cm)", "color"],
                "categorical": ["color"],
            },
        ),
        "m",
        "v1",
        env,
    )
    assert [f["name"] for f in result["features"]] == ["petal width (cm)", "color"]


def test_pvc_uri_resolution(env):
    assert data.resolve_uri("pvc://claim/a/b.csv", "/mnt/pvc") == Path("/mnt/pvc/claim/a/b.csv")
    with pytest.raises(BadInput, match="outside"):
        data.resolve_uri("pvc://claim/../other/x.csv", "/mnt/pvc")


# -- the CLI: artifact, result, spec sources ---------------------------------------------------------------
def test_cli_writes_artifact_and_prints_the_result(env, capsys, monkeypatch):
    monkeypatch.setenv("MODELOPS_ARTIFACT_PVC", "artifacts")
    spec_file = env / "mv.yaml"
    spec_file.write_text(
        "apiVersion: modelops.dev/v1alpha1\nkind: ModelVersion\nspec:\n  model: iris\n  training:\n"
        "    dataset: {uri: 'sklearn:iris'}\n    estimator: {class: LogisticRegression}\n"
    )
    assert (
        trainer.main(
            [
                "--spec",
                str(spec_file),
                "--model",
                "iris",
                "--version",
                "iris-v1",
                "--store",
                str(env / "store"),
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    result = TrainingResult.model_validate(json.loads(out.out.strip().splitlines()[-1]))
    assert out.err == ""
    d = env / "store" / "iris" / "iris-v1"
    assert sorted(p.name for p in d.iterdir()) == [
        "metadata.json",
        "model-card.json",
        "model-card.md",
        "model.skops",
        "model.skops.sha256",
        "result.json",
    ]
    digest = artifacts.sha256_file(d / "model.skops")
    assert result.artifact.sha256 == digest
    assert result.artifact.uri == "pvc://artifacts/iris/iris-v1/model.skops"
    assert (d / "model.skops.sha256").read_text().split()[0] == digest
    meta = json.loads((d / "metadata.json").read_text())
    for key in (
        "features",
        "target",
        "task",
        "classes",
        "metrics",
        "reference",
        "predictionReference",
        "datasetDigest",
        "libraries",
        "spec",
        "startedAt",
        "finishedAt",
        "rows",
    ):
        assert key in meta, key
    assert meta["libraries"]["scikit-learn"]
    assert json.loads((d / "result.json").read_text())["artifact"]["sha256"] == digest


def test_cli_takes_the_spec_from_the_environment(env, capsys, monkeypatch):
    monkeypatch.setenv(
        "MODELOPS_TRAINING_SPEC",
        json.dumps(
            {
                "dataset": {"uri": "sklearn:diabetes"},
                "estimator": {"class": "Lasso", "params": {"alpha": 0.1}},
            }
        ),
    )
    assert trainer.main(["--model", "d", "--version", "v1", "--store", str(env)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["artifact"]["uri"] == f"file://{env.resolve()}/d/v1/model.skops"


# -- bad input: exit 2, one line, termination log --------------------------------------------------------
def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def run_bad(env, capsys, training: dict) -> str:
    code = trainer.main(
        [
            "--model",
            "m",
            "--version",
            "v1",
            "--store",
            str(env / "store"),
            "--spec",
            str(write(env / "spec.json", json.dumps(training))),
        ]
    )
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert (env / "termination-log").read_text() == lines[0] + "\n"
    assert not (env / "store" / "m" / "v1").exists()
    return lines[0]


def training(uri: str, target: str | None = "y", cls: str = "LogisticRegression", **kw) -> dict:
    ds = {"uri": uri, **({"target": target} if target else {}), **kw.pop("dataset", {})}
    return {"dataset": ds, "estimator": {"class": cls, **kw.pop("estimator", {})}, **kw}


CSV_OK = "a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))


@pytest.mark.parametrize(
    ("files", "train_spec", "reason"),
    [
        ({"d.csv": CSV_OK}, training("file://{}/d.csv", target="label"), "target column 'label' not found"),
        ({"d.csv": b""}, training("file://{}/d.csv"), "is empty"),
        ({"d.csv": "a,b,y\n"}, training("file://{}/d.csv"), "has no rows"),
        ({}, training("file://{}/missing.csv"), "dataset file not found"),
        ({"dir.csv/x": "x"}, training("file://{}/dir.csv"), "cannot read dataset"),
        ({"d.parquet": b"PAR1 not really"}, training("file://{}/d.parquet"), "cannot parse dataset"),
        (
            {"d.csv": CSV_OK.replace("\n7,1,", "\n7,abc,")},
            training("file://{}/d.csv"),
            "column 'b' must be numeric but row 7 holds 'abc'",
        ),
        ({"d.csv": "a,y\n1,0\n2,1\n"}, training("file://{}/d.csv"), "too few rows"),
        ({"d.csv": CSV_OK + "5,5,2\n"}, training("file://{}/d.csv"), "class 2 of target 'y' has only 1 row"),
        (
            {"d.csv": CSV_OK.replace("\n3,0,1", "\n3,,1")},
            training("file://{}/d.csv"),
            "column 'b' has 1 missing value",
        ),
        ({"d.csv": CSV_OK}, training("file://{}/d.csv", target=None), "dataset.target is required"),
        (
            {"d.csv": CSV_OK},
            training("file://{}/d.csv", dataset={"features": ["a", "zz"]}),
            "feature column(s) not found: zz",
        ),
        (
            {"d.csv": CSV_OK.replace("y\n", "y\n", 1).replace(",0\n", ",x\n")},
            training("file://{}/d.csv", cls="Ridge"),
            "must be numeric for a regressor",
        ),
        (
            {"d.csv": CSV_OK},
            training("file://{}/d.csv", estimator={"params": {"C": -1}}),
            "LogisticRegression cannot be trained",
        ),
        (
            {"d.csv": CSV_OK},
            training("file://{}/d.csv", estimator={"params": {"depth": 3}}),
            "unknown parameter(s) for LogisticRegression: depth; valid: C,",
        ),
        (
            {"d.csv": CSV_OK},
            training("file://{}/d.csv", cls="os.system"),
            "estimator 'os.system' is not allowed",
        ),
        ({}, training("sklearn:titanic", target=None), "unknown sklearn data set 'titanic'"),
        (
            {},
            training("sklearn:iris", target=None, split={"testSize": 2}),
            "invalid training spec: split.testSize",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(env, capsys, files, train_spec, reason):
    for name, content in files.items():
        write(env / "data" / name, content)
    train_spec["dataset"]["uri"] = train_spec["dataset"]["uri"].format(env / "data")
    line = run_bad(env, capsys, train_spec)
    assert reason in line, line
    if "not allowed" in reason:
        assert all(name in line for name in CLASSIFIERS)


def test_missing_arguments_are_one_line_too(env, capsys):
    assert trainer.main(["--spec", "/nonexistent.json"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_unexpected_errors_exit_1_with_one_line(env, capsys, monkeypatch):
    def boom(*a, **k):
        raise MemoryError("out of memory")

    monkeypatch.setattr(trainer, "train", boom)
    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(training("sklearn:iris", target=None)))
    assert trainer.main(["--model", "m", "--version", "v1"]) == 1
    assert capsys.readouterr().err == "error: MemoryError: out of memory\n"


# -- reporting to the ModelVersion ---------------------------------------------------------------------
class FakeApi:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls: list[tuple] = []

    uid = "mv-uid"

    def get_namespaced_custom_object_status(self, *args):
        return {"metadata": {"uid": self.uid, "resourceVersion": "7"}}

    def patch_namespaced_custom_object_status(self, *args):
        self.calls.append(args)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


def api_error(status: int):
    from kubernetes.client.exceptions import ApiException

    return ApiException(status=status, reason="x")


TARGET = report.Target("iris-v1", "ml", uid="mv-uid", job_uid="job-uid")


def test_patch_body_binds_the_result_to_the_run():
    body = report.patch_body(TrainingResult(succeeded=False, message="bad"), TARGET)
    assert set(body) == {"status"}
    training_status = body["status"]["training"]
    assert training_status["jobUid"] == "job-uid"
    assert training_status["succeeded"] is False and training_status["message"] == "bad"
    # every field present, nulls included, so a merge patch clears what an earlier attempt wrote
    assert {f.alias or n for n, f in TrainingResult.model_fields.items()} <= set(training_status)
    assert training_status["artifact"] is None and "predictionReference" in training_status


def test_target_from_env():
    assert report.Target.from_env({}) is None
    t = report.Target.from_env(
        {"MODELOPS_MV_NAME": "a", "MODELOPS_MV_NAMESPACE": "b", "MODELOPS_JOB_UID": "j"}
    )
    assert t == report.Target("a", "b", None, "j")


def test_send_retries_transient_errors_then_gives_up_on_404():
    sleeps: list[float] = []
    api = FakeApi(api_error(503), ConnectionError("refused"), None)
    report.send({"status": {}}, TARGET, api=api, sleep=sleeps.append)
    assert len(api.calls) == 3 and sleeps == [0.5, 1.0]
    assert api.calls[0][:5] == ("modelops.dev", "v1alpha1", "ml", "modelversions", "iris-v1")
    assert api.calls[-1][5]["metadata"] == {"resourceVersion": "7"}, "the patch is a compare-and-swap"
    with pytest.raises(ReportError, match="not found: it was deleted"):
        report.send({}, TARGET, api=FakeApi(api_error(404)), sleep=sleeps.append)
    replaced = FakeApi()
    replaced.uid = "another-uid"
    with pytest.raises(ReportError, match="was replaced"):
        report.send({}, TARGET, api=replaced, sleep=sleeps.append)
    assert replaced.calls == [], "nothing is written to a re-created version"
    raced = FakeApi(api_error(409), None)
    report.send({}, TARGET, api=raced, sleep=sleeps.append)
    assert len(raced.calls) == 2, "a lost compare-and-swap is read again and retried"
    with pytest.raises(ReportError, match="HTTP 403"):
        report.send({}, TARGET, api=FakeApi(api_error(403)), sleep=sleeps.append)


def test_main_reports_success_and_bad_input(env, capsys, monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(report, "send", lambda body, target, **kw: sent.append(body))
    for var, value in (
        ("MODELOPS_MV_NAME", "iris-v1"),
        ("MODELOPS_MV_NAMESPACE", "ml"),
        ("MODELOPS_MV_UID", "mv-uid"),
        ("MODELOPS_JOB_UID", "job-1"),
    ):
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(training("sklearn:iris", target=None)))
    assert trainer.main(["--model", "iris", "--version", "iris-v1", "--store", str(env)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["jobUid"] == "job-1"
    assert sent[0]["status"]["training"]["jobUid"] == "job-1"
    assert sent[0]["status"]["training"]["succeeded"] is True
    assert sent[0]["status"]["training"]["artifact"]["sha256"] == printed["artifact"]["sha256"]

    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(training("sklearn:iris", target="nope")))
    assert trainer.main(["--model", "iris", "--version", "iris-v1", "--store", str(env)]) == 2
    failed = sent[1]["status"]["training"]
    assert failed["succeeded"] is False and "target column 'nope' not found" in failed["message"]
    assert failed["jobUid"] == "job-1" and failed["artifact"] is None


def test_main_exits_4_when_the_version_is_gone(env, capsys, monkeypatch):
    def gone(body, target, **kw):
        raise ReportError("ModelVersion ml/iris-v1 not found: it was deleted, result not recorded")

    monkeypatch.setattr(report, "send", gone)
    monkeypatch.setenv("MODELOPS_MV_NAME", "iris-v1")
    monkeypatch.setenv("MODELOPS_MV_NAMESPACE", "ml")
    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(training("sklearn:iris", target=None)))
    assert trainer.main(["--model", "iris", "--version", "iris-v1", "--store", str(env)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found: it was deleted" in err
