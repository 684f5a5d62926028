"""ModelVersions whose data and artifacts live in S3 (a real SeaweedFS), run by the real operator.

The operator renders the Secret's keys into the trainer's, server's and clean-up Job's environment
by reference; the kubelet stand-in resolves them as a kubelet would and runs the real programs.
"""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.support.wait import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.s3]

ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


@pytest.fixture
def s3(mvs, seaweedfs, bucket):
    """The Secret a platform team would create, the training data uploaded, and a storage spec."""
    from sklearn.datasets import load_iris

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
    mvs.core.create_namespaced_secret(
        mvs.ns,
        {
            "metadata": {"name": "s3-wrong"},
            "data": {
                "accessKeyId": base64.b64encode(seaweedfs.access_key.encode()).decode(),
                "secretAccessKey": base64.b64encode(b"not-the-secret").decode(),
            },
        },
    )
    frame = load_iris(as_frame=True).frame
    seaweedfs.fs().pipe_file(f"{bucket}/data/iris.csv", frame.to_csv(index=False).encode())

    def storage(secret: str = "s3-keys") -> dict:
        return {
            "s3": {
                "bucket": bucket,
                "prefix": "team-a/models",
                "secretRef": {"name": secret},
                "endpointUrl": seaweedfs.endpoint,
                "region": "us-east-1",
            }
        }

    return storage


def training(uri: str) -> dict:
    return {
        "dataset": {"uri": uri, "target": "target"},
        "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
        "backoffLimit": 0,
    }


def test_train_from_and_to_s3_then_serve_from_s3(mvs, kubelet, operator, seaweedfs, bucket, s3):
    mvs.create("iris-v1", storage=s3(), training=training(f"s3://{bucket}/data/iris.csv"))
    st = mvs.wait_phase("iris-v1", "Serving", timeout=240)
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
    srv = kubelet.server_for("iris-v1")
    r = httpx.post(f"{srv.url}/predict", json={"instances": [ROW]}, timeout=10)
    assert r.status_code == 200, r.text
    # the model card the trainer wrote beside the model, served from the bucket
    card = httpx.get(f"{srv.url}/v2/models/iris/card", timeout=10)
    assert card.status_code == 200 and card.json()["version"] == "iris-v1", card.text


def test_wrong_credentials_fail_with_the_reason(mvs, kubelet, operator, bucket, s3):
    mvs.create("iris-bad", storage=s3("s3-wrong"), training=training(f"s3://{bucket}/data/iris.csv"))
    st = mvs.wait_phase("iris-bad", "Failed", timeout=240)
    trained = mvs.condition("iris-bad", "Trained")
    assert trained["reason"] == "TrainingFailed"
    assert "access denied" in trained["message"] and "credentials" in trained["message"], trained
    assert "training failed" in st["message"]


def test_missing_object_fails_naming_it(mvs, kubelet, operator, bucket, s3):
    uri = f"s3://{bucket}/data/missing.csv"
    mvs.create("iris-missing", storage=s3(), training=training(uri))
    mvs.wait_phase("iris-missing", "Failed", timeout=240)
    trained = mvs.condition("iris-missing", "Trained")
    assert uri in trained["message"] and "no such object" in trained["message"], trained


def test_tampered_object_fails_and_deleting_with_artifacts_clears_the_prefix(
    mvs, kubelet, operator, seaweedfs, bucket, s3
):
    kubelet.hold_servers.add("iris-v1")
    mvs.create("iris-v1", storage=s3(), training=training(f"s3://{bucket}/data/iris.csv"))
    art = eventually(
        lambda: (mvs.status("iris-v1").get("training") or {}).get("artifact"),
        timeout=240,
        what="iris-v1 to be trained",
    )
    fs = seaweedfs.fs()
    key = art["uri"][len("s3://") :]
    fs.pipe_file(key, fs.cat_file(key) + b"tampered")
    kubelet.hold_servers.discard("iris-v1")
    st = mvs.wait_phase("iris-v1", "Failed", timeout=240)
    assert "sha256" in st["message"], st
    # retention's path: annotate, then delete; the finalizer's clean-up Job empties the prefix
    prefix = f"{bucket}/team-a/models/iris/iris-v1/"
    assert fs.find(prefix)
    # exactly retention's patch (controllers/retrainpolicy.collect): annotation and finalizer at once
    mvs.patch(
        "iris-v1",
        {
            "metadata": {
                "annotations": {"modelops.dev/delete-artifacts": "true"},
                "finalizers": ["modelops.dev/operator"],
            }
        },
    )
    mvs.delete("iris-v1")
    # a fresh client each time: s3fs caches listings, and the clean-up ran in another process
    eventually(
        lambda: not seaweedfs.fs().find(prefix), timeout=240, what="the version's S3 prefix to be deleted"
    )
    eventually(
        lambda: (
            "iris-v1"
            not in [
                i["metadata"]["name"]
                for i in mvs.custom.list_namespaced_custom_object(
                    "modelops.dev", "v1alpha1", mvs.ns, "modelversions"
                )["items"]
            ]
        ),
        timeout=120,
        what="the finalizer to let go",
    )
    assert seaweedfs.fs().find(f"{bucket}/data/")  # nothing outside the version's prefix
