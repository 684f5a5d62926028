"""The pure layers never import kopf or the Kubernetes client: they are plain functions of plain data."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "operator" / "modelops"
PURE = ("api", "lifecycle", "drift")
FORBIDDEN = ("kopf", "kubernetes", "httpx", "modelops.k8s", "modelops.controllers", "modelops.prometheus")


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", sorted(p for layer in PURE for p in (PKG / layer).rglob("*.py")), ids=str)
def test_pure_layer_has_no_io_imports(path):
    bad = {m for m in imports(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


def test_no_init_in_source_root():
    assert not (PKG.parent / "__init__.py").exists(), "operator/__init__.py would shadow the stdlib operator"


def test_operator_registers_no_handler_that_needs_kopfs_diff_base():
    """controllers/operator.py switches Kopf's diff-base off (NoDiffBase): only watch-event,
    index, admission and start-up/clean-up handlers may exist, never change-detecting handlers
    (on.create/update/delete/resume, whose diffs would then be empty) or daemons and timers."""
    import kopf

    from modelops.controllers import admission, modelversion, operator, retrainpolicy, watches  # noqa: F401

    registry = kopf.get_default_registry()
    assert not registry._changing.get_all_handlers(), "a change-detecting handler needs a diff-base"
    assert not registry._spawning.get_all_handlers(), "daemons and timers need a diff-base"
    assert registry._watching.get_all_handlers() and registry._indexing.get_all_handlers()
