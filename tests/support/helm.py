"""The real helm CLI, built from its Go module (tests/cluster/go/build-helm.sh, cached beside the
cluster binaries; `make test` builds it first, so a test only links it), and the chart's renders."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests/cluster/go/build-helm.sh"
CHART = ROOT / "charts/modelops"


@functools.cache
def helm_binary() -> Path:
    """The cached helm (built on first use; MODELOPS_HELM names another one)."""
    explicit = os.environ.get("MODELOPS_HELM")
    if explicit:
        return Path(explicit)
    out = subprocess.run([str(BUILD)], check=True, capture_output=True, text=True, timeout=1800).stdout
    return Path(out.strip().splitlines()[-1])


def helm(
    *args: str | Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm with its state (repositories, cache, registry config) in a throw-away place."""
    out = subprocess.run(
        [str(helm_binary()), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    if check and out.returncode != 0:
        raise AssertionError(f"helm {' '.join(map(str, args))} failed:\n{out.stdout}\n{out.stderr}")
    return out


def template(*args: str, namespace: str = "modelops-system") -> list[dict[str, Any]]:
    """`helm template` of the chart with its CRDs, parsed."""
    out = helm("template", "modelops", CHART, "--namespace", namespace, "--include-crds", *args)
    return [d for d in yaml.safe_load_all(out.stdout) if d]
