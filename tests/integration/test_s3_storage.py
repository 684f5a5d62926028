"""The trainer, the server and the clean-up program on a real S3 server (SeaweedFS), no cluster.

The same entry points the pods run, with the environment the operator renders: credentials in
MODELOPS_S3_* / MODELOPS_DATASET_S3_*, the store as s3://bucket/prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from modelops import artifacts, storage
from modelops.api.modelversion import Training
from modelops.trainer import main as trainer
from modelops.trainer.errors import BadInput

pytestmark = pytest.mark.s3

IRIS_SPEC = {
    "dataset": {"uri": "", "target": "target"},
    "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
}


def _env(seaweedfs, *, key=None, secret=None):
    env = {}
    for role in (storage.STORE, storage.DATASET):
        env[role + "ENDPOINT_URL"] = seaweedfs.endpoint
        env[role + "ACCESS_KEY_ID"] = key or seaweedfs.access_key
        env[role + "SECRET_ACCESS_KEY"] = secret or seaweedfs.secret_key
    return env


@pytest.fixture
def s3env(seaweedfs, monkeypatch):
    for k, v in _env(seaweedfs).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MODELOPS_ARTIFACT_PVC", raising=False)
    return seaweedfs


@pytest.fixture
def iris_csv(seaweedfs, bucket) -> str:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    seaweedfs.fs().pipe_file(f"{bucket}/data/iris.csv", frame.to_csv(index=False).encode())
    return f"s3://{bucket}/data/iris.csv"


def _spec(uri: str) -> Training:
    return Training.model_validate({**IRIS_SPEC, "dataset": {**IRIS_SPEC["dataset"], "uri": uri}})


def test_train_from_s3_to_s3_and_load_back(s3env, bucket, iris_csv):
    store = f"s3://{bucket}/models"
    result = trainer.train(_spec(iris_csv), "iris", "iris-v1", store)
    art = result["artifact"]
    assert art["uri"] == f"s3://{bucket}/models/iris/iris-v1/model.skops"
    fs = s3env.fs()
    keys = sorted(k.rsplit("/", 1)[1] for k in fs.find(f"{bucket}/models/iris/iris-v1/"))
    assert keys == [
        "metadata.json",
        "model-card.json",
        "model-card.md",
        "model.skops",
        "model.skops.sha256",
        "result.json",
    ]
    # the digest recorded is the digest of the bytes in the bucket, and the dataset digest is the CSV's
    assert (
        hashlib.sha256(fs.cat_file(f"{bucket}/models/iris/iris-v1/model.skops")).hexdigest() == art["sha256"]
    )
    assert result["datasetDigest"] == hashlib.sha256(fs.cat_file(iris_csv[len("s3://") :])).hexdigest()
    assert result["metrics"]["accuracy"] > 0.8
    # the server's path: verified read, then skops with the trust rules
    model = artifacts.load_model(artifacts.read_verified(art["uri"], art["sha256"]))
    assert len(model.predict([[5.1, 3.5, 1.4, 0.2]])) == 1


def test_wrong_credentials_are_refused_with_a_reason(s3env, bucket, iris_csv, monkeypatch):
    monkeypatch.setenv(storage.DATASET + "SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(BadInput, match=r"access denied .*check the credentials"):
        trainer.train(_spec(iris_csv), "iris", "iris-v1", f"s3://{bucket}/models")
    # good data, bad store keys: refused at upload, also permanent
    monkeypatch.setenv(storage.DATASET + "SECRET_ACCESS_KEY", s3env.secret_key)
    monkeypatch.setenv(storage.STORE + "ACCESS_KEY_ID", "nobody")
    with pytest.raises(BadInput, match=r"artifact store: cannot write .*access denied"):
        trainer.train(_spec(iris_csv), "iris", "iris-v1", f"s3://{bucket}/models")
    assert not s3env.fs().find(f"{bucket}/models/")


def test_missing_object_names_the_uri(s3env, bucket):
    uri = f"s3://{bucket}/data/nope.csv"
    with pytest.raises(BadInput, match=rf"dataset cannot read {uri}: no such object"):
        trainer.train(_spec(uri), "iris", "iris-v1", f"s3://{bucket}/models")
    with pytest.raises(artifacts.ArtifactError, match="no such object"):
        artifacts.read_verified(f"s3://{bucket}/models/iris/gone/model.skops", "0" * 64)


def test_tampered_object_is_refused_by_the_server(s3env, bucket, iris_csv, tmp_path):
    result = trainer.train(_spec(iris_csv), "iris", "iris-v1", f"s3://{bucket}/models")
    key = result["artifact"]["uri"][len("s3://") :]
    fs = s3env.fs()
    fs.pipe_file(key, fs.cat_file(key) + b"tampered")
    with pytest.raises(artifacts.DigestMismatch):
        artifacts.read_verified(result["artifact"]["uri"], result["artifact"]["sha256"])
    # the real entry point: exit 3 before listening, the reason on stderr and in the termination log
    term = tmp_path / "termination-log"
    env = {**os.environ, **_env(s3env), "MODELOPS_TERMINATION_LOG": str(term)}
    argv = [sys.executable, "-m", "modelops.cli", "serve", "--artifact-dir"]
    argv += [result["artifact"]["uri"].rsplit("/", 1)[0], "--sha256", result["artifact"]["sha256"]]
    argv += ["--model", "iris", "--version", "iris-v1", "--port", "0"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "sha256 mismatch" in term.read_text()


def test_a_pickle_in_the_bucket_is_refused_by_the_skops_rules(s3env, bucket):
    """A pickle in the bucket with the right digest is still refused: skops trust rules hold on S3."""
    import pickle

    data = pickle.dumps({"not": "a model"})
    fs = s3env.fs()
    fs.pipe_file(f"{bucket}/models/iris/evil/model.skops", data)
    with pytest.raises(artifacts.UntrustedArtifact):
        artifacts.load_model(
            artifacts.read_verified(
                f"s3://{bucket}/models/iris/evil/model.skops", hashlib.sha256(data).hexdigest()
            )
        )


def test_cleanup_deletes_exactly_one_version_prefix(s3env, bucket, iris_csv):
    store = f"s3://{bucket}/models"
    for v in ("iris-v1", "iris-v10"):
        trainer.train(_spec(iris_csv), "iris", v, store)
    env = {**os.environ, **_env(s3env)}
    argv = [sys.executable, "-m", "modelops.cli", "cleanup", "--store", store, "--model", "iris"]
    out = subprocess.run(
        [*argv, "--version", "iris-v1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"deleted {store}/iris/iris-v1/"
    fs = s3env.fs()
    left = {k.split("/")[3] for k in fs.find(f"{bucket}/models/")}
    assert left == {"iris-v10"}  # a prefix match (iris-v1 vs iris-v10) must not delete the neighbour
    again = subprocess.run(
        [*argv, "--version", "iris-v1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and again.stdout.startswith("nothing to delete")
    # wrong keys: a clear error, exit 1 (the Job fails and the finalizer retries)
    bad = {**env, storage.STORE + "SECRET_ACCESS_KEY": "wrong"}
    out = subprocess.run(
        [*argv, "--version", "iris-v10"], env=bad, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1 and "access denied" in out.stderr, out.stderr
    assert json.loads(fs.cat_file(f"{bucket}/models/iris/iris-v10/result.json"))["succeeded"] is True


def test_resolve_takes_the_newest_file_of_an_s3_folder_and_hashes_it(s3env, bucket, tmp_path):
    """`modelops resolve` on an s3:// template: time fields filled, the newest data file of the
    prefix taken (S3's LastModified), its digest the sha256 of the object's bytes."""
    fs = s3env.fs()
    fs.pipe_file(f"{bucket}/drops/2026/old.csv", b"a,target\n1,0\n2,1\n")
    fs.pipe_file(f"{bucket}/drops/2026/notes.txt", b"not data")
    time.sleep(1.5)  # LastModified has one-second resolution
    newest = b"a,target\n3,0\n4,1\n5,0\n"
    fs.pipe_file(f"{bucket}/drops/2026/new.csv", newest)
    term = tmp_path / "termination-log"
    env = {**os.environ, **_env(s3env), "MODELOPS_TERMINATION_LOG": str(term)}
    argv = [sys.executable, "-m", "modelops.cli", "resolve", "--at", "2026-11-29T03:00:00Z", "--uri"]
    out = subprocess.run(
        [*argv, f"s3://{bucket}/drops/%Y/"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report == {
        "uri": f"s3://{bucket}/drops/2026/new.csv",
        "digest": hashlib.sha256(newest).hexdigest(),
    }
    assert json.loads(term.read_text()) == report
    # an empty prefix: exit 2, nothing to train on, the reason in the termination log
    out = subprocess.run(
        [*argv, f"s3://{bucket}/drops/1999/"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2, out.stderr
    assert "no .csv or .parquet file in" in term.read_text()
