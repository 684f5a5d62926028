"""`modelops import`: bring a model trained elsewhere into the lifecycle (the import Job).

Runs where the training Job would, for a ModelVersion with `spec.source.artifact` instead of
`spec.training`, and hands on what training hands on, so every later stage (gates, champion
comparison, serving, canary, drift, retention) is unchanged:
- the file is read once and its sha256 checked against the spec before anything loads it;
- it is loaded with the same skops trust rules as the server (no pickle, allow-listed types);
- it is scored on the reference data set (metrics for the gates), which also gives the drift
  reference bins of every feature and of the predictions, the explanations and the fairness
  table; with `validation.champion` the champion is scored on the same rows;
- the verified bytes are written into the store as `<model>/<version>/model.skops` with the
  metadata, card and result training writes, and the result is reported to `status.training`.

Exit codes and failure reporting are the trainer's (`modelops train`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from modelops import artifacts, storage
from modelops.api.modelversion import Artifact, Bin, ImportedArtifact, TrainingResult

from . import compare, data, governance, quality, report
from .errors import BadInput, ReportError
from .evaluate import classification_metrics, regression_metrics
from .main import (
    NAME,
    Context,
    _fail,
    _first_line,
    _library_versions,
    _now,
    _parent_metadata,
    _version_directory,
    _version_uris,
    _write_card_and_result,
)
from .reference import category_bins, numeric_bins

ENV = "MODELOPS_IMPORT_SPEC"


def load_spec(path: str | None, env: dict[str, str] | None = None) -> ImportedArtifact:
    """The `source.artifact` object (a whole ModelVersion or its spec is accepted too, for local runs)."""
    env = dict(os.environ if env is None else env)
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot read spec {path}: {exc.strerror or exc}") from None
    elif env.get(ENV):
        text = env[ENV]
    else:
        raise BadInput(f"no import spec: pass --spec FILE or set {ENV}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInput(f"import spec is neither JSON nor YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(raw, dict) and isinstance(raw.get("spec"), dict):
        raw = raw["spec"]
    if isinstance(raw, dict) and isinstance(raw.get("source"), dict):
        raw = raw["source"].get("artifact")
    try:
        return ImportedArtifact.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise BadInput(f"invalid import spec: {problems}") from None


def read_model_file(uri: str, pvc_root: str | None = None) -> bytes:
    """The model file's bytes: a claim mounted under the PVC root, a local path, s3:// or https://."""
    if storage.is_remote(uri):
        try:
            return storage.read_bytes(uri, storage.SOURCE)
        except storage.StorageError as exc:
            if exc.permanent:
                raise BadInput(f"model file {exc}") from None
            raise
    path = data.resolve_uri(uri, pvc_root)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"model file not found: {uri}") from None
    except OSError as exc:
        raise BadInput(f"cannot read model file {uri}: {exc.strerror or exc}") from None


def _estimator_name(model: Any) -> str:
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    return type(final).__name__


def import_model(
    spec: ImportedArtifact,
    model_name: str,
    version: str,
    store: str | os.PathLike[str],
    job_uid: str | None = None,
    compare_with: compare.Request | None = None,
    context: Context | None = None,
) -> dict[str, Any]:
    """Verify, load, score and store a model trained elsewhere; return the result (wire form)."""
    from sklearn.base import is_classifier, is_regressor

    started = _now()
    ctx = context or Context()
    store = str(store)
    store_root = store if storage.is_remote(store) else str(Path(store).resolve())

    blob = read_model_file(spec.uri)
    digest = artifacts.sha256_bytes(blob)
    if digest != spec.sha256:
        raise BadInput(
            f"model file {spec.uri}: sha256 mismatch: the spec says {spec.sha256}, the file is {digest}"
        )
    try:
        model = artifacts.load_model(blob)
    except artifacts.ArtifactError as exc:
        raise BadInput(f"model file {spec.uri}: {exc}") from None
    if is_classifier(model):
        task = "classification"
    elif is_regressor(model):
        task = "regression"
    else:
        raise BadInput(
            f"model file {spec.uri} holds a {type(model).__name__}, not a scikit-learn classifier or regressor"
        )
    classification = task == "classification"

    ds = spec.reference_dataset
    raw = data.load(ds.uri)
    excluded = data.exclude(raw, ds.exclude)
    prepared = data.prepare(raw, ds)
    X = data.to_matrix(prepared.X, prepared.categorical)
    y = compare.labels(prepared.y, classification).to_numpy()
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and expected != X.shape[1]:
        raise BadInput(
            f"the model takes {expected} features; the reference data set gives {X.shape[1]} "
            f"({', '.join(prepared.features)}): set reference dataset.features to the model's inputs, in order"
        )
    evaluate = classification_metrics if classification else regression_metrics
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            metrics = evaluate(model, X, y)
            pred = model.predict(X)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"the model cannot score the reference data set: {_first_line(exc)}") from None
    reference: dict[str, dict[str, Any]] = {}
    for i, feat in enumerate(prepared.schema):
        column = X[:, i]
        if feat["dtype"] == "category":
            reference[feat["name"]] = category_bins(column, feat["categories"])
        else:
            reference[feat["name"]] = numeric_bins(column.astype(np.float64), spec.reference_bins)
    classes = [str(c) for c in model.classes_] if classification else None
    prediction_reference = (
        category_bins(pred, classes) if classes is not None else numeric_bins(pred, spec.reference_bins)
    )
    explanations = governance.permutation_importance(model, X, y, prepared.features, 0, classification)
    fairness_report = None
    if ctx.fairness is not None:
        sensitive = list(ctx.fairness.sensitive_features)
        missing = [c for c in sensitive if c not in raw.frame.columns]
        if missing:
            raise BadInput(f"sensitive feature(s) not in the reference data: {', '.join(missing)}")
        groups = raw.frame[sensitive].reset_index(drop=True)
        fairness_report = governance.fairness_table(
            ctx.fairness, y, pred, groups, list(model.classes_) if classification else None
        )
    rows = {"total": len(y), "train": 0, "test": len(y)}
    comparison = None
    if compare_with is not None:
        comparison = compare.compare(compare_with, model, task, prepared, X, y, metrics)
    parent_meta = _parent_metadata(store_root, model_name, ctx.parent)

    uri, card_uri = _version_uris(store, store_root, model_name, version)
    estimator = _estimator_name(model)
    with _version_directory(store, model_name, version) as tmp:
        (tmp / artifacts.MODEL_FILE).write_bytes(blob)  # the verified bytes, unchanged
        (tmp / artifacts.DIGEST_FILE).write_text(f"{digest}  {artifacts.MODEL_FILE}\n")
        finished = _now()
        result = TrainingResult(
            job_uid=job_uid,
            succeeded=True,
            task=task,
            metrics=metrics,
            dataset_digest=raw.digest,
            artifact=Artifact(uri=uri, sha256=digest),
            features=prepared.schema,
            reference={k: Bin(**v) for k, v in reference.items()},
            prediction_reference=Bin(**prediction_reference),
            rows=rows,
            comparison=comparison,
            explanations={**explanations, "top": explanations["top"][: governance.TOP_FEATURES]},
            fairness=fairness_report,
            card=card_uri,
            finished_at=finished,
        )
        metadata = {
            "schemaVersion": 1,
            "model": model_name,
            "version": version,
            "task": task,
            "estimator": estimator,
            "features": prepared.schema,
            "target": prepared.target,
            "classes": classes,
            "metrics": metrics,
            "evaluation": {"test": metrics},
            "reference": reference,
            "predictionReference": prediction_reference,
            "dataset": {"uri": ds.uri, "sha256": raw.digest},
            "datasetDigest": raw.digest,
            "rows": rows,
            "comparison": comparison.wire() if comparison else None,
            "artifact": {"file": artifacts.MODEL_FILE, "sha256": digest, "uri": uri},
            "importedFrom": {"uri": spec.uri, "sha256": spec.sha256},
            "libraries": _library_versions(),
            "spec": {"source": {"artifact": spec.wire()}},
            "warnings": sorted({_first_line(w.message) for w in caught})[:20],
            "startedAt": started,
            "finishedAt": finished,
            "dataSchema": quality.data_schema(raw.frame, data.columns(raw, ds, classification)),
            "excludedColumns": len(excluded),
            "dataQuality": None,
            "explanations": explanations,
            "fairness": fairness_report,
            "lineage": governance.lineage(ctx.parent, parent_meta),
        }
        artifacts.write_json(tmp / artifacts.METADATA_FILE, metadata)
        _write_card_and_result(tmp, ctx, metadata, result, sensitive_unused=[])
    return result.wire()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"usage: {message}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="modelops import", description="Import a model trained elsewhere as one ModelVersion.")
    p.add_argument("--spec", help=f"file with spec.source.artifact (JSON or YAML); default ${ENV}")
    p.add_argument("--model", default=os.environ.get("MODELOPS_MODEL"), help="model family name")
    p.add_argument("--version", default=os.environ.get("MODELOPS_VERSION"), help="ModelVersion name")
    p.add_argument("--store", default=os.environ.get("MODELOPS_ARTIFACT_ROOT", "/artifacts"))
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    target = report.Target.from_env()
    try:
        args = parse_args(argv)
        spec = load_spec(args.spec)
        for flag, value in (("--model", args.model), ("--version", args.version)):
            if not value or not NAME.match(value):
                raise BadInput(f"{flag} must be a lowercase DNS name, got {value!r}")
        result = import_model(
            spec,
            args.model,
            args.version,
            args.store,
            job_uid=target.job_uid if target else None,
            compare_with=compare.Request.from_env(),
            context=Context.from_env(),
        )
        if target is not None:
            report.send(report.patch_body(TrainingResult.model_validate(result), target), target)
    except BadInput as exc:
        return _fail(BadInput.exit_code, str(exc), target, report_failure=True, exc=exc)
    except ReportError as exc:
        return _fail(ReportError.exit_code, str(exc), target, report_failure=False)
    except Exception as exc:  # may be transient: the Job's backoffLimit retries
        return _fail(1, f"{type(exc).__name__}: {exc}", target, report_failure=False)
    print(json.dumps(result, separators=(",", ":"), allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
