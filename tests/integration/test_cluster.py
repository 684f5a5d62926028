"""The test cluster is a real one: controllers, scheduler, GC, RBAC and OpenAPI validation all work,
and kwok plays pod lifecycles, including the held ModelOps pods that tests finish by annotation."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.helpers import wait_for

PAUSE = "registry.k8s.io/pause:3.10"
MANAGED = {"app.kubernetes.io/managed-by": "modelops"}
TRAINER = {**MANAGED, "app.kubernetes.io/component": "trainer"}
SERVER = {**MANAGED, "app.kubernetes.io/component": "server"}


def deployment(name: str, replicas: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    pod_labels = {"app": name, **(labels or {})}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "main", "image": PAUSE}]},
            },
        },
    }


def job(name: str, labels: dict[str, str] | None = None, backoff_limit: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                },
            },
        },
    }


def condition(obj: Any, kind: str) -> str | None:
    """Status ("True"/"False") of the condition ``kind`` on a typed object, None when absent."""
    for c in obj.status.conditions or []:
        if c.type == kind:
            return str(c.status)
    return None


def job_pod(core: client.CoreV1Api, namespace: str, job_name: str) -> Any:
    """The only pod of a Job, or None while there is none."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    assert len(pods) <= 1, [p.metadata.name for p in pods]
    return pods[0] if pods else None


def annotate(core: client.CoreV1Api, namespace: str, pod: str, annotations: dict[str, str]) -> None:
    """What the tests' kubelet stand-in does to end a held pod."""
    core.patch_namespaced_pod(pod, namespace, {"metadata": {"annotations": annotations}})


def kubectl(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """kubectl on the session's cluster ($KUBECONFIG), with a private discovery cache."""
    return subprocess.run(
        ["kubectl", f"--cache-dir={cache}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )


@pytest.fixture
def simulated(cluster: Any) -> None:
    if not cluster.simulated:
        pytest.skip("held ModelOps pods are played by the local cluster's kwok stages")


def test_deployment_gets_replicaset_and_ready_pods_on_nodes(cluster, api_client, namespace):
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))

    wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 2,
        timeout=60,
        message="Deployment web to have 2 ready replicas",
    )
    replica_sets = apps.list_namespaced_replica_set(namespace).items
    assert len(replica_sets) == 1
    assert replica_sets[0].metadata.owner_references[0].kind == "Deployment"
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.metadata.owner_references[0].name == replica_sets[0].metadata.name
        assert pod.status.phase == "Running"
        assert condition(pod, "Ready") == "True"
        assert pod.spec.node_name
        if cluster.simulated:
            from tests.cluster.localcluster import NODE_NAMES

            assert pod.spec.node_name in NODE_NAMES


def test_job_completes(api_client, namespace):
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(namespace, job("once"))

    done = wait_for(
        lambda: batch.read_namespaced_job("once", namespace).status.succeeded,
        timeout=60,
        message="Job once to succeed",
    )
    assert done == 1
    assert condition(batch.read_namespaced_job("once", namespace), "Complete") == "True"


def test_background_deletion_collects_dependents(api_client, namespace):
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("doomed", replicas=2))
    wait_for(
        lambda: apps.read_namespaced_deployment("doomed", namespace).status.ready_replicas == 2,
        timeout=60,
        message="Deployment doomed to be ready",
    )

    apps.delete_namespaced_deployment("doomed", namespace, propagation_policy="Background")

    wait_for(
        lambda: not apps.list_namespaced_replica_set(namespace).items,
        timeout=60,
        message="the garbage collector to delete the ReplicaSet",
    )
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=doomed").items,
        timeout=60,
        message="the ReplicaSet's pods to be deleted (kwok's pod-delete stage)",
    )


def test_foreground_deletion_waits_for_dependents(api_client, namespace):
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    hold = "test.modelops.dev/hold"
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "dependent",
                "finalizers": [hold],
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner.metadata.uid,
                        "blockOwnerDeletion": True,
                    }
                ],
            }
        },
    )

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Foreground")

    # The dependent's finalizer blocks its deletion, so the owner must wait, marked foregroundDeletion.
    wait_for(
        lambda: core.read_namespaced_config_map("dependent", namespace).metadata.deletion_timestamp,
        timeout=30,
        message="the garbage collector to delete the dependent",
    )
    waiting = core.read_namespaced_config_map("owner", namespace)
    assert waiting.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in (waiting.metadata.finalizers or [])

    core.patch_namespaced_config_map("dependent", namespace, {"metadata": {"finalizers": None}})

    def gone(name: str) -> bool:
        try:
            core.read_namespaced_config_map(name, namespace)
            return False
        except ApiException as e:
            if e.status == 404:
                return True
            raise

    wait_for(lambda: gone("dependent"), timeout=30, message="the dependent to be deleted")
    wait_for(lambda: gone("owner"), timeout=30, message="the owner to be deleted after its dependent")


def test_crd_applied_with_kubectl_is_served_and_validated(namespace, tmp_path):
    group = f"{namespace}.test.modelops.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "string", "enum": ["small", "large"]},
                                        "replicas": {"type": "integer", "minimum": 1},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }

    def widget(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }

    cache = tmp_path / "kube-cache"
    files = {
        "crd": crd,
        "good": widget("good", {"size": "small", "replicas": 2}),
        "bad": widget("bad", {"size": "huge", "replicas": 0}),
    }
    for stem, manifest in files.items():
        (tmp_path / f"{stem}.yaml").write_text(yaml.safe_dump(manifest))

    applied = kubectl("apply", "-f", str(tmp_path / "crd.yaml"), cache=cache)
    assert applied.returncode == 0, applied.stderr
    try:
        established = kubectl(
            "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s", cache=cache
        )
        assert established.returncode == 0, established.stderr

        good = wait_for(
            lambda: kubectl("apply", "-f", str(tmp_path / "good.yaml"), cache=cache).returncode == 0,
            timeout=30,
            message="kubectl apply of a valid Widget to succeed",
        )
        assert good
        served = kubectl("get", f"widgets.{group}", "good", "-n", namespace, "-o", "yaml", cache=cache)
        assert served.returncode == 0, served.stderr
        assert yaml.safe_load(served.stdout)["spec"] == {"size": "small", "replicas": 2}

        bad = kubectl("apply", "-f", str(tmp_path / "bad.yaml"), cache=cache)
        assert bad.returncode != 0
        assert 'spec.size: Unsupported value: "huge"' in bad.stderr, bad.stderr
        assert "spec.replicas: Invalid value: 0" in bad.stderr, bad.stderr
    finally:
        kubectl("delete", "-f", str(tmp_path / "crd.yaml"), "--wait=false", cache=cache)


def test_service_account_without_role_is_forbidden(api_client, namespace):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    admin = api_client.configuration
    config = client.Configuration(host=admin.host, ssl_ca_cert=admin.ssl_ca_cert)
    config.api_key = {"BearerToken": token}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    with client.ApiClient(config) as as_sa:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(as_sa).list_namespaced_pod(namespace)
        assert denied.value.status == 403  # authenticated (not 401), but not authorized
        assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)

        # And it is RBAC that decides: a Role bound to the account lets the same call through.
        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "nobody-reads-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        )
        wait_for(
            lambda: client.CoreV1Api(as_sa).list_namespaced_pod(namespace) is not None,
            timeout=30,
            message="the RoleBinding to take effect",
            ignore=(ApiException,),
        )


@pytest.mark.usefixtures("simulated")
def test_held_trainer_pod_runs_until_annotated_succeeded(api_client, namespace):
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    batch.create_namespaced_job(namespace, job("train", labels=TRAINER))
    batch.create_namespaced_job(namespace, job("control"))

    pod = wait_for(
        lambda: (p := job_pod(core, namespace, "train")) and p.status.phase == "Running" and p,
        timeout=60,
        message="the trainer pod to run",
    )
    # An ordinary Job created alongside completes on its own; the held one must still be running.
    wait_for(
        lambda: batch.read_namespaced_job("control", namespace).status.succeeded,
        timeout=60,
        message="the control Job to complete",
    )
    train = batch.read_namespaced_job("train", namespace)
    assert train.status.active == 1 and not train.status.succeeded
    assert job_pod(core, namespace, "train").status.phase == "Running"

    annotate(core, namespace, pod.metadata.name, {"sim.modelops.dev/result": "Succeeded"})

    wait_for(
        lambda: condition(batch.read_namespaced_job("train", namespace), "Complete") == "True",
        timeout=60,
        message="the trainer Job to complete",
    )
    done = job_pod(core, namespace, "train")
    assert done.status.phase == "Succeeded"
    terminated = done.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")


@pytest.mark.usefixtures("simulated")
def test_held_trainer_failure_reports_termination_message(api_client, namespace):
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    batch.create_namespaced_job(namespace, job("train", labels=TRAINER))
    pod = wait_for(
        lambda: (p := job_pod(core, namespace, "train")) and p.status.phase == "Running" and p,
        timeout=60,
        message="the trainer pod to run",
    )

    message = "ValueError: target column 'y' not found"
    annotate(
        core,
        namespace,
        pod.metadata.name,
        {
            "sim.modelops.dev/result": "Failed",
            "sim.modelops.dev/exit-code": "3",
            "sim.modelops.dev/message": message,
        },
    )

    failed = wait_for(
        lambda: (p := job_pod(core, namespace, "train")) and p.status.phase == "Failed" and p,
        timeout=60,
        message="the trainer pod to fail",
    )
    terminated = failed.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (3, "Error", message)
    wait_for(
        lambda: condition(batch.read_namespaced_job("train", namespace), "Failed") == "True",
        timeout=60,
        message="the trainer Job to fail (backoffLimit 0)",
    )


@pytest.mark.usefixtures("simulated")
def test_held_server_pod_is_ready_only_when_annotated(api_client, namespace):
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("model", labels=SERVER))

    def server_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=model").items
        return pods[0] if len(pods) == 1 else None

    pod = wait_for(
        lambda: (p := server_pod()) and p.status.phase == "Running" and p,
        timeout=60,
        message="the server pod to run",
    )
    assert condition(pod, "Ready") == "False"
    assert pod.status.container_statuses[0].state.running is not None
    assert not pod.status.container_statuses[0].ready
    assert not apps.read_namespaced_deployment("model", namespace).status.ready_replicas

    annotate(core, namespace, pod.metadata.name, {"sim.modelops.dev/ready": "true"})
    wait_for(
        lambda: apps.read_namespaced_deployment("model", namespace).status.ready_replicas == 1,
        timeout=60,
        message="the server Deployment to become ready",
    )
    assert condition(server_pod(), "Ready") == "True"

    annotate(
        core,
        namespace,
        pod.metadata.name,
        {
            "sim.modelops.dev/result": "Failed",
            "sim.modelops.dev/exit-code": "2",
            "sim.modelops.dev/message": "model artifact checksum mismatch",
        },
    )
    crashed = wait_for(
        lambda: (p := server_pod()) and p.status.container_statuses[0].state.waiting and p,
        timeout=60,
        message="the server pod to crash-loop",
    )
    status = crashed.status.container_statuses[0]
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert (status.last_state.terminated.exit_code, status.last_state.terminated.message) == (
        2,
        "model artifact checksum mismatch",
    )
    assert not status.ready
    assert condition(crashed, "Ready") == "False"
