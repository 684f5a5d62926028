"""The webhook's decisions without a cluster: every case of the table refused naming its field,
every example accepted, and a refusal message a person can act on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from shutil import which

import pytest
import yaml

from modelops import admission
from tests.support.admission_cases import GOOD_MV, GOOD_RP, INVALID

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("case", "body", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_each_invalid_object_is_refused_naming_its_field(case, body, field):
    problems = admission.review(body["kind"], body)
    assert problems, f"{case}: accepted"
    assert field in [where for where, _ in problems], f"{case}: {problems}"


def test_the_table_is_at_least_thirty_objects_and_each_one_breaks_one_rule():
    assert len(INVALID) >= 30
    for case, body, field in INVALID:
        fields = {where for where, _ in admission.review(body["kind"], body)}
        assert fields == {field}, f"{case}: {fields}"


def test_the_good_objects_pass():
    assert admission.review("ModelVersion", GOOD_MV) == []
    assert admission.review("RetrainPolicy", GOOD_RP) == []


def examples() -> list[dict]:
    kubectl = which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it carries kustomize)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "examples/iris")], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d and d["apiVersion"].startswith("modelops.dev/")]


def test_every_example_is_accepted():
    found = examples()
    assert {d["kind"] for d in found} == {"ModelVersion", "RetrainPolicy"}
    for body in found:
        assert admission.review(body["kind"], body) == [], body["metadata"]["name"]


def test_the_message_names_every_field_once_per_problem():
    body = {**GOOD_MV, "metadata": {"name": "9x"}, "spec": {**GOOD_MV["spec"], "model": "9iris"}}
    text = admission.message(admission.review("ModelVersion", body))
    assert text.startswith("metadata.name: ") and "; spec.model: " in text  # the schema's pattern


def test_a_schema_error_is_reported_with_its_path():
    body = {**GOOD_MV, "spec": {**GOOD_MV["spec"], "training": {"dataset": {"uri": "sklearn:iris"}}}}
    assert admission.review("ModelVersion", body) == [("spec.training.estimator", "Field required")]


def test_a_template_child_keeps_what_a_policy_may_override():
    ok = {
        **GOOD_RP,
        "spec": {"model": "iris", "template": {"spec": {"serving": {"replicas": 2}}, "params": {"C": 2}}},
    }
    assert admission.review("RetrainPolicy", ok) == []


@pytest.mark.parametrize(
    "uri",
    [
        "pvc://data/iris/",
        "pvc://data/iris/%Y-%m-%d.csv",
        "s3://ml-data/iris/%Y/%m/",
        "https://example.com/iris.csv",
    ],
)
def test_template_folders_and_time_fields_pass_the_webhook(uri):
    body = {**GOOD_RP, "spec": {**GOOD_RP["spec"], "template": {"datasetUri": uri}}}
    assert admission.review_retrainpolicy(body) == []


def test_an_imported_version_passes_and_a_version_with_both_origins_is_refused():
    imported = {
        "uri": "s3://ml-models/iris/model.skops",
        "sha256": "ab" * 32,
        "referenceDataset": {"uri": "sklearn:iris"},
    }
    spec = {k: v for k, v in GOOD_MV["spec"].items() if k != "training"}
    assert (
        admission.review_modelversion({**GOOD_MV, "spec": {**spec, "source": {"artifact": imported}}}) == []
    )
    both = {**GOOD_MV, "spec": {**GOOD_MV["spec"], "source": {"artifact": imported}}}
    assert any("exactly one of training" in msg for _, msg in admission.review_modelversion(both))
