"""The committed CRDs are exactly what the pydantic models generate, and are structural."""

from pathlib import Path

import pytest
import yaml

from modelops.api.crdgen import crds, render

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(crds()))
def test_committed_crds_are_not_stale(name):
    committed = (ROOT / "crds" / name).read_text()
    assert committed == render(crds()[name]), f"crds/{name} is stale: run `make crds` and commit the result"


def _walk(node, path="$"):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("name", sorted(crds()))
def test_schemas_are_structural(name):
    schema = crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert "title" not in node, path
        if "properties" in node:
            assert node.get("type") == "object", path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node:
                assert isinstance(node[bound], bool), path


def test_crds_carry_short_names_status_and_columns():
    mv = crds()["modelops.dev_modelversions.yaml"]
    rp = crds()["modelops.dev_retrainpolicies.yaml"]
    assert mv["spec"]["names"]["shortNames"] == ["mv"] and rp["spec"]["names"]["shortNames"] == ["rp"]
    for crd in (mv, rp):
        v = crd["spec"]["versions"][0]
        assert v["subresources"] == {"status": {}}
        assert any(c["name"] == "Ready" for c in v["additionalPrinterColumns"])
    cols = [c["name"] for c in mv["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert {"Model", "Phase", "Metric", "Ready", "Age"} <= set(cols)


@pytest.mark.parametrize("name", sorted(crds()))
def test_every_status_field_is_explained(name):
    """`kubectl explain <kind>.status...` has something to say about every field the operator writes."""
    status = crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    missing = []
    for path, node in _walk(status, "status"):
        for field, prop in (node.get("properties") or {}).items():
            if not prop.get("description"):
                missing.append(f"{path}.{field}".replace(".properties", "").replace(".items", "[]"))
    assert not missing, missing


def test_every_kind_shows_its_message_with_wide_output():
    """`kubectl get mv -o wide` and `kubectl get rp -o wide` say what is happening, in one line."""
    for crd in crds().values():
        cols = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
        assert "Message" in cols and cols["Message"]["priority"] == 1, crd["spec"]["names"]["kind"]


def test_cel_rules_reach_the_schema():
    text = yaml.safe_dump(crds())
    assert "spec.training is immutable" in text and "gate min must be less than or equal to max" in text


def test_readme_field_reference_is_not_stale():
    from modelops.api.reference import END, START, markdown

    text = (ROOT / "README.md").read_text()
    section = text[text.index(START) + len(START) : text.index(END)].strip()
    assert section == markdown().strip(), "README field reference is stale: run `make crds` and commit"
