"""Generate CustomResourceDefinitions from the pydantic models.

Kubernetes wants a structural OpenAPI v3 schema: no `$ref`, no `anyOf` over types,
`nullable` instead of `null` unions, `x-kubernetes-preserve-unknown-fields` for
free-form maps. JSON Schema from pydantic is turned into that here, and CEL rules
and other `x-kubernetes-*` hints declared on the models are kept.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from modelops import GROUP, VERSION

from .base import name_rules
from .modelversion import ModelVersionSpec, ModelVersionStatus
from .retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus

DROP_KEYS = {"title", "default_factory"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **extra}, defs)
    return {k: _resolve(v, defs) for k, v in node.items() if k not in DROP_KEYS}


def _structural(node: Any) -> Any:
    """Rewrite pydantic's JSON Schema idioms into structural-schema idioms."""
    if isinstance(node, list):
        return [_structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _structural(v) for k, v in node.items()}
    if "anyOf" in node:
        options = node.pop("anyOf")
        non_null = [o for o in options if o.get("type") != "null"]
        nullable = len(non_null) != len(options)
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            patterns = [o["pattern"] for o in non_null if "pattern" in o]
            if patterns:  # applies to the string form only, as in Kubernetes' own quantity schemas
                node["pattern"] = patterns[0]
        elif len(non_null) == 1:
            merged = {**non_null[0], **node}
            node = merged
        else:
            raise ValueError(f"cannot express a union in a structural schema: {options}")
        if nullable and node.get("default", "absent") is None:
            node.pop("default")
        if nullable:
            node.setdefault("nullable", True)
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # JSON Schema 2020 puts the bound in exclusiveM*; OpenAPI 3.0 wants minimum + a boolean.
        if isinstance(node.get(bound), int | float) and not isinstance(node.get(bound), bool):
            node[flag] = node.pop(bound)
            node[bound] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("default", "absent") is None:
        node.pop("default")
    if node.pop("x-modelops-any-value", False):
        # Any JSON value (a list or an object): structural schemas allow no type only here.
        return {"x-kubernetes-preserve-unknown-fields": True}
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
        node.setdefault("type", "object")
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
    if node.get("type") == "object" and node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    if "properties" in node:
        node.setdefault("type", "object")
    return node


def schema_of(model: type, *, status: bool = False) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")  # type: ignore[attr-defined]
    defs = raw.pop("$defs", {})
    schema = _structural(_resolve(raw, defs))
    if status:
        # Status is written by the operator and the trainer: keep what newer versions add.
        _allow_unknown(schema)
    return schema


def _allow_unknown(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object":
            node["x-kubernetes-preserve-unknown-fields"] = True
        for v in node.values():
            _allow_unknown(v)
    elif isinstance(node, list):
        for v in node:
            _allow_unknown(v)


def _crd(
    *,
    kind: str,
    plural: str,
    short: str,
    spec: type,
    status: type,
    columns: list[dict[str, Any]],
    description: str,
    name_label: str,
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
        },
        "x-kubernetes-validations": name_rules(name_label, service=kind == "ModelVersion"),
    }
    spec_schema = schema_of(spec)
    spec_schema.setdefault("description", description)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["modelops"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            **root,
                            "properties": {
                                **root["properties"],
                                "spec": spec_schema,
                                "status": schema_of(status, status=True),
                            },
                        }
                    },
                }
            ],
        },
    }


def ready_column() -> dict[str, Any]:
    return {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}


def crds() -> dict[str, dict[str, Any]]:
    """Every CRD, keyed by its file name in crds/."""
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    return {
        "modelops.dev_modelversions.yaml": _crd(
            kind="ModelVersion",
            plural="modelversions",
            short="mv",
            spec=ModelVersionSpec,
            status=ModelVersionStatus,
            description="One trained model version: trained by a Job, validated, served, promoted, retired.",
            name_label="modelops.dev/version",
            columns=[
                {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
                {"name": "Parent", "type": "string", "jsonPath": ".spec.parent", "priority": 1},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Metric", "type": "string", "jsonPath": ".status.primaryMetric"},
                {
                    "name": "Search",
                    "type": "string",
                    "jsonPath": ".status.training.search.summary",
                    "priority": 1,
                },
                {"name": "Champion", "type": "boolean", "jsonPath": ".status.champion"},
                {"name": "Step", "type": "string", "jsonPath": ".status.canary.progress"},
                {"name": "Weight", "type": "integer", "jsonPath": ".status.canary.weight"},
                ready_column(),
                {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
                age,
            ],
        ),
        "modelops.dev_retrainpolicies.yaml": _crd(
            kind="RetrainPolicy",
            plural="retrainpolicies",
            short="rp",
            spec=RetrainPolicySpec,
            status=RetrainPolicyStatus,
            description="Keeps one model healthy: drift, decay, schedule and manual retraining, and retention.",
            name_label="modelops.dev/policy",
            columns=[
                {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
                {"name": "Champion", "type": "string", "jsonPath": ".status.champion"},
                {"name": "Drift", "type": "number", "jsonPath": ".status.lastDriftScore"},
                {"name": "Last-Trigger", "type": "string", "jsonPath": ".status.lastTrigger.reason"},
                ready_column(),
                {
                    "name": "Message",
                    "type": "string",
                    "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
                    "priority": 1,
                },
                age,
            ],
        ),
    }


def render(crd: dict[str, Any]) -> str:
    return "# Generated from operator/modelops/api by `make crds`. Do not edit.\n" + yaml.safe_dump(
        crd, sort_keys=False, width=120
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelops crds", description=__doc__)
    parser.add_argument("--write", metavar="DIR", help="write one file per CRD into DIR (default: stdout)")
    parser.add_argument("--readme", metavar="FILE", help="also regenerate the field reference in FILE")
    args = parser.parse_args(argv)
    if args.readme:
        from .reference import update_readme

        update_readme(Path(args.readme))
    for name, crd in crds().items():
        text = render(crd)
        if args.write:
            Path(args.write).mkdir(parents=True, exist_ok=True)
            (Path(args.write) / name).write_text(text)
            print(f"wrote {Path(args.write) / name}", file=sys.stderr)
        else:
            sys.stdout.write("---\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
