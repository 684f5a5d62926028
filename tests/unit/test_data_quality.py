"""Data validation before fitting: each check on a small frame, then through the trainer with a parent."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelops.api.modelversion import DataQuality, Training
from modelops.trainer import main as trainer
from modelops.trainer import quality
from modelops.trainer.quality import Columns, DataQualityFailed

COLS = Columns(numeric=["x"], categorical=["c"], target="y", classification=True)


def frame(n: int = 100, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.uniform(0, 10, n), "c": rng.choice(["a", "b"], n), "y": rng.choice([0, 1], n)}
    )


def verdict(report, check, column=None):
    return next(c for c in report["checks"] if c["check"] == check and c["column"] == column)


def test_a_clean_frame_passes_and_every_column_has_stats():
    r = quality.check(frame(), COLS, DataQuality(), None)
    assert r["passed"] and r["rows"] == 100
    assert set(r["columns"]) == {"x", "c", "y"}
    assert (
        r["columns"]["x"]["dtype"] == "number"
        and 0 <= r["columns"]["x"]["min"] < r["columns"]["x"]["max"] <= 10
    )
    assert r["columns"]["c"] == {"dtype": "category", "missing": 0, "distinct": 2}


def test_missing_values_over_the_limit_name_the_column_and_the_limit():
    f = frame()
    f.loc[:9, "x"] = np.nan  # 10%
    r = quality.check(f, COLS, DataQuality(max_missing_fraction=0.05), None)
    assert not r["passed"]
    v = verdict(r, "missingValues", "x")
    assert v["value"] == pytest.approx(0.1) and v["limit"] == 0.05 and not v["passed"]
    assert r["checks"][0] is v  # failed checks first
    msg = quality.failure_message(r)
    assert "'x'" in msg and "maxMissingFraction 0.05" in msg
    # within the limit it passes
    assert quality.check(f, COLS, DataQuality(max_missing_fraction=0.1), None)["passed"]


def test_a_per_column_limit_overrides_the_data_wide_one():
    f = frame()
    f.loc[:9, "x"] = np.nan
    dq = DataQuality.model_validate({"maxMissingFraction": 0, "columns": {"x": {"maxMissingFraction": 0.2}}})
    assert quality.check(f, COLS, dq, None)["passed"]


def test_duplicates_count_repeated_rows_not_their_first_copy():
    f = pd.concat([frame(50), frame(50).iloc[:5]], ignore_index=True)  # 5 repeats in 55 rows
    r = quality.check(f, COLS, DataQuality(max_duplicate_fraction=0.05), None)
    v = verdict(r, "duplicateRows")
    assert v["value"] == pytest.approx(5 / 55, abs=1e-6) and not v["passed"]
    assert quality.check(f, COLS, DataQuality(max_duplicate_fraction=0.1), None)["passed"]


def test_min_rows():
    r = quality.check(frame(20), COLS, DataQuality(min_rows=50), None)
    assert not r["passed"] and "20 rows < minRows 50" in quality.failure_message(r)


def test_ranges_come_from_the_spec_or_the_parent():
    f = frame()
    f.loc[:4, "x"] = 100.0  # 5% out of [0, 10]
    parent = quality.data_schema(frame(), COLS)  # the same rows: only the 5 changed ones are out
    r = quality.check(f, COLS, DataQuality(max_out_of_range_fraction=0.01), parent, "v1")
    v = verdict(r, "outOfRange", "x")
    assert (
        v["value"] == pytest.approx(0.05) and not v["passed"] and "maxOutOfRangeFraction 0.01" in v["message"]
    )
    dq = DataQuality.model_validate({"columns": {"x": {"min": 0, "max": 200}}})
    assert quality.check(f, COLS, dq, None)["passed"]


def test_unseen_categories_and_label_shares_against_the_parent():
    parent = quality.data_schema(frame(), COLS)
    f = frame()
    f.loc[:19, "c"] = "zz"
    f.loc[:59, "y"] = 1
    dq = DataQuality(max_unseen_category_fraction=0.1, max_label_share_change=0.2)
    r = quality.check(f, COLS, dq, parent, "v1")
    u = verdict(r, "unseenCategories", "c")
    assert u["value"] == pytest.approx(0.2) and not u["passed"] and "zz" in u["message"]
    label = verdict(r, "labelShareChange", "y")
    assert label["value"] > 0.2 and not label["passed"]


def test_schema_against_the_parent_names_a_lost_or_retyped_column():
    parent = quality.data_schema(frame(), COLS)
    renamed = frame().rename(columns={"x": "x_renamed"})
    cols = Columns(numeric=["x_renamed"], categorical=["c"], target="y", classification=True)
    r = quality.check(renamed, cols, DataQuality(), parent, "v1")
    assert not r["passed"]
    assert "column 'x' of parent v1 is missing" in quality.failure_message(r)
    retyped = Columns(numeric=[], categorical=["x", "c"], target="y", classification=True)
    r = quality.check(frame(), retyped, DataQuality(), parent, "v1")
    assert "column 'x' was number in parent v1 but is category now" in quality.failure_message(r)
    assert quality.check(frame(), COLS, DataQuality(schema_check=False), None)["passed"]


def test_text_in_a_numeric_column_is_a_failed_dtype_check():
    f = frame()
    f["x"] = f["x"].astype(object)
    f.loc[3, "x"] = "n/a"
    r = quality.check(f, COLS, DataQuality(), None)
    assert "column 'x' must be numeric but row 3 holds 'n/a'" in quality.failure_message(r)


def test_the_status_copy_is_bounded():
    many = Columns(numeric=[f"f{i}" for i in range(80)], categorical=[], target="y", classification=True)
    f = pd.DataFrame({f"f{i}": np.arange(10.0) for i in range(80)} | {"y": [0, 1] * 5})
    b = quality.bounded(quality.check(f, many, DataQuality(), None))
    assert len(b["checks"]) == quality.MAX_STATUS_CHECKS and len(b["columns"]) == quality.MAX_STATUS_COLUMNS
    assert b["truncated"] is True


# -- through the trainer ----------------------------------------------------------------------------


def training(uri: str, **dq) -> Training:
    return Training.model_validate(
        {
            "dataset": {"uri": uri, "target": "y", "categorical": ["c"]},
            "estimator": {"class": "LogisticRegression"},
            "dataQuality": dq,
        }
    )


def test_trainer_refuses_a_child_that_lost_a_column_and_stores_the_parents_schema(tmp_path):
    path = tmp_path / "d.csv"
    frame(200).to_csv(path, index=False)
    trainer.train(training(f"file://{path}"), "m", "v1", tmp_path / "store")
    meta = json.loads((tmp_path / "store/m/v1/metadata.json").read_text())
    assert [c["name"] for c in meta["dataSchema"]["columns"]] == ["x", "c"]
    assert meta["dataSchema"]["labelShares"].keys() == {"0", "1"}
    report = json.loads((tmp_path / "store/m/v1/data-quality.json").read_text())
    assert report["passed"] and report["columns"]["x"]["dtype"] == "number"

    child = tmp_path / "child.csv"
    frame(200).rename(columns={"x": "x2"}).to_csv(child, index=False)
    ctx = trainer.Context(parent="v1")
    with pytest.raises(DataQualityFailed) as exc:
        trainer.train(training(f"file://{child}"), "m", "v2", tmp_path / "store", context=ctx)
    assert exc.value.reason == "DataQualityFailed"
    assert "column 'x' of parent v1 is missing" in str(exc.value)
    assert not (tmp_path / "store/m/v2").exists()


def test_rows_with_missing_values_within_the_limit_are_dropped(tmp_path):
    f = frame(200)
    f.loc[:9, "x"] = np.nan
    path = tmp_path / "d.csv"
    f.to_csv(path, index=False)
    r = trainer.train(training(f"file://{path}", maxMissingFraction=0.1), "m", "v1", tmp_path / "s")
    assert r["dataQuality"]["passed"] and r["dataQuality"]["droppedRows"] == 10
    assert r["rows"]["total"] == 190


def test_main_reports_the_reason_and_the_report(tmp_path, monkeypatch, capsys):
    """The failure patch carries reason DataQualityFailed and the report, for status and the planner."""
    from modelops.trainer import report

    f = frame(200)
    f.loc[:49, "x"] = np.nan
    path = tmp_path / "d.csv"
    f.to_csv(path, index=False)
    sent = []
    monkeypatch.setenv("MODELOPS_MV_NAME", "v1")
    monkeypatch.setenv("MODELOPS_MV_NAMESPACE", "ns")
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(tmp_path / "term"))
    monkeypatch.setattr(report, "send", lambda body, target: sent.append(body))
    spec = training(f"file://{path}", maxMissingFraction=0.1).wire()
    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(spec))
    code = trainer.main(["--model", "m", "--version", "v1", "--store", str(tmp_path / "s")])
    assert code == 2
    t = sent[0]["status"]["training"]
    assert t["succeeded"] is False and t["reason"] == "DataQualityFailed"
    assert "'x' has 25.0% missing values" in t["message"] and "maxMissingFraction 0.1" in t["message"]
    assert t["dataQuality"]["passed"] is False and t["dataQuality"]["checks"][0]["column"] == "x"
    assert capsys.readouterr().err.startswith("error: data quality: column 'x'")
