"""Bring your own model, through the real API server and operator: a model trained by `modelops train`
outside the cluster is imported from a claim or from S3 (a real SeaweedFS), then validated, served
and retrained like one trained here. The kubelet stand-in runs the real `modelops import`."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from tests.support.kubelet import local_persistent_volume
from tests.support.wait import eventually

pytestmark = pytest.mark.cluster

GROUP, VERSION = "modelops.dev", "v1alpha1"
ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
IRIS_TRAINING = {
    "dataset": {"uri": "sklearn:iris"},
    "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
}


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`modelops train` run by hand on a laptop: the model file, its digest, and a labelled CSV."""
    from sklearn.datasets import load_iris

    root = tmp_path_factory.mktemp("outside")
    spec = root / "training.yaml"
    spec.write_text(yaml.safe_dump(IRIS_TRAINING))
    argv = [sys.executable, "-m", "modelops.cli", "train", "--spec", str(spec)]
    argv += ["--model", "iris", "--version", "iris-notebook", "--store", str(root / "store")]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    model = root / "store" / "iris" / "iris-notebook" / "model.skops"
    reference = root / "iris-reference.csv"
    load_iris(as_frame=True).frame.to_csv(reference, index=False)
    return {"model": model, "sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "reference": reference}


def create_imported(mvs: Any, name: str, artifact: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {
            "model": "iris",
            "source": {"artifact": artifact},
            "validation": {"gates": [{"metric": "accuracy", "min": 0.8}]},
            "serving": {"drainSeconds": 0},
            **spec,
        },
    }
    return mvs.custom.create_namespaced_custom_object(GROUP, VERSION, mvs.ns, "modelversions", body)


@pytest.fixture
def handover(mvs: Any, kubelet: Any, tmp_path: Path) -> Iterator[str]:
    """A team's own claim, `models-in` (bound to a PV as the scheduler requires), apart from the
    artifact claim: the import Job mounts it read-only."""
    pv = f"models-in-{mvs.ns}"[:63]
    mvs.core.create_persistent_volume(
        local_persistent_volume(pv, mvs.ns, "models-in", tmp_path / "models-in")
    )
    mvs.core.create_namespaced_persistent_volume_claim(
        mvs.ns,
        {
            "metadata": {"name": "models-in"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": pv,
                "storageClassName": "",
            },
        },
    )
    eventually(
        lambda: mvs.core.read_namespaced_persistent_volume_claim("models-in", mvs.ns).status.phase == "Bound",
        timeout=30,
        what="the models-in claim to bind",
    )
    yield "models-in"
    with contextlib.suppress(client.ApiException):
        mvs.core.delete_persistent_volume(pv)


def on_claims(kubelet: Any, outside: dict[str, Any], claim: str) -> dict[str, Any]:
    """The model file and the reference set on the team's claim, as the stand-in kubelet mounts it."""
    dest = kubelet.volume(claim) / "iris"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(outside["model"], dest / "model.skops")
    shutil.copy(outside["reference"], dest / "reference.csv")
    return {
        "uri": f"pvc://{claim}/iris/model.skops",
        "sha256": outside["sha256"],
        "referenceDataset": {"uri": f"pvc://{claim}/iris/reference.csv", "target": "target"},
    }


def test_a_model_trained_outside_is_imported_from_a_claim_served_and_retrained(
    mvs, kubelet, operator, outside, handover
):
    create_imported(mvs, "iris-imp", on_claims(kubelet, outside, handover))
    st = mvs.wait_phase("iris-imp", "Serving", timeout=240)
    assert mvs.champion_of("iris") == "iris-imp"
    tr = st["training"]
    assert tr["task"] == "classification" and tr["metrics"]["accuracy"] > 0.9
    # the store holds the very bytes that were verified, under the version's own path
    assert tr["artifact"] == {
        "uri": "pvc://modelops-artifacts/iris/iris-imp/model.skops",
        "sha256": outside["sha256"],
    }
    stored = kubelet.artifact_dir("modelops-artifacts", "iris", "iris-imp") / "model.skops"
    assert stored.read_bytes() == outside["model"].read_bytes()
    assert sorted(tr["reference"]) == sorted(ROW) and tr["predictionReference"]["categories"]
    job = mvs.batch.read_namespaced_job("iris-imp-train", mvs.ns).spec.template.spec
    assert job.containers[0].command == ["modelops", "import"]
    mvs.wait_event("iris-imp", "Importing pvc://models-in/iris/model.skops")
    claims = {
        v.persistent_volume_claim.claim_name: v.persistent_volume_claim.read_only
        for v in job.volumes
        if v.persistent_volume_claim
    }
    assert claims == {"modelops-artifacts": None, "models-in": True}, claims
    srv = kubelet.server_for("iris-imp")
    r = httpx.post(f"{srv.url}/predict", json={"instances": [ROW]}, timeout=10)
    assert r.status_code == 200, r.text

    # a RetrainPolicy on the imported champion must be told how to train
    policy = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RetrainPolicy",
        "metadata": {"name": "iris"},
        "spec": {
            "model": "iris",
            "interval": "2s",
            "cooldown": "1h",
            "triggers": {"schedule": {"every": "3s"}},
        },
    }
    mvs.custom.create_namespaced_custom_object(GROUP, VERSION, mvs.ns, "retrainpolicies", policy)

    def ready() -> dict[str, Any]:
        rp = mvs.custom.get_namespaced_custom_object(GROUP, VERSION, mvs.ns, "retrainpolicies", "iris")
        return next((c for c in (rp.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})

    cond = eventually(
        lambda: (c := ready()).get("reason") == "TemplateNeedsTraining" and c,
        timeout=120,
        what="the policy to say the imported champion needs template.spec.training",
    )
    assert cond["status"] == "False" and "champion iris-imp was imported" in cond["message"], cond
    mvs.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        mvs.ns,
        "retrainpolicies",
        "iris",
        {"spec": {"template": {"spec": {"training": IRIS_TRAINING}}}},
    )

    def child() -> dict[str, Any] | None:
        items = mvs.custom.list_namespaced_custom_object(
            GROUP, VERSION, mvs.ns, "modelversions", label_selector="modelops.dev/policy=iris"
        )["items"]
        return items[0] if items else None

    made = eventually(child, timeout=120, what="a retrain child of the imported champion")
    assert made["spec"]["parent"] == "iris-imp" and "source" not in made["spec"]
    assert made["spec"]["training"]["estimator"]["class"] == "LogisticRegression"
    name = made["metadata"]["name"]
    st = mvs.wait_phase(name, "Serving", "Superseded", "Rejected", timeout=300)
    assert st["training"]["succeeded"] and st["training"]["metrics"]["accuracy"] > 0.8, st


def test_a_file_that_is_not_the_named_digest_fails_the_import(mvs, kubelet, operator, outside, handover):
    artifact = {**on_claims(kubelet, outside, handover), "sha256": "0" * 64, "backoffLimit": 0}
    create_imported(mvs, "iris-wrong", artifact)
    st = mvs.wait_phase("iris-wrong", "Failed", timeout=240)
    trained = mvs.condition("iris-wrong", "Trained")
    assert "sha256 mismatch" in trained["message"] and outside["sha256"] in trained["message"], trained
    assert "training failed" in st["message"]
    assert mvs.champion_of("iris") is None


@pytest.mark.s3
def test_a_model_trained_outside_is_imported_from_s3_and_served_from_s3(
    mvs, kubelet, operator, outside, seaweedfs, bucket
):
    fs = seaweedfs.fs()
    fs.pipe_file(f"{bucket}/handover/iris/model.skops", Path(outside["model"]).read_bytes())
    fs.pipe_file(f"{bucket}/data/iris-reference.csv", Path(outside["reference"]).read_bytes())
    mvs.core.create_namespaced_secret(
        mvs.ns,
        {
            "metadata": {"name": "s3-keys"},
            "data": {
                "accessKeyId": base64.b64encode(seaweedfs.access_key.encode()).decode(),
                "secretAccessKey": base64.b64encode(seaweedfs.secret_key.encode()).decode(),
            },
        },
    )
    storage = {
        "s3": {
            "bucket": bucket,
            "prefix": "models",
            "secretRef": {"name": "s3-keys"},
            "endpointUrl": seaweedfs.endpoint,
            "region": "us-east-1",
        }
    }
    artifact = {
        "uri": f"s3://{bucket}/handover/iris/model.skops",
        "sha256": outside["sha256"],
        "referenceDataset": {"uri": f"s3://{bucket}/data/iris-reference.csv", "target": "target"},
    }
    create_imported(mvs, "iris-s3", artifact, storage=storage)
    st = mvs.wait_phase("iris-s3", "Serving", timeout=240)
    art = st["training"]["artifact"]
    assert art == {"uri": f"s3://{bucket}/models/iris/iris-s3/model.skops", "sha256": outside["sha256"]}
    assert hashlib.sha256(seaweedfs.fs().cat_file(art["uri"][len("s3://") :])).hexdigest() == art["sha256"]
    job = mvs.batch.read_namespaced_job("iris-s3-train", mvs.ns).spec.template.spec
    env = {e.name: e for e in job.containers[0].env}
    # the model file is read with the store's keys (no connection of its own), by reference only
    assert env["MODELOPS_SOURCE_S3_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == "s3-keys"
    assert not any(v.persistent_volume_claim for v in job.volumes or [])
    srv = kubelet.server_for("iris-s3")
    r = httpx.post(f"{srv.url}/predict", json={"instances": [ROW]}, timeout=10)
    assert r.status_code == 200, r.text
