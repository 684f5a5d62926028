"""The image, proven without a Docker engine.

images/Dockerfile builds the project's wheel and installs it with its dependencies into a virtualenv
that becomes the image. Here the same wheel is built from the repository, installed into a clean
virtualenv (no system site-packages, nothing from the dev environment), and every entry point the
manifests and the operator use is started from it. The Dockerfile itself is checked statically:
pinned base, build tools only in the builder stage, numeric non-root USER, ENTRYPOINT ["modelops"].

The clean virtualenv is cached in ~/.cache/modelops (override: $MODELOPS_CACHE), keyed by the
interpreter and the wheel's declared dependencies: the first run downloads scikit-learn & co. through
pip's own cache (about 30s with a warm pip cache); later runs only reinstall the wheel itself.
"""

from __future__ import annotations

import contextlib
import email.parser
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from modelops.cli import COMMANDS
from modelops.lifecycle import resources

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "Dockerfile"
CACHE = Path(os.environ.get("MODELOPS_CACHE", Path.home() / ".cache" / "modelops"))
ENTRY_POINTS = ("run", "train", "serve", "crds")  # what the manifests, the operator and users call


# --- the Dockerfile, statically --------------------------------------------------------------------
def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def _stages() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults, and the instructions of each stage (FROM first)."""
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for inst, rest in _instructions(DOCKERFILE.read_text()):
        if inst == "FROM":
            stages.append([(inst, rest)])
        elif not stages:
            assert inst == "ARG", f"{inst} before the first FROM"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].append((inst, rest))
    return args, stages


def _base(args: dict[str, str], from_: str) -> str:
    image = from_.split()[0]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image)


def test_dockerfile_is_multi_stage_on_one_pinned_base() -> None:
    """Reproducible builds; the copied virtualenv needs the same interpreter in both stages."""
    args, stages = _stages()
    assert len(stages) >= 2
    bases = {_base(args, stage[0][1]) for stage in stages}
    assert len(bases) == 1, f"builder and final stage must share the interpreter: {bases}"
    (base,) = bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_final_stage_has_no_build_tools_and_runs_as_numeric_non_root() -> None:
    """Small attack surface; restricted Pod Security needs a numeric non-root uid."""
    _, stages = _stages()
    builder, final = stages[0], stages[-1]
    assert " AS " in builder[0][1].upper()
    final_kinds = [inst for inst, _ in final]
    assert "RUN" not in final_kinds, "no package manager, compiler or pip in the final stage"
    copies = [rest for inst, rest in final if inst in {"COPY", "ADD"}]
    assert copies and all(c.startswith("--from=") for c in copies), "only the built virtualenv is copied in"
    users = [rest for inst, rest in final if inst == "USER"]
    assert users, "the final stage sets USER"
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert m and int(m.group(1)) > 0, f"numeric non-root USER, got {users[-1]!r}"
    assert int(m.group(1)) == resources.RUN_AS, "the uid the operator's pods run as"
    entrypoint = [rest for inst, rest in final if inst == "ENTRYPOINT"]
    assert entrypoint and json.loads(entrypoint[-1]) == ["modelops"]


def test_builder_builds_the_wheel_from_the_repository() -> None:
    """The image holds the same wheel the tests below install."""
    _, stages = _stages()
    builder = stages[0]
    runs = " ".join(rest for inst, rest in builder if inst == "RUN")
    assert "pip wheel --no-deps" in runs and "pip install" in runs
    for inst, rest in builder:
        if inst == "COPY" and not rest.startswith("--from="):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_manifests_use_the_image_entry_points() -> None:
    """The operator Deployment relies on ENTRYPOINT (args only); the pods it makes call modelops."""
    deployment = yaml.safe_load((ROOT / "manifests" / "base" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container and container["args"][0] in COMMANDS
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsUser"] == resources.RUN_AS
    assert set(ENTRY_POINTS) <= set(COMMANDS)


# --- the wheel in a clean virtualenv -------------------------------------------------------------
def _run(*cmd: str | Path, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the Dockerfile installs, built the same way from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, ROOT, cwd=out)
    assert built.returncode == 0, built.stdout + built.stderr
    (whl,) = out.glob("modelops-*.whl")
    return whl


def _requirements(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = email.parser.Parser().parsestr(z.read(meta).decode())
    return sorted(msg.get_all("Requires-Dist") or [])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Path:
    """A clean virtualenv holding the wheel and its runtime dependencies only."""
    deps = [line for line in _requirements(wheel) if "extra ==" not in line]
    key = hashlib.sha256(json.dumps([sys.version, deps]).encode()).hexdigest()[:16]
    path = CACHE / f"image-venv-{key}"
    with _locked(CACHE / f"image-venv-{key}.lock"):
        if not (path / ".complete").exists():
            shutil.rmtree(path, ignore_errors=True)
            made = _run(sys.executable, "-m", "venv", path)
            assert made.returncode == 0, made.stderr
            # As in the Dockerfile: dependencies from binary wheels only, no compiler needed.
            installed = _run(path / "bin" / "pip", "install", "--only-binary=:all:", wheel, timeout=900)
            assert installed.returncode == 0, installed.stdout + installed.stderr
            (path / ".complete").write_text("\n".join(deps))
        else:
            installed = _run(path / "bin" / "pip", "install", "--no-deps", "--force-reinstall", wheel)
            assert installed.returncode == 0, installed.stdout + installed.stderr
        check = _run(path / "bin" / "pip", "check")
        assert check.returncode == 0, check.stdout + check.stderr
    return path


def test_wheel_holds_the_whole_package_and_nothing_else(wheel: Path) -> None:
    """Every module under operator/modelops ships (a missing __init__ would drop a subpackage)."""
    source = {
        p.relative_to(ROOT / "operator").as_posix()
        for p in (ROOT / "operator" / "modelops").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    shipped = {n for n in names if n.endswith(".py")}
    assert source == shipped
    assert "modelops/py.typed" in names
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)


def test_venv_is_clean(venv: Path) -> None:
    """The wheel is imported from the virtualenv, and the dev environment's extras are absent."""
    where = _run(venv / "bin" / "python", "-c", "import modelops; print(modelops.__file__)", cwd=venv)
    assert where.returncode == 0 and where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    assert _run(venv / "bin" / "python", "-c", "import pytest", cwd=venv).returncode != 0


def test_modelops_help(venv: Path) -> None:
    """The console script is installed and lists every command."""
    out = _run(venv / "bin" / "modelops", "--help", cwd=venv, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ENTRY_POINTS:
        assert f"  {command}" in out.stdout


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"crds"}))
def test_entry_point_starts(venv: Path, command: str) -> None:
    """Each command imports all it needs (kopf for run, scikit-learn for train, the server for serve)."""
    out = _run(venv / "bin" / "modelops", command, "--help", cwd=venv, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"usage: modelops {command}")


def test_crds_entry_point_prints_the_two_crds(venv: Path) -> None:
    """The wheel carries the API models that generate exactly the committed CRDs."""
    out = _run(venv / "bin" / "modelops", "crds", cwd=venv, timeout=120)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert [d["kind"] for d in docs] == ["CustomResourceDefinition"] * 2
    shipped = {d["metadata"]["name"]: d for d in docs}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        committed = yaml.safe_load(path.read_text())
        assert shipped[committed["metadata"]["name"]] == committed, f"{path.name} differs from the image's"
