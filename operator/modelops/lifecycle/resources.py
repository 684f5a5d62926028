"""Desired Job, Deployment and Services of a ModelVersion, as whole manifests, without I/O."""

from __future__ import annotations

import json
from typing import Any

from modelops.api.modelversion import (
    REQUESTS_METRIC,
    ImportedArtifact,
    ModelVersionSpec,
    ResourceRequirements,
    S3Connection,
    Training,
)
from modelops.settings import Settings

from . import naming
from .observed import ChampionView

PVC_SCHEME = "pvc://"
RUN_AS = 65532
DEFAULT_TRAIN_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
DEFAULT_SERVE_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def _pod_security() -> dict[str, Any]:
    """Pod Security "restricted": non-root, seccomp RuntimeDefault."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _resources(res: ResourceRequirements | None, default: dict[str, Any]) -> dict[str, Any]:
    return res.wire() if res else default


def dataset_claim(uri: str) -> str | None:
    """The PVC a dataset URI reads from, if any."""
    if not uri.startswith(PVC_SCHEME):
        return None
    return uri[len(PVC_SCHEME) :].split("/", 1)[0]


# Environment prefixes read by modelops.storage (kept literal here: lifecycle does no I/O imports).
STORE_S3_ENV = "MODELOPS_S3_"
DATASET_S3_ENV = "MODELOPS_DATASET_S3_"
SOURCE_S3_ENV = "MODELOPS_SOURCE_S3_"
SECRET_KEYS = {"ACCESS_KEY_ID": "accessKeyId", "SECRET_ACCESS_KEY": "secretAccessKey"}


def s3_env(prefix: str, conn: S3Connection) -> list[dict[str, Any]]:
    """The pod's S3 settings for one role; keys come from the Secret by reference, never by value.

    The operator never reads the Secret (its RBAC has no Secrets): the kubelet resolves the
    reference, and a missing Secret or key keeps the pod from starting, which the Job reports.
    """
    env: list[dict[str, Any]] = []
    if conn.endpoint_url:
        env.append({"name": prefix + "ENDPOINT_URL", "value": conn.endpoint_url})
    if conn.region:
        env.append({"name": prefix + "REGION", "value": conn.region})
    if conn.secret_ref:
        for var, key in SECRET_KEYS.items():
            ref = {"secretKeyRef": {"name": conn.secret_ref.name, "key": key}}
            env.append({"name": prefix + var, "valueFrom": ref})
    return env


def dataset_connection(spec: ModelVersionSpec) -> S3Connection | None:
    """How the trainer reaches s3:// data (the training set, else the golden set): the data set's
    own settings, else the artifact store's. One connection per pod: when both sets are on S3,
    the training set's is used for both."""
    sets = [spec.data]
    if spec.validation.dataset is not None:
        sets.append(spec.validation.dataset)
    for ds in sets:
        if ds.uri.startswith("s3://"):
            return ds.s3 or spec.storage.s3 or S3Connection()
    return None


def source_connection(spec: ModelVersionSpec) -> S3Connection | None:
    """How the import Job reaches an s3:// model file: its own settings, else the artifact store's."""
    imported = spec.imported
    if imported is None or not imported.uri.startswith("s3://"):
        return None
    return imported.s3 or spec.storage.s3 or S3Connection()


def _store_volumes(
    spec: ModelVersionSpec, read_only: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The artifact claim's mount and volume, or nothing when artifacts live in S3."""
    claim = spec.storage.claim
    if claim is None:
        return [], []
    mount: dict[str, Any] = {"name": "artifacts", "mountPath": spec.storage.mount_path}
    pvc: dict[str, Any] = {"claimName": claim}
    if read_only:
        mount["readOnly"] = pvc["readOnly"] = True
    return [mount], [{"name": "artifacts", "persistentVolumeClaim": pvc}]


def _store_env(spec: ModelVersionSpec) -> list[dict[str, Any]]:
    return s3_env(STORE_S3_ENV, spec.storage.s3) if spec.storage.s3 else []


def artifact_dir(spec: ModelVersionSpec, artifact_uri: str) -> str:
    """Where the server finds the artifact: the S3 prefix, or the storage claim's mount in its pod."""
    if artifact_uri.startswith("s3://"):
        return artifact_uri.rsplit("/", 1)[0]
    prefix = f"{PVC_SCHEME}{spec.storage.claim}/"
    if artifact_uri.startswith(prefix):
        rel = artifact_uri[len(prefix) :].rsplit("/", 1)[0]
        return f"{spec.storage.mount_path.rstrip('/')}/{rel}"
    if artifact_uri.startswith("file://"):
        return artifact_uri[len("file://") :].rsplit("/", 1)[0]
    raise ValueError(f"artifact URI {artifact_uri!r} is not on storage claim {spec.storage.claim!r}")


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels}


def champion_path(uri: str, spec: ModelVersionSpec, settings: Settings) -> tuple[str | None, str | None]:
    """Where a training Job finds a champion's model file, and the claim to mount for it (if another).

    Same claim as this version's storage: under its mount. Another claim: mounted read-only under
    the PVC root. `file://` (local runs): the path itself. `s3://`: the URI, which the trainer reads
    with the store's credentials. Anything else cannot be mounted: None.
    """
    if uri.startswith("file://"):
        return uri[len("file://") :], None
    if uri.startswith("s3://"):
        return uri, None
    claim = dataset_claim(uri)
    if claim is None:
        return None, None
    rel = uri[len(PVC_SCHEME) + len(claim) + 1 :]
    if claim == spec.storage.claim:
        return f"{spec.storage.mount_path.rstrip('/')}/{rel}", None
    return f"{settings.pvc_root}/{claim}/{rel}", claim


def compare_request(
    spec: ModelVersionSpec, champion: ChampionView | None, settings: Settings
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """What the trainer needs to score the champion on the same data (MODELOPS_COMPARE), the
    champion's model file in the pod, and the extra claim to mount; Nones when the spec compares
    with no champion or there is none yet."""
    if spec.validation.champion is None or champion is None:
        return None, None, None
    if not champion.artifact_uri or not champion.sha256:
        return None, None, None
    path, claim = champion_path(champion.artifact_uri, spec, settings)
    ds = spec.validation.dataset
    body = {
        "champion": {"name": champion.name, "uri": champion.artifact_uri, "sha256": champion.sha256},
        "dataset": ds.wire() if ds else None,
    }
    return body, path, claim


def training_job(
    name: str,
    namespace: str,
    uid: str,
    spec: ModelVersionSpec,
    settings: Settings,
    champion: ChampionView | None = None,
    search_uid: str | None = None,
) -> dict[str, Any]:
    """The training Job: runs `modelops train` on the spec, writes the artifact, reports to our status.

    For an imported model (spec.source.artifact) the same Job runs `modelops import` instead: it
    verifies and scores the given model file and writes it into the store as training would; the
    claims of the model file and of the reference data set are mounted read-only.

    With a champion to compare with, its name, artifact and digest go to the trainer, and its claim
    (and a golden set's) is mounted read-only. After a search, the search Job's uid and shard count
    tell the trainer which shard files to merge for the best parameters."""
    labels = naming.version_labels(spec.model, name, "trainer")
    t = spec.training
    imported = spec.imported
    job: Training | ImportedArtifact = t if t is not None else imported  # type: ignore[assignment]
    store_mounts, store_volumes = _store_volumes(spec, read_only=False)
    mounts = [*store_mounts, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [*store_volumes, {"name": "tmp", "emptyDir": {}}]
    request, champion_file, champion_claim = compare_request(spec, champion, settings)
    golden = spec.validation.dataset if request else None
    claims = [dataset_claim(spec.data.uri), dataset_claim(golden.uri) if golden else None, champion_claim]
    if imported is not None:
        claims.append(dataset_claim(imported.uri))
    seen: set[str] = set()
    for claim in claims:
        if not claim or claim in seen:
            continue
        seen.add(claim)
        if claim == spec.storage.claim:
            mounts.append(
                {"name": "artifacts", "mountPath": f"{settings.pvc_root}/{claim}", "readOnly": True}
            )
            continue
        volume = "dataset" if len(volumes) == len(store_volumes) + 1 else f"claim-{len(volumes) - 1}"
        mounts.append({"name": volume, "mountPath": f"{settings.pvc_root}/{claim}", "readOnly": True})
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    env = [
        (
            {"name": "MODELOPS_TRAINING_SPEC", "value": json.dumps(t.wire(), sort_keys=True)}
            if t is not None
            else {"name": "MODELOPS_IMPORT_SPEC", "value": json.dumps(job.wire(), sort_keys=True)}
        ),
        {"name": "MODELOPS_ARTIFACT_ROOT", "value": spec.storage.root},
        *([{"name": "MODELOPS_ARTIFACT_PVC", "value": spec.storage.claim}] if spec.storage.claim else []),
        {"name": "MODELOPS_PVC_ROOT", "value": settings.pvc_root},
        *_store_env(spec),
        *(s3_env(DATASET_S3_ENV, conn) if (conn := dataset_connection(spec)) else []),
        *(s3_env(SOURCE_S3_ENV, conn) if (conn := source_connection(spec)) else []),
        {"name": "MODELOPS_MV_NAME", "value": name},
        {"name": "MODELOPS_MV_UID", "value": uid},
        {"name": "MODELOPS_MV_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {
            "name": "MODELOPS_JOB_UID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}},
        },
    ]
    if request is not None:
        env.append({"name": "MODELOPS_COMPARE", "value": json.dumps(request, sort_keys=True)})
        if champion_file:  # a path of its own: a plain value, as any volume path in a pod spec
            env.append({"name": "MODELOPS_CHAMPION_ARTIFACT", "value": champion_file})
    # What the trainer needs beyond `training`: the parent (schema check, lineage), the card and the
    # fairness spec. Only set when given, so Jobs of versions without them are unchanged.
    if search_uid is not None and t is not None and t.search is not None:
        shards = t.search.shards()
        env.append({"name": "MODELOPS_SEARCH", "value": json.dumps({"jobUid": search_uid, "shards": shards})})
    if spec.parent:
        env.append({"name": "MODELOPS_PARENT", "value": spec.parent})
    if spec.card.model_dump(exclude_defaults=True):
        env.append({"name": "MODELOPS_CARD", "value": json.dumps(spec.card.wire(), sort_keys=True)})
    if spec.validation.fairness is not None:
        fairness = json.dumps(spec.validation.fairness.wire(), sort_keys=True)
        env.append({"name": "MODELOPS_FAIRNESS", "value": fairness})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(naming.job_name(name), namespace, labels),
        "spec": {
            "backoffLimit": job.backoff_limit,
            "activeDeadlineSeconds": job.active_deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.trainer_service_account,
                    "automountServiceAccountToken": True,
                    "securityContext": _pod_security(),
                    "containers": [
                        {
                            "name": "trainer",
                            "image": job.image or settings.trainer_image,
                            "imagePullPolicy": settings.image_pull_policy,
                            "command": ["modelops", "train" if t is not None else "import"],
                            "args": [
                                "--model",
                                spec.model,
                                "--version",
                                name,
                                "--store",
                                spec.storage.root,
                            ],
                            "env": env,
                            "resources": _resources(job.resources, DEFAULT_TRAIN_RESOURCES),
                            "securityContext": _container_security(),
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }


SEARCH_EXIT_BAD_INPUT = 2
"""The trainer's exit code for a spec or data that cannot work: the index fails without a retry."""


def search_job(
    name: str, namespace: str, uid: str, spec: ModelVersionSpec, settings: Settings
) -> dict[str, Any]:
    """The search as an Indexed Job: `completions` = `parallelism` = the shards; each index runs
    `modelops search-shard` on its share of the candidates and writes its trials to the claim.

    The pod is the training pod (same image, data mounts, spec and context, so the same rows and
    split) without API access: it reports through its files and its exit. A bad spec or data
    (exit 2) fails its index at once (podFailurePolicy FailIndex); anything else is retried up to
    training.backoffLimit times per index; one failed index fails the Job (maxFailedIndexes 0).
    """
    search = spec.training.search
    if search is None:
        raise ValueError("spec.training.search is not set")
    job = training_job(name, namespace, uid, spec, settings)
    shards = search.shards()
    labels = naming.version_labels(spec.model, name, "searcher")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["name"] = "search"
    container["command"] = ["modelops", "search-shard"]
    container["args"] = [*container["args"], "--shards", str(shards)]
    container["env"] = [e for e in container["env"] if not e["name"].startswith("MODELOPS_MV_")]
    pod.pop("serviceAccountName")
    pod["automountServiceAccountToken"] = False
    job["metadata"] = _meta(naming.search_job_name(name), namespace, labels)
    job["spec"] = {
        "completionMode": "Indexed",
        "completions": shards,
        "parallelism": shards,
        "backoffLimitPerIndex": spec.training.backoff_limit,
        "maxFailedIndexes": 0,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailIndex",
                    "onExitCodes": {
                        "containerName": "search",
                        "operator": "In",
                        "values": [SEARCH_EXIT_BAD_INPUT],
                    },
                }
            ]
        },
        "activeDeadlineSeconds": spec.training.active_deadline_seconds,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    return job


CAPTURE_MOUNT = "/capture"
CAPTURE_DIR = "_captured"
"""Under `<model>/` on the storage claim; `_` cannot start a version name, so it never clashes."""


def capture_dir(spec: ModelVersionSpec) -> str:
    """The model's capture folder on the claim: the only part a server may write (subPath mount)."""
    return f"{spec.model}/{CAPTURE_DIR}"


def capture_file(spec: ModelVersionSpec, version: str) -> str:
    """Where a capturing server writes, inside its pod."""
    return f"{CAPTURE_MOUNT}/{version}.csv"


def capture_uri(spec: ModelVersionSpec) -> str:
    """The folder a RetrainPolicy's `template.datasetUri` names to train on captured data."""
    return f"pvc://{spec.storage.claim}/{spec.model}/{CAPTURE_DIR}/"


def server_deployment(
    name: str,
    namespace: str,
    spec: ModelVersionSpec,
    artifact_uri: str,
    sha256: str,
    replicas: int | None,
    settings: Settings,
) -> dict[str, Any]:
    """The serving Deployment: `modelops serve` on the verified artifact, scraped by Prometheus.

    `replicas` None leaves spec.replicas out, so our field manager does not own it: the version's
    HorizontalPodAutoscaler does (server-side apply; see `Kube.hand_over_replicas`)."""
    labels = naming.version_labels(spec.model, name, "server")
    port = settings.server_port
    capture = spec.serving.capture
    # The claim is mounted read-only; with capture its volume is writable for the subPath below.
    store_mounts, store_volumes = _store_volumes(spec, read_only=True)
    if capture is not None and store_volumes:
        store_volumes[0]["persistentVolumeClaim"]["readOnly"] = False
    mounts: list[dict[str, Any]] = [*store_mounts, {"name": "tmp", "mountPath": "/tmp"}]
    env: list[dict[str, Any]] = _store_env(spec)
    if capture is not None:  # the only place the server may write: its own folder on the claim
        mounts.append({"name": "artifacts", "mountPath": CAPTURE_MOUNT, "subPath": capture_dir(spec)})
        env += [
            {"name": "MODELOPS_CAPTURE_FILE", "value": capture_file(spec, name)},
            {"name": "MODELOPS_CAPTURE_MAX_ROWS", "value": str(capture.max_rows)},
            {"name": "MODELOPS_CAPTURE_EXCLUDE", "value": ",".join(capture.exclude)},
            {"name": "MODELOPS_CAPTURE_TARGET", "value": spec.data.target or "target"},
        ]
    probe = {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(naming.deployment_name(name), namespace, labels),
        "spec": {
            **({"replicas": replicas} if replicas is not None else {}),
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": naming.server_selector(spec.model, name)},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "securityContext": _pod_security(),
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "server",
                            "image": spec.serving.image or settings.server_image,
                            "imagePullPolicy": settings.image_pull_policy,
                            "command": ["modelops", "serve"],
                            "args": [
                                "--artifact-dir",
                                artifact_dir(spec, artifact_uri),
                                "--sha256",
                                sha256,
                                "--model",
                                spec.model,
                                "--version",
                                name,
                                "--port",
                                str(port),
                            ],
                            **({"env": env} if env else {}),
                            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                            "readinessProbe": probe,
                            "livenessProbe": {
                                "httpGet": {"path": "/v2/health/live", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "resources": _resources(spec.serving.resources, DEFAULT_SERVE_RESOURCES),
                            "securityContext": _container_security(),
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "volumeMounts": mounts,
                            **({"env": env} if env else {}),
                        }
                    ],
                    "volumes": [*store_volumes, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def server_hpa(name: str, namespace: str, spec: ModelVersionSpec, bounds: tuple[int, int]) -> dict[str, Any]:
    """The version's HorizontalPodAutoscaler (autoscaling/v2) on its server Deployment.

    `bounds` are (minReplicas, maxReplicas): the spec's, or one size twice while the operator pins
    the size (a canary's split) without writing the Deployment's replicas itself.
    """
    auto = spec.serving.autoscaling
    assert auto is not None
    if auto.target_cpu_utilization is not None:
        metric: dict[str, Any] = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": auto.target_cpu_utilization},
            },
        }
    else:
        assert auto.target_requests_per_second is not None
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": REQUESTS_METRIC},
                "target": {"type": "AverageValue", "averageValue": milli(auto.target_requests_per_second)},
            },
        }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(
            naming.hpa_name(name), namespace, naming.version_labels(spec.model, name, "server")
        ),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": naming.deployment_name(name),
            },
            "minReplicas": bounds[0],
            "maxReplicas": bounds[1],
            "metrics": [metric],
        },
    }


def milli(value: float) -> str:
    """A quantity as the API server writes it back (`10`, `2500m`), so a re-read compares equal."""
    m = round(value * 1000)
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"


def version_service(name: str, namespace: str, spec: ModelVersionSpec, settings: Settings) -> dict[str, Any]:
    """A Service per version: canary analysis, shadow traffic and debugging reach it directly."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            naming.version_service_name(name), namespace, naming.version_labels(spec.model, name, "server")
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.server_selector(spec.model, name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def stable_service(model: str, namespace: str, champion: str) -> dict[str, Any]:
    """The model's stable Service: its selector is the one place that says who the champion is."""
    labels = {
        naming.LABEL_NAME: model,
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
        naming.LABEL_MODEL: model,
        naming.LABEL_COMPONENT: "stable",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": naming.stable_service_name(model),
            "namespace": namespace,
            "labels": labels,
            "annotations": {naming.ANNOTATION_CHAMPION: champion},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": naming.server_selector(model, champion),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _tool_job(
    name: str,
    namespace: str,
    labels: dict[str, str],
    backoff_limit: int,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    """A short operator-side Job (clean-up, data resolution): one restricted container, no API token,
    bounded in time and collected an hour after it ends."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "containers": [{**container, "securityContext": _container_security()}],
                    "volumes": volumes,
                },
            },
        },
    }


def cleanup_job(name: str, namespace: str, spec: ModelVersionSpec, settings: Settings) -> dict[str, Any]:
    """Deletes a version's artifacts from the claim or bucket; the version's finalizer waits for it."""
    mounts, volumes = _store_volumes(spec, read_only=False)
    container = {
        "name": "cleanup",
        "image": spec.job_image or settings.trainer_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["modelops", "cleanup"],
        "args": ["--store", spec.storage.root, "--model", spec.model, "--version", name],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        **({"env": env} if (env := _store_env(spec)) else {}),
        "volumeMounts": mounts,
    }
    labels = naming.version_labels(spec.model, name, "cleaner")
    return _tool_job(naming.cleanup_job_name(name), namespace, labels, 2, container, volumes)


def _resolve_s3_env(champion: ModelVersionSpec, uri: str) -> list[dict[str, Any]]:
    """An s3:// template is read with the champion's dataset connection, else its store's."""
    if not uri.startswith("s3://"):
        return []
    return s3_env(DATASET_S3_ENV, champion.data.s3 or champion.storage.s3 or S3Connection())


def resolve_job(
    policy: str, namespace: str, champion: ModelVersionSpec, child: str, uri: str, at: str, settings: Settings
) -> dict[str, Any]:
    """Finds a retrain child's data (template filled, newest file of a folder) and its sha256.

    Runs `modelops resolve` with only the dataset's claim mounted, read-only (or, for s3://, the
    dataset's S3 settings in its environment), no API access; its
    report is its termination message, which the policy reads from the pod. Labelled with the
    child's name (the pod cache is keyed by it) and the policy's (whose events wake the policy).
    """
    labels = {**naming.version_labels(champion.model, child, "resolver"), naming.LABEL_POLICY: policy}
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if claim := dataset_claim(uri):
        mounts.append({"name": "dataset", "mountPath": f"{settings.pvc_root}/{claim}", "readOnly": True})
        volumes.append({"name": "dataset", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    container = {
        "name": "resolve",
        "image": champion.job_image or settings.trainer_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["modelops", "resolve"],
        "args": ["--uri", uri, "--at", at],
        "env": [{"name": "MODELOPS_PVC_ROOT", "value": settings.pvc_root}, *_resolve_s3_env(champion, uri)],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": mounts,
    }
    return _tool_job(naming.resolve_job_name(child), namespace, labels, 1, container, volumes)
