"""`modelops cleanup`: delete one version's artifact directory (and its search shard files)
from the artifact store.

Runs as a Job with the storage claim mounted (or the S3 credentials in its environment),
because the operator itself mounts no volumes and reads no Secrets. It refuses anything that is
not exactly `<store>/<model>/<version>`, so a bad name can never remove more than one version's
files. (Search shards are only written on a claim: a search with S3 storage is refused at apply.)
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from modelops import storage

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


def _cleanup_remote(store: str, model: str, version: str) -> int:
    """The same one-version rule on S3: only the keys under `<store>/<model>/<version>/`."""
    for what, value in (("model", model), ("version", version)):
        if not NAME.match(value):
            print(f"error: {what} {value!r} is not a valid name", file=sys.stderr)
            return 2
    uri = storage.join(store, model, version)
    try:
        deleted = storage.delete_tree(uri)
    except storage.StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"deleted {uri}/" if deleted else f"nothing to delete at {uri}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelops cleanup", description=__doc__)
    parser.add_argument("--store", default="/artifacts", help="a mounted path or s3://bucket[/prefix]")
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args(argv)
    if storage.is_remote(args.store):
        return _cleanup_remote(args.store, args.model, args.version)
    try:
        path = target(Path(args.store), args.model, args.version)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    searched = search_target(Path(args.store), args.model, args.version)
    for folder in (path, searched):
        if folder.exists():
            shutil.rmtree(folder)
            print(f"deleted {folder}")
        elif folder == path:
            print(f"nothing to delete at {path}")
    return 0
