"""Champion vs challenger on the same data: the verdict, the planner's rules, the Job, the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.api.modelversion import Comparison, ModelVersionSpec, Training
from modelops.lifecycle import resources
from modelops.lifecycle.modelversion import ChampionView, JobView, comparison_verdict
from modelops.settings import Settings
from modelops.trainer import compare
from modelops.trainer import main as trainer
from modelops.trainer.errors import BadInput
from tests.unit.test_modelversion_lifecycle import World, cond


def mv_spec(**validation) -> ModelVersionSpec:
    return ModelVersionSpec.model_validate(
        {
            "model": "churn",
            "training": {
                "dataset": {"uri": "pvc://data/new.csv", "target": "y"},
                "estimator": {"class": "LogisticRegression"},
            },
            "validation": {"champion": {"metric": "accuracy"}, **validation},
        }
    )


def comparison(*sets: tuple[str, float, float], error: str | None = None) -> Comparison:
    return Comparison.model_validate(
        {
            "champion": "v1",
            "championSha256": "cd" * 32,
            "error": error,
            "evaluations": [
                {"set": name, "rows": 100, "challenger": {"accuracy": new}, "champion": {"accuracy": old}}
                for name, new, old in sets
            ],
        }
    )


# --- the verdict (pure) -----------------------------------------------------------------------------


def test_the_challenger_must_beat_the_champion_on_every_set():
    sp = mv_spec()
    v = comparison_verdict(sp, comparison(("heldOut", 0.85, 0.55)))
    assert v.verdict == "ChallengerBetter" and v.champion == "v1" and v.champion_sha256 == "cd" * 32
    assert "heldOut (100 rows): accuracy 0.85 vs champion 0.55" in v.message
    v = comparison_verdict(sp, comparison(("heldOut", 0.85, 0.55), ("golden", 0.70, 0.80)))
    assert v.verdict == "ChampionBetter" and "golden (100 rows)" in v.message


def test_min_improvement_applies_per_set_and_errors_are_lower_is_better():
    sp = mv_spec(champion={"metric": "accuracy", "minImprovement": 0.05})
    assert comparison_verdict(sp, comparison(("heldOut", 0.84, 0.80))).verdict == "ChampionBetter"
    assert comparison_verdict(sp, comparison(("heldOut", 0.86, 0.80))).verdict == "ChallengerBetter"
    reg = mv_spec(champion={"metric": "rmse"})
    ev = Comparison.model_validate(
        {
            "champion": "v1",
            "evaluations": [{"set": "heldOut", "challenger": {"rmse": 1.0}, "champion": {"rmse": 2.0}}],
        }
    )
    assert comparison_verdict(reg, ev).verdict == "ChallengerBetter"


def test_an_unscorable_champion_is_incomparable_with_the_reason():
    v = comparison_verdict(mv_spec(), comparison(error="champion v1 cannot be loaded: artifact gone"))
    assert v.verdict == "Incomparable" and "artifact gone" in v.message
    missing = Comparison.model_validate(
        {"champion": "v1", "evaluations": [{"set": "heldOut", "challenger": {"r2": 1}, "champion": {}}]}
    )
    assert comparison_verdict(mv_spec(), missing).verdict == "Incomparable"


def test_no_rule_or_no_champion_means_no_verdict():
    no_rule = ModelVersionSpec.model_validate(
        {
            "model": "m",
            "training": {"dataset": {"uri": "sklearn:iris"}, "estimator": {"class": "LogisticRegression"}},
        }
    )
    assert comparison_verdict(no_rule, comparison(("heldOut", 0.9, 0.1))) is None
    assert comparison_verdict(mv_spec(), None) is None


# --- the planner: the gate uses the same-data numbers, and onIncomparable is explicit -----------------


def validate(sp: ModelVersionSpec, comp: Comparison | None, champion: str = "v1") -> World:
    w = World(sp, name="v2")
    w.step()
    w.with_result(accuracy=0.99)  # its own split looks great; that alone must not decide
    if comp is not None:
        w.status.training.comparison = comp
    w.step(job=JobView(uid="job-1", succeeded=1), champion=ChampionView(champion, {"accuracy": 0.50}))
    return w


def test_the_gate_uses_the_same_data_numbers_not_the_recorded_ones():
    # recorded: challenger 0.99 vs champion 0.50 would pass; on the same data the champion is better
    w = validate(mv_spec(), comparison(("heldOut", 0.70, 0.80)))
    assert w.status.phase == "Rejected" and cond(w.status, "Validated").reason == "ChampionBetter"
    assert "on the same data" in w.status.message and w.status.comparison.verdict == "ChampionBetter"
    w = validate(mv_spec(), comparison(("heldOut", 0.80, 0.70)))
    assert w.status.phase == "Deploying" and "beats champion v1" in cond(w.status, "Validated").message


def test_incomparable_rejects_by_default_and_says_so():
    w = validate(mv_spec(), comparison(error="champion v1: different feature schema"))
    c = cond(w.status, "Validated")
    assert w.status.phase == "Rejected" and c.reason == "ChampionIncomparable"
    assert "onIncomparable: Reject" in c.message and "different feature schema" in c.message


def test_incomparable_with_gates_only_goes_on_and_says_so():
    sp = mv_spec(onIncomparable="GatesOnly", gates=[{"metric": "accuracy", "min": 0.9}])
    w = validate(sp, comparison(error="champion v1 cannot be loaded: gone"))
    c = cond(w.status, "Validated")
    assert c.status == "True" and c.reason == "GatesOnly" and "gates only" in c.message
    assert w.status.phase == "Deploying" and w.status.comparison.verdict == "Incomparable"
    # the reason stays on later passes (the Validated condition is kept once True)
    w.step(job=JobView(uid="job-1", succeeded=1), champion=ChampionView("v1"))
    assert cond(w.status, "Validated").reason == "GatesOnly"


def test_a_champion_that_changed_during_training_is_incomparable():
    w = validate(mv_spec(), comparison(("heldOut", 0.9, 0.1)), champion="v0")
    assert w.status.phase == "Rejected" and "became champion during training" in w.status.message
    w = validate(mv_spec(), None)  # trained with no champion, one appeared since
    assert w.status.phase == "Rejected" and "had no champion to score" in w.status.message


def test_the_first_version_needs_no_comparison():
    w = World(mv_spec(), name="v1")
    w.step()
    w.with_result(accuracy=0.9)
    p = w.step(job=JobView(uid="job-1", succeeded=1))
    assert p.phase == "Deploying" and w.status.comparison is None


# --- the training Job carries the champion ---------------------------------------------------------


def test_the_job_names_the_champion_its_artifact_and_mounts_its_claim():
    st = Settings(pvc_root="/mnt/pvc")
    sp = mv_spec(dataset={"uri": "pvc://golden/set.csv"})
    champ = ChampionView("v1", artifact_uri="pvc://old-store/churn/v1/model.skops", sha256="ab" * 32)
    job = resources.training_job("v2", "ns", "uid", sp, st, champion=champ)
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    req = json.loads(env["MODELOPS_COMPARE"])
    assert req["champion"] == {
        "name": "v1",
        "uri": "pvc://old-store/churn/v1/model.skops",
        "sha256": "ab" * 32,
    }
    assert env["MODELOPS_CHAMPION_ARTIFACT"] == "/mnt/pvc/old-store/churn/v1/model.skops"
    assert req["dataset"]["uri"] == "pvc://golden/set.csv"
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["name"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert set(claims) == {"modelops-artifacts", "data", "golden", "old-store"}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/mnt/pvc/old-store"]["readOnly"] and mounts["/mnt/pvc/golden"]["readOnly"]
    # on this version's own claim: read under its own mount, nothing more mounted
    same = ChampionView("v1", artifact_uri="pvc://modelops-artifacts/churn/v1/model.skops", sha256="ab" * 32)
    job = resources.training_job("v2", "ns", "uid", mv_spec(), st, champion=same)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELOPS_CHAMPION_ARTIFACT"] == "/artifacts/churn/v1/model.skops"
    # no comparison asked for, or no champion: nothing passed
    for champion, sp in (
        (None, mv_spec()),
        (same, ModelVersionSpec.model_validate({**mv_spec().wire(), "validation": {}})),
    ):
        job = resources.training_job("v2", "ns", "uid", sp, st, champion=champion)
        assert "MODELOPS_COMPARE" not in {
            e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }


# --- the trainer scores both models on the same rows -------------------------------------------------


def shifted(path: Path, column: str, noise: float, seed: int, rows: int = 1200) -> str:
    """Two features; the label follows `column` (> 0), with a share `noise` of labels flipped."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    y = (frame[column] > 0).astype(int)
    flip = rng.random(rows) < noise
    frame["y"] = np.where(flip, 1 - y, y)
    frame.to_csv(path, index=False)
    return f"file://{path}"


def training(uri: str, cls: str = "LogisticRegression") -> Training:
    return Training.model_validate({"dataset": {"uri": uri, "target": "y"}, "estimator": {"class": cls}})


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MODELOPS_ARTIFACT_PVC", raising=False)
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(tmp_path / "termination-log"))
    return tmp_path / "store"


def champion_request(res: dict, name: str = "v1", **extra) -> compare.Request:
    uri = res["artifact"]["uri"]
    return compare.Request(name, uri, res["artifact"]["sha256"], uri[len("file://") :], **extra)


def test_a_champion_better_on_its_old_data_is_worse_on_the_new(tmp_path, store):
    old = trainer.train(training(shifted(tmp_path / "old.csv", "a", 0.0, 1)), "m", "v1", store)
    new_uri = shifted(tmp_path / "new.csv", "b", 0.1, 2)
    res = trainer.train(training(new_uri), "m", "v2", store, compare_with=champion_request(old))
    assert old["metrics"]["accuracy"] > res["metrics"]["accuracy"]  # the recorded numbers mislead
    (held,) = res["comparison"]["evaluations"]
    assert held["set"] == "heldOut" and held["rows"] == res["rows"]["test"]
    assert held["challenger"] == res["metrics"]
    assert held["challenger"]["accuracy"] > held["champion"]["accuracy"] + 0.2
    assert res["comparison"]["championSha256"] == old["artifact"]["sha256"]


def test_the_golden_set_is_scored_for_both(tmp_path, store):
    old = trainer.train(training(shifted(tmp_path / "old.csv", "a", 0.0, 1)), "m", "v1", store)
    golden = compare.Dataset(uri=shifted(tmp_path / "golden.csv", "a", 0.0, 3, rows=300))
    req = champion_request(old, dataset=golden)
    res = trainer.train(
        training(shifted(tmp_path / "new.csv", "b", 0.1, 2)), "m", "v2", store, compare_with=req
    )
    _, gold = res["comparison"]["evaluations"]
    assert gold["set"] == "golden" and gold["rows"] == 300 and gold["uri"] == golden.uri
    assert gold["champion"]["accuracy"] > gold["challenger"]["accuracy"]  # the old concept, on the golden set


def test_a_missing_or_tampered_artifact_or_another_schema_is_incomparable(tmp_path, store):
    old = trainer.train(training(shifted(tmp_path / "old.csv", "a", 0.0, 1)), "m", "v1", store)
    new = training(shifted(tmp_path / "new.csv", "b", 0.1, 2))
    tampered = compare.Request("v1", old["artifact"]["uri"], "00" * 32, champion_request(old).path)
    res = trainer.train(new, "m", "v2", store, compare_with=tampered)
    assert "sha256 mismatch" in res["comparison"]["error"] and not res["comparison"]["evaluations"]
    gone = compare.Request("v1", "file:///nowhere/model.skops", "00" * 32, "/nowhere/model.skops")
    res = trainer.train(new, "m", "v3", store, compare_with=gone)
    assert "cannot be loaded" in res["comparison"]["error"]
    frame = pd.read_csv(tmp_path / "new.csv").rename(columns={"b": "c"})
    frame.to_csv(tmp_path / "renamed.csv", index=False)
    res = trainer.train(
        training(f"file://{tmp_path / 'renamed.csv'}"), "m", "v4", store, compare_with=champion_request(old)
    )
    assert "different feature schema" in res["comparison"]["error"]


def test_a_bad_golden_set_is_the_specs_fault(tmp_path, store):
    old = trainer.train(training(shifted(tmp_path / "old.csv", "a", 0.0, 1)), "m", "v1", store)
    req = champion_request(old, dataset=compare.Dataset(uri=f"file://{tmp_path / 'missing.csv'}"))
    with pytest.raises(BadInput, match=r"validation\.dataset"):
        trainer.train(
            training(shifted(tmp_path / "new.csv", "b", 0.1, 2)), "m", "v2", store, compare_with=req
        )


def test_the_request_comes_from_the_environment():
    assert compare.Request.from_env({}) is None
    body = {
        "champion": {"name": "v1", "uri": "u", "sha256": "s"},
        "dataset": {"uri": "sklearn:iris"},
    }
    req = compare.Request.from_env({compare.ENV: json.dumps(body), compare.ARTIFACT_ENV: "/p"})
    assert req.name == "v1" and req.path == "/p" and req.dataset.uri == "sklearn:iris"
    assert compare.Request.from_env({compare.ENV: json.dumps(body)}).path is None
    with pytest.raises(BadInput, match="malformed"):
        compare.Request.from_env({compare.ENV: "{}"})
