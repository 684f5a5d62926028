"""`mvs`: the ModelVersions of one namespace, as the cluster tests create, read, wait on and change
them. The kwok suite (tests/integration) and the real node's modules (tests/support/realnode.py)
share it, so a module moved between them reads as it did."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.helpers import default_modelversion
from tests.support.wait import eventually

GROUP, VERSION = "modelops.dev", "v1alpha1"


class ModelVersions:
    """Small helpers over the ModelVersion API for tests."""

    wait_timeout = 120.0
    """How long `wait_phase` waits unless told."""

    def __init__(self, api_client: client.ApiClient, namespace: str, kubeconfig: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.ns = namespace
        self.kubeconfig = kubeconfig

    def create(self, name: str, model: str = "iris", **spec: Any) -> dict[str, Any]:
        """`tests.helpers.default_modelversion`: iris by LogisticRegression, gate accuracy 0.8."""
        body = default_modelversion(name, model, **spec)
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, "modelversions", body)

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "modelversions", name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), None)

    def wait_phase(self, name: str, *phases: str, timeout: float | None = None) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(name)
            return st if st.get("phase") in phases else None

        try:
            return eventually(
                check, timeout=timeout or self.wait_timeout, what=f"{name} to reach {'/'.join(phases)}"
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\nstatus: {self.status(name)}\nevents: {self.events(name)}") from None

    def patch(self, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "modelversions", name, body)

    def annotate(self, name: str, key: str, value: str) -> None:
        self.patch(name, {"metadata": {"annotations": {key: value}}})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, "modelversions", name)

    def names(self) -> list[str]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "modelversions")["items"]
        return [i["metadata"]["name"] for i in items]

    def champion_of(self, model: str) -> str | None:
        """The version the model's stable Service selects."""
        try:
            svc = self.core.read_namespaced_service(model, self.ns)
        except client.ApiException:
            return None
        return (svc.spec.selector or {}).get("modelops.dev/version")

    def events(self, name: str) -> list[str]:
        evs = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items
        return [f"{e.type} {e.reason}: {e.message}" for e in evs]

    def wait_event(self, name: str, text: str, timeout: float = 30) -> str:
        """An Event on `name` containing `text`. Kopf posts Events after the status write, on its
        own, so one may arrive a moment after the phase it explains."""
        return eventually(
            lambda: next((e for e in self.events(name) if text in e), None),
            timeout=timeout,
            what=f"an Event {text!r} on {name}",
        )
