"""`modelops serve`: the serving Deployment's entry point.

Order of events: read model.skops once and check its sha256 (mismatch: exit 3 before listening,
so the pod never becomes ready and the termination message says why); start listening; load the
verified bytes with skops in a worker thread, so liveness answers while a big model loads;
readiness turns true once it is loaded. SIGTERM: uvicorn stops accepting, lets in-flight requests
finish (up to --graceful-seconds), then we exit 0.

Exit codes: 0 clean shutdown; 2 bad arguments; 3 artifact refused (digest, format, trust); 1 other.
One process, one event loop: replicas scale it, which keeps the Prometheus counters exact without
multiprocess mode.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
from typing import Any

from modelops import artifacts

from .app import App, Service, Settings
from .model import ServedModel, read_metadata

log = logging.getLogger("modelops.server")

SIZE = re.compile(r"^(\d+)\s*(|k|ki|kib|kb|m|mi|mib|mb)$", re.IGNORECASE)
UNITS = {
    "": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise SystemExit(_stop(2, f"usage: {message}"))


def parse_size(text: str) -> int:
    """`4MiB`, `512k`, `1000000` -> bytes."""
    m = SIZE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4MiB, 512KiB, 100000)")
    return int(m.group(1)) * UNITS[m.group(2).lower()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = _Parser(prog="modelops serve", description="Serve one trained ModelVersion.")
    p.add_argument(
        "--artifact-dir",
        default=env("MODELOPS_ARTIFACT_DIR"),
        help="<store>/<model>/<version>: a mounted path or s3://bucket/prefix/model/version",
    )
    p.add_argument("--sha256", default=env("MODELOPS_ARTIFACT_SHA256"), help="expected sha256 of model.skops")
    p.add_argument("--model", default=env("MODELOPS_MODEL"))
    p.add_argument("--version", default=env("MODELOPS_VERSION"))
    p.add_argument("--host", default=env("MODELOPS_HOST", "0.0.0.0"))
    p.add_argument("--port", type=int, default=int(env("MODELOPS_PORT", "8080")))
    p.add_argument("--max-rows", type=int, default=int(env("MODELOPS_MAX_ROWS", "10000")))
    p.add_argument(
        "--max-body-bytes", type=parse_size, default=parse_size(env("MODELOPS_MAX_BODY_BYTES", "4MiB"))
    )
    p.add_argument("--pending-rows", type=int, default=100_000, help="predictions kept for /feedback")
    p.add_argument("--capture-file", default=env("MODELOPS_CAPTURE_FILE"), help="labelled served rows (CSV)")
    p.add_argument("--capture-max-rows", type=int, default=int(env("MODELOPS_CAPTURE_MAX_ROWS", "10000")))
    p.add_argument(
        "--capture-exclude", default=env("MODELOPS_CAPTURE_EXCLUDE", ""), help="columns, comma-separated"
    )
    p.add_argument("--capture-target", default=env("MODELOPS_CAPTURE_TARGET", "target"))
    p.add_argument("--graceful-seconds", type=int, default=25, help="drain time after SIGTERM")
    p.add_argument("--log-level", default=env("MODELOPS_LOG_LEVEL", "info"))
    args = p.parse_args(argv)
    for flag in ("artifact_dir", "sha256", "model", "version"):
        if not getattr(args, flag):
            p.error(f"--{flag.replace('_', '-')} is required (or its MODELOPS_* variable)")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256.strip()):
        p.error("--sha256 must be 64 hex digits")
    return args


def read_card(artifact_dir: str) -> tuple[bytes, bytes] | None:
    """model-card.json and model-card.md as the trainer wrote them (a mounted path or s3://);
    None for older artifacts."""
    base = artifact_dir.rstrip("/")
    try:
        return (
            artifacts.read_file(f"{base}/{artifacts.CARD_JSON}"),
            artifacts.read_file(f"{base}/{artifacts.CARD_MD}"),
        )
    except artifacts.ArtifactError:
        return None


def _stop(code: int, reason: str) -> int:
    line = "error: " + " ".join(reason.split())
    print(line, file=sys.stderr, flush=True)
    artifacts.write_termination_log(line)
    return code


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        data = artifacts.read_verified(f"{args.artifact_dir.rstrip('/')}/{artifacts.MODEL_FILE}", args.sha256)
        metadata = read_metadata(args.artifact_dir)
    except artifacts.ArtifactError as exc:
        return _stop(3, str(exc))

    import sklearn
    import uvicorn

    # Inputs are checked finite in inputs.py; skip scikit-learn's second check on the hot path.
    sklearn.set_config(assume_finite=True)

    server: dict[str, Any] = {}

    def on_fatal(code: int, reason: str) -> None:
        _stop(code, reason)
        if "uvicorn" in server:
            server["uvicorn"].should_exit = True

    settings = Settings(
        args.model,
        args.version,
        args.max_rows,
        args.max_body_bytes,
        args.pending_rows,
        capture_file=args.capture_file or None,
        capture_max_rows=args.capture_max_rows,
        capture_exclude=tuple(c for c in args.capture_exclude.split(",") if c),
        capture_target=args.capture_target,
    )

    service = Service(settings)
    service.card = read_card(args.artifact_dir)
    app = App(
        service,
        loader=lambda: ServedModel.from_bytes(data, metadata),
        background=True,
        on_fatal=on_fatal,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=args.log_level.lower(),
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=args.graceful_seconds,
    )
    srv = uvicorn.Server(config)
    server["uvicorn"] = srv
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown; with the default
    # handler that would kill us with status 143. A no-op handler makes a drained exit status 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    with contextlib.suppress(SystemExit):  # uvicorn exits this way when it cannot bind
        srv.run()
    if app.fatal is not None:
        return app.fatal[0]
    if not srv.started:
        return _stop(1, f"could not listen on {args.host}:{args.port}")
    return 0
