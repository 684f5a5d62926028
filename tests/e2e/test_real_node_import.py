"""Bring your own model, on the real node: a model trained by `modelops train` outside the cluster
is imported from a team's claim or from S3 (a real SeaweedFS on the host) by a `modelops import`
container, then validated, served by a server container and retrained like one trained here.

Moved from the kwok suite: nothing here needs a fault on cue. The node and the operator pod are the
session's (tests/e2e/conftest.py); this module has its own namespace, artifact PV and handover PV.
"""

from __future__ import annotations

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
from tests.support.realnode import RUN_AS, Versions, marks
from tests.support.seaweedfs import SeaweedFS, secret
from tests.support.wait import eventually

pytestmark = marks()

NS = "real-import"

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


HANDOVER = "models-in"


@pytest.fixture(scope="module")
def handover(mvs: Versions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A team's own claim, `models-in` (bound to a hostPath PV as the scheduler requires), apart
    from the artifact claim: the import Job mounts it read-only. Yields its folder on the host."""
    folder = tmp_path_factory.mktemp("models-in")
    folder.chmod(0o755)
    pv = f"{HANDOVER}-{mvs.ns}"
    mvs.core.create_persistent_volume(local_persistent_volume(pv, mvs.ns, HANDOVER, folder))
    mvs.core.create_namespaced_persistent_volume_claim(
        mvs.ns,
        {
            "metadata": {"name": HANDOVER},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": pv,
                "storageClassName": "",
            },
        },
    )
    eventually(
        lambda: mvs.core.read_namespaced_persistent_volume_claim(HANDOVER, mvs.ns).status.phase == "Bound",
        timeout=30,
        what="the models-in claim to bind",
    )
    yield folder
    with contextlib.suppress(client.ApiException):
        mvs.core.delete_persistent_volume(pv)


def on_claim(folder: Path, outside: dict[str, Any]) -> dict[str, Any]:
    """The model file and the reference set put on the team's claim, readable by the containers'
    uid (a hostPath volume keeps the host's owners and modes)."""
    dest = folder / "iris"
    dest.mkdir(mode=0o755, exist_ok=True)
    for source, name in ((outside["model"], "model.skops"), (outside["reference"], "reference.csv")):
        shutil.copy(source, dest / name)
        (dest / name).chmod(0o644)
    return {
        "uri": f"pvc://{HANDOVER}/iris/model.skops",
        "sha256": outside["sha256"],
        "referenceDataset": {"uri": f"pvc://{HANDOVER}/iris/reference.csv", "target": "target"},
    }


def predict(mvs: Versions, version: str) -> httpx.Response:
    """POST /predict to the version's server container, through its Service's ClusterIP."""
    url = mvs.url(f"{version}-server")
    return eventually(
        lambda: httpx.post(f"{url}/predict", json={"instances": [ROW]}, timeout=10),
        timeout=60,
        what=f"POST {url}/predict",
    )


def test_a_model_trained_outside_is_imported_from_a_claim_served_and_retrained(
    mvs: Versions, store: Path, outside: dict[str, Any], handover: Path
) -> None:
    create_imported(mvs, "iris-imp", on_claim(handover, outside))
    st = mvs.wait_phase("iris-imp", "Serving")
    assert mvs.champion_of("iris") == "iris-imp"
    tr = st["training"]
    assert tr["task"] == "classification" and tr["metrics"]["accuracy"] > 0.9
    # the store holds the very bytes that were verified, under the version's own path
    assert tr["artifact"] == {
        "uri": "pvc://modelops-artifacts/iris/iris-imp/model.skops",
        "sha256": outside["sha256"],
    }
    stored = store / "iris" / "iris-imp" / "model.skops"
    assert stored.read_bytes() == outside["model"].read_bytes()
    assert stored.stat().st_uid == RUN_AS  # written by the import container's user
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
    r = predict(mvs, "iris-imp")
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
    st = mvs.wait_phase(name, "Serving", "Superseded", "Rejected")
    assert st["training"]["succeeded"] and st["training"]["metrics"]["accuracy"] > 0.8, st


def test_a_file_that_is_not_the_named_digest_fails_the_import(
    mvs: Versions, outside: dict[str, Any], handover: Path
) -> None:
    """Model `aster`: the first test's iris champion serves on in this namespace."""
    artifact = {**on_claim(handover, outside), "sha256": "0" * 64, "backoffLimit": 0}
    create_imported(mvs, "aster-wrong", artifact, model="aster")
    st = mvs.wait_phase("aster-wrong", "Failed")
    trained = mvs.condition("aster-wrong", "Trained")
    assert "sha256 mismatch" in trained["message"] and outside["sha256"] in trained["message"], trained
    assert "training failed" in st["message"]
    assert mvs.champion_of("aster") is None


@pytest.mark.s3
def test_a_model_trained_outside_is_imported_from_s3_and_served_from_s3(
    mvs: Versions, outside: dict[str, Any], seaweedfs: SeaweedFS, bucket: str
) -> None:
    """Model `daisy`, served from the bucket beside the first test's iris."""
    fs = seaweedfs.fs()
    fs.pipe_file(f"{bucket}/handover/iris/model.skops", Path(outside["model"]).read_bytes())
    fs.pipe_file(f"{bucket}/data/iris-reference.csv", Path(outside["reference"]).read_bytes())
    mvs.core.create_namespaced_secret(mvs.ns, secret("s3-keys", seaweedfs.access_key, seaweedfs.secret_key))
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
    create_imported(mvs, "daisy-s3", artifact, model="daisy", storage=storage)
    st = mvs.wait_phase("daisy-s3", "Serving")
    art = st["training"]["artifact"]
    assert art == {"uri": f"s3://{bucket}/models/daisy/daisy-s3/model.skops", "sha256": outside["sha256"]}
    assert hashlib.sha256(seaweedfs.fs().cat_file(art["uri"][len("s3://") :])).hexdigest() == art["sha256"]
    job = mvs.batch.read_namespaced_job("daisy-s3-train", mvs.ns).spec.template.spec
    env = {e.name: e for e in job.containers[0].env}
    # the model file is read with the store's keys (no connection of its own), by reference only
    assert env["MODELOPS_SOURCE_S3_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == "s3-keys"
    assert not any(v.persistent_volume_claim for v in job.volumes or [])
    r = predict(mvs, "daisy-s3")
    assert r.status_code == 200, r.text
