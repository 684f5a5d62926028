"""The check harnesses: small Go programs that run a real tool's own code on our shipped assets.

`grafana-schema` decodes the dashboard with Grafana's schema types; `argocd-health` runs the
health checks through Argo CD's settings and Lua code. tests/cluster/go/build-harness.sh builds
each from its wrapper module (cached beside the cluster binaries; a warm run only prints the path).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests/cluster/go/build-harness.sh"


def harness(name: str) -> Path:
    """The cached binary of harness `name` (built on first use: minutes cold, see the README)."""
    out = subprocess.run([str(BUILD), name], check=True, capture_output=True, text=True, timeout=1800)
    return Path(out.stdout.strip().splitlines()[-1])
