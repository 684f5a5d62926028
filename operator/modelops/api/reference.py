"""The README's field reference, generated from the same schemas as the CRDs (so it cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .crdgen import crds

START, END = "<!-- fields:start -->", "<!-- fields:end -->"


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    t = node.get("type", "object")
    if t == "array":
        return f"list of {_type(node.get('items', {}))}"
    if t == "object" and node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return "map"
    if t == "object" and "additionalProperties" in node:
        return f"map of {_type(node['additionalProperties'])}"
    return t


def _limits(node: dict[str, Any]) -> str:
    parts = []
    for key, sym in (("minimum", "≥"), ("maximum", "≤")):
        if key in node:
            strict = node.get(f"exclusive{key[0].upper()}{key[1:]}") is True
            parts.append(f"{'>' if strict and sym == '≥' else '<' if strict else sym} {node[key]}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if "maxLength" in node:
        parts.append(f"≤ {node['maxLength']} chars")
    return ", ".join(parts)


def _rows(node: dict[str, Any], path: str, out: list[str]) -> None:
    required = set(node.get("required", []))
    for name, child in (node.get("properties") or {}).items():
        p = f"{path}.{name}"
        default = f"`{child['default']}`" if "default" in child else ""
        desc = (child.get("description") or "").replace("\n", " ")
        rules = "; ".join(r["message"] for r in child.get("x-kubernetes-validations", []))
        notes = "; ".join(x for x in (desc, _limits(child), rules and f"rule: {rules}") if x).replace(
            "|", "\\|"
        )
        out.append(f"| `{p}` | {_type(child)} | {'yes' if name in required else ''} | {default} | {notes} |")
        target = child.get("items", child) if child.get("type") == "array" else child
        if "properties" in target:
            _rows(target, p + ("[]" if child.get("type") == "array" else ""), out)


def markdown() -> str:
    parts = []
    for crd in crds().values():
        kind = crd["spec"]["names"]["kind"]
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        rows = ["| field | type | required | default | notes |", "|---|---|---|---|---|"]
        _rows(schema, "spec", rows)
        parts.append(f"#### {kind}\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def update_readme(path: Path) -> bool:
    """Rewrite the generated section of the README; True if it changed."""
    text = path.read_text()
    new = re.sub(
        re.escape(START) + r".*?" + re.escape(END),
        lambda _: f"{START}\n{markdown()}\n{END}",
        text,
        flags=re.S,
    )
    if new != text:
        path.write_text(new)
    return new != text
