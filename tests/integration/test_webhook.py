"""The validating webhook, called by the real API server, served by the operator (Kopf) with a
certificate from a test CA, configured by the ValidatingWebhookConfiguration shipped in manifests/webhook/.

The API server runs on this host, so the shipped configuration is used with its `service`
clientConfig swapped for a URL (and its caBundle, which cert-manager injects in a cluster), and
scoped to the test's namespace so no other test meets it.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.cluster.pki import CertificateAuthority
from tests.integration.conftest import ROOT, kubectl
from tests.support.admission_cases import INVALID, mv
from tests.support.kubelet import free_port
from tests.support.operator import OperatorProcess
from tests.support.wait import eventually

pytestmark = pytest.mark.cluster


def shipped(kind: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "manifests/webhook")], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == kind]


def apply(
    kubeconfig: str, namespace: str, body: dict[str, Any], *extra: str
) -> subprocess.CompletedProcess[str]:
    return kubectl(
        kubeconfig, "-n", namespace, "apply", *extra, "-f", "-", input=yaml.safe_dump(body), check=False
    )


@pytest.fixture(scope="module")
def webhook(cluster, crds, api_client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A namespace, the operator serving the webhook on 127.0.0.1 for it, and the shipped configuration
    pointing there: (kubeconfig, namespace). One for the module: the table has dozens of cases."""
    kc = str(cluster.kubeconfig)
    tmp = tmp_path_factory.mktemp("webhook")
    certs = tmp / "webhook-tls"
    certs.mkdir()
    ca = CertificateAuthority(certs)
    pair = ca.issue("serving", "modelops-webhook", server_ips=("127.0.0.1",))
    pair.cert.rename(certs / "tls.crt")
    pair.key.rename(certs / "tls.key")
    core = client.CoreV1Api(api_client)
    namespace = f"t-webhook-{secrets.token_hex(3)}"
    core.create_namespace(
        {"metadata": {"name": namespace, "labels": {"app.kubernetes.io/part-of": "modelops-tests"}}}
    )
    port = free_port()
    op = OperatorProcess(
        kc,
        namespace,
        tmp,
        MODELOPS_WEBHOOK_PORT=str(port),
        MODELOPS_WEBHOOK_ADDR="127.0.0.1",
        MODELOPS_WEBHOOK_CERT_DIR=str(certs),
    ).start()
    (config,) = shipped("ValidatingWebhookConfiguration")
    config = copy.deepcopy(config)
    config["metadata"] = {"name": f"modelops.dev-{namespace}"}
    ca_bundle = base64.b64encode(ca.cert_pem).decode()
    for hook in config["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    admission = client.AdmissionregistrationV1Api(api_client)
    admission.create_validating_webhook_configuration(config)
    try:
        # Ready when the API server gets the webhook's answer (the operator starts in a few seconds).
        # A spec only the webhook refuses (the CRD schema now refuses bad names itself).
        probe = mv("probe")
        probe["spec"]["validation"] = {"gates": [{"metric": "rmse", "max": 1}]}  # a classifier's gate

        def answered() -> bool:
            out = apply(kc, namespace, probe, "--dry-run=server")
            field = "spec.validation.gates[0].metric"
            return out.returncode != 0 and field in out.stderr and "denied the request" in out.stderr

        eventually(answered, timeout=90, what="the webhook to answer the API server")
        yield kc, namespace
    finally:
        with contextlib.suppress(client.ApiException):
            admission.delete_validating_webhook_configuration(config["metadata"]["name"])
        op.stop()
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(namespace, propagation_policy="Background")


BY_SCHEMA = {
    "version name starts with a digit",
    "version name with a dot",
    "version name longer than a label",
    "model starts with a digit",
    "policy: model starts with a digit",
    "policy: template data over http",
}
"""Cases the CRD schema (patterns, CEL on names) refuses itself, before the webhook is called."""


@pytest.mark.parametrize(("case", "body", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_the_api_server_refuses_through_the_webhook(webhook, case, body, field):
    kc, namespace = webhook
    out = apply(kc, namespace, body)
    assert out.returncode != 0, f"{case}: accepted, but should be refused\n{out.stdout}"
    assert field in out.stderr, f"{case}: {out.stderr}"
    if case not in BY_SCHEMA:
        assert "denied the request" in out.stderr, f"{case}: {out.stderr}"


def test_at_least_thirty_refusals_come_from_the_webhook():
    assert {c[0] for c in INVALID} >= BY_SCHEMA
    assert len(INVALID) - len(BY_SCHEMA) >= 30


def test_every_example_is_accepted(webhook):
    """The whole iris example, as users apply it (server-side dry run: the webhook still judges)."""
    kc, namespace = webhook
    out = kubectl(
        kc, "-n", namespace, "apply", "--dry-run=server", "-k", str(ROOT / "examples/iris"), check=False
    )
    assert out.returncode == 0, out.stderr
    assert "modelversion.modelops.dev/iris-v1 created (server dry run)" in out.stdout
    assert "retrainpolicy.modelops.dev/iris created (server dry run)" in out.stdout


def test_only_spec_changes_are_judged(webhook, api_client):
    """A valid object can be changed validly, not invalidly; an object stored before the webhook
    existed stays annotatable (the operator's own finalizers and annotations), but not its spec."""
    kc, namespace = webhook
    good = mv("iris-good")
    assert apply(kc, namespace, good).returncode == 0
    good["spec"]["serving"] = {"replicas": 2}
    assert apply(kc, namespace, good).returncode == 0
    bad = copy.deepcopy(good)
    bad["spec"]["validation"] = {"gates": [{"metric": "rmse", "max": 1}]}
    out = apply(kc, namespace, bad)
    assert out.returncode != 0 and "spec.validation.gates[0].metric" in out.stderr, out.stderr

    # a legacy object: stored while the webhook did not apply to this namespace
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"modelops.dev-{namespace}"
    config = admission.read_validating_webhook_configuration(name)
    selectors = [h.namespace_selector for h in config.webhooks]
    legacy = mv("iris-legacy", validation={"gates": [{"metric": "rmse", "max": 1}]})
    nowhere = {"matchLabels": {"kubernetes.io/metadata.name": "nowhere"}}
    patch = [
        {"op": "replace", "path": f"/webhooks/{i}/namespaceSelector", "value": nowhere} for i in range(2)
    ]
    admission.patch_validating_webhook_configuration(name, patch)
    try:
        eventually(lambda: apply(kc, namespace, legacy).returncode == 0, timeout=30, what="the legacy object")
    finally:
        restore = [
            {
                "op": "replace",
                "path": f"/webhooks/{i}/namespaceSelector",
                "value": api_client.sanitize_for_serialization(sel),
            }
            for i, sel in enumerate(selectors)
        ]
        admission.patch_validating_webhook_configuration(name, restore)
    changed = copy.deepcopy(legacy)
    changed["spec"]["serving"] = {"replicas": 3}

    def judged_again() -> bool:
        out = apply(kc, namespace, changed)
        return out.returncode != 0 and "spec.validation.gates[0].metric" in out.stderr

    eventually(judged_again, timeout=30, what="the webhook to judge the legacy object's spec change")
    out = kubectl(kc, "-n", namespace, "annotate", "mv", "iris-legacy", "team=ml", check=False)
    assert out.returncode == 0, out.stderr


def test_status_writes_are_not_sent_to_the_webhook(webhook, api_client):
    """The trainer and the operator write status through the subresource, which the webhook does not match."""
    kc, namespace = webhook
    body = mv("iris-status")
    assert apply(kc, namespace, body).returncode == 0
    custom = client.CustomObjectsApi(api_client)
    custom.patch_namespaced_custom_object_status(
        "modelops.dev",
        "v1alpha1",
        namespace,
        "modelversions",
        "iris-status",
        {"status": {"message": "hello"}},
    )
    got = custom.get_namespaced_custom_object(
        "modelops.dev", "v1alpha1", namespace, "modelversions", "iris-status"
    )
    assert "status" in got
