"""Governance: explanations, the fairness table and gate, privacy of excluded and sensitive columns,
lineage and the model card, and the server's card endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from modelops import artifacts
from modelops.api.modelversion import Card, Fairness, FairnessReport, Training
from modelops.lifecycle.modelversion import fairness_failures
from modelops.server.app import App, Service, Settings
from modelops.server.main import read_card
from modelops.server.model import ServedModel
from modelops.trainer import governance
from modelops.trainer import main as trainer
from modelops.trainer.errors import BadInput
from tests.support import fairness_data
from tests.support.fairness_data import credit_frame


def credit_training(path: Path, **dataset) -> Training:
    spec = fairness_data.credit_training(f"file://{path}")
    return Training.model_validate({**spec, "dataset": {**spec["dataset"], **dataset}})


@pytest.fixture(scope="module")
def biased_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "credit.csv"
    credit_frame(bias=2.5).to_csv(path, index=False)
    return path


def test_fairness_table_is_metricframes_by_hand():
    y_true = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    y_pred = np.array([1, 0, 1, 1, 1, 0, 0, 0])
    groups = pd.DataFrame({"g": ["A", "A", "A", "A", "B", "B", "B", "B"]})
    t = governance.fairness_table(Fairness(sensitive_features=["g"]), y_true, y_pred, groups, [0, 1])
    # selection rate: A predicts 1 on 3/4, B on 1/4
    assert t["groups"] == [
        {"feature": "g", "group": "A", "value": 0.75, "count": 4},
        {"feature": "g", "group": "B", "value": 0.25, "count": 4},
    ]
    assert t["differences"] == {"g": 0.5}
    tpr = governance.fairness_table(
        Fairness(sensitive_features=["g"], metric="true_positive_rate"), y_true, y_pred, groups, [0, 1]
    )
    assert [g["value"] for g in tpr["groups"]] == [1.0, 0.0]  # A: 3/3 positives found, B: 0/1


def test_fairness_metric_must_fit_the_task():
    groups = pd.DataFrame({"g": ["A", "B"]})
    with pytest.raises(BadInput, match="needs a regressor"):
        governance.fairness_table(
            Fairness(sensitive_features=["g"], metric="mae"),
            np.array([0, 1]),
            np.array([0, 1]),
            groups,
            [0, 1],
        )
    with pytest.raises(BadInput, match="needs a binary classifier"):
        governance.fairness_table(
            Fairness(sensitive_features=["g"]), np.array([0, 2]), np.array([0, 1]), groups, [0, 1, 2]
        )


def test_the_gate_names_the_feature_the_groups_and_the_limit():
    spec = Fairness(sensitive_features=["group"], max_difference=0.1)
    report = FairnessReport.model_validate(
        {
            "metric": "selection_rate",
            "groups": [
                {"feature": "group", "group": "A", "value": 0.8, "count": 10},
                {"feature": "group", "group": "B", "value": 0.3, "count": 10},
            ],
            "differences": {"group": 0.5},
        }
    )
    (problem,) = fairness_failures(spec, report)
    assert "'group'" in problem and "B=0.3, A=0.8" in problem and "maxDifference 0.1" in problem
    assert fairness_failures(spec.model_copy(update={"max_difference": 0.5}), report) == []
    assert fairness_failures(spec, None) == ["fairness selection_rate was not measured by the trainer"]
    assert fairness_failures(None, report) == []


def test_biased_model_has_a_large_gap_and_excluding_the_group_shrinks_it(tmp_path, biased_csv):
    fair = Fairness(sensitive_features=["group"], max_difference=0.1)
    r = trainer.train(
        credit_training(biased_csv), "credit", "v1", tmp_path, context=trainer.Context(fairness=fair)
    )
    assert r["fairness"]["differences"]["group"] > 0.3
    assert {g["group"] for g in r["fairness"]["groups"]} == {"A", "B"}
    assert sum(g["count"] for g in r["fairness"]["groups"]) == r["rows"]["test"]
    # group is a model input here, and its importance says the model leans on it
    assert r["explanations"]["top"][0]["feature"] in {"group", "income", "debt"}


def test_privacy_excluded_and_unused_sensitive_columns_leak_nowhere(tmp_path, biased_csv):
    """ssn is excluded; group is sensitive and not a model input: neither reaches the reference bins,
    the features the server exports metrics for, or the card (group only as the fairness grouping)."""
    fair = Fairness(sensitive_features=["group"], used_for_training=False)
    ctx = trainer.Context(fairness=fair, card=Card(owner="risk-team"))
    r = trainer.train(credit_training(biased_csv), "credit", "v1", tmp_path, context=ctx)
    d = tmp_path / "credit" / "v1"
    meta = json.loads((d / "metadata.json").read_text())
    card = json.loads((d / "model-card.json").read_text())
    markdown = (d / "model-card.md").read_text()
    ssn_values = set(credit_frame()["ssn"])
    for blob in [json.dumps(r), json.dumps(meta), json.dumps(card), markdown]:
        assert '"ssn"' not in blob.replace('"exclude": ["ssn"]', "")
        assert not any(v in blob for v in list(ssn_values)[:200])
    # the sensitive column is not an input: not in the schema, the reference, the explanations
    assert [f["name"] for f in r["features"]] == ["income", "debt", "region"]
    assert set(r["reference"]) == {"income", "debt", "region"}
    assert "group" not in {t["feature"] for t in r["explanations"]["top"]}
    # ... so the server's per-feature metrics carry no label for it
    served = ServedModel.from_dir(d, r["artifact"]["sha256"])
    assert "group" not in served.names
    # the card names it once as the evaluation-only grouping, with aggregates per group only
    assert {"name": "group", "dtype": "category", "usedForTraining": False} in card["features"]
    assert card["fairness"]["usedForTraining"] is False
    assert card["dataset"]["excludedColumns"] == 1
    assert card["owner"] == "risk-team"
    # leaving the group out shrinks the gap (the bias now comes only through correlated features)
    biased = trainer.train(
        credit_training(biased_csv),
        "credit",
        "v2",
        tmp_path,
        context=trainer.Context(fairness=Fairness(sensitive_features=["group"])),
    )
    assert r["fairness"]["differences"]["group"] < biased["fairness"]["differences"]["group"]


def test_card_lineage_goes_back_to_the_first_ancestor(tmp_path):
    spec = Training.model_validate(
        {"dataset": {"uri": "sklearn:iris"}, "estimator": {"class": "LogisticRegression"}}
    )
    trainer.train(spec, "iris", "v1", tmp_path)
    trainer.train(spec, "iris", "v2", tmp_path, context=trainer.Context(parent="v1"))
    trainer.train(spec, "iris", "v3", tmp_path, context=trainer.Context(parent="v2"))
    card = json.loads((tmp_path / "iris/v3/model-card.json").read_text())
    assert [a["version"] for a in card["lineage"]] == ["v2", "v1"]
    v1 = json.loads((tmp_path / "iris/v1/metadata.json").read_text())
    assert card["lineage"][1]["sha256"] == v1["artifact"]["sha256"]
    assert set(card["metrics"]) == {"test", "train"}
    assert card["explanations"]["top"][0]["feature"].startswith("petal")
    md = (tmp_path / "iris/v3/model-card.md").read_text()
    assert "## Lineage" in md and "- v1 (model sha256" in md and "## Explanations" in md


def test_the_server_serves_the_card(tmp_path):
    spec = Training.model_validate(
        {"dataset": {"uri": "sklearn:iris"}, "estimator": {"class": "LogisticRegression"}}
    )
    r = trainer.train(spec, "iris", "v1", tmp_path, context=trainer.Context(card=Card(owner="ml-team")))
    d = tmp_path / "iris" / "v1"
    service = Service(Settings("iris", "v1"))
    service.card = read_card(str(d))
    app = App(service, loader=lambda: ServedModel.from_dir(d, r["artifact"]["sha256"]), background=False)
    with TestClient(app) as client:
        got = client.get("/v2/models/iris/card")
        assert got.status_code == 200 and got.json()["owner"] == "ml-team"
        assert got.json()["artifact"]["sha256"] == r["artifact"]["sha256"]
        md = client.get("/v2/models/iris/versions/v1/card?format=markdown")
        assert md.headers["content-type"].startswith("text/markdown") and md.text.startswith("# Model card")
        assert client.get("/v2/models/other/card").status_code == 404
    (d / artifacts.CARD_JSON).unlink()
    assert read_card(str(d)) is None


def test_who_wrote_the_promotion_request_survives_the_cache():
    from modelops.controllers.modelversion import requested_by
    from modelops.k8s.cache import strip

    body = {
        "metadata": {
            "name": "v1",
            "annotations": {"modelops.dev/promote": "go"},
            "managedFields": [
                {"manager": "kubectl-create", "operation": "Update", "fieldsV1": {"f:spec": {"f:model": {}}}},
                {
                    "manager": "kubectl-annotate",
                    "operation": "Update",
                    "fieldsV1": {"f:metadata": {"f:annotations": {"f:modelops.dev/promote": {}, "f:x": {}}}},
                },
            ],
        },
        "spec": {},
    }
    stripped = strip(body)
    assert requested_by(stripped) == "kubectl-annotate"
    assert stripped["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-annotate",
            "operation": "Update",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:modelops.dev/promote": {}}}},
        }
    ]
    assert (
        "managedFields"
        not in strip({"metadata": {"managedFields": body["metadata"]["managedFields"][:1]}})["metadata"]
    )
