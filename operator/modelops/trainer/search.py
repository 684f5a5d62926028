"""Hyperparameter search: the candidates, each Job index's share, cross-validation, and the merge.

Every index of the search Job computes the same candidate list from the spec alone (scikit-learn's
ParameterGrid, or ParameterSampler seeded with `search.seed`), evaluates the candidates whose
position is its index modulo the number of shards, and writes its trials to the artifact store.
The final fit merges the shards' files: it refuses a set that misses or repeats a candidate, and
picks the best as GridSearchCV does (highest mean score, the first candidate on a tie). Folds are
scikit-learn's own default for an integer `cv` (`check_cv`: StratifiedKFold for classifiers,
KFold otherwise, unshuffled) on the training split, which train_test_split has shuffled already.

Halving decides each round from the whole previous round, so it cannot be split across pods
without a Job per round: it runs HalvingGridSearchCV / HalvingRandomSearchCV in one index.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelops.api.estimators import default_scoring
from modelops.api.modelversion import Range, Search

from .errors import BadInput

SCHEMA_VERSION = 1
TOP_TRIALS = 10
"""Trials kept in status (best first); search.json beside the model has them all."""
SEARCH_DIR = "_search"
"""Under `<model>/` on the claim; `_` cannot start a version name, so it never clashes."""
TABLE_FILE = "search.json"

Factory = Callable[[dict[str, Any]], Any]
"""Builds the training pipeline with these estimator parameters over the spec's own."""


class _LogUniformInt:
    """Whole numbers in [low, high] drawn log-uniformly (scipy has no discrete log-uniform)."""

    def __init__(self, low: int, high: int) -> None:
        from scipy.stats import loguniform

        self.low, self.high = low, high
        self.dist = loguniform(low, high + 1)

    def rvs(self, random_state: Any = None) -> int:
        value = math.floor(float(self.dist.rvs(random_state=random_state)))
        return min(max(value, self.low), self.high)


def distribution(r: Range) -> Any:
    """The scipy distribution ParameterSampler draws a range from."""
    from scipy.stats import loguniform, randint, uniform

    if r.type == "int":
        low, high = int(r.low), int(r.high)
        return _LogUniformInt(low, high) if r.log else randint(low, high + 1)
    return loguniform(r.low, r.high) if r.log else uniform(r.low, r.high - r.low)


def space_for_sklearn(search: Search, prefix: str = "") -> dict[str, Any]:
    """The space as scikit-learn's searchers take it: lists as lists, ranges as distributions."""
    return {
        prefix + k: (distribution(v) if isinstance(v, Range) else list(v)) for k, v in search.space.items()
    }


def _plain(value: Any) -> Any:
    """numpy scalars (ParameterSampler's draws) as JSON values; the final fit reads them back."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def candidates(search: Search) -> list[dict[str, Any]]:
    """Every candidate in the order GridSearchCV / RandomizedSearchCV would evaluate them."""
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    if search.method == "grid":
        found = list(ParameterGrid(space_for_sklearn(search)))
    elif search.method == "random":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # trials > grid size: the whole grid
            found = list(
                ParameterSampler(space_for_sklearn(search), n_iter=search.trials, random_state=search.seed)
            )
    else:
        raise ValueError("halving candidates are chosen round by round, not listed up front")
    return [{k: _plain(v) for k, v in c.items()} for c in found]


def shard_indices(n_candidates: int, shards: int, index: int) -> list[int]:
    """The candidates index `index` of `shards` evaluates: every shards-th one, from `index`."""
    if not 0 <= index < shards:
        raise BadInput(f"completion index {index} is outside 0..{shards - 1}")
    return list(range(index, n_candidates, shards))


def _first_line(obj: object) -> str:
    text = str(obj).strip()
    return text.splitlines()[0] if text else type(obj).__name__


def _stats(scores: Sequence[float]) -> tuple[float | None, float | None]:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0 or np.isnan(arr).any():
        return None, None
    # As GridSearchCV computes them (np.average, unweighted), so equal inputs rank equally.
    mean = float(np.average(arr))
    return mean, float(np.sqrt(np.average((arr - mean) ** 2)))


def evaluate(
    factory: Factory,
    cands: list[dict[str, Any]],
    indices: list[int],
    X: np.ndarray,
    y: np.ndarray,
    search: Search,
    estimator: str,
    classification: bool,
    shard: int,
) -> list[dict[str, Any]]:
    """Cross-validate each candidate of this share; a candidate whose fit fails scores None
    (GridSearchCV's error_score=nan) and keeps the first error line."""
    from sklearn.model_selection import check_cv, cross_validate

    scoring = search.scoring or default_scoring(estimator)
    folds = check_cv(search.cv, y, classifier=classification)
    trials = []
    for i in indices:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = cross_validate(factory(cands[i]), X, y, cv=folds, scoring=scoring, error_score=np.nan)
            except ValueError as exc:  # params scikit-learn refuses before any fold runs
                raise BadInput(f"candidate {i} {cands[i]}: {_first_line(exc)}") from None
        scores = [float(s) for s in res["test_score"]]
        mean, std = _stats(scores)
        trial: dict[str, Any] = {
            "candidate": i,
            "params": cands[i],
            "meanScore": mean,
            "stdScore": std,
            "scores": [None if math.isnan(s) else s for s in scores],
            "fitSeconds": round(float(np.mean(res["fit_time"])), 4),
            "shard": shard,
        }
        if mean is None:
            failed = [w for w in caught if "fit" in type(w.message).__name__.lower()]
            trial["error"] = _first_line(failed[0].message if failed else "a fold failed")
        trials.append(trial)
    return trials


def halving(
    factory: Factory, X: np.ndarray, y: np.ndarray, search: Search, estimator: str, classification: bool
) -> list[dict[str, Any]]:
    """Successive halving in this one pod, with scikit-learn's own searchers; each row of its
    cv_results_ is a trial, with the round (`iter`) and the samples it was fitted on."""
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV, check_cv

    scoring = search.scoring or default_scoring(estimator)
    folds = check_cv(search.cv, y, classifier=classification)
    common = {"cv": folds, "scoring": scoring, "random_state": search.seed, "refit": False}
    space = space_for_sklearn(search, prefix="estimator__")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if search.grid_size() is not None:
            hs: Any = HalvingGridSearchCV(factory({}), space, error_score=np.nan, **common)
        else:
            hs = HalvingRandomSearchCV(
                factory({}), space, n_candidates=search.trials, error_score=np.nan, **common
            )
        try:
            hs.fit(X, y)
        except ValueError as exc:
            raise BadInput(f"halving search: {_first_line(exc)}") from None
    res = hs.cv_results_
    trials = []
    for i, params in enumerate(res["params"]):
        scores = [float(res[f"split{k}_test_score"][i]) for k in range(hs.n_splits_)]
        mean, std = _stats(scores)
        trials.append(
            {
                "candidate": i,
                "params": {k.removeprefix("estimator__"): _plain(v) for k, v in params.items()},
                "meanScore": mean,
                "stdScore": std,
                "scores": [None if math.isnan(s) else s for s in scores],
                "fitSeconds": round(float(res["mean_fit_time"][i]), 4),
                "shard": 0,
                "iter": int(res["iter"][i]),
                "resources": int(res["n_resources"][i]),
            }
        )
    return trials


# --- the files -------------------------------------------------------------------------------------


def shard_dir(store: Path, model: str, version: str, job_uid: str) -> Path:
    """Where one search Job's shards write: bound to the Job's uid, so a re-created version's
    search never reads an earlier Job's files."""
    return store / model / SEARCH_DIR / version / job_uid


def shard_file(folder: Path, index: int, shards: int) -> Path:
    return folder / f"shard-{index}-of-{shards}.json"


def write_shard(folder: Path, index: int, shards: int, doc: dict[str, Any]) -> Path:
    """Write atomically: a retried pod of the same index replaces its own file whole."""
    folder.mkdir(parents=True, exist_ok=True)
    final = shard_file(folder, index, shards)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, allow_nan=False, separators=(",", ":")), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def read_shards(folder: Path, shards: int) -> list[dict[str, Any]]:
    """Every shard's document; a missing or unreadable one is refused by its index."""
    docs = []
    for i in range(shards):
        path = shard_file(folder, i, shards)
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise BadInput(
                f"search results of shard {i} of {shards} cannot be read ({path}): {exc}"
            ) from None
    return docs


def shard_document(
    search: Search,
    estimator: str,
    index: int,
    shards: int,
    n: int,
    trials: list[dict[str, Any]],
    job_uid: str,
) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "jobUid": job_uid,
        "shard": index,
        "shards": shards,
        "method": search.method,
        "scoring": search.scoring or default_scoring(estimator),
        "cv": search.cv,
        "candidates": n,
        "trials": trials,
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- the merge ---------------------------------------------------------------------------------------


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table from the shards: every candidate exactly once, ranked, and the best chosen.

    Ranks follow GridSearchCV (`rankdata(-mean, 'min')`, failed candidates last); the best is the
    highest mean, the lowest candidate index on a tie; for halving, among the last round only
    (as HalvingGridSearchCV chooses)."""
    if not docs:
        raise BadInput("no search results")
    n = int(docs[0]["candidates"])
    trials = [t for d in docs for t in d["trials"]]
    seen: dict[int, int] = {}
    for t in trials:
        seen[t["candidate"]] = seen.get(t["candidate"], 0) + 1
    twice = sorted(c for c, k in seen.items() if k > 1)
    missing = sorted(set(range(n)) - set(seen)) if docs[0]["method"] != "halving" else []
    if twice or missing:
        what = (f"evaluated more than once: {twice[:10]}" if twice else "") or f"missing: {missing[:10]}"
        raise BadInput(f"search results are inconsistent: candidates {what}")
    trials.sort(key=lambda t: t["candidate"])
    scored = [t["meanScore"] for t in trials if t["meanScore"] is not None]
    for t in trials:
        m = t["meanScore"]
        t["rank"] = (1 + sum(1 for s in scored if s > m)) if m is not None else len(scored) + 1
    last = max((t.get("iter") or 0) for t in trials)
    pool = [t for t in trials if (t.get("iter") or 0) == last and t["meanScore"] is not None]
    if not pool:
        errors = [t.get("error") for t in trials if t.get("error")]
        raise BadInput(f"every search candidate failed: {errors[0] if errors else 'no score'}")
    best = max(pool, key=lambda t: (t["meanScore"], -t["candidate"]))
    return {
        "method": docs[0]["method"],
        "scoring": docs[0]["scoring"],
        "cv": docs[0]["cv"],
        "candidates": len(trials),
        "shards": len(docs),
        "best": best,
        "failed": sum(1 for t in trials if t["meanScore"] is None),
        "trials": trials,
    }


def summary(table: dict[str, Any], table_uri: str | None) -> dict[str, Any]:
    """status.training.search: the best, its score ± std, and the top trials (bounded)."""
    best = table["best"]
    ranked = sorted(
        table["trials"],
        key=lambda t: (
            t["meanScore"] is None,
            -(t["meanScore"] or 0.0),
            -(t.get("iter") or 0),
            t["candidate"],
        ),
    )
    top = [
        {k: t.get(k) for k in ("candidate", "params", "meanScore", "stdScore", "rank", "shard")}
        for t in ranked[:TOP_TRIALS]
    ]
    return {
        "method": table["method"],
        "scoring": table["scoring"],
        "cv": table["cv"],
        "candidates": table["candidates"],
        "shards": table["shards"],
        "bestParams": best["params"],
        "bestScore": best["meanScore"],
        "bestStd": best["stdScore"],
        "summary": f"{table['scoring']} {best['meanScore']:.4g} ± {best['stdScore']:.2g} "
        f"({table['candidates']} candidates)",
        "top": top,
        "failed": table["failed"],
        "table": table_uri,
    }
