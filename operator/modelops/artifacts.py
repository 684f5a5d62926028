"""Model artifacts: atomic directory writes, sha256, and safe skops loading.

A trained version lives in `<store>/<model>/<version>/` (a mounted claim or an S3 prefix) as
`model.skops`, `model.skops.sha256`, `metadata.json` and `result.json`, with the model card
(`model-card.json`, `model-card.md`) and, when the data was checked, `data-quality.json`. The
server never unpickles anything: it checks the file's
digest against the one the operator recorded, then loads it with skops, trusting only the types
that skops reports as untrusted AND that pass our own allow-list below.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MODEL_FILE = "model.skops"
DIGEST_FILE = "model.skops.sha256"
METADATA_FILE = "metadata.json"
RESULT_FILE = "result.json"
CARD_JSON = "model-card.json"
CARD_MD = "model-card.md"
DATA_QUALITY_FILE = "data-quality.json"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"

# Types a skops file may ask us to trust. skops already trusts builtins and most scikit-learn
# estimators; what it still reports for our allow-listed estimators are Cython internals such as
# `sklearn.tree._tree.Tree` or `sklearn.neighbors._kd_tree.KDTree`. scikit-learn is accepted by
# prefix, minus the modules that read files or download; numpy only as dtypes, scalar types and
# random states (a numpy *function*, e.g. `numpy.load`, is never trusted).
_TRUSTED_PREFIXES = ("sklearn.",)
_REFUSED_PREFIXES = ("sklearn.datasets.", "sklearn.externals.", "sklearn.utils._testing")
_TRUSTED_NUMPY = re.compile(
    r"^numpy\.(dtype|ndarray|bool_?|str_|bytes_|object_|(u?int|float|complex)\d*|"
    r"dtypes\.\w+DType|random\.(mtrand\.RandomState|_generator\.Generator|_\w+\.\w+))$"
)


class ArtifactError(Exception):
    """The artifact cannot be served; the message is the one-line reason."""


class DigestMismatch(ArtifactError):
    """The file on disk is not the one the operator recorded (tampered or half-written)."""


class UntrustedArtifact(ArtifactError):
    """The file is not a skops archive we are willing to load."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed so large datasets do not need to fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_trusted_type(name: str) -> bool:
    """Whether a fully qualified type name reported by skops may be loaded."""
    if name.startswith(_REFUSED_PREFIXES):
        return False
    return name.startswith(_TRUSTED_PREFIXES) or bool(_TRUSTED_NUMPY.match(name))


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A file of a version from a mounted store or from S3 (`s3://bucket/key`)."""
    from modelops import storage

    if storage.is_remote(str(path)):
        try:
            return storage.read_bytes(str(path))
        except storage.StorageError as exc:
            raise ArtifactError(f"artifact {exc}") from exc
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read artifact {path}: {exc.strerror or exc}") from exc


def read_verified(path: str | os.PathLike[str], expected_sha256: str) -> bytes:
    """Read the whole file once and check its digest, so the bytes we load are the bytes we hashed."""
    data = read_file(path)
    actual = sha256_bytes(data)
    if actual != expected_sha256.strip().lower():
        raise DigestMismatch(f"artifact sha256 mismatch: expected {expected_sha256}, got {actual}")
    return data


def load_model(data: bytes) -> Any:
    """Load skops bytes, trusting only allow-listed types; a pickle or any other file is refused."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a pickle, a truncated zip, a bad schema: all are "not a skops file"
        raise UntrustedArtifact(f"artifact is not a valid skops file: {type(exc).__name__}: {exc}") from exc
    refused = sorted(t for t in untrusted if not is_trusted_type(t))
    if refused:
        raise UntrustedArtifact(f"artifact contains untrusted types: {', '.join(refused)}")
    try:
        return sio.load(io.BytesIO(data), trusted=list(untrusted))
    except Exception as exc:
        raise UntrustedArtifact(f"artifact could not be loaded: {type(exc).__name__}: {exc}") from exc


def dump_model(model: Any, path: str | os.PathLike[str]) -> None:
    import skops.io as sio

    sio.dump(model, path)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, allow_nan=False)
        fh.write("\n")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp dir beside `final`; on success fsync it and move it into place in one step.

    Readers see either the old complete version or the new complete one, never a mix: a retried
    training Job overwrites its own earlier output. Where the kernel can swap two directories
    atomically (renameat2 RENAME_EXCHANGE) we do that; elsewhere the old one is renamed aside
    first, leaving a moment with no directory rather than a half-written one.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        for child in tmp.iterdir():
            _fsync_path(child)
        os.chmod(tmp, 0o755)
        _fsync_path(tmp)
        if final.exists() and _exchange(tmp, final):
            shutil.rmtree(tmp)  # tmp now holds the previous version
        else:
            if final.exists():
                aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
                os.replace(final, aside / final.name)
                os.replace(tmp, final)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.replace(tmp, final)
        _fsync_path(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_termination_log(line: str, env: dict[str, str] | None = None) -> None:
    """Best effort: the kubelet shows this file as the container's termination message.

    Both programs use it for the one-line reason they stopped (bad data, refused artifact). The
    default path is written only when it exists (the kubelet creates it), so a local run as root
    never litters /dev; an explicit MODELOPS_TERMINATION_LOG only needs a writable directory.
    """
    env = dict(os.environ if env is None else env)
    path = Path(env.get("MODELOPS_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG)
    if str(path) == DEFAULT_TERMINATION_LOG and not path.exists():
        return
    # The kubelet's file is writable where its directory is not (/dev, as uid 65532): ask about
    # the file when it exists, about its directory only when it must be created.
    if path.exists():
        if not os.access(path, os.W_OK):
            return
    elif not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        return
    with contextlib.suppress(OSError):
        path.write_text(line + "\n", encoding="utf-8")
