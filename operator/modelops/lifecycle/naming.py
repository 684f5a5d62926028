"""Deterministic names and labels of everything the operator creates.

Names are a function of the owner's name only, so a handler that runs twice, or is
killed half way and restarted, finds (adopts) what it made instead of making another.
"""

from __future__ import annotations

import hashlib

MANAGED_BY = "modelops"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MODEL = "modelops.dev/model"
LABEL_VERSION = "modelops.dev/version"
LABEL_POLICY = "modelops.dev/policy"
ANNOTATION_PROMOTE = "modelops.dev/promote"
ANNOTATION_APPROVED_BY = "modelops.dev/approved-by"
ANNOTATION_RETRAIN = "modelops.dev/retrain"
ANNOTATION_CHAMPION = "modelops.dev/champion"
ANNOTATION_DELETE_ARTIFACTS = "modelops.dev/delete-artifacts"
"""Set by retention before it deletes a version: the finalizer then removes its files first."""
LABEL_POOL = "modelops.dev/traffic"
"""The shared label of the pods a model's stable Service may select while a replicas canary runs:
the operator puts it on the champion's pods and on a replicas canary's pods, and takes it off others."""
POOL_VALUE = "stable"
FINALIZER = "modelops.dev/operator"
"""Held only by versions whose artifacts must go with them (set together with the annotation)."""


def _fit(name: str, limit: int = 63) -> str:
    """Shorten a name to a DNS label, keeping it unique with a hash suffix."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def job_name(version: str) -> str:
    return _fit(f"{version}-train")


def search_job_name(version: str) -> str:
    """The Indexed Job of a version's hyperparameter search (before its training Job)."""
    return _fit(f"{version}-search")


def resolve_job_name(child: str) -> str:
    """The Job that finds a retrain child's data before the child is made."""
    return _fit(f"{child}-data")


def cleanup_job_name(version: str) -> str:
    return _fit(f"{version}-cleanup")


def deployment_name(version: str) -> str:
    return _fit(f"{version}-server")


def hpa_name(version: str) -> str:
    """The version's HorizontalPodAutoscaler, named after the Deployment it scales."""
    return deployment_name(version)


def version_service_name(version: str) -> str:
    return _fit(f"{version}-server")


def stable_service_name(model: str) -> str:
    """The model's stable Service: clients call `<model>`, it points at the champion."""
    return _fit(model)


def child_name(model: str, policy_uid: str, sequence: int) -> str:
    """A retrain child's name: deterministic in the policy and its trigger count, so a retry makes no second."""
    return _fit(f"{model}-r{sequence}-{policy_uid[:5]}")


def version_labels(model: str, version: str, component: str) -> dict[str, str]:
    return {
        LABEL_NAME: model,
        LABEL_INSTANCE: version,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MODEL: model,
        LABEL_VERSION: version,
    }


def pool_selector(model: str) -> dict[str, str]:
    """The stable Service's selector during a replicas canary: champion and canary pods alike."""
    return {LABEL_MODEL: model, LABEL_COMPONENT: "server", LABEL_POOL: POOL_VALUE}


def server_selector(model: str, version: str) -> dict[str, str]:
    return {LABEL_MODEL: model, LABEL_VERSION: version, LABEL_COMPONENT: "server"}
