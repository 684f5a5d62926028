"""`modelops cleanup`: delete one version's artifact directory (and its search shard files)
from the artifact store.

Runs as a Job with the storage claim mounted, because the operator itself mounts no
volumes. It refuses anything that is not exactly `<store>/<model>/<version>`, so a
bad name can never remove more than one version's files.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def target(store: Path, model: str, version: str) -> Path:
    for what, value in (("model", model), ("version", version)):
        if not NAME.match(value):
            raise ValueError(f"{what} {value!r} is not a valid name")
    path = (store / model / version).resolve()
    if path.parent.parent != store.resolve():
        raise ValueError(f"{path} is not inside the artifact store {store}")
    return path


def search_target(store: Path, model: str, version: str) -> Path:
    """The version's search shard files (`<model>/_search/<version>`), checked as `target` is."""
    target(store, model, version)
    return (store / model / "_search" / version).resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelops cleanup", description=__doc__)
    parser.add_argument("--store", default="/artifacts", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args(argv)
    try:
        path = target(args.store, args.model, args.version)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    searched = search_target(args.store, args.model, args.version)
    for folder in (path, searched):
        if folder.exists():
            shutil.rmtree(folder)
            print(f"deleted {folder}")
        elif folder == path:
            print(f"nothing to delete at {path}")
    return 0
