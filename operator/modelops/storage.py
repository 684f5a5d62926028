"""Reading and writing the artifact store and datasets through fsspec: local paths, s3://, https://.

One small layer so the trainer, the server and the clean-up Job treat a PVC mount and an S3
bucket the same way: the sha256 check, the skops trust rules and retention's deletion sit above
it and never see which backend holds the bytes. s3fs (with botocore) does the S3 protocol; this
module only decides the credentials and turns the library's errors into one-line reasons.

Credentials come from the environment the operator renders into the pod, one set per role:
`MODELOPS_S3_*` for the artifact store, `MODELOPS_DATASET_S3_*` for s3:// datasets and
`MODELOPS_SOURCE_S3_*` for an imported model file (spec.source.artifact), each with
`ACCESS_KEY_ID`, `SECRET_ACCESS_KEY` (from a Secret), `ENDPOINT_URL` and `REGION`. Without keys
the AWS SDK's default chain is used: the pod's workload identity (IRSA, EKS Pod Identity, an
instance role).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STORE = "MODELOPS_S3_"
DATASET = "MODELOPS_DATASET_S3_"
SOURCE = "MODELOPS_SOURCE_S3_"
REMOTE_SCHEMES = ("s3://", "https://")


class StorageError(Exception):
    """A read, write or delete failed; the message is the one-line reason.

    `permanent` is True when retrying cannot help (no such object, access denied, a bucket that
    does not exist), False for what may pass (a timeout, a refused connection).
    """

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def s3_options(role: str = STORE, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """s3fs keyword arguments for one role, from the pod's environment."""
    env = os.environ if env is None else env
    opts: dict[str, Any] = {
        # Fail in seconds, not minutes: an unreachable endpoint is reported, and the Job's
        # backoffLimit (or the Deployment's restart) is the retry.
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}},
        "skip_instance_cache": True,
    }
    key, secret = env.get(role + "ACCESS_KEY_ID"), env.get(role + "SECRET_ACCESS_KEY")
    if key or secret:
        opts["key"], opts["secret"] = key or "", secret or ""
    client: dict[str, Any] = {}
    if env.get(role + "ENDPOINT_URL"):
        opts["endpoint_url"] = env[role + "ENDPOINT_URL"]
    if env.get(role + "REGION"):
        client["region_name"] = env[role + "REGION"]
    if client:
        opts["client_kwargs"] = client
    return opts


def filesystem(uri: str, role: str = STORE, env: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem for a URI and the path inside it."""
    import fsspec

    if uri.startswith("s3://"):
        fs = fsspec.filesystem("s3", **s3_options(role, env))
        return fs, uri[len("s3://") :]
    if uri.startswith("https://"):
        return fsspec.filesystem("https"), uri
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return fsspec.filesystem("file"), path


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def _reason(exc: BaseException, verb: str, uri: str) -> StorageError:
    """One line naming the object and what went wrong, classified for retrying."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"cannot {verb} {uri}: no such object", permanent=True)
    if isinstance(exc, PermissionError):
        return StorageError(
            f"cannot {verb} {uri}: access denied ({text}); check the credentials in the Secret "
            "or the pod's identity",
            permanent=True,
        )
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return StorageError(
            f"cannot {verb} {uri}: no S3 credentials (no secretRef and no workload identity found)",
            permanent=True,
        )
    if name == "ClientResponseError" and getattr(exc, "status", 0) in (401, 403, 404):
        status = exc.status  # type: ignore[attr-defined]
        what = "no such object" if status == 404 else f"HTTP {status}"
        return StorageError(f"cannot {verb} {uri}: {what}", permanent=True)
    return StorageError(f"cannot {verb} {uri}: {name}: {text}", permanent=False)


def read_bytes(uri: str, role: str = STORE, env: Mapping[str, str] | None = None) -> bytes:
    """The whole object at `uri` (a local path, file://, s3:// or https://)."""
    try:
        fs, path = filesystem(uri, role, env)
        return fs.cat_file(path)
    except IsADirectoryError as exc:
        raise StorageError(f"cannot read {uri}: it is a directory", permanent=True) from exc
    except Exception as exc:
        raise _reason(exc, "read", uri) from exc


def upload_directory(local: str | os.PathLike[str], uri: str, env: Mapping[str, str] | None = None) -> None:
    """Copy a finished version directory to the store, model file first and result last.

    S3 has no atomic directory rename; the order makes a half-finished upload harmless: the
    operator learns the digest only from the result, and the server refuses a model file whose
    digest does not match, so a reader never acts on a mix of two runs.
    """
    local = Path(local)
    order = {"model.skops": 0, "result.json": 2}
    files = sorted((p for p in local.iterdir() if p.is_file()), key=lambda p: (order.get(p.name, 1), p.name))
    try:
        fs, path = filesystem(uri, STORE, env)
        for f in files:
            fs.put_file(str(f), f"{path.rstrip('/')}/{f.name}")
    except Exception as exc:
        raise _reason(exc, "write", uri) from exc


def delete_tree(uri: str, env: Mapping[str, str] | None = None) -> bool:
    """Delete everything under `uri`; False when there was nothing to delete."""
    try:
        fs, path = filesystem(uri, STORE, env)
        found = fs.find(path.rstrip("/") + "/")
        if not found:
            return False
        fs.rm(found)
        return True
    except Exception as exc:
        raise _reason(exc, "delete", uri) from exc


def newest_file(
    folder: str, suffixes: tuple[str, ...], role: str = DATASET, env: Mapping[str, str] | None = None
) -> str:
    """The URI of the newest file directly under an s3:// folder whose name ends in one of
    `suffixes` (last modification, then name); StorageError(permanent) when there is none."""
    if not folder.startswith("s3://"):
        raise StorageError(f"cannot list {folder}: only s3:// folders can be listed", permanent=True)
    try:
        fs, path = filesystem(folder, role, env)
        entries = fs.ls(path.rstrip("/"), detail=True, refresh=True)
    except FileNotFoundError:  # S3 has no folders: a prefix with no objects is an empty folder
        entries = []
    except Exception as exc:
        raise _reason(exc, "list", folder) from exc
    files = [
        (e.get("LastModified"), e["name"].rsplit("/", 1)[-1])
        for e in entries
        if e.get("type") == "file" and e["name"].lower().endswith(suffixes)
    ]
    if not files:
        raise StorageError(f"no {' or '.join(suffixes)} file in {folder}", permanent=True)
    _, name = max(files, key=lambda f: (f[0].timestamp() if f[0] else 0.0, f[1]))
    return folder.rstrip("/") + "/" + name
