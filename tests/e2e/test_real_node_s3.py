"""ModelVersions whose data and artifacts live in S3 (a real SeaweedFS on the host), trained, served
and cleaned up by real containers on the node, driven by the operator pod.

The operator renders the Secret's keys into the trainer's, server's and clean-up Job's environment
by reference; the kubelet resolves them, and the containers reach the S3 server at the node's
address through the bridge. Moved from the kwok suite, less the tampered artifact, which needs a
server held back until the test has changed the object (tests/integration/test_s3_modelversion.py).
The node and the operator pod are the session's (tests/e2e/conftest.py); this module has its own
namespace, PV and bucket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.realnode import Versions, kubectl, marks
from tests.support.seaweedfs import SeaweedFS, arrange_bucket, training
from tests.support.wait import eventually

pytestmark = [*marks(), pytest.mark.s3]

NS = "real-s3"
ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


@pytest.fixture(scope="module")
def bucket(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.bucket("real-s3")


@pytest.fixture(scope="module")
def s3(mvs: Versions, seaweedfs: SeaweedFS, bucket: str) -> Callable[..., dict[str, Any]]:
    return arrange_bucket(mvs, seaweedfs, bucket)


def test_train_from_and_to_s3_then_serve_from_s3(
    mvs: Versions, seaweedfs: SeaweedFS, bucket: str, s3: Callable[..., dict[str, Any]]
) -> None:
    mvs.create("iris-v1", storage=s3(), training=training(f"s3://{bucket}/data/iris.csv"))
    st = mvs.wait_phase("iris-v1", "Serving")
    art = st["training"]["artifact"]
    assert art["uri"] == f"s3://{bucket}/team-a/models/iris/iris-v1/model.skops"
    fs = seaweedfs.fs()
    assert hashlib.sha256(fs.cat_file(art["uri"][5:])).hexdigest() == art["sha256"]
    assert (
        st["training"]["datasetDigest"] == hashlib.sha256(fs.cat_file(f"{bucket}/data/iris.csv")).hexdigest()
    )
    # no claim anywhere: keys by reference only, never by value in the manifests
    job = mvs.batch.read_namespaced_job("iris-v1-train", mvs.ns).spec.template.spec
    dep = mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns).spec.template.spec
    for pod in (job, dep):
        assert not any(v.persistent_volume_claim for v in pod.volumes or [])
        env = {e.name: e for e in pod.containers[0].env}
        assert env["MODELOPS_S3_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == "s3-keys"
        assert env["MODELOPS_S3_SECRET_ACCESS_KEY"].value is None
    # the server container loaded the model from the bucket; kube-proxy routes its Service
    url = mvs.url("iris-v1-server")
    r = eventually(
        lambda: httpx.post(f"{url}/predict", json={"instances": [ROW]}, timeout=10),
        timeout=60,
        what=f"POST {url}/predict",
    )
    assert r.status_code == 200, r.text
    # the model card the trainer wrote beside the model, served from the bucket
    card = httpx.get(f"{url}/v2/models/iris/card", timeout=10)
    assert card.status_code == 200 and card.json()["version"] == "iris-v1", card.text


def test_wrong_credentials_fail_with_the_reason(
    mvs: Versions, bucket: str, s3: Callable[..., dict[str, Any]]
) -> None:
    mvs.create("iris-bad", storage=s3("s3-wrong"), training=training(f"s3://{bucket}/data/iris.csv"))
    st = mvs.wait_phase("iris-bad", "Failed")
    trained = mvs.condition("iris-bad", "Trained")
    assert trained is not None and trained["reason"] == "TrainingFailed", trained
    assert "access denied" in trained["message"] and "credentials" in trained["message"], trained
    assert "training failed" in st["message"]


def test_missing_object_fails_naming_it(
    mvs: Versions, bucket: str, s3: Callable[..., dict[str, Any]]
) -> None:
    uri = f"s3://{bucket}/data/missing.csv"
    mvs.create("iris-missing", storage=s3(), training=training(uri))
    mvs.wait_phase("iris-missing", "Failed")
    trained = mvs.condition("iris-missing", "Trained")
    assert trained is not None and uri in trained["message"] and "no such object" in trained["message"], (
        trained
    )


def test_deleting_with_artifacts_clears_the_prefix_by_a_clean_up_container(
    mvs: Versions, seaweedfs: SeaweedFS, bucket: str, s3: Callable[..., dict[str, Any]]
) -> None:
    """Retention's path: annotate, then delete; the finalizer's clean-up Job, a container of the
    project image with the store's keys, empties the version's prefix and nothing else."""
    mvs.create("lily-v1", "lily", storage=s3(), training=training(f"s3://{bucket}/data/iris.csv"))
    mvs.wait_phase("lily-v1", "Serving")
    prefix = f"{bucket}/team-a/models/lily/lily-v1/"
    assert seaweedfs.fs().find(prefix)
    # exactly retention's patch (controllers/retrainpolicy.collect): annotation and finalizer at once
    mvs.patch(
        "lily-v1",
        {
            "metadata": {
                "annotations": {"modelops.dev/delete-artifacts": "true"},
                "finalizers": ["modelops.dev/operator"],
            }
        },
    )
    mvs.delete("lily-v1")
    # a fresh client each time: s3fs caches listings, and the clean-up ran in another process
    eventually(
        lambda: not seaweedfs.fs().find(prefix), timeout=240, what="the version's S3 prefix to be deleted"
    )
    eventually(lambda: "lily-v1" not in mvs.names(), timeout=120, what="the finalizer to let go")
    assert seaweedfs.fs().find(f"{bucket}/data/")  # nothing outside the version's prefix
    assert seaweedfs.fs().find(f"{bucket}/team-a/models/iris/iris-v1/")
    # the Job outlives its version (its TTL removes it): its container said what it deleted
    job = mvs.batch.read_namespaced_job("lily-v1-cleanup", mvs.ns)
    assert job.status.succeeded == 1, job.status
    logs = kubectl(mvs.real.kubeconfig, "-n", mvs.ns, "logs", "job/lily-v1-cleanup").stdout
    assert f"deleted s3://{prefix}" in logs, logs
