"""Datasets: resolve the URI, read CSV/Parquet or a bundled scikit-learn set, check the columns.

Every problem with the data is a `BadInput` whose message names the column or the file, because
that message is what the user finally reads in `kubectl describe modelversion`.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from modelops import storage
from modelops.api.modelversion import Dataset, Split
from modelops.artifacts import sha256_bytes

from .errors import BadInput
from .quality import Columns

# The loaders bundled with scikit-learn (no download); multi-output sets such as linnerud are left out.
SKLEARN_DATASETS = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "diabetes": "load_diabetes",
    "digits": "load_digits",
}
DEFAULT_PVC_ROOT = "/mnt/pvc"


@dataclass
class RawDataset:
    frame: pd.DataFrame
    digest: str  # hex sha256 of the file's bytes, or of the CSV rendering of a bundled set
    default_target: str | None = None


@dataclass
class Prepared:
    """Columns in schema order, ready for the pipeline (numeric as float64, categorical as str)."""

    X: pd.DataFrame
    y: pd.Series
    features: list[str]
    categorical: list[str]
    target: str
    schema: list[dict[str, Any]] = field(default_factory=list)

    @property
    def numeric(self) -> list[str]:
        return [f for f in self.features if f not in self.categorical]


def resolve_uri(uri: str, pvc_root: str | None = None) -> Path:
    """Map `pvc://claim/path` onto the mount root and `file:///path` onto the path; refuse escapes."""
    if uri.startswith("pvc://"):
        root = Path(pvc_root or os.environ.get("MODELOPS_PVC_ROOT", DEFAULT_PVC_ROOT))
        claim, _, rel = uri[len("pvc://") :].partition("/")
        if not claim or not rel:
            raise BadInput(f"dataset uri {uri!r} must look like pvc://<claim>/<path>")
        base = (root / claim).resolve()
        path = (base / rel).resolve()
        if base not in path.parents:
            raise BadInput(f"dataset uri {uri!r} points outside the claim's mount")
        return path
    if uri.startswith("file://"):
        path = Path(uri[len("file://") :])
        if not path.is_absolute():
            raise BadInput(f"dataset uri {uri!r} must be file:///<absolute path>")
        return path
    raise BadInput(f"unsupported dataset uri {uri!r}: use pvc://, file://, s3://, https:// or sklearn:<name>")


def load(uri: str, pvc_root: str | None = None) -> RawDataset:
    if uri.startswith("sklearn:"):
        return _load_bundled(uri[len("sklearn:") :])
    if storage.is_remote(uri):
        where = uri
        suffix = PurePosixPath(uri.split("?", 1)[0]).suffix.lower()
    else:
        path = resolve_uri(uri, pvc_root)
        where, suffix = str(path), path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BadInput(f"dataset {uri!r} must end in .csv or .parquet")
    if storage.is_remote(uri):
        try:
            data = storage.read_bytes(uri, storage.DATASET)
        except storage.StorageError as exc:
            if exc.permanent:
                raise BadInput(f"dataset {exc}") from None
            raise
    else:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BadInput(f"dataset file not found: {path}") from None
        except OSError as exc:
            raise BadInput(f"cannot read dataset {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise BadInput(f"dataset {where} is empty")
    try:
        buf = io.BytesIO(data)
        frame = pd.read_csv(buf) if suffix == ".csv" else pd.read_parquet(buf)
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot parse dataset {where}: {first}") from None
    if frame.empty:
        raise BadInput(f"dataset {where} has no rows")
    return RawDataset(frame=frame, digest=sha256_bytes(data))


def _load_bundled(name: str) -> RawDataset:
    loader = SKLEARN_DATASETS.get(name)
    if loader is None:
        raise BadInput(f"unknown sklearn data set {name!r}; available: {', '.join(sorted(SKLEARN_DATASETS))}")
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame
    digest = sha256_bytes(frame.to_csv(index=False).encode())
    return RawDataset(frame=frame, digest=digest, default_target="target")


def exclude(raw: RawDataset, columns: list[str]) -> list[str]:
    """Drop `dataset.exclude` in place, first thing after reading: nothing later sees those columns."""
    if not columns:
        return []
    raw.frame.columns = [str(c) for c in raw.frame.columns]
    absent = [c for c in columns if c not in raw.frame.columns]
    if absent:
        raise BadInput(f"dataset.exclude names column(s) the data does not have: {_names(absent)}")
    raw.frame = raw.frame.drop(columns=list(columns))
    return list(columns)


def columns(raw: RawDataset, spec: Dataset, classification: bool) -> Columns:
    """The columns the checks look at: the features (numeric or categorical) and the target."""
    frame = raw.frame
    frame.columns = [str(c) for c in frame.columns]
    target = spec.target or raw.default_target
    if target is None:
        raise BadInput("dataset.target is required for pvc:// and file:// datasets")
    features = list(spec.features) if spec.features else [c for c in frame.columns if c != target]
    categorical = [f for f in features if f in set(spec.categorical)]
    numeric = [f for f in features if f not in set(categorical)]
    return Columns(numeric=numeric, categorical=categorical, target=target, classification=classification)


def prepare(raw: RawDataset, spec: Dataset) -> Prepared:
    """Pick and type the columns: numeric must be numbers, nothing may be missing."""
    frame = raw.frame
    frame.columns = [str(c) for c in frame.columns]
    target = spec.target or raw.default_target
    if target is None:
        raise BadInput("dataset.target is required for pvc:// and file:// datasets")
    if target not in frame.columns:
        raise BadInput(f"target column {target!r} not found; columns: {_names(frame.columns)}")
    features = list(spec.features) if spec.features else [c for c in frame.columns if c != target]
    if not features:
        raise BadInput("the dataset has no feature columns besides the target")
    if target in features:
        raise BadInput(f"target column {target!r} is also listed as a feature")
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise BadInput(f"feature column(s) not found: {_names(missing)}; columns: {_names(frame.columns)}")
    if len(set(features)) != len(features):
        raise BadInput("dataset.features lists a column twice")
    unknown_cat = [c for c in spec.categorical if c not in features]
    if unknown_cat:
        raise BadInput(f"categorical column(s) are not features: {_names(unknown_cat)}")
    categorical = [f for f in features if f in set(spec.categorical)]

    columns: dict[str, pd.Series] = {}
    schema: list[dict[str, Any]] = []
    for name in features:
        col = frame[name]
        _no_missing(col, name)
        if name in categorical:
            columns[name] = col.astype(str)
            schema.append(
                {"name": name, "dtype": "category", "categories": sorted(columns[name].unique().tolist())}
            )
        else:
            columns[name] = _numeric(col, name)
            schema.append({"name": name, "dtype": "number"})
    y = frame[target]
    _no_missing(y, target)
    X = pd.DataFrame(columns, index=frame.index)
    return Prepared(X=X, y=y, features=features, categorical=categorical, target=target, schema=schema)


def check_split(y: pd.Series, split: Split, classification: bool) -> bool:
    """Refuse splits scikit-learn would reject, with a reason; return whether to stratify."""
    n = len(y)
    n_test = math.ceil(split.test_size * n)
    n_train = n - n_test
    if n_test < 1 or n_train < 2:
        raise BadInput(
            f"too few rows for the split: {n} rows with testSize {split.test_size} "
            f"leave {n_train} for training and {n_test} for testing"
        )
    if not classification:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise BadInput(f"target {y.name!r} must be numeric for a regressor, found dtype {y.dtype}")
        return False
    counts = y.value_counts()
    if len(counts) < 2:
        raise BadInput(
            f"target {y.name!r} has a single class {_label(counts.index[0])}; a classifier needs two"
        )
    if not split.stratify:
        return False
    rare = counts[counts < 2]
    if len(rare):
        raise BadInput(
            f"class {_label(rare.index[0])} of target {y.name!r} has only {int(rare.iloc[0])} row; "
            "stratified splitting needs at least 2 per class (or set split.stratify: false)"
        )
    if n_test < len(counts) or n_train < len(counts):
        raise BadInput(
            f"too few rows for a stratified split: {len(counts)} classes but {n_train} training "
            f"and {n_test} test rows"
        )
    return True


def to_matrix(X: pd.DataFrame, categorical: list[str]) -> np.ndarray:
    """The array the pipeline sees: float64, or object when some columns are categories."""
    if not categorical:
        return X.to_numpy(dtype=np.float64)
    return X.to_numpy(dtype=object)


def _numeric(col: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        values = col.astype(np.float64)
    else:
        values = pd.to_numeric(col, errors="coerce")
        bad = values.isna() & col.notna()
        if bad.any():
            row = bad.idxmax()
            raise BadInput(
                f"column {name!r} must be numeric but row {row} holds {col[row]!r}; "
                "list it in dataset.categorical to one-hot encode it"
            )
        values = values.astype(np.float64)
    if not np.isfinite(values.to_numpy()).all():
        raise BadInput(f"column {name!r} holds an infinite value")
    return values


def _no_missing(col: pd.Series, name: str) -> None:
    n = int(col.isna().sum())
    if n:
        raise BadInput(f"column {name!r} has {n} missing value(s); fill or drop them before training")


def _label(value: Any) -> str:
    """A class label as users wrote it (numpy scalars would print as np.int64(2))."""
    return str(value.item() if isinstance(value, np.generic) else value)


def _names(names: Any, limit: int = 20) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
