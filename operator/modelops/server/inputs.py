"""Turn request JSON into the model's input array, or a 4xx naming the field at fault.

The fast path builds one numpy array from nested lists and lets numpy infer the dtype; only when
that dtype is not numeric do we walk the values to find and name the offending field. Booleans
are accepted as 0/1 for numeric features (as scikit-learn itself does); strings, nulls, objects
and lists are not. Categorical features accept strings and numbers, compared as strings, as the
trainer recorded them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Feature

NUMERIC_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
)
DATATYPES = NUMERIC_DATATYPES | {"BYTES"}


class RequestError(Exception):
    """A client error: HTTP status, message and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _check_rows(n: int, max_rows: int, field: str) -> None:
    if n == 0:
        raise RequestError(422, "the request has no rows", field)
    if n > max_rows:
        raise RequestError(413, f"too many rows: {n} > {max_rows}", field)


def _is_number(v: Any) -> bool:
    return type(v) in (int, float, bool)


def _category(v: Any, name: str, row: int) -> str:
    t = type(v)
    if t is str:
        return v
    if t in (int, float, bool):
        return str(v)
    raise RequestError(422, f"feature {name!r} must be a string or number, got {_kind(v)} (row {row})", name)


def _kind(v: Any) -> str:
    return {type(None): "null", dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(v), type(v).__name__
    )


def _numeric_column_error(values: list[Any], name: str) -> RequestError:
    for row, v in enumerate(values):
        if not _is_number(v):
            return RequestError(422, f"feature {name!r} must be a number, got {_kind(v)} (row {row})", name)
    return RequestError(422, f"feature {name!r} holds a value that is not a finite number", name)


def _to_float(rows: list[list[Any]], features: list[Feature]) -> np.ndarray:
    """Rows (already in schema order) of an all-numeric schema to float64, naming a bad field."""
    try:
        arr = np.array(rows)
        ok = arr.ndim == 2 and arr.dtype.kind in "fiub"
    except (ValueError, TypeError):
        ok = False
    if not ok:
        for j, f in enumerate(features):
            col = [r[j] for r in rows]
            if not all(_is_number(v) for v in col):
                raise _numeric_column_error(col, f.name)
        arr = np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        j = int(np.where(~np.isfinite(arr).all(axis=0))[0][0])
        raise RequestError(422, f"feature {features[j].name!r} is not a finite number", features[j].name)
    return arr


def _to_object(columns: list[list[Any]], features: list[Feature]) -> np.ndarray:
    """Columns of a mixed schema to an object array: floats for numeric, str for categorical."""
    n = len(columns[0])
    out = np.empty((n, len(features)), dtype=object)
    for j, (f, col) in enumerate(zip(features, columns, strict=True)):
        if f.categorical:
            out[:, j] = [_category(v, f.name, i) for i, v in enumerate(col)]
        else:
            if not all(_is_number(v) for v in col):
                raise _numeric_column_error(col, f.name)
            values = np.asarray(col, dtype=np.float64)
            if not np.isfinite(values).all():
                raise RequestError(422, f"feature {f.name!r} is not a finite number", f.name)
            out[:, j] = values
    return out


def from_records(
    records: Any, features: list[Feature], max_rows: int, field: str = "instances"
) -> np.ndarray:
    """`[{feature: value}, ...]` to the model's input array; extra keys are ignored."""
    if not isinstance(records, list):
        raise RequestError(422, f"{field!r} must be a list of objects", field)
    _check_rows(len(records), max_rows, field)
    names = [f.name for f in features]
    try:
        rows = [[r[name] for name in names] for r in records]
    except (KeyError, TypeError, IndexError):
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise RequestError(
                    422, f"row {i} must be an object, got {_kind(r)}", f"{field}[{i}]"
                ) from None
            for name in names:
                if name not in r:
                    raise RequestError(422, f"missing feature {name!r} (row {i})", name) from None
        raise RequestError(422, f"{field!r} must be a list of objects", field) from None
    if all(not f.categorical for f in features):
        return _to_float(rows, features)
    return _to_object([list(col) for col in zip(*rows, strict=True)], features)


def _flatten(data: Any, name: str) -> list[Any]:
    """Row-major flatten of (possibly nested) tensor data, iteratively: depth cannot crash us."""
    if not isinstance(data, list):
        raise RequestError(422, f"input {name!r}: 'data' must be a list", name)
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _tensor(t: Any, i: int) -> tuple[str, str, list[int], list[Any]]:
    if not isinstance(t, dict):
        raise RequestError(422, f"inputs[{i}] must be an object", f"inputs[{i}]")
    name = t.get("name")
    if not isinstance(name, str):
        raise RequestError(422, f"inputs[{i}] needs a string 'name'", f"inputs[{i}].name")
    datatype = t.get("datatype")
    if datatype not in DATATYPES:
        raise RequestError(422, f"input {name!r}: unknown datatype {datatype!r}", name)
    shape = t.get("shape")
    if not isinstance(shape, list) or not shape or not all(type(s) is int and s >= 0 for s in shape):
        raise RequestError(422, f"input {name!r}: 'shape' must be a list of non-negative integers", name)
    data = _flatten(t.get("data"), name)
    size = 1
    for s in shape:
        size *= s
    if size != len(data):
        raise RequestError(422, f"input {name!r}: shape {shape} needs {size} values, got {len(data)}", name)
    return name, datatype, shape, data


def from_v2(inputs: Any, features: list[Feature], max_rows: int) -> np.ndarray:
    """Open Inference Protocol inputs: one tensor per feature by name, or one [rows, features] tensor."""
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(422, "'inputs' must be a non-empty list of tensors", "inputs")
    tensors = [_tensor(t, i) for i, t in enumerate(inputs)]
    names = [f.name for f in features]
    d = len(features)
    if len(tensors) == 1 and len(tensors[0][2]) == 2 and (tensors[0][0] not in names or d == 1):
        name, datatype, shape, data = tensors[0]
        if shape[1] != d:
            raise RequestError(
                422, f"input {name!r}: shape {shape} must be [rows, {d}] (features {names})", name
            )
        _check_rows(shape[0], max_rows, name)
        if datatype == "BYTES" and all(not f.categorical for f in features):
            raise RequestError(422, f"input {name!r}: datatype BYTES but every feature is numeric", name)
        rows = [data[r * d : (r + 1) * d] for r in range(shape[0])]
        if all(not f.categorical for f in features):
            return _to_float(rows, features)
        return _to_object([list(col) for col in zip(*rows, strict=True)], features)

    by_name = {}
    for name, datatype, shape, data in tensors:
        if name not in names:
            raise RequestError(422, f"unknown input {name!r}; the model's features are {names}", name)
        if name in by_name:
            raise RequestError(422, f"input {name!r} is given twice", name)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(422, f"input {name!r}: shape {shape} must be [rows] or [rows, 1]", name)
        by_name[name] = (datatype, data)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise RequestError(422, f"missing input {missing[0]!r}", missing[0])
    lengths = [len(by_name[name][1]) for name in names]
    n = max(set(lengths), key=lengths.count)  # the odd one out is the tensor at fault
    for f in features:
        datatype, data = by_name[f.name]
        if len(data) != n:
            raise RequestError(422, f"input {f.name!r} has {len(data)} rows, the other inputs {n}", f.name)
        if not f.categorical and datatype == "BYTES":
            raise RequestError(422, f"input {f.name!r} is numeric; datatype BYTES is not accepted", f.name)
    _check_rows(n, max_rows, "inputs")
    columns = [by_name[name][1] for name in names]
    if all(not f.categorical for f in features):
        try:
            arr = np.array(columns)
            ok = arr.ndim == 2 and arr.dtype.kind in "fiub"
        except (ValueError, TypeError):
            ok = False
        if not ok:
            for f, col in zip(features, columns, strict=True):
                if not all(_is_number(v) for v in col):
                    raise _numeric_column_error(col, f.name)
            arr = np.array(columns, dtype=np.float64)
        arr = arr.astype(np.float64, copy=False).T
        if not np.isfinite(arr).all():
            j = int(np.where(~np.isfinite(arr).all(axis=0))[0][0])
            raise RequestError(422, f"input {names[j]!r} is not a finite number", names[j])
        return np.ascontiguousarray(arr)
    return _to_object(columns, features)
