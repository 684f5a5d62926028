"""`modelops run`'s scope flags become arguments Kopf accepts (the shipped Deployment runs `-A`)."""

from __future__ import annotations

import pytest
from kopf._cogs.structs import references

from modelops.controllers.main import scope


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [([], ([], True)), (["a"], (["a"], False)), (["a", "b"], (["a", "b"], False))],
    ids=["all-namespaces", "one", "two"],
)
def test_scope(namespaces: list[str], expected: tuple[list[str], bool]) -> None:
    assert scope(namespaces) == expected


def test_cluster_wide_scope_is_iterable_where_kopf_iterates_it() -> None:
    """Kopf iterates `namespaces` even when cluster-wide; None raised "'NoneType' object is not iterable"."""
    namespaces, clusterwide = scope([])
    assert clusterwide
    assert references.select_specific_namespaces(namespaces) == set()
