"""Writes the API server refuses: classified, reported in the server's words, and caught earlier where possible."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelops.api.base import ResourceRequirements
from modelops.api.crdgen import crds
from modelops.k8s.kube import api_message, refused
from modelops.lifecycle.conditions import REFUSED, apply_conditions, refusal, refusal_is_new


def api_error(status: int, message: str | None) -> ApiException:
    e = ApiException(status=status, reason="Unprocessable Entity")
    e.body = json.dumps({"kind": "Status", "message": message}).encode() if message else None
    return e


def test_a_4xx_is_a_refusal_with_the_api_servers_message():
    msg = 'Job.batch "x-train" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value'
    r = refused(api_error(422, msg), "Job", "x-train")
    assert r is not None and r.status == 422 and r.message == msg
    assert str(r) == f"Job x-train refused by the API server (422): {msg}"
    quota = refused(api_error(403, 'jobs.batch "x" is forbidden: exceeded quota'), "Job", "x")
    assert quota is not None and "exceeded quota" in quota.message


@pytest.mark.parametrize("status", [404, 409, 429, 500, 503])
def test_gone_conflict_throttling_and_server_errors_are_not_refusals(status):
    assert refused(api_error(status, "x"), "Job", "x") is None


def test_without_a_status_body_the_http_reason_is_the_message():
    assert api_message(api_error(400, None)) == "Unprocessable Entity"


def test_a_refusal_makes_the_owner_not_ready_and_stalled_and_one_event_per_message():
    conds = apply_conditions([], refusal("Job x refused: bad"), generation=1, now="2026-01-01T00:00:00Z")
    ready = next(c for c in conds if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", REFUSED, "Job x refused: bad")
    assert any(c["type"] == "Stalled" and c["status"] == "True" for c in conds)
    assert not refusal_is_new(conds, "Job x refused: bad")
    assert refusal_is_new(conds, "Job x refused: other")
    assert refusal_is_new([], "Job x refused: bad")


@pytest.mark.parametrize("good", ["500m", "1", 2, "1Gi", "0.5", "1e3", "128974848"])
def test_resource_quantities_kubernetes_accepts_are_accepted(good):
    ResourceRequirements(requests={"cpu": good})


@pytest.mark.parametrize("bad", ["lots", "1 GB", "1gb", "500mi", ""])
def test_resource_quantities_kubernetes_refuses_are_refused_naming_the_field(bad):
    with pytest.raises(ValidationError) as e:
        ResourceRequirements(limits={"memory": bad})
    assert any(err["loc"][:2] == ("limits", "memory") for err in e.value.errors())


def test_the_crds_refuse_names_the_operator_could_not_use_on_children():
    mv = crds()["modelops.dev_modelversions.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [r["rule"] for r in mv["x-kubernetes-validations"]]
    assert "self.metadata.name.size() <= 63" in rules
    assert any("matches" in r for r in rules)
    rp = crds()["modelops.dev_retrainpolicies.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert [r["rule"] for r in rp["x-kubernetes-validations"]] == ["self.metadata.name.size() <= 63"]
