"""The lifecycle stages before and around validation, on the real node: data validation and the
fairness gate judged by trainer containers on data put on the namespace's PV, and the audit trail
of an approved promotion and a rollback moving real server pods. The model card's check is in
tests/e2e/test_real_node.py, where the example's iris-v1 already carries a card.

Moved from the kwok suite: the dirty data and the biased model fail on purpose, but by their
content, which a real trainer reads as well as the stand-in's; nothing here needs a fault on cue.
The node and the operator pod are the session's (tests/e2e/conftest.py); this module has its own
namespace and PV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from tests.support.fairness_data import credit_frame, credit_training
from tests.support.realnode import Versions, kubectl, marks, on_claim
from tests.support.wait import eventually

pytestmark = marks()

NS = "real-governance"


def show(mvs: Versions, *args: str) -> str:
    """kubectl output, printed so a run with -s shows what a user sees (the README quotes it)."""
    out = kubectl(mvs.real.kubeconfig, "-n", mvs.ns, *args).stdout
    print(f"\n$ kubectl {' '.join(args)}\n{out}")
    return out


def test_dirty_data_is_refused_naming_the_column_and_the_limit(mvs: Versions, store: Path) -> None:
    frame = load_iris(as_frame=True).frame
    frame.loc[frame.index[::8], "petal width (cm)"] = np.nan  # 12.7% missing
    uri = on_claim(store, "iris-dirty.csv", frame)
    mvs.create(
        "iris-dirty",
        training={
            "dataset": {"uri": uri, "target": "target"},
            "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
            "dataQuality": {"maxMissingFraction": 0.05, "maxDuplicateFraction": 0.1, "minRows": 100},
        },
    )
    st = mvs.wait_phase("iris-dirty", "Failed")
    trained = mvs.condition("iris-dirty", "Trained")
    assert trained["reason"] == "DataQualityFailed", trained
    assert "'petal width (cm)'" in st["message"] and "maxMissingFraction 0.05" in st["message"]
    report = st["training"]["dataQuality"]
    assert report["passed"] is False and report["rows"] == 150
    first = report["checks"][0]
    assert (first["check"], first["column"], first["passed"]) == ("missingValues", "petal width (cm)", False)
    assert first["limit"] == 0.05 and first["value"] > 0.05
    assert report["columns"]["petal width (cm)"]["missing"] == 19
    eventually(
        lambda: any("DataQualityFailed" in e and "petal width" in e for e in mvs.events("iris-dirty")),
        timeout=30,
        what="the DataQualityFailed Event",
    )
    assert "iris-dirty-server" not in [
        d.metadata.name for d in mvs.apps.list_namespaced_deployment(mvs.ns).items
    ]
    show(mvs, "get", "mv", "iris-dirty")
    show(mvs, "get", "mv", "iris-dirty", "-o", "jsonpath={.status.training.dataQuality.checks[0]}")


def test_the_fairness_gate_rejects_a_deliberately_biased_model(mvs: Versions, store: Path) -> None:
    uri = on_claim(store, "credit.csv", credit_frame(bias=2.5))
    mvs.create(
        "credit-v1",
        model="credit",
        training=credit_training(uri),
        validation={
            "gates": [{"metric": "accuracy", "min": 0.7}],
            "fairness": {"sensitiveFeatures": ["group"], "metric": "selection_rate", "maxDifference": 0.1},
        },
    )
    st = mvs.wait_phase("credit-v1", "Rejected")
    validated = mvs.condition("credit-v1", "Validated")
    assert validated["reason"] == "FairnessGateFailed", validated
    assert "'group'" in st["message"] and "maxDifference 0.1" in st["message"]
    fairness = st["training"]["fairness"]
    assert fairness["differences"]["group"] > 0.1
    assert {g["group"] for g in fairness["groups"]} == {"A", "B"}
    assert st["training"]["metrics"]["accuracy"] >= 0.7  # a good model by accuracy, refused for its bias
    assert "ssn" not in {f["name"] for f in st["training"]["features"]}
    assert mvs.champion_of("credit") is None
    show(mvs, "get", "mv", "credit-v1")
    show(mvs, "get", "mv", "credit-v1", "-o", "jsonpath={.status.training.fairness}")


def test_audit_history_across_an_approved_promotion_and_a_rollback(mvs: Versions) -> None:
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    mvs.create("iris-v2", parent="iris-v1", promotion={"mode": "Manual", "requireApproval": True})
    eventually(
        lambda: (mvs.condition("iris-v2", "Promoted") or {}).get("reason") == "AwaitingPromotion",
        timeout=120,
        what="iris-v2 to wait for a promotion request",
    )
    show(mvs, "annotate", "mv", "iris-v2", "modelops.dev/promote=release-2")
    eventually(
        lambda: (mvs.condition("iris-v2", "Promoted") or {}).get("reason") == "AwaitingApproval",
        timeout=60,
        what="iris-v2 to wait for an approver",
    )
    assert mvs.champion_of("iris") == "iris-v1"
    show(mvs, "annotate", "mv", "iris-v2", "modelops.dev/approved-by=alice@example.com")
    mvs.wait_phase("iris-v2", "Serving")
    mvs.wait_phase("iris-v1", "Superseded")
    show(mvs, "annotate", "mv", "iris-v1", "modelops.dev/promote=rollback-1")
    mvs.wait_phase("iris-v1", "Serving")
    assert mvs.champion_of("iris") == "iris-v1"

    v1 = [(h["decision"], h["by"]) for h in mvs.status("iris-v1")["history"]]
    assert v1 == [
        ("Promoted", "operator"),
        ("RolledBack", "annotation:rollback-1 (field manager kubectl-annotate)"),
    ], v1
    (v2,) = mvs.status("iris-v2")["history"]
    assert v2["decision"] == "Promoted" and v2["approvedBy"] == "alice@example.com"
    assert v2["by"] == "annotation:release-2 (field manager kubectl-annotate)"
    mvs.wait_event("iris-v2", v2["message"])  # the Promoting Event carries the history line
    show(mvs, "get", "mv")
    show(mvs, "get", "mv", "iris-v1", "-o", "jsonpath={.status.history}")
    show(mvs, "get", "mv", "iris-v2", "-o", "jsonpath={.status.history}")
