"""The hyperparameter search without a cluster: candidates, shares, the merge, the status, and the
best parameters against scikit-learn's own GridSearchCV / HalvingGridSearchCV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.model_selection import GridSearchCV, ParameterGrid

from modelops.admission import review
from modelops.api.modelversion import Search
from modelops.trainer import main as trainer
from modelops.trainer import search
from modelops.trainer.errors import BadInput

IRIS = {
    "dataset": {"uri": "sklearn:iris"},
    "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
}
GRID = {"space": {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]}, "cv": 4, "parallelism": 3}


def training(**search_spec):
    return trainer.load_spec(None, {"MODELOPS_TRAINING_SPEC": json.dumps({**IRIS, "search": search_spec})})


@pytest.mark.parametrize("n", [0, 1, 2, 7, 24, 100])
@pytest.mark.parametrize("shards", [1, 2, 3, 5, 32])
def test_the_shares_cover_every_candidate_exactly_once(n, shards):
    shares = [search.shard_indices(n, shards, i) for i in range(shards)]
    flat = [c for share in shares for c in share]
    assert sorted(flat) == list(range(n))
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1  # balanced


def test_an_index_outside_the_job_is_refused():
    with pytest.raises(BadInput, match=r"completion index 3 is outside 0\.\.2"):
        search.shard_indices(10, 3, 3)


def test_grid_candidates_are_parametergrids_order_and_random_ones_are_seeded():
    s = Search.model_validate(GRID)
    assert search.candidates(s) == list(ParameterGrid(GRID["space"]))
    ranged = {
        "method": "random",
        "trials": 40,
        "space": {
            "C": {"low": 1e-3, "high": 1e2, "log": True},
            "max_iter": {"low": 50, "high": 5000, "type": "int", "log": True},
            "tol": {"low": 1e-5, "high": 1e-3},
            "penalty": ["l2", None],
        },
    }
    a, b = (search.candidates(Search.model_validate(ranged)) for _ in range(2))
    assert a == b and len(a) == 40  # every index draws the same list
    assert a != search.candidates(Search.model_validate({**ranged, "seed": 1}))
    assert all(1e-3 <= c["C"] <= 1e2 and 1e-5 <= c["tol"] <= 1e-3 for c in a)
    assert all(isinstance(c["max_iter"], int) and 50 <= c["max_iter"] <= 5000 for c in a)
    assert json.loads(json.dumps(a)) == a  # plain JSON values: the final fit reads them back exactly
    logs = sorted(np.log10([c["C"] for c in a]))
    assert logs[0] < -1.5 and logs[-1] > 0.5  # spread over the decades, not bunched at the top


def test_random_search_over_a_small_grid_takes_the_whole_grid_once():
    s = Search.model_validate({"method": "random", "trials": 50, "space": {"C": [0.1, 1.0, 10.0]}})
    assert s.candidate_count() == 3 and sorted(c["C"] for c in search.candidates(s)) == [0.1, 1.0, 10.0]


def run_shards(spec, store: Path, shards: int, version: str = "v1") -> list[dict]:
    docs = []
    for i in range(shards):
        _, doc = trainer.search_shard(spec, "iris", version, store, i, shards, "job-1")
        docs.append(doc)
    return docs


def test_three_shards_find_what_gridsearchcv_finds_on_the_same_grid_and_folds(tmp_path):
    spec = training(**GRID)
    docs = run_shards(spec, tmp_path, 3)
    assert [len(d["trials"]) for d in docs] == [3, 3, 2]
    table = search.merge(search.read_shards(search.shard_dir(tmp_path, "iris", "v1", "job-1"), 3))

    d = trainer._prepare(spec, "iris", tmp_path, trainer.Context(), True)
    gs = GridSearchCV(
        trainer._factory(spec, d)({}),
        {f"estimator__{k}": v for k, v in GRID["space"].items()},
        cv=GRID["cv"],
        scoring="accuracy",
    ).fit(d.X_train, d.y_train)
    assert table["best"]["params"] == {k.removeprefix("estimator__"): v for k, v in gs.best_params_.items()}
    assert table["best"]["meanScore"] == gs.best_score_
    ranks = [t["rank"] for t in table["trials"]]
    assert ranks == list(gs.cv_results_["rank_test_score"])  # the whole table, not just the winner
    assert [t["meanScore"] for t in table["trials"]] == list(gs.cv_results_["mean_test_score"])


def test_ties_go_to_the_first_candidate_and_failed_ones_rank_last():
    def doc(shard, trials):
        return {
            "method": "grid",
            "scoring": "accuracy",
            "cv": 3,
            "candidates": 4,
            "shard": shard,
            "trials": trials,
        }

    def t(c, mean):
        return {"candidate": c, "params": {"C": c}, "meanScore": mean, "stdScore": 0.0 if mean else None}

    table = search.merge([doc(0, [t(0, 0.9), t(2, None)]), doc(1, [t(1, 0.95), t(3, 0.95)])])
    assert table["best"]["candidate"] == 1
    assert [x["rank"] for x in table["trials"]] == [3, 1, 4, 1]
    assert table["failed"] == 1


def test_a_missing_or_repeated_candidate_is_refused():
    def doc(trials):
        return {"method": "grid", "scoring": "accuracy", "cv": 3, "candidates": 3, "trials": trials}

    def t(c):
        return {"candidate": c, "params": {}, "meanScore": 0.5, "stdScore": 0.0}

    with pytest.raises(BadInput, match=r"missing: \[2\]"):
        search.merge([doc([t(0)]), doc([t(1)])])
    with pytest.raises(BadInput, match=r"more than once: \[1\]"):
        search.merge([doc([t(0), t(1)]), doc([t(1), t(2)])])


def test_a_missing_shard_file_is_refused_by_its_index(tmp_path):
    spec = training(**GRID)
    trainer.search_shard(spec, "iris", "v1", tmp_path, 0, 3, "job-1")
    with pytest.raises(BadInput, match="shard 1 of 3 cannot be read"):
        trainer.train(spec, "iris", "v1", tmp_path, search_from=trainer.SearchFrom("job-1", 3))


def test_the_final_fit_trains_on_the_best_and_records_the_search(tmp_path):
    spec = training(**GRID)
    run_shards(spec, tmp_path, 3)
    result = trainer.train(spec, "iris", "v1", tmp_path, search_from=trainer.SearchFrom("job-1", 3))
    s = result["search"]
    assert s["candidates"] == 8 and s["shards"] == 3 and s["method"] == "grid"
    assert s["top"][0]["params"] == s["bestParams"] and s["top"][0]["rank"] == 1
    assert s["summary"].startswith(f"accuracy {s['bestScore']:.4g} ± ")
    folder = tmp_path / "iris" / "v1"
    table = json.loads((folder / search.TABLE_FILE).read_text())
    assert len(table["trials"]) == 8 and s["table"].endswith("/iris/v1/search.json")
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["params"] == {"max_iter": 500, **s["bestParams"]}
    card = json.loads((folder / "model-card.json").read_text())
    assert card["search"]["bestParams"] == s["bestParams"] and card["search"]["shards"] == 3
    assert "## Hyperparameter search" in (folder / "model-card.md").read_text()


def test_the_status_keeps_the_top_trials_only(tmp_path):
    spec = training(space={"C": list(np.logspace(-3, 2, 15).round(6))}, cv=3)
    result = trainer.train(spec, "iris", "v1", tmp_path)  # no search Job: all candidates here
    assert result["search"]["candidates"] == 15 and len(result["search"]["top"]) == search.TOP_TRIALS
    scores = [t["meanScore"] for t in result["search"]["top"]]
    assert scores == sorted(scores, reverse=True)
    assert len(json.loads((tmp_path / "iris/v1/search.json").read_text())["trials"]) == 15


def test_halving_runs_in_one_index_and_chooses_as_halvinggridsearchcv(tmp_path):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    space = {"C": [0.01, 0.1, 1.0, 10.0, 100.0], "tol": [1e-4, 1e-2]}
    spec = training(method="halving", space=space, cv=3)
    (doc,) = run_shards(spec, tmp_path, 1)
    table = search.merge([doc])
    d = trainer._prepare(spec, "iris", tmp_path, trainer.Context(), True)
    hs = HalvingGridSearchCV(
        trainer._factory(spec, d)({}),
        {f"estimator__{k}": v for k, v in space.items()},
        cv=3,
        scoring="accuracy",
        random_state=0,
        refit=False,
    ).fit(d.X_train, d.y_train)
    assert table["best"]["params"] == {k.removeprefix("estimator__"): v for k, v in hs.best_params_.items()}
    assert max(t["iter"] for t in table["trials"]) >= 1  # it did halve


def test_the_api_refuses_what_cannot_run():
    with pytest.raises(ValidationError, match=r"space\.C: a range needs method random or halving"):
        Search.model_validate({"space": {"C": {"low": 0.1, "high": 10}}})
    with pytest.raises(ValidationError, match="parallelism must be 1 for halving"):
        Search.model_validate({"method": "halving", "space": {"C": [1, 2]}, "parallelism": 2})
    with pytest.raises(ValidationError, match="a log range needs low > 0"):
        Search.model_validate({"method": "random", "space": {"C": {"low": 0, "high": 1, "log": True}}})
    with pytest.raises(ValidationError, match="1200 candidates; at most 1000"):
        Search.model_validate({"space": {"a": list(range(40)), "b": list(range(30))}})
    with pytest.raises(ValidationError, match="a list of values or a range"):
        Search.model_validate({"space": {"C": 5}})


def test_admission_names_the_parameter_and_the_value_scikit_learn_refuses():
    def problems(search_spec, estimator="LogisticRegression"):
        body = {
            "model": "iris",
            "training": {
                "dataset": {"uri": "sklearn:iris"},
                "estimator": {"class": estimator},
                "search": search_spec,
            },
        }
        return dict(review("ModelVersion", {"metadata": {"name": "v1"}, "spec": body}))

    assert problems(GRID) == {}
    found = problems({"space": {"C": [1.0, -1.0], "gamma": [1]}, "scoring": "r2"})
    assert set(found) == {
        "spec.training.search.space.C[1]",
        "spec.training.search.space.gamma",
        "spec.training.search.scoring",
    }
    assert "must be a float in the range (0.0, inf]" in found["spec.training.search.space.C[1]"]
    assert "not a parameter of LogisticRegression" in found["spec.training.search.space.gamma"]
    ranged = {"method": "random", "space": {"max_depth": {"low": 0, "high": 10, "type": "int"}}}
    assert "spec.training.search.space.max_depth.low" in problems(ranged, "DecisionTreeClassifier")
