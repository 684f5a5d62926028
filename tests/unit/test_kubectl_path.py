"""kubectl on a machine without one (issue 10): built at the control plane's release into a
folder of its own, used only when the system has no kubectl, and never moving the cluster binaries'
cache key. Nothing is built here: MODELOPS_CACHE points at a temporary cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cluster.localcluster import BUILD_SH, kubectl_on_path


def build_sh(*args: str) -> str:
    return subprocess.run([str(BUILD_SH), *args], capture_output=True, text=True, check=True).stdout.strip()


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELOPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_kubectl_has_a_folder_of_its_own_named_by_the_control_planes_version(cache: Path) -> None:
    """Beside the cluster binaries' folder, not in it, keyed by its own wrapper module
    (tests/cluster/go/kubectl): building it changes neither their key nor their folder."""
    folder = Path(build_sh("--kubectl-dir"))
    version = next(
        line.split("=", 1)[1].split()[0]
        for line in (BUILD_SH.parent / "versions.env").read_text().splitlines()
        if line.startswith("KUBERNETES_VERSION=")
    )
    assert folder.parent == cache and folder.name.startswith(f"kubectl-{version}-"), folder
    assert not (folder / "kubectl").exists(), "--kubectl-dir builds nothing"


def test_the_systems_kubectl_wins(tmp_path: Path, cache: Path) -> None:
    system = executable(tmp_path / "bin" / "kubectl")
    executable(Path(build_sh("--kubectl-dir")) / "kubectl")
    env = {"PATH": str(system.parent)}
    assert kubectl_on_path(build=False, env=env) == str(system)
    assert env == {"PATH": str(system.parent)}, "PATH untouched"


def test_without_a_system_kubectl_the_cached_one_is_appended_to_path(tmp_path: Path, cache: Path) -> None:
    env = {"PATH": str(tmp_path / "empty")}
    assert kubectl_on_path(build=False, env=env) is None, "nothing cached yet, and nothing built"
    assert env == {"PATH": str(tmp_path / "empty")}
    built = executable(Path(build_sh("--kubectl-dir")) / "kubectl")
    assert kubectl_on_path(build=False, env=env) == str(built)
    assert env["PATH"].split(os.pathsep) == [str(tmp_path / "empty"), str(built.parent)]
