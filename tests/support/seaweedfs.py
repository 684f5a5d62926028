"""A real S3-compatible server for the storage tests: SeaweedFS's `weed server -s3`, on free ports.

The binary is built from its Go module by tests/cluster/go/build-seaweedfs.sh and cached beside the
cluster binaries. One server per test session; every test makes its own bucket. Access is checked
against an identities file, so a wrong key is refused the way AWS refuses it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.kubelet import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests/cluster/go/build-seaweedfs.sh"
ACCESS_KEY = "modelops-test"
SECRET_KEY = "modelops-test-secret-key-0123456789"


def weed_binary() -> Path:
    """The cached `weed` (built on first use; a warm run only links it)."""
    explicit = os.environ.get("MODELOPS_WEED")
    if explicit:
        return Path(explicit)
    out = subprocess.run([str(BUILD)], check=True, capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1]) / "weed"


def _free_ports(n: int) -> list[int]:
    """n distinct free ports; the gRPC ports are given too, not left to weed's port+10000."""
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


@dataclass
class SeaweedFS:
    workdir: Path
    host: str = "127.0.0.1"
    """The address every server binds to and names itself by; a real node's pods reach the host's
    node address (tests/cluster/node.NODE_IP), not 127.0.0.1."""
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.ports['s3']}"

    @property
    def log(self) -> Path:
        return self.workdir / "weed.log"

    def start(self, timeout: float = 120) -> SeaweedFS:
        weed = weed_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "modelops",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        master, volume, filer, s3, mg, vg, fg, sg = _free_ports(8)
        self.ports = {"master": master, "volume": volume, "filer": filer, "s3": s3}
        argv = [
            str(weed),
            "server",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-dir={data}",
            f"-master.port={master}",
            f"-master.port.grpc={mg}",
            "-master.volumeSizeLimitMB=16",
            f"-volume.port={volume}",
            f"-volume.port.grpc={vg}",
            "-volume.max=500",  # every bucket is a collection with volumes of its own
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={fg}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={sg}",
            f"-s3.config={config}",
        ]
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}:\n{self.tail()}")
            if self._ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"weed did not serve S3 within {timeout}s:\n{self.tail()}")

    def _ready(self) -> bool:
        """Ready when an authenticated bucket round trip works (the gateway waits for the filer)."""
        try:
            httpx.get(self.endpoint, timeout=2)
        except httpx.HTTPError:
            return False
        try:
            fs = self.fs()
            probe = "modelops-ready-probe"
            if not fs.exists(probe):
                fs.mkdir(probe)
            fs.pipe_file(f"{probe}/ping", b"ok")
            return fs.cat_file(f"{probe}/ping") == b"ok"
        except Exception:
            return False

    def options(self) -> dict[str, Any]:
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "endpoint_url": self.endpoint,
            "skip_instance_cache": True,
        }

    def fs(self) -> Any:
        """An s3fs filesystem with the test's own (valid) keys, for arranging and inspecting."""
        import s3fs

        return s3fs.S3FileSystem(**self.options())

    def bucket(self, name: str) -> str:
        fs = self.fs()
        if not fs.exists(name):
            fs.mkdir(name)
        return name

    def tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def secret(name: str, access_key: str, secret_key: str) -> dict[str, Any]:
    """The Secret a platform team would create for a bucket's keys."""
    return {
        "metadata": {"name": name},
        "data": {
            "accessKeyId": base64.b64encode(access_key.encode()).decode(),
            "secretAccessKey": base64.b64encode(secret_key.encode()).decode(),
        },
    }


def arrange_bucket(mvs: Any, server: SeaweedFS, bucket: str) -> Callable[..., dict[str, Any]]:
    """Two Secrets in `mvs`'s namespace (`s3-keys`, and `s3-wrong` with a wrong secret key), iris
    uploaded as `data/iris.csv`; returns the `spec.storage` for a Secret's name."""
    from sklearn.datasets import load_iris

    mvs.core.create_namespaced_secret(mvs.ns, secret("s3-keys", server.access_key, server.secret_key))
    mvs.core.create_namespaced_secret(mvs.ns, secret("s3-wrong", server.access_key, "not-the-secret"))
    frame = load_iris(as_frame=True).frame
    server.fs().pipe_file(f"{bucket}/data/iris.csv", frame.to_csv(index=False).encode())

    def storage(name: str = "s3-keys") -> dict[str, Any]:
        return {
            "s3": {
                "bucket": bucket,
                "prefix": "team-a/models",
                "secretRef": {"name": name},
                "endpointUrl": server.endpoint,
                "region": "us-east-1",
            }
        }

    return storage


def training(uri: str) -> dict[str, Any]:
    """`spec.training` on a CSV with a `target` column, no retry (a failure shows at once)."""
    return {
        "dataset": {"uri": uri, "target": "target"},
        "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
        "backoffLimit": 0,
    }
