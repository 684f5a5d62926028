"""The installed `kubectl-modelops` as kubectl and users run it, where no cluster is needed: kubectl
finds it on PATH, and a cluster it cannot reach or a kubeconfig that is not there is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import one_line_error

BIN = Path(sys.executable).parent
"""Where pip put the console script kubectl-modelops (the venv's bin)."""


def test_kubectl_finds_the_plugin() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(["kubectl", "plugin", "list"], capture_output=True, text=True, env=env)
    assert str(BIN / "kubectl-modelops") in out.stdout, out.stdout + out.stderr


def test_an_unreachable_api_server_is_one_line(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: ml}}]\n"
    )
    out = subprocess.run(
        [str(BIN / "kubectl-modelops"), "get", "--kubeconfig", str(kc)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    one_line_error(out, "cannot reach the API server at https://127.0.0.1:1")
    out = subprocess.run(
        [str(BIN / "kubectl-modelops"), "get", "--kubeconfig", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    one_line_error(out, f"cannot load kubeconfig {tmp_path / 'none'}")
