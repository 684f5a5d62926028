"""The validating admission webhook: Kopf serves it, `modelops.admission` decides.

Served only when MODELOPS_WEBHOOK_PORT is set (manifests/webhook/ sets it, with a certificate
cert-manager issues); without it the operator runs as before and only the CRD schema and CEL
guard the API. The ValidatingWebhookConfiguration is shipped in manifests/webhook/, not managed
by Kopf, so the operator needs no permission on cluster-wide admission objects.
"""

from __future__ import annotations

from typing import Any

import kopf

from modelops import admission

from . import runtime

GROUP, VERSION = "modelops.dev", "v1alpha1"
MODELVERSION_WEBHOOK = "validate-modelversion"
RETRAINPOLICY_WEBHOOK = "validate-retrainpolicy"
"""Handler ids: Kopf serves each at /<id>, the path the shipped webhook configuration calls."""


def _check(kind: str, body: kopf.Body, old: kopf.Body | None, operation: str | None) -> None:
    # An update that leaves the spec alone (finalizers, annotations, labels) is always allowed:
    # an object stored before this webhook existed must stay deletable and annotatable.
    if operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec"):
        return
    problems = admission.review(kind, dict(body), runtime.settings().pvc_root)
    if problems:
        raise kopf.AdmissionError(admission.message(problems), code=422)


@kopf.on.validate(GROUP, VERSION, "modelversions", id=MODELVERSION_WEBHOOK, operations=["CREATE", "UPDATE"])
def validate_modelversion(body: kopf.Body, old: kopf.Body | None, operation: str | None, **_: Any) -> None:
    _check("ModelVersion", body, old, operation)


@kopf.on.validate(
    GROUP, VERSION, "retrainpolicies", id=RETRAINPOLICY_WEBHOOK, operations=["CREATE", "UPDATE"]
)
def validate_retrainpolicy(body: kopf.Body, old: kopf.Body | None, operation: str | None, **_: Any) -> None:
    _check("RetrainPolicy", body, old, operation)
