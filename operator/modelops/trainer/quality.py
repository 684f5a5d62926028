"""Data validation before fitting: schema against the parent version, and the limits of
`spec.training.dataQuality`.

Why pandera: the element-wise checks (a column is present, it coerces to a number, no nulls,
values within a range, categories from a known set, no repeated rows) are exactly what a
`pandera.DataFrameSchema` expresses, and one lazy `validate` returns every failure case with its
column, check and row index, in one vectorised pass over the frame. What pandera does not model
is a *tolerance* (a share of failures that is acceptable): we count its failure cases per
(column, check) and hold the share to the spec's limit. The two checks that are not element-wise
(minimum rows, the change of label shares against the parent) are plain pandas arithmetic.

The report is plain JSON: per-column statistics and every check's verdict; the trainer stores it
whole next to the artifact and a bounded copy in `status.training.dataQuality`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelops.api.modelversion import DataQuality

from .errors import BadInput

MAX_STATUS_CHECKS = 40
MAX_STATUS_COLUMNS = 30


class DataQualityFailed(BadInput):
    """A data check failed: permanent, reported with reason DataQualityFailed and the report."""

    reason = "DataQualityFailed"

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Columns:
    """The columns the model will see (numeric or categorical) and the target."""

    numeric: list[str]
    categorical: list[str]
    target: str
    classification: bool


def data_schema(frame: pd.DataFrame, cols: Columns) -> dict[str, Any]:
    """What a child is compared with: stored in metadata.json as `dataSchema`."""
    columns: list[dict[str, Any]] = []
    for name in cols.numeric:
        values = pd.to_numeric(frame[name], errors="coerce")
        # unrounded: a rounded bound would put the parent's own extremes out of range
        lo, hi = _num(values.min(), 17), _num(values.max(), 17)
        columns.append({"name": name, "dtype": "number", "min": lo, "max": hi})
    for name in cols.categorical:
        columns.append(
            {
                "name": name,
                "dtype": "category",
                "categories": sorted(frame[name].dropna().astype(str).unique()),
            }
        )
    shares = None
    if cols.classification:
        counts = frame[cols.target].dropna().astype(str).value_counts(normalize=True)
        shares = {str(k): round(float(v), 6) for k, v in sorted(counts.items())}
    return {"columns": columns, "target": cols.target, "labelShares": shares}


def parent_schema(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parent's `dataSchema`, or one rebuilt from its feature list (artifacts older than it)."""
    if not metadata:
        return None
    if isinstance(metadata.get("dataSchema"), dict):
        return metadata["dataSchema"]
    feats = metadata.get("features") or []
    return {"columns": list(feats), "target": metadata.get("target"), "labelShares": None}


def check(
    frame: pd.DataFrame,
    cols: Columns,
    spec: DataQuality | None,
    parent: dict[str, Any] | None,
    parent_name: str | None = None,
) -> dict[str, Any]:
    """Run every check; the report's `passed` says whether training may go on."""
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    spec = spec or DataQuality()
    n = len(frame)
    checks: list[dict[str, Any]] = []
    parent_cols = {c["name"]: c for c in (parent or {}).get("columns", [])}
    mine = [*cols.numeric, *cols.categorical]

    def add(
        kind: str, column: str | None, value: float | None, limit: float | None, ok: bool, msg: str
    ) -> None:
        checks.append(
            {"check": kind, "column": column, "value": value, "limit": limit, "passed": ok, "message": msg}
        )

    if spec.min_rows is not None:
        ok = n >= spec.min_rows
        add(
            "minRows", None, n, spec.min_rows, ok, f"{n} rows" + ("" if ok else f" < minRows {spec.min_rows}")
        )

    # Schema against the parent: a column it had must still be there, with the same kind.
    if parent is not None and spec.schema_check:
        for name, pc in parent_cols.items():
            kind = "category" if name in cols.categorical else "number"
            if name not in frame.columns:
                problem = f"column {name!r} of parent {parent_name} is missing (dropped or renamed)"
            elif name not in mine:
                problem = f"column {name!r} of parent {parent_name} is no longer a feature"
            elif pc.get("dtype") != kind:
                problem = f"column {name!r} was {pc.get('dtype')} in parent {parent_name} but is {kind} now"
            else:
                continue
            add("schema", name, None, None, False, problem)
        new = [c for c in mine if c not in parent_cols]
        if new:
            add("schema", None, len(new), None, True, f"new column(s) not in parent: {', '.join(new[:10])}")
        if all(c["passed"] for c in checks if c["check"] == "schema"):
            add("schema", None, None, None, True, f"columns and types match parent {parent_name}")

    # The element-wise checks, in one lazy pandera pass.
    present = [c for c in mine if c in frame.columns]
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for name in cols.numeric:
        own = spec.columns.get(name)
        lo = own.min if own and own.min is not None else None
        hi = own.max if own and own.max is not None else None
        if spec.max_out_of_range_fraction is not None or lo is not None or hi is not None:
            pc = parent_cols.get(name, {})
            lo = lo if lo is not None else pc.get("min")
            hi = hi if hi is not None else pc.get("max")
            if lo is not None or hi is not None:
                ranges[name] = (lo, hi)
    unseen: dict[str, list[str]] = {}
    if spec.max_unseen_category_fraction is not None:
        for name in cols.categorical:
            known = parent_cols.get(name, {}).get("categories")
            if known:
                unseen[name] = [str(k) for k in known]

    schema_cols: dict[str, Any] = {}
    for name in present:
        checks_for: list[Any] = []
        if name in ranges:
            lo, hi = ranges[name]
            checks_for.append(pa.Check.in_range(-np.inf if lo is None else lo, np.inf if hi is None else hi))
        if name in unseen:
            checks_for.append(pa.Check.isin(unseen[name]))
        dtype = str if name in cols.categorical else float
        schema_cols[name] = pa.Column(dtype, nullable=False, coerce=True, checks=checks_for)
    schema_cols[cols.target] = pa.Column(nullable=False, required=False)
    dup_cols = [*present, cols.target] if cols.target in frame.columns else present
    schema = pa.DataFrameSchema(
        schema_cols,
        unique=dup_cols if spec.max_duplicate_fraction is not None and dup_cols else None,
        report_duplicates="exclude_first",
    )
    failures = pd.DataFrame(columns=["column", "check", "failure_case", "index"])
    try:
        schema.validate(frame[dup_cols].copy(), lazy=True)
    except SchemaErrors as exc:
        failures = exc.failure_cases

    def failing(column: str | None, prefix: str) -> pd.DataFrame:
        sel = failures["check"].astype(str).str.startswith(prefix)
        if column is not None:
            sel &= failures["column"] == column
        return failures[sel]

    for name in [*present, *([cols.target] if cols.target in frame.columns else [])]:
        bad = failing(name, "coerce_dtype")
        if len(bad):
            row = bad.iloc[0]
            add(
                "dtype",
                name,
                len(bad),
                0,
                False,
                f"column {name!r} must be numeric but row {row['index']} "
                f"holds {row['failure_case']!r}; list it in dataset.categorical to one-hot encode it",
            )
        own = spec.columns.get(name)
        limit = (
            own.max_missing_fraction
            if own and own.max_missing_fraction is not None
            else spec.max_missing_fraction
        )
        share = len(failing(name, "not_nullable")) / n if n else 0.0
        ok = share <= limit + 1e-12
        add(
            "missingValues",
            name,
            round(share, 6),
            limit,
            ok,
            f"column {name!r} has {share:.1%} missing values"
            + ("" if ok else f", above the limit maxMissingFraction {limit:g}"),
        )
    if spec.max_duplicate_fraction is not None:
        rows = failing(None, "multiple_fields_uniqueness")["index"].nunique()
        share = rows / n if n else 0.0
        ok = share <= spec.max_duplicate_fraction + 1e-12
        add(
            "duplicateRows",
            None,
            round(share, 6),
            spec.max_duplicate_fraction,
            ok,
            f"{rows} duplicate row(s) ({share:.1%})"
            + ("" if ok else f", above the limit maxDuplicateFraction {spec.max_duplicate_fraction:g}"),
        )
    for name, (lo, hi) in ranges.items():
        limit = spec.max_out_of_range_fraction or 0.0
        share = failing(name, "in_range")["index"].nunique() / n if n else 0.0
        ok = share <= limit + 1e-12
        where = f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
        add(
            "outOfRange",
            name,
            round(share, 6),
            limit,
            ok,
            f"column {name!r} has {share:.1%} of rows outside "
            f"{where}" + ("" if ok else f", above the limit maxOutOfRangeFraction {limit:g}"),
        )
    for name in unseen:
        limit = spec.max_unseen_category_fraction or 0.0
        bad = failing(name, "isin")
        share = bad["index"].nunique() / n if n else 0.0
        ok = share <= limit + 1e-12
        new = sorted({str(v) for v in bad["failure_case"]})[:5]
        add(
            "unseenCategories",
            name,
            round(share, 6),
            limit,
            ok,
            f"column {name!r} has {share:.1%} of rows in "
            f"categories the parent never saw"
            + (f" ({', '.join(new)})" if new else "")
            + ("" if ok else f", above the limit maxUnseenCategoryFraction {limit:g}"),
        )

    if spec.max_label_share_change is not None and cols.classification and cols.target in frame.columns:
        before = (parent or {}).get("labelShares")
        if before:
            now = frame[cols.target].dropna().astype(str).value_counts(normalize=True)
            diffs = {
                k: abs(float(now.get(k, 0.0)) - float(before.get(k, 0.0)))
                for k in set(before) | set(now.index)
            }
            label, change = max(sorted(diffs.items()), key=lambda kv: kv[1])
            ok = change <= spec.max_label_share_change + 1e-12
            add(
                "labelShareChange",
                cols.target,
                round(change, 6),
                spec.max_label_share_change,
                ok,
                f"share of label {label!r} changed by {change:.1%} against the parent"
                + ("" if ok else f", above the limit maxLabelShareChange {spec.max_label_share_change:g}"),
            )

    checks.sort(key=lambda c: c["passed"])  # failed first: what the user must read
    return {
        "passed": all(c["passed"] for c in checks),
        "rows": n,
        "droppedRows": 0,
        "parent": parent_name if parent is not None else None,
        "checks": checks,
        "columns": column_stats(frame, cols),
    }


def column_stats(frame: pd.DataFrame, cols: Columns) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in [*cols.numeric, *cols.categorical, cols.target]:
        if name not in frame.columns:
            continue
        col = frame[name]
        stats: dict[str, Any] = {"missing": int(col.isna().sum()), "distinct": int(col.nunique())}
        if name in cols.categorical or (name == cols.target and not pd.api.types.is_numeric_dtype(col)):
            stats["dtype"] = "category"
        else:
            values = pd.to_numeric(col, errors="coerce")
            stats.update(
                dtype="number", min=_num(values.min()), max=_num(values.max()), mean=_num(values.mean())
            )
        out[name] = stats
    return out


def failure_message(report: dict[str, Any]) -> str:
    """One line naming the first failed check's column and limit, and how many more failed."""
    failed = [c for c in report["checks"] if not c["passed"]]
    head = f"data quality: {failed[0]['message']}"
    return head + (f" (and {len(failed) - 1} more failed check(s))" if len(failed) > 1 else "")


def bounded(report: dict[str, Any]) -> dict[str, Any]:
    """The copy for status: the first checks (failed first) and columns, flagged when cut."""
    checks, columns = report["checks"], report["columns"]
    out = dict(report)
    out["checks"] = checks[:MAX_STATUS_CHECKS]
    out["columns"] = dict(list(columns.items())[:MAX_STATUS_COLUMNS])
    out["truncated"] = len(checks) > MAX_STATUS_CHECKS or len(columns) > MAX_STATUS_COLUMNS
    return out


def _num(value: Any, digits: int = 6) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return round(f, digits) if np.isfinite(f) else None
