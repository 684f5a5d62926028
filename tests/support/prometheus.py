"""The real Prometheus server (Debian's package), on a free loopback port, scraping file_sd targets."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import yaml

from tests.cluster.localcluster import _die_with_parent

from .kubelet import free_port


class PrometheusServer:
    def __init__(self, workdir: Path, scrape_interval: str = "1s") -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.scrape_interval = scrape_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.targets_dir = workdir / "targets"
        self.targets_dir.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_targets(self, group: str, targets: list[dict[str, object]]) -> None:
        tmp = self.targets_dir / f".{group}.json.tmp"
        tmp.write_text(json.dumps(targets))
        tmp.rename(self.targets_dir / f"{group}.json")

    def start(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "prometheus is not installed (apt-get install prometheus); .ci/run installs it"
            )
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "modelops-server",
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready in 30s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class MisbehavingPrometheus:
    """A stand-in for Prometheus' query API that answers wrongly: a fixed body, or one trickled slowly.

    Only for faults the real server cannot be made to produce (malformed or trickling answers);
    everything else is tested against the real Prometheus. `answer` may be changed while it runs.
    """

    def __init__(self, answer: bytes, *, status: int = 200, trickle_seconds: float = 0.0) -> None:
        self.answer, self.status, self.trickle_seconds = answer, status, trickle_seconds
        self.queries: list[str] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", [""])[0]
                stand_in.queries.append(query)
                body = stand_in.answer
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if stand_in.trickle_seconds <= 0:
                        self.wfile.write(body)
                        return
                    for i in range(len(body)):  # one byte at a time: each read succeeds in time
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        if stand_in._stop.wait(stand_in.trickle_seconds):
                            return
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def log_message(self, *args: object) -> None:
                pass

        self._stop = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="bad-prometheus", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MisbehavingPrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
