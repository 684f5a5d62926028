"""`modelops resolve`: one concrete data URI and its sha256, for a retrain the policy has decided.

Fills the template's strftime fields with the trigger time, takes the newest `.csv`/`.parquet`
file of a folder (a URI ending in `/`, on a claim or under an s3:// prefix: modification time,
then name), and hashes the bytes
exactly as `modelops train` does, so the policy compares like with like. The report is one JSON
line on stdout and in the termination log, which the policy reads from the pod. Exit 2 with a
one-line reason (also in the termination log) when there is nothing to train on.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from modelops import storage
from modelops.api.base import parse_time
from modelops.artifacts import write_termination_log
from modelops.lifecycle.datasets import DATA_SUFFIXES, expand, template_error

from .data import load, resolve_uri
from .errors import BadInput


def newest(folder: Path) -> Path:
    """The newest data file directly in `folder` (modification time, then name)."""
    if not folder.is_dir():
        raise BadInput(f"dataset folder not found: {folder}")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES]
    if not files:
        raise BadInput(f"no .csv or .parquet file in {folder}")
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def resolve(template: str, at: datetime, pvc_root: str | None = None) -> dict[str, str]:
    if error := template_error(template):
        raise BadInput(f"dataset uri template {template!r}: {error}")
    uri = expand(template, at)
    if uri.endswith("/") and storage.is_remote(uri):
        try:
            uri = storage.newest_file(uri, DATA_SUFFIXES)
        except storage.StorageError as exc:
            if exc.permanent:
                raise BadInput(str(exc)) from None
            raise
    elif uri.endswith("/"):
        folder = resolve_uri(uri + "x.csv", pvc_root).parent
        uri += newest(folder).name
    return {"uri": uri, "digest": load(uri, pvc_root).digest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelops resolve", description=__doc__)
    parser.add_argument("--uri", required=True, help="the data URI or template")
    parser.add_argument("--at", required=True, help="the trigger time, RFC 3339 (fills %%Y, %%m, ...)")
    parser.add_argument("--pvc-root", default=None)
    args = parser.parse_args(argv)
    try:
        report = resolve(args.uri, parse_time(args.at), args.pvc_root)
    except (BadInput, ValueError) as e:
        write_termination_log(str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    except storage.StorageError as e:  # may pass (a timeout, a refused connection): the Job retries
        write_termination_log(str(e))
        print(f"error: {e}", file=sys.stderr)
        return 1
    line = json.dumps(report, sort_keys=True)
    write_termination_log(line)
    print(line)
    return 0
