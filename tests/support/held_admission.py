"""A validating admission webhook that holds each Service creation in one namespace until the test
releases it: Service creations as slow as under a burst (kube-apiserver allocates ClusterIPs one at
a time), injected from outside the operator, which sees only slow answers from the API server."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.cluster.pki import CertificateAuthority
from tests.support.wait import eventually


@contextlib.contextmanager
def held_service_creations(
    api_client: client.ApiClient, namespace: str, directory: Path, hold: float = 20.0
) -> Iterator[threading.Event]:
    """Until the yielded event is set, each Service creation in `namespace` is held for up to
    `hold` seconds (under the webhook's 30 s timeout, and the operator's API timeout) before it is
    allowed. Dry runs pass at once: they tell when the API server calls the webhook."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory)
    pair = ca.issue("hold", "hold-services", server_ips=("127.0.0.1",))
    release = threading.Event()
    probed = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            request: dict[str, Any] = review["request"]
            if request.get("dryRun"):
                probed.set()
            else:
                release.wait(hold)
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": request["uid"], "allowed": True},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pair.cert, pair.key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="held-admission", daemon=True).start()
    name = f"hold-services-{namespace}"
    admission = client.AdmissionregistrationV1Api(api_client)
    admission.create_validating_webhook_configuration(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "hold.services.modelops-tests.dev",
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{server.server_address[1]}/",
                        "caBundle": base64.b64encode(ca.cert_pem).decode(),
                    },
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["services"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 30,
                    "failurePolicy": "Fail",
                }
            ],
        }
    )
    core = client.CoreV1Api(api_client)
    probe = {"metadata": {"name": f"probe-{secrets.token_hex(3)}"}, "spec": {"ports": [{"port": 80}]}}

    def in_effect() -> bool:
        core.create_namespaced_service(namespace, probe, dry_run="All")
        return probed.is_set()

    try:
        eventually(in_effect, timeout=30, what="the API server to call the holding webhook")
        yield release
    finally:
        release.set()
        with contextlib.suppress(client.ApiException):
            admission.delete_validating_webhook_configuration(name)
        server.shutdown()
        server.server_close()
