"""`modelops train`: the training Job's entry point.

Exit codes: 0 trained; 2 bad spec or bad data (retrying will not help); 4 the result could not be
reported; 1 anything unexpected. On failure stderr gets exactly one line `error: <reason>`, the
same line goes to the termination log, and for bad input the ModelVersion is told as well.
stdout's last line is the result as JSON (camelCase, the shape of `TrainingResult`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from modelops import artifacts, storage
from modelops.api.base import format_time
from modelops.api.estimators import ALLOWED, task_of
from modelops.api.modelversion import (
    SEARCH_NEEDS_CLAIM,
    Artifact,
    Bin,
    Card,
    Fairness,
    Training,
    TrainingResult,
)

from . import compare, data, governance, quality, report, search
from .errors import BadInput, ReportError
from .estimators import build_pipeline
from .evaluate import classification_metrics, regression_metrics
from .reference import category_bins, numeric_bins

NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"usage: {message}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="modelops train", description="Train one ModelVersion and write its artifact.")
    p.add_argument(
        "--spec", help="file with the training spec (JSON or YAML); default $MODELOPS_TRAINING_SPEC"
    )
    p.add_argument("--model", default=os.environ.get("MODELOPS_MODEL"), help="model family name")
    p.add_argument("--version", default=os.environ.get("MODELOPS_VERSION"), help="ModelVersion name")
    p.add_argument("--store", default=os.environ.get("MODELOPS_ARTIFACT_ROOT", "/artifacts"))
    return p.parse_args(argv)


def load_spec(path: str | None, env: dict[str, str] | None = None) -> Training:
    """The `training` object; a whole ModelVersion or its spec is accepted too, for local runs."""
    env = dict(os.environ if env is None else env)
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot read spec {path}: {exc.strerror or exc}") from None
    elif env.get("MODELOPS_TRAINING_SPEC"):
        text = env["MODELOPS_TRAINING_SPEC"]
    else:
        raise BadInput("no training spec: pass --spec FILE or set MODELOPS_TRAINING_SPEC")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInput(f"training spec is neither JSON nor YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise BadInput("training spec must be an object")
    if isinstance(raw.get("spec"), dict):
        raw = raw["spec"]
    if isinstance(raw.get("training"), dict):
        raw = raw["training"]
    name = (raw.get("estimator") or {}).get("class") if isinstance(raw.get("estimator"), dict) else None
    if name is not None and name not in ALLOWED:
        raise BadInput(f"estimator {name!r} is not allowed; allowed: {', '.join(ALLOWED)}")
    try:
        return Training.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise BadInput(f"invalid training spec: {problems}") from None


@dataclass(frozen=True)
class Context:
    """What the trainer needs from the ModelVersion beyond `training`: parent, card, fairness."""

    parent: str | None = None
    card: Card | None = None
    fairness: Fairness | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Context:
        env = dict(os.environ if env is None else env)
        try:
            card = Card.model_validate_json(env["MODELOPS_CARD"]) if env.get("MODELOPS_CARD") else None
            fair = env.get("MODELOPS_FAIRNESS")
            fairness = Fairness.model_validate_json(fair) if fair else None
        except ValidationError as exc:
            raise BadInput(f"invalid card or fairness spec: {exc.errors()[0]['msg']}") from None
        return cls(env.get("MODELOPS_PARENT") or None, card, fairness)


def _now() -> str:
    return format_time(dt.datetime.now(dt.UTC))


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "skops", "modelops"):
        with contextlib.suppress(PackageNotFoundError):
            found[dist] = version(dist)
    return found


def train(
    spec: Training,
    model_name: str,
    version: str,
    store: str | os.PathLike[str],
    job_uid: str | None = None,
    compare_with: compare.Request | None = None,
    context: Context | None = None,
    search_from: SearchFrom | None = None,
) -> dict[str, Any]:
    """Check the data, take the search's best parameters, fit, evaluate, explain, record references,
    write the artifact and its card; return the result (wire form). With `compare_with`, the champion
    it names is scored on the same data as this model; with `search_from`, the search Job's shard
    files are merged (a spec with a search and no Job runs the whole search here)."""
    started = _now()
    estimator = spec.estimator.class_
    task = task_of(estimator)
    classification = task == "classification"

    ctx = context or Context()
    store = str(store)
    remote = storage.is_remote(store)
    store_root: Any = store if remote else Path(store).resolve()
    d = _prepare(spec, model_name, store_root, ctx, classification)
    raw, dataset, prepared, dq_report = d.raw, d.dataset, d.prepared, d.dq_report
    sensitive, sensitive_unused, parent_meta = d.sensitive, d.sensitive_unused, d.parent_meta
    fairness = ctx.fairness
    X_train, X_test, y_train, y_test, pos_test = d.X_train, d.X_test, d.y_train, d.y_test, d.pos_test
    params = dict(spec.estimator.params)
    search_table: dict[str, Any] | None = None
    if spec.search is not None:
        search_table = _search_results(spec, d, classification, store_root, model_name, version, search_from)
        params.update(search_table["best"]["params"])
    pipeline = _factory(spec, d)(params)
    metrics, train_pred, fit_warnings = _fit(
        pipeline, estimator, classification, X_train, X_test, y_train, y_test
    )
    evaluate = classification_metrics if classification else regression_metrics
    evaluation = {"test": metrics, "train": evaluate(pipeline, X_train, y_train)}

    reference: dict[str, dict[str, Any]] = {}
    for i, feat in enumerate(prepared.schema):
        column = X_train[:, i]
        if feat["dtype"] == "category":
            reference[feat["name"]] = category_bins(column, feat["categories"])
        else:
            reference[feat["name"]] = numeric_bins(column.astype(np.float64), spec.reference_bins)
    classes = [str(c) for c in pipeline.classes_] if classification else None
    if classes is not None:
        prediction_reference = category_bins(train_pred, classes)
    else:
        prediction_reference = numeric_bins(train_pred, spec.reference_bins)
    explanations = governance.permutation_importance(
        pipeline, X_test, y_test, prepared.features, spec.split.seed, classification
    )
    fairness_report = None
    if fairness is not None:
        groups = raw.frame[sensitive].iloc[pos_test].reset_index(drop=True)
        fairness_report = governance.fairness_table(
            fairness,
            y_test,
            pipeline.predict(X_test),
            groups,
            list(pipeline.classes_) if classification else None,
        )
    schema_cols = data.columns(raw, dataset, classification)
    rows = {"total": len(y_train) + len(y_test), "train": len(y_train), "test": len(y_test)}
    comparison = None
    if compare_with is not None:
        comparison = compare.compare(compare_with, pipeline, task, prepared, X_test, y_test, metrics)

    uri, card_uri = _version_uris(store, store_root, model_name, version)
    with _version_directory(store, model_name, version) as tmp:
        artifacts.dump_model(pipeline, tmp / artifacts.MODEL_FILE)
        digest = artifacts.sha256_file(tmp / artifacts.MODEL_FILE)
        (tmp / artifacts.DIGEST_FILE).write_text(f"{digest}  {artifacts.MODEL_FILE}\n")
        search_status = None
        if search_table is not None:
            table_uri = uri.rsplit("/", 1)[0] + "/" + search.TABLE_FILE
            artifacts.write_json(tmp / search.TABLE_FILE, search_table)
            search_status = search.summary(search_table, table_uri)
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
            data_quality=quality.bounded(dq_report) if dq_report else None,
            explanations={**explanations, "top": explanations["top"][: governance.TOP_FEATURES]},
            fairness=fairness_report,
            search=search_status,
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
            "evaluation": evaluation,
            "reference": reference,
            "predictionReference": prediction_reference,
            "dataset": {"uri": spec.dataset.uri, "sha256": raw.digest},
            "datasetDigest": raw.digest,
            "rows": rows,
            "comparison": comparison.wire() if comparison else None,
            "artifact": {"file": artifacts.MODEL_FILE, "sha256": digest, "uri": uri},
            "libraries": _library_versions(),
            "spec": spec.wire(),
            "warnings": fit_warnings,
            "startedAt": started,
            "finishedAt": finished,
            "dataSchema": quality.data_schema(raw.frame, schema_cols),
            "excludedColumns": len(d.excluded),
            "dataQuality": dq_report,
            "explanations": explanations,
            "fairness": fairness_report,
            "search": search_status,
            "params": params,
            "lineage": governance.lineage(ctx.parent, parent_meta),
        }
        artifacts.write_json(tmp / artifacts.METADATA_FILE, metadata)
        if dq_report is not None:
            artifacts.write_json(tmp / artifacts.DATA_QUALITY_FILE, dq_report)
        _write_card_and_result(tmp, ctx, metadata, result, sensitive_unused)
    return result.wire()


@dataclass
class _Data:
    """The data as both the search shards and the final fit see it: the same rows, the same split."""

    raw: data.RawDataset
    excluded: list[str]
    dataset: Any
    prepared: data.Prepared
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    pos_test: np.ndarray
    sensitive: list[str]
    sensitive_unused: list[str]
    parent_meta: dict[str, Any] | None
    dq_report: dict[str, Any] | None


def _prepare(
    spec: Training, model_name: str, store_root: Path | str, ctx: Context, classification: bool
) -> _Data:
    """Read, exclude, check the data quality, prepare and split: the one path to X and y."""
    raw = data.load(spec.dataset.uri)
    overlap = [
        c for c in spec.dataset.exclude if c == spec.dataset.target or c in (spec.dataset.features or [])
    ]
    if overlap:
        raise BadInput(f"dataset.exclude drops {', '.join(overlap)}, which dataset.target or features uses")
    excluded = data.exclude(raw, spec.dataset.exclude)
    fairness = ctx.fairness
    sensitive = list(fairness.sensitive_features) if fairness else []
    missing_sensitive = [c for c in sensitive if c not in raw.frame.columns]
    if missing_sensitive:
        raise BadInput(f"sensitive feature(s) not in the data: {', '.join(missing_sensitive)}")
    dataset = spec.dataset
    sensitive_unused = sensitive if fairness and not fairness.used_for_training else []
    if sensitive_unused:
        target = dataset.target or raw.default_target
        feats = dataset.features or [c for c in raw.frame.columns if c != target]
        dataset = dataset.model_copy(
            update={
                "features": [f for f in feats if f not in sensitive_unused],
                "categorical": [c for c in dataset.categorical if c not in sensitive_unused],
            }
        )
    parent_meta = _parent_metadata(str(store_root), model_name, ctx.parent)

    dq_report: dict[str, Any] | None = None
    if spec.data_quality is not None:
        cols = data.columns(raw, dataset, classification)
        dq_report = quality.check(
            raw.frame, cols, spec.data_quality, quality.parent_schema(parent_meta), ctx.parent
        )
        if not dq_report["passed"]:
            raise quality.DataQualityFailed(quality.failure_message(dq_report), dq_report)
        used = [*cols.numeric, *cols.categorical, cols.target, *sensitive]
        keep = raw.frame[used].notna().all(axis=1)
        dq_report["droppedRows"] = int((~keep).sum())
        if not keep.all():
            raw.frame = raw.frame[keep]

    prepared = data.prepare(raw, dataset)
    X_train, X_test, y_train, y_test, _, pos_test = _split(prepared, spec, classification)
    return _Data(
        raw,
        excluded,
        dataset,
        prepared,
        X_train,
        X_test,
        y_train,
        y_test,
        pos_test,
        sensitive,
        sensitive_unused,
        parent_meta,
        dq_report,
    )


def _factory(spec: Training, d: _Data) -> search.Factory:
    """The training pipeline with these estimator parameters (the search's over the spec's)."""
    cat_idx = [d.prepared.features.index(c) for c in d.prepared.categorical]

    def build(params: dict[str, Any]) -> Any:
        return build_pipeline(
            spec.estimator.class_,
            {**spec.estimator.params, **params},
            spec.estimator.preprocessing,
            len(d.prepared.features),
            cat_idx,
            spec.split.seed,
        )

    return build


@dataclass(frozen=True)
class SearchFrom:
    """Which search Job's shard files the final fit merges (MODELOPS_SEARCH from the operator)."""

    job_uid: str
    shards: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SearchFrom | None:
        env = dict(os.environ if env is None else env)
        raw = env.get("MODELOPS_SEARCH")
        if not raw:
            return None
        try:
            body = json.loads(raw)
            return cls(str(body["jobUid"]), int(body["shards"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"MODELOPS_SEARCH is not {{jobUid, shards}}: {exc}") from None


def _run_shard(
    spec: Training, d: _Data, classification: bool, index: int, shards: int, job_uid: str
) -> dict[str, Any]:
    """Evaluate this index's share of the candidates (halving: all of it, in index 0)."""
    assert spec.search is not None
    s, estimator = spec.search, spec.estimator.class_
    factory = _factory(spec, d)
    if s.method == "halving":
        trials = search.halving(factory, d.X_train, d.y_train, s, estimator, classification)
        n = len(trials)
    else:
        cands = search.candidates(s)
        n = len(cands)
        mine = search.shard_indices(n, shards, index)
        trials = search.evaluate(
            factory, cands, mine, d.X_train, d.y_train, s, estimator, classification, index
        )
    return search.shard_document(s, estimator, index, shards, n, trials, job_uid)


def _search_results(
    spec: Training,
    d: _Data,
    classification: bool,
    store_root: Path | str,
    model_name: str,
    version: str,
    search_from: SearchFrom | None,
) -> dict[str, Any]:
    """The merged trial table: from the search Job's shard files, or, run locally without one,
    from evaluating every candidate here (one shard)."""
    if search_from is None:
        return search.merge([_run_shard(spec, d, classification, 0, 1, "local")])
    if isinstance(store_root, str):
        raise BadInput(SEARCH_NEEDS_CLAIM)
    folder = search.shard_dir(store_root, model_name, version, search_from.job_uid)
    docs = search.read_shards(folder, search_from.shards)
    for doc in docs:
        if doc.get("jobUid") != search_from.job_uid:
            raise BadInput(f"search shard {doc.get('shard')} belongs to Job {doc.get('jobUid')}, not ours")
    return search.merge(docs)


def _version_uris(store: str, store_root: str, model_name: str, version: str) -> tuple[str, str]:
    """(model file URI, model card URI) of a version as status and the card record them: the
    bucket's on S3, the claim's (pvc://) when the store is a mounted claim, else the local path."""
    pvc = os.environ.get("MODELOPS_ARTIFACT_PVC")
    if storage.is_remote(store):
        return (
            storage.join(store, model_name, version, artifacts.MODEL_FILE),
            storage.join(store, model_name, version, artifacts.CARD_MD),
        )
    if pvc:
        return (
            f"pvc://{pvc}/{model_name}/{version}/{artifacts.MODEL_FILE}",
            f"pvc://{pvc}/{model_name}/{version}/{artifacts.CARD_MD}",
        )
    final = Path(store_root) / model_name / version
    return f"file://{final / artifacts.MODEL_FILE}", f"file://{final / artifacts.CARD_MD}"


def _write_card_and_result(
    tmp: Path, ctx: Context, metadata: dict[str, Any], result: TrainingResult, sensitive_unused: list[str]
) -> None:
    """The model card (JSON and Markdown) from the metadata, and the result the report sends."""
    card = governance.card(
        model=metadata["model"],
        version=metadata["version"],
        spec_card=ctx.card,
        metadata=metadata,
        sensitive_unused=sensitive_unused,
    )
    artifacts.write_json(tmp / artifacts.CARD_JSON, card)
    (tmp / artifacts.CARD_MD).write_text(governance.card_markdown(card), encoding="utf-8")
    artifacts.write_json(tmp / artifacts.RESULT_FILE, result.wire())


@contextlib.contextmanager
def _version_directory(store: str, model_name: str, version: str) -> Iterator[Path]:
    """A directory to write the version into; on success it becomes the store's copy.

    On a mounted store it is moved into place atomically; on S3 it is uploaded (see
    `storage.upload_directory` for why a partial upload is harmless).
    """
    if not storage.is_remote(store):
        with artifacts.atomic_directory(Path(store).resolve() / model_name / version) as tmp:
            yield tmp
        return
    with tempfile.TemporaryDirectory(prefix=f"{version}-") as tmp:
        yield Path(tmp)
        try:
            storage.upload_directory(tmp, storage.join(store, model_name, version))
        except storage.StorageError as exc:
            if exc.permanent:
                raise BadInput(f"artifact store: {exc}") from None
            raise


def _split(prepared: data.Prepared, spec: Training, classification: bool) -> list[np.ndarray]:
    """The held-out split, refused with a reason where scikit-learn would fail obscurely.

    The row positions are split too, so columns kept out of the inputs (sensitive features used
    only to group the evaluation) can be lined up with the held-out rows."""
    from sklearn.model_selection import train_test_split

    y = compare.labels(prepared.y, classification)  # float or text labels: compared as strings
    stratify = data.check_split(y, spec.split, classification)
    y_arr = y.to_numpy()
    try:
        return train_test_split(
            data.to_matrix(prepared.X, prepared.categorical),
            y_arr,
            np.arange(len(y_arr)),
            test_size=spec.split.test_size,
            random_state=spec.split.seed,
            stratify=y_arr if stratify else None,
        )
    except ValueError as exc:
        raise BadInput(f"cannot split the data: {exc}") from None


def _fit(
    pipeline: Any,
    estimator: str,
    classification: bool,
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_train: np.ndarray,
    y_test: np.ndarray,
) -> tuple[dict[str, float], np.ndarray, list[str]]:
    """Fit and evaluate; scikit-learn's warnings go to metadata, not to stderr (one line on failure)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit(X_train, y_train)
            evaluate = classification_metrics if classification else regression_metrics
            metrics = evaluate(pipeline, X_test, y_test)
            train_pred = pipeline.predict(X_train)
        except ValueError as exc:
            # scikit-learn's verdict on params vs data (InvalidParameterError is a ValueError too),
            # e.g. C=-1, or n_neighbors larger than the training set.
            raise BadInput(f"{estimator} cannot be trained on this data: {_first_line(exc)}") from None
    return metrics, train_pred, sorted({_first_line(w.message) for w in caught})[:20]


def _parent_metadata(store: str, model: str, parent: str | None) -> dict[str, Any] | None:
    """The parent's metadata.json from the same store (a path or s3://); None when there is no
    parent or no readable file."""
    if not parent or not NAME.match(parent):
        return None
    try:
        return json.loads(artifacts.read_file(storage.join(store, model, parent, artifacts.METADATA_FILE)))
    except (artifacts.ArtifactError, ValueError):
        return None


def _first_line(obj: object) -> str:
    text = str(obj).strip()
    return text.splitlines()[0] if text else type(obj).__name__


def _fail(
    code: int, reason: str, target: report.Target | None, report_failure: bool, exc: Exception | None = None
) -> int:
    line = "error: " + " ".join(reason.split())
    if target is not None and report_failure:
        dq = getattr(exc, "report", None)
        result = TrainingResult(
            succeeded=False,
            message=line[len("error: ") :],
            reason=getattr(exc, "reason", None),
            data_quality=quality.bounded(dq) if dq else None,
            finished_at=_now(),
        )
        try:
            report.send(report.patch_body(result, target), target)
        except ReportError as exc:
            line += f" (and the result could not be reported: {exc})"
    print(line, file=sys.stderr, flush=True)
    artifacts.write_termination_log(line)
    return code


def main(argv: list[str]) -> int:
    target = report.Target.from_env()
    try:
        args = parse_args(argv)
        spec = load_spec(args.spec)
        for flag, value in (("--model", args.model), ("--version", args.version)):
            if not value or not NAME.match(value):
                raise BadInput(f"{flag} must be a lowercase DNS name, got {value!r}")
        job_uid = target.job_uid if target else None
        context = Context.from_env()
        result = train(
            spec,
            args.model,
            args.version,
            args.store,
            job_uid=job_uid,
            compare_with=compare.Request.from_env(),
            context=context,
            search_from=SearchFrom.from_env(),
        )
        if target is not None:
            report.send(report.patch_body(TrainingResult.model_validate(result), target), target)
    except BadInput as exc:
        # Bad input is permanent: tell the ModelVersion so it goes Failed with this reason.
        return _fail(BadInput.exit_code, str(exc), target, report_failure=True, exc=exc)
    except ReportError as exc:
        return _fail(ReportError.exit_code, str(exc), target, report_failure=False)
    except Exception as exc:
        # Unexpected errors may be transient (a flaky volume, memory): the Job's backoffLimit
        # retries, so the run is not declared failed on the ModelVersion from here.
        return _fail(1, f"{type(exc).__name__}: {exc}", target, report_failure=False)
    print(json.dumps(result, separators=(",", ":"), allow_nan=False), flush=True)
    return 0


def parse_shard_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(
        prog="modelops search-shard",
        description="Evaluate one Indexed Job index's share of a ModelVersion's search candidates.",
    )
    p.add_argument("--spec", help="file with the training spec; default $MODELOPS_TRAINING_SPEC")
    p.add_argument("--model", default=os.environ.get("MODELOPS_MODEL"), help="model family name")
    p.add_argument("--version", default=os.environ.get("MODELOPS_VERSION"), help="ModelVersion name")
    p.add_argument("--store", default=os.environ.get("MODELOPS_ARTIFACT_ROOT", "/artifacts"))
    p.add_argument("--shards", type=int, default=1, help="the Job's completions")
    p.add_argument(
        "--index",
        type=int,
        default=os.environ.get("JOB_COMPLETION_INDEX"),
        help="this pod's completion index; default $JOB_COMPLETION_INDEX (set by the Job controller)",
    )
    return p.parse_args(argv)


def search_shard(
    spec: Training,
    model_name: str,
    version: str,
    store: str | os.PathLike[str],
    index: int,
    shards: int,
    job_uid: str,
    context: Context | None = None,
) -> tuple[Path, dict[str, Any]]:
    """One index of the search Job: the same data and split as the final fit, this index's share of
    the candidates cross-validated, the trials written beside the other shards'."""
    if spec.search is None:
        raise BadInput("training.search is not set: there is nothing to search")
    classification = task_of(spec.estimator.class_) == "classification"
    if storage.is_remote(str(store)):
        raise BadInput(SEARCH_NEEDS_CLAIM)
    store_root = Path(store).resolve()
    d = _prepare(spec, model_name, store_root, context or Context(), classification)
    doc = _run_shard(spec, d, classification, index, shards, job_uid)
    folder = search.shard_dir(store_root, model_name, version, job_uid)
    return search.write_shard(folder, index, shards, doc), doc


def shard_main(argv: list[str]) -> int:
    """Exit codes as `train`: 2 bad spec or data (the Job's podFailurePolicy fails the index at
    once), 1 anything unexpected (retried by backoffLimitPerIndex). Nothing is reported to the
    ModelVersion: the operator reads the Job, and the final fit reads the files."""
    where = "search shard"
    try:
        args = parse_shard_args(argv)
        if args.index is None:
            raise BadInput("no completion index: pass --index or run in an Indexed Job")
        where = f"search shard {args.index} of {args.shards}"
        spec = load_spec(args.spec)
        for flag, value in (("--model", args.model), ("--version", args.version)):
            if not value or not NAME.match(value):
                raise BadInput(f"{flag} must be a lowercase DNS name, got {value!r}")
        job_uid = os.environ.get("MODELOPS_JOB_UID") or "local"
        path, doc = search_shard(
            spec, args.model, args.version, args.store, args.index, args.shards, job_uid, Context.from_env()
        )
    except BadInput as exc:
        return _fail(BadInput.exit_code, f"{where}: {exc}", None, report_failure=False)
    except Exception as exc:
        return _fail(1, f"{where}: {type(exc).__name__}: {exc}", None, report_failure=False)
    scored = [t["meanScore"] for t in doc["trials"] if t["meanScore"] is not None]
    line = (
        f"{where}: {len(doc['trials'])} of {doc['candidates']} candidate(s) evaluated"
        + (f", best {doc['scoring']} {max(scored):.4g}" if scored else "")
        + f"; {path.name}"
    )
    artifacts.write_termination_log(line)
    print(line, flush=True)
    return 0
