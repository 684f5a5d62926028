"""Desired manifests, pinned by golden files (set UPDATE_GOLDEN=1 to rewrite them after a deliberate change)."""

import json
import os
from pathlib import Path

import pytest

from modelops.api.modelversion import ModelVersionSpec, Search
from modelops.lifecycle import naming, resources
from modelops.settings import Settings

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = Settings(trainer_image="modelops:test", server_image="modelops:test")
SPEC = ModelVersionSpec.model_validate(
    {
        "model": "churn",
        "training": {
            "dataset": {"uri": "pvc://datasets/churn/2026-q3.csv", "target": "churned"},
            "estimator": {"class": "HistGradientBoostingClassifier", "params": {"max_iter": 50}},
        },
    }
)
ARTIFACT = "pvc://modelops-artifacts/churn/churn-v3/model.skops"
SEARCHED = SPEC.model_copy(
    update={
        "training": SPEC.training.model_copy(
            update={
                "search": Search.model_validate(
                    {"space": {"learning_rate": [0.05, 0.1, 0.2], "max_depth": [3, None]}, "parallelism": 4}
                )
            }
        )
    }
)
S3_SPEC = ModelVersionSpec.model_validate(
    {
        "model": "churn",
        "training": {
            "dataset": {"uri": "s3://ml-data/churn/2026-q3.parquet", "target": "churned"},
            "estimator": {"class": "HistGradientBoostingClassifier", "params": {"max_iter": 50}},
        },
        "storage": {
            "s3": {
                "bucket": "ml-models",
                "prefix": "team-a",
                "secretRef": {"name": "s3-keys"},
                "endpointUrl": "http://seaweedfs.storage:8333",
                "region": "eu-west-1",
            }
        },
    }
)
S3_ARTIFACT = "s3://ml-models/team-a/churn/churn-v3/model.skops"


def golden(name: str, obj) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs; UPDATE_GOLDEN=1 after a deliberate change"


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("job", lambda: resources.training_job("churn-v3", "ml", "uid-1", SPEC, SETTINGS)),
        ("search-job", lambda: resources.search_job("churn-v3", "ml", "uid-1", SEARCHED, SETTINGS)),
        (
            "deployment",
            lambda: resources.server_deployment("churn-v3", "ml", SPEC, ARTIFACT, "ab" * 32, 2, SETTINGS),
        ),
        ("version-service", lambda: resources.version_service("churn-v3", "ml", SPEC, SETTINGS)),
        ("stable-service", lambda: resources.stable_service("churn", "ml", "churn-v3")),
        ("job-s3", lambda: resources.training_job("churn-v3", "ml", "uid-1", S3_SPEC, SETTINGS)),
        (
            "deployment-s3",
            lambda: resources.server_deployment(
                "churn-v3", "ml", S3_SPEC, S3_ARTIFACT, "ab" * 32, 2, SETTINGS
            ),
        ),
        ("cleanup-s3", lambda: resources.cleanup_job("churn-v3", "ml", S3_SPEC, SETTINGS)),
    ],
)
def test_golden_manifests(name, build):
    golden(name, build())


def test_pods_meet_the_restricted_pod_security_profile():
    for obj in (
        resources.training_job("v", "ml", "u", SPEC, SETTINGS),
        resources.search_job("v", "ml", "u", SEARCHED, SETTINGS),
        resources.server_deployment("v", "ml", SPEC, ARTIFACT, "ab" * 32, 1, SETTINGS),
    ):
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True


def test_training_job_mounts_dataset_claim_read_only_and_binds_its_report():
    job = resources.training_job("churn-v3", "ml", "uid-1", SPEC, SETTINGS)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "dataset", "mountPath": "/mnt/pvc/datasets", "readOnly": True} in c["volumeMounts"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MODELOPS_JOB_UID"]["valueFrom"]["fieldRef"]["fieldPath"].endswith("controller-uid']")
    assert json.loads(env["MODELOPS_TRAINING_SPEC"]["value"])["dataset"]["uri"] == SPEC.training.dataset.uri
    assert job["metadata"]["name"] == naming.job_name("churn-v3") == "churn-v3-train"


def test_artifact_dir_maps_claim_uri_to_mount():
    assert resources.artifact_dir(SPEC, ARTIFACT) == "/artifacts/churn/churn-v3"
    with pytest.raises(ValueError, match="not on storage claim"):
        resources.artifact_dir(SPEC, "pvc://elsewhere/churn/churn-v3/model.skops")


def test_long_names_stay_dns_labels_and_unique():
    a, b = naming.deployment_name("x" * 70), naming.deployment_name("x" * 71)
    assert len(a) <= 63 and len(b) <= 63 and a != b


def test_a_capturing_server_writes_only_to_its_own_file_on_the_claim():
    spec = SPEC.model_copy(
        update={
            "serving": SPEC.serving.model_copy(update={"capture": {"maxRows": 500, "exclude": ["email"]}})
        }
    )
    spec = ModelVersionSpec.model_validate(spec.wire())
    dep = resources.server_deployment("churn-v3", "ml", spec, ARTIFACT, "ab" * 32, 1, SETTINGS)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {
        "MODELOPS_CAPTURE_FILE": "/capture/churn-v3.csv",
        "MODELOPS_CAPTURE_MAX_ROWS": "500",
        "MODELOPS_CAPTURE_EXCLUDE": "email",
        "MODELOPS_CAPTURE_TARGET": "churned",
    }
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in c["volumeMounts"]}
    assert mounts["/artifacts"] is True and mounts["/capture"] is False
    assert next(m for m in c["volumeMounts"] if m["mountPath"] == "/capture")["subPath"] == "churn/_captured"
    assert resources.capture_uri(spec) == "pvc://modelops-artifacts/churn/_captured/"
    # without capture the claim stays read-only for the server
    plain = resources.server_deployment("churn-v3", "ml", SPEC, ARTIFACT, "ab" * 32, 1, SETTINGS)
    assert plain["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"] is True
    assert "env" not in plain["spec"]["template"]["spec"]["containers"][0]


def test_capture_with_several_replicas_is_refused():
    body = SPEC.wire()
    body["serving"] = {"replicas": 2, "capture": {}}
    with pytest.raises(ValueError, match=r"serving\.capture needs replicas 0 or 1"):
        ModelVersionSpec.model_validate(body)


def test_the_search_is_an_indexed_job_with_one_index_per_shard_and_no_api_access():
    job = resources.search_job("churn-v3", "ml", "uid-1", SEARCHED, SETTINGS)
    js = job["spec"]
    assert job["metadata"]["name"] == naming.search_job_name("churn-v3") == "churn-v3-search"
    assert js["completionMode"] == "Indexed"
    assert js["completions"] == js["parallelism"] == 4  # 6 candidates, 4 pods asked for
    assert js["maxFailedIndexes"] == 0 and js["backoffLimitPerIndex"] == SPEC.training.backoff_limit
    (rule,) = js["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailIndex" and rule["onExitCodes"]["values"] == [2]
    pod = js["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    c = pod["containers"][0]
    assert c["command"] == ["modelops", "search-shard"] and c["args"][-2:] == ["--shards", "4"]
    env = {e["name"] for e in c["env"]}
    assert "MODELOPS_JOB_UID" in env and not {n for n in env if n.startswith("MODELOPS_MV_")}
    assert (
        pod["containers"][0]["volumeMounts"]
        == (
            resources.training_job("churn-v3", "ml", "uid-1", SEARCHED, SETTINGS)["spec"]["template"]["spec"][
                "containers"
            ][0]["volumeMounts"]
        )
    )  # the same data, as the final fit reads it


def test_fewer_candidates_than_pods_make_fewer_indexes():
    few = SEARCHED.training.search.model_copy(update={"space": {"max_depth": [3, None]}, "parallelism": 5})
    spec = SEARCHED.model_copy(update={"training": SEARCHED.training.model_copy(update={"search": few})})
    assert resources.search_job("v", "ml", "u", spec, SETTINGS)["spec"]["completions"] == 2


def test_the_training_job_after_a_search_names_the_search_job_it_merges():
    job = resources.training_job("churn-v3", "ml", "uid-1", SEARCHED, SETTINGS, search_uid="search-uid")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["MODELOPS_SEARCH"]["value"]) == {"jobUid": "search-uid", "shards": 4}
    plain = resources.training_job("churn-v3", "ml", "uid-1", SEARCHED, SETTINGS)
    assert "MODELOPS_SEARCH" not in {
        e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def _env(obj):
    return {e["name"]: e for e in obj["spec"]["template"]["spec"]["containers"][0].get("env", [])}


def test_s3_storage_mounts_no_claim_and_passes_keys_only_by_reference():
    objs = [
        resources.training_job("churn-v3", "ml", "uid-1", S3_SPEC, SETTINGS),
        resources.server_deployment("churn-v3", "ml", S3_SPEC, S3_ARTIFACT, "ab" * 32, 1, SETTINGS),
        resources.cleanup_job("churn-v3", "ml", S3_SPEC, SETTINGS),
    ]
    for obj in objs:
        pod = obj["spec"]["template"]["spec"]
        assert not any("persistentVolumeClaim" in v for v in pod.get("volumes", []))
        env = _env(obj)
        for var, key in (("ACCESS_KEY_ID", "accessKeyId"), ("SECRET_ACCESS_KEY", "secretAccessKey")):
            assert env[f"MODELOPS_S3_{var}"] == {
                "name": f"MODELOPS_S3_{var}",
                "valueFrom": {"secretKeyRef": {"name": "s3-keys", "key": key}},
            }
        assert env["MODELOPS_S3_ENDPOINT_URL"]["value"] == "http://seaweedfs.storage:8333"
    job, dep, cleanup = objs
    assert "MODELOPS_ARTIFACT_PVC" not in _env(job)
    # the s3:// dataset uses the store's connection when it names none of its own
    assert (
        _env(job)["MODELOPS_DATASET_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-keys"
    )
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--artifact-dir") + 1] == "s3://ml-models/team-a/churn/churn-v3"
    args = cleanup["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--store") + 1] == "s3://ml-models/team-a"


def test_workload_identity_when_no_secret_is_named():
    spec = S3_SPEC.model_copy(deep=True)
    spec.storage.s3.secret_ref = None
    spec.training.dataset.s3 = None
    env = _env(resources.training_job("churn-v3", "ml", "uid-1", spec, SETTINGS))
    assert not [n for n in env if n.endswith(("ACCESS_KEY_ID", "SECRET_ACCESS_KEY"))]
    assert env["MODELOPS_S3_REGION"]["value"] == "eu-west-1"


def test_an_s3_dataset_may_name_its_own_connection_beside_a_claim_store():
    spec = ModelVersionSpec.model_validate(
        {
            "model": "churn",
            "training": {
                "dataset": {
                    "uri": "s3://ml-data/churn.csv",
                    "target": "churned",
                    "s3": {"secretRef": {"name": "data-keys"}, "region": "us-east-2"},
                },
                "estimator": {"class": "LogisticRegression"},
            },
        }
    )
    job = resources.training_job("churn-v3", "ml", "uid-1", spec, SETTINGS)
    env = _env(job)
    assert env["MODELOPS_DATASET_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "data-keys"
    assert not [n for n in env if n.startswith("MODELOPS_S3_")]
    assert env["MODELOPS_ARTIFACT_PVC"]["value"] == "modelops-artifacts"


def test_storage_takes_a_claim_or_a_bucket_not_both():
    from pydantic import ValidationError

    from modelops.api.modelversion import Storage

    assert Storage().claim == "modelops-artifacts" and Storage().root == "/artifacts"
    s3 = Storage.model_validate({"s3": {"bucket": "ml-models"}})
    assert s3.claim is None and s3.root == "s3://ml-models"
    with pytest.raises(ValidationError):
        Storage.model_validate({"s3": {"bucket": "ml-models", "prefix": "/leading"}})
    with pytest.raises(ValidationError, match="either pvc or s3"):
        Storage.model_validate({"pvc": "mine", "s3": {"bucket": "ml-models"}})


def test_capture_needs_the_artifacts_on_a_claim():
    body = S3_SPEC.wire()
    body["serving"] = {"capture": {}}
    with pytest.raises(ValueError, match=r"serving\.capture writes served rows to the storage claim"):
        ModelVersionSpec.model_validate(body)


def test_a_challenger_reads_an_s3_champion_by_its_uri_and_mounts_nothing_for_it():
    from modelops.lifecycle.observed import ChampionView

    body = S3_SPEC.wire()
    body["validation"] = {"champion": {"metric": "accuracy"}}
    spec = ModelVersionSpec.model_validate(body)
    champion = ChampionView(
        name="churn-v2", artifact_uri="s3://ml-models/team-a/churn/churn-v2/model.skops", sha256="cd" * 32
    )
    job = resources.training_job("churn-v3", "ml", "uid-1", spec, SETTINGS, champion)
    env = _env(job)
    assert env["MODELOPS_CHAMPION_ARTIFACT"]["value"] == champion.artifact_uri
    assert json.loads(env["MODELOPS_COMPARE"]["value"])["champion"]["uri"] == champion.artifact_uri
    assert not any("persistentVolumeClaim" in v for v in job["spec"]["template"]["spec"]["volumes"])


def test_an_s3_template_is_resolved_with_the_champions_dataset_connection():
    job = resources.resolve_job(
        "churn", "ml", S3_SPEC, "churn-r1", "s3://ml-data/churn/%Y/", "2026-11-29T00:00:00Z", SETTINGS
    )
    pod = job["spec"]["template"]["spec"]
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    env = _env(job)
    # S3_SPEC's dataset names no connection of its own: the store's is used
    assert env["MODELOPS_DATASET_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "s3-keys"
    assert env["MODELOPS_DATASET_S3_ENDPOINT_URL"]["value"] == "http://seaweedfs.storage:8333"
    plain = resources.resolve_job(
        "churn", "ml", SPEC, "churn-r1", "pvc://datasets/churn/", "2026-11-29T00:00:00Z", SETTINGS
    )
    assert list(_env(plain)) == ["MODELOPS_PVC_ROOT"]


def test_a_golden_set_on_s3_gets_a_dataset_connection():
    body = SPEC.wire()
    body["validation"] = {
        "dataset": {"uri": "s3://ml-data/golden.csv", "target": "churned", "s3": {"region": "eu-north-1"}}
    }
    env = _env(
        resources.training_job("churn-v3", "ml", "uid-1", ModelVersionSpec.model_validate(body), SETTINGS)
    )
    assert env["MODELOPS_DATASET_S3_REGION"]["value"] == "eu-north-1"
    assert "MODELOPS_DATASET_S3_REGION" not in _env(
        resources.training_job("churn-v3", "ml", "uid-1", SPEC, SETTINGS)
    )


def test_a_search_needs_the_artifacts_on_a_claim():
    body = S3_SPEC.wire()
    body["training"]["search"] = {"space": {"max_depth": [3, None]}}
    with pytest.raises(ValueError, match=r"training\.search keeps its shard files on the storage claim"):
        ModelVersionSpec.model_validate(body)
