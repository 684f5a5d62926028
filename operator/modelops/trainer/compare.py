"""Champion vs challenger on the same data: the champion's artifact scored where the challenger is.

Metrics recorded when the champion was trained measure it on *its* data; after drift they say
little about today's. So the training Job, after fitting, loads the champion (digest-checked,
skops with the allow-list, from the champion's own storage) and scores both models on the
challenger's held-out split and, when given, on a fixed evaluation ("golden") set.

When the champion cannot be scored, the comparison says why (`error`) instead of failing the
run: the challenger itself trained fine, and the spec's `onIncomparable` decides what follows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelops import artifacts
from modelops.api.modelversion import Comparison, Dataset, Evaluation

from . import data
from .errors import BadInput
from .evaluate import classification_metrics, regression_metrics

ENV = "MODELOPS_COMPARE"
"""JSON set by the operator on the training Job: {champion: {name, uri, sha256}, dataset}."""
ARTIFACT_ENV = "MODELOPS_CHAMPION_ARTIFACT"
"""The champion's model file as mounted in this pod (absent when its store cannot be mounted)."""


@dataclass(frozen=True)
class Request:
    """Whom to compare with and on what, as the operator passed it."""

    name: str
    uri: str
    sha256: str
    path: str | None
    """The champion's model file as mounted in this pod; None when the store is not mountable."""
    dataset: Dataset | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Request | None:
        env = dict(os.environ if env is None else env)
        text = env.get(ENV)
        if not text:
            return None
        try:
            raw = json.loads(text)
            champ = raw["champion"]
            ds = Dataset.model_validate(raw["dataset"]) if raw.get("dataset") else None
            return cls(champ["name"], champ["uri"], champ["sha256"], env.get(ARTIFACT_ENV) or None, ds)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{ENV} is malformed: {exc}") from None


def labels(y: pd.Series, classification: bool) -> pd.Series:
    """Class labels as the trainer fits them: integers and booleans kept, anything else as text."""
    if classification and not (pd.api.types.is_integer_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype)):
        return y.astype(str)
    return y


def schema_difference(champion: list[dict[str, Any]], challenger: list[dict[str, Any]]) -> str | None:
    """Why the champion cannot take the challenger's rows: other feature names, order or types."""
    want = [(f.get("name"), f.get("dtype")) for f in champion]
    have = [(f.get("name"), f.get("dtype")) for f in challenger]
    if want == have:
        return None
    show = lambda fs: ", ".join(f"{n}:{t}" for n, t in fs)  # noqa: E731
    return f"different feature schema: champion takes [{show(want)}], challenger has [{show(have)}]"


def _load_champion(req: Request) -> tuple[Any, dict[str, Any]]:
    if req.path is None:
        raise artifacts.ArtifactError(f"champion artifact {req.uri} is not on storage this Job can mount")
    model = artifacts.load_model(artifacts.read_verified(req.path, req.sha256))
    meta_path = f"{req.path.rsplit('/', 1)[0]}/{artifacts.METADATA_FILE}"  # a mounted path or s3://
    try:
        meta = json.loads(artifacts.read_file(meta_path))
    except ValueError as exc:
        raise artifacts.ArtifactError(f"champion metadata {meta_path} is unreadable: {exc}") from exc
    return model, meta


def score(model: Any, X: np.ndarray, y: np.ndarray, classification: bool) -> dict[str, float]:
    evaluate = classification_metrics if classification else regression_metrics
    return evaluate(model, X, y)


def compare(
    req: Request,
    challenger: Any,
    task: str,
    prepared: data.Prepared,
    X_test: np.ndarray,
    y_test: np.ndarray,
    test_metrics: dict[str, float],
    pvc_root: str | None = None,
) -> Comparison:
    """Both models on the held-out split and the golden set; an error instead of numbers when the
    champion cannot be loaded or cannot take these rows. A bad golden set is the spec's fault: BadInput."""
    classification = task == "classification"
    golden = _golden(req.dataset, prepared, classification, pvc_root) if req.dataset else None
    out = Comparison(champion=req.name, champion_sha256=req.sha256)
    try:
        champion, meta = _load_champion(req)
    except artifacts.ArtifactError as exc:
        return out.model_copy(update={"error": f"champion {req.name} cannot be loaded: {exc}"})
    if meta.get("task") != task:
        why = f"champion {req.name} is a {meta.get('task')} model, the challenger a {task} one"
        return out.model_copy(update={"error": why})
    diff = schema_difference(meta.get("features") or [], prepared.schema)
    if diff:
        return out.model_copy(update={"error": f"champion {req.name}: {diff}"})
    evaluations = []
    sets = [("heldOut", None, X_test, y_test, test_metrics)]
    if golden is not None:
        sets.append(("golden", req.dataset.uri if req.dataset else None, golden[0], golden[1], None))
    for name, uri, X, y, known in sets:
        try:
            theirs = score(champion, X, y, classification)
        except (ValueError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return out.model_copy(
                update={"error": f"champion {req.name} cannot score the {name} set: {first}"}
            )
        ours = known if known is not None else score(challenger, X, y, classification)
        evaluations.append(Evaluation(set=name, uri=uri, rows=len(y), challenger=ours, champion=theirs))
    return out.model_copy(update={"evaluations": evaluations})


def _golden(
    ds: Dataset, prepared: data.Prepared, classification: bool, pvc_root: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """The golden set in the challenger's feature order; the training target unless it names one."""
    spec = Dataset(
        uri=ds.uri,
        target=ds.target or prepared.target,
        features=ds.features or prepared.features,
        categorical=ds.categorical or prepared.categorical,
    )
    try:
        gold = data.prepare(data.load(spec.uri, pvc_root), spec)
    except BadInput as exc:
        raise BadInput(f"validation.dataset: {exc}") from None
    if gold.features != prepared.features:
        raise BadInput(
            f"validation.dataset: features {gold.features} differ from the training features {prepared.features}"
        )
    y = labels(gold.y, classification).to_numpy()
    return data.to_matrix(gold.X, gold.categorical), y
