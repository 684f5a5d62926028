"""Bring your own model: the import program on real files, its Job, and the API and policy rules."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import pytest

from modelops import artifacts
from modelops.api.modelversion import ONE_ORIGIN, ImportedArtifact, ModelVersionSpec, Training
from modelops.api.retrainpolicy import Template
from modelops.lifecycle import resources
from modelops.lifecycle.retrainpolicy import Champion, NeedsTraining, child_spec
from modelops.settings import Settings
from modelops.trainer import importer
from modelops.trainer import main as trainer
from modelops.trainer.errors import BadInput

SETTINGS = Settings(trainer_image="modelops:test", server_image="modelops:test")
IRIS = {
    "dataset": {"uri": "sklearn:iris"},
    "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
}


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> dict:
    """A model trained by `modelops train` outside any cluster, and a labelled reference CSV."""
    from sklearn.datasets import load_iris

    root = tmp_path_factory.mktemp("outside")
    result = trainer.train(Training.model_validate(IRIS), "iris", "iris-nb", root / "store")
    ref = root / "reference.csv"
    load_iris(as_frame=True).frame.to_csv(ref, index=False)
    return {"uri": result["artifact"]["uri"], "sha256": result["artifact"]["sha256"], "ref": f"file://{ref}"}


def _spec(outside: dict, **over) -> ImportedArtifact:
    body = {
        "uri": outside["uri"],
        "sha256": outside["sha256"],
        "referenceDataset": {"uri": outside["ref"], "target": "target"},
    }
    return ImportedArtifact.model_validate({**body, **over})


def test_import_verifies_scores_and_stores_the_same_bytes(outside, tmp_path):
    result = importer.import_model(_spec(outside), "iris", "iris-imp", tmp_path)
    assert result["succeeded"] and result["task"] == "classification"
    assert result["metrics"]["accuracy"] > 0.9
    # the stored model is the verified file, byte for byte: the server's digest check passes on it
    art = result["artifact"]
    assert art["sha256"] == outside["sha256"]
    stored = Path(art["uri"][len("file://") :])
    assert artifacts.sha256_bytes(stored.read_bytes()) == outside["sha256"]
    artifacts.load_model(artifacts.read_verified(stored, art["sha256"]))
    # drift references for every feature and the predictions, as training records them
    names = [f["name"] for f in result["features"]]
    assert sorted(result["reference"]) == sorted(names) and len(names) == 4
    assert result["predictionReference"]["categories"] == ["0", "1", "2"]
    meta = json.loads((stored.parent / artifacts.METADATA_FILE).read_text())
    assert meta["importedFrom"] == {"uri": outside["uri"], "sha256": outside["sha256"]}
    assert meta["estimator"] == "LogisticRegression" and meta["rows"]["test"] == 150
    assert (stored.parent / artifacts.CARD_MD).read_text().startswith("# Model card: iris / iris-imp")


def test_a_file_that_is_not_the_named_digest_is_refused(outside, tmp_path):
    with pytest.raises(BadInput, match=r"sha256 mismatch: the spec says 0{64}"):
        importer.import_model(_spec(outside, sha256="0" * 64), "iris", "iris-imp", tmp_path)
    assert not (tmp_path / "iris").exists()


def test_a_pickle_with_the_right_digest_is_refused_by_the_skops_rules(outside, tmp_path):
    evil = tmp_path / "evil.skops"
    evil.write_bytes(pickle.dumps({"not": "a model"}))
    sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    with pytest.raises(BadInput, match=rf"model file file://{evil}"):
        importer.import_model(_spec(outside, uri=f"file://{evil}", sha256=sha), "iris", "iris-imp", tmp_path)


def test_reference_data_that_does_not_fit_the_model_is_refused_naming_the_columns(outside, tmp_path):
    ref = {"uri": outside["ref"], "target": "target", "features": ["sepal length (cm)", "petal width (cm)"]}
    with pytest.raises(BadInput, match=r"the model takes 4 features; the reference data set gives 2"):
        importer.import_model(_spec(outside, referenceDataset=ref), "iris", "iris-imp", tmp_path)


def test_missing_model_file_names_it(outside, tmp_path):
    with pytest.raises(BadInput, match=re.escape("model file not found: file:///nope/model.skops")):
        importer.import_model(_spec(outside, uri="file:///nope/model.skops"), "iris", "iris-imp", tmp_path)


SOURCE = {
    "artifact": {
        "uri": "pvc://models-in/iris/model.skops",
        "sha256": "ab" * 32,
        "referenceDataset": {"uri": "pvc://datasets/iris-ref.csv", "target": "target"},
    }
}


def test_a_version_takes_training_or_source_not_both_nor_neither():
    ModelVersionSpec.model_validate({"model": "iris", "source": SOURCE})
    with pytest.raises(ValueError, match="exactly one of training"):
        ModelVersionSpec.model_validate({"model": "iris", "source": SOURCE, "training": IRIS})
    with pytest.raises(ValueError, match="exactly one of training"):
        ModelVersionSpec.model_validate({"model": "iris"})
    assert "exactly one of training" in ONE_ORIGIN


def test_the_import_job_runs_modelops_import_with_the_model_and_data_claims_read_only():
    spec = ModelVersionSpec.model_validate({"model": "iris", "source": SOURCE})
    job = resources.training_job("iris-imp", "ml", "uid-1", spec, SETTINGS)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["modelops", "import"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert json.loads(env["MODELOPS_IMPORT_SPEC"])["uri"] == "pvc://models-in/iris/model.skops"
    assert "MODELOPS_TRAINING_SPEC" not in env
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/mnt/pvc/models-in"]["readOnly"] and mounts["/mnt/pvc/datasets"]["readOnly"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in job["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"modelops-artifacts", "models-in", "datasets"}
    assert job["spec"]["activeDeadlineSeconds"] == 1800


def test_an_s3_model_file_gets_its_own_connection_or_the_stores():
    source = {"artifact": {**SOURCE["artifact"], "uri": "s3://teams-models/iris/model.skops"}}
    store = {"s3": {"bucket": "ml-models", "secretRef": {"name": "store-keys"}}}
    spec = ModelVersionSpec.model_validate({"model": "iris", "source": source, "storage": store})
    c = resources.training_job("iris-imp", "ml", "uid-1", spec, SETTINGS)["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["MODELOPS_SOURCE_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "store-keys"
    source["artifact"]["s3"] = {"secretRef": {"name": "team-keys"}}
    spec = ModelVersionSpec.model_validate({"model": "iris", "source": source, "storage": store})
    c = resources.training_job("iris-imp", "ml", "uid-1", spec, SETTINGS)["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["MODELOPS_SOURCE_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "team-keys"


def test_retraining_an_imported_champion_needs_the_template_to_say_how_to_train():
    champ = Champion("iris-imp", ModelVersionSpec.model_validate({"model": "iris", "source": SOURCE}))
    with pytest.raises(NeedsTraining, match=r"champion iris-imp was imported .*template\.spec\.training"):
        child_spec(champ, Template())
    with pytest.raises(NeedsTraining):
        child_spec(champ, Template.model_validate({"datasetUri": "pvc://datasets/iris-new.csv"}))
    child = child_spec(champ, Template.model_validate({"spec": {"training": IRIS}}))
    assert child.source is None and child.training is not None and child.parent == "iris-imp"
    assert child.training.estimator.class_ == "LogisticRegression"
