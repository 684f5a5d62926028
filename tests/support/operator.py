"""The operator as a real process (`modelops run`), so tests can SIGKILL and restart it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cluster.localcluster import _die_with_parent

from .kubelet import free_port


class OperatorProcess:
    def __init__(self, kubeconfig: str, namespace: str, logdir: Path, **env: str) -> None:
        self.kubeconfig, self.namespace, self.logdir = kubeconfig, namespace, logdir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.metrics_port = free_port()

    @property
    def log(self) -> Path:
        return self.logdir / f"operator-{self.namespace}.log"

    def start(self) -> OperatorProcess:
        self.runs += 1
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "MODELOPS_METRICS_PORT": str(self.metrics_port),
            "MODELOPS_IMAGE": "modelops:test",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        fh = self.log.open("ab")
        fh.write(f"\n===== operator run {self.runs} =====\n".encode())
        fh.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", "run", "--standalone", "--namespace", self.namespace],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # started from the main thread: dies with the test process
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 80) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )
