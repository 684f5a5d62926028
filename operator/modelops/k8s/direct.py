"""Direct API access for short-lived clients (the kubectl plugin): no watches, no caches.

The operator reads from watch caches (`kube.Kube`); a command that runs for a second would
spend longer filling them than answering, so here every read is one GET or LIST and every
write one merge patch under the field manager `kubectl-modelops`, the name the operator's
audit trail records as who asked (status.history[].by).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelops import GROUP, VERSION, __version__

from .kube import api_message

FIELD_MANAGER = "kubectl-modelops"
USER_AGENT = f"kubectl-modelops/{__version__}"
PROXY_TIMEOUT = 30.0
"""Seconds to wait for an answer through the API server's service proxy."""


class ApiError(Exception):
    """A request the API server refused or could not serve, in one line."""


@dataclass(frozen=True)
class Target:
    """Where to talk to, as kubectl passes it to a plugin: kubeconfig, context, namespace."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


def _fail(e: ApiException, what: str) -> ApiError:
    if e.status == 404:
        return ApiError(f"{what}: not found")
    if e.status == 403:
        return ApiError(f"{what}: forbidden: {api_message(e)}")
    return ApiError(f"{what}: {api_message(e)} (HTTP {e.status})")


class KubeClient:
    """One API client from a kubeconfig (or the pod's service account) and the namespace to use."""

    def __init__(self, target: Target) -> None:
        cfg = client.Configuration()
        default_ns = "default"
        try:
            config.load_kube_config(
                config_file=target.kubeconfig, context=target.context, client_configuration=cfg
            )
            _, active = config.list_kube_config_contexts(config_file=target.kubeconfig)
            if target.context:
                contexts, _ = config.list_kube_config_contexts(config_file=target.kubeconfig)
                active = next((c for c in contexts if c["name"] == target.context), active)
            default_ns = (active or {}).get("context", {}).get("namespace") or default_ns
        except (config.ConfigException, FileNotFoundError, TypeError) as e:
            if target.kubeconfig or target.context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                where = target.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
                raise ApiError(f"cannot load kubeconfig {where}: {e}") from e
            config.load_incluster_config(client_configuration=cfg)
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                default_ns = f.read().strip() or default_ns
        self.namespace = target.namespace or default_ns
        self.api = client.ApiClient(cfg)
        self.api.user_agent = USER_AGENT
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    # --- reads ---------------------------------------------------------------------------------
    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of a modelops.dev kind in `namespace` (None: all namespaces)."""
        try:
            if namespace is None:
                out = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
            else:
                out = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        except ApiException as e:
            raise _fail(e, f"list {plural}") from e
        return list(out.get("items") or [])

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise _fail(e, f"get {plural}/{name}") from e

    def events(self, namespace: str, kind: str, names: list[str]) -> list[dict[str, Any]]:
        """Events about the named objects of `kind` (one LIST, filtered by kind on the server)."""
        try:
            out = self.core.list_namespaced_event(
                namespace, field_selector=f"involvedObject.kind={kind}", _preload_content=False
            )
        except ApiException as e:
            raise _fail(e, "list events") from e
        wanted = set(names)
        items = json.loads(out.data).get("items") or []
        return [e for e in items if (e.get("involvedObject") or {}).get("name") in wanted]

    def service_proxy(self, namespace: str, service: str, port: str, path: str) -> bytes:
        """GET `path` from a Service through the API server's service proxy
        (`/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}`): the caller's own
        credentials and TLS, no port-forward, allowed by the `services/proxy` get verb.

        Sent on the client's own connection pool (its TLS and client certificate) with its
        credentials, rather than through a generated method, which would escape the path's `/`
        and `?` (and whose signature differs between client releases).
        """
        url = (
            f"/api/v1/namespaces/{quote(namespace)}/services/{quote(service)}:{quote(port)}"
            f"/proxy/{path.lstrip('/')}"
        )
        cfg = self.api.configuration
        headers = {"Accept": "application/json, text/markdown, */*", "User-Agent": USER_AGENT}
        if auth := cfg.get_api_key_with_prefix("authorization"):
            headers["Authorization"] = auth
        elif cfg.username or cfg.password:
            headers.update(urllib3.make_headers(basic_auth=f"{cfg.username}:{cfg.password}"))
        try:
            resp = self.api.rest_client.pool_manager.request(
                "GET", cfg.host + url, headers=headers, timeout=PROXY_TIMEOUT, retries=False
            )
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(f"GET {url}: {e}") from e
        if not 200 <= resp.status < 300:
            raise ApiError(f"GET {url}: {_proxy_message(resp.data)} (HTTP {resp.status})")
        return bytes(resp.data)

    # --- writes --------------------------------------------------------------------------------
    def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A merge patch under our field manager (the audit trail names it)."""
        try:
            return self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, body, field_manager=FIELD_MANAGER
            )
        except ApiException as e:
            raise _fail(e, f"patch {plural}/{name}") from e


def _proxy_message(data: bytes | None) -> str:
    """What the proxied server (or the API server's proxy) said, in one line."""
    body = (data or b"").decode(errors="replace")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        msg = parsed.get("message") or parsed.get("error") or parsed.get("detail")
        if msg:
            return " ".join(str(msg).split())
    return " ".join(body.split())[:300] or "no answer"
