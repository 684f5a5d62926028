"""The Argo CD health checks (manifests/argocd/health/*.lua) run in a real Lua 5.1, sandboxed like Argo CD.

Argo CD runs a health script in gopher-lua (Lua 5.1) with only the base, table and a safe os library
opened and the resource in the global ``obj``; strings have no methods there. These tests run the
same files in PUC Lua 5.1 (``lupa.lua51``, else Debian's ``lua5.1`` binary) inside an environment
with exactly those libraries, so a script that would break in Argo CD breaks here, and they check
one sample object per health state and cause. The samples are not written by hand: their statuses
come from the operator's own planner and record paths (tests/support/argocd_samples.py, checked in
as tests/fixtures/argocd_health.yaml); the expected health of each is stated here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.argocd_samples import SAMPLES, render

ROOT = Path(__file__).resolve().parents[2]
HEALTH_DIR = ROOT / "manifests" / "argocd" / "health"
ARGOCD_CM = ROOT / "manifests" / "argocd" / "argocd-cm.yaml"
FIXTURE = ROOT / "tests" / "fixtures" / "argocd_health.yaml"
CASES = {kind: [{"name": n, "obj": o} for n, o in make().items()] for kind, make in SAMPLES.items()}
"""Generated now from the code, not read from the fixture (which is checked for staleness below)."""
READY_MANUAL = (
    "deployed; waiting for manual promotion (annotate modelops.dev/promote or set spec.promotion.request)"
)
EXPECT: dict[str, dict[str, tuple[str, str]]] = {
    "modelversion": {
        "no status yet": ("Progressing", "Waiting for the operator"),
        "training": ("Progressing", "Training: training"),
        "deploying": ("Progressing", "Deploying: deploying: 0/1 replicas ready"),
        "champion serving": ("Healthy", "Serving: champion, accuracy=0.9737"),
        "spec changed, not observed yet": ("Progressing", "Waiting for the operator to observe generation 2"),
        "superseded, kept for rollback": ("Healthy", "Superseded: superseded by iris-v2; draining"),
        "retired": ("Healthy", "Retired: retired"),
        "training failed": (
            "Degraded",
            "Failed: training failed: dataset sklearn:iris has no column 'species'",
        ),
        "rejected by its gates (a correct outcome, but it will never be Ready)": (
            "Degraded",
            "Rejected: rejected: accuracy 0.85 < min 0.9",
        ),
        "server failed while deploying": ("Degraded", "Failed: server failed: artifact sha256 mismatch"),
        "deployed, waiting for manual promotion": ("Suspended", f"Deploying: {READY_MANUAL}"),
        "canary under analysis": (
            "Progressing",
            "Canary: canary step 1/1 at 10%: analysing: 3 requests, 60/300s",
        ),
        "canary with malformed metrics, rolled back as inconclusive": (
            "Degraded",
            "Rejected: canary rolled back at step 1/1: analysis inconclusive after 120s: "
            "Prometheus answered malformed data: Field required at data",
        ),
        "canary passed, waiting for manual promotion": (
            "Suspended",
            "Canary: canary passed (error rate 0.00%, p99 12ms over 250 requests); waiting for manual promotion",
        ),
        "invalid spec": ("Degraded", "Failed: invalid spec at spec.bogus: Extra inputs are not permitted"),
        "being deleted": ("Progressing", "Being deleted"),
    },
    "retrainpolicy": {
        "no status yet": ("Progressing", "Waiting for the operator"),
        "evaluating, all stable": ("Healthy", "watching iris (champion iris-v1)"),
        "spec changed, not observed yet": ("Progressing", "Waiting for the operator to observe generation 2"),
        "waiting for the first evaluation": ("Healthy", "watching iris (champion iris-v1)"),
        "suspended": ("Suspended", "Suspended: drift and performance are evaluated, no retrain is started"),
        "suspend requested, not observed yet": (
            "Progressing",
            "Waiting for the operator to observe generation 2",
        ),
        "the model has no champion yet": (
            "Progressing",
            "no champion for model iris: nothing to evaluate or retrain from",
        ),
        "Prometheus unreachable": (
            "Degraded",
            "Prometheus query failed, drift and performance cannot trigger: "
            "Prometheus at http://prometheus:9090 is unreachable: ConnectError",
        ),
        "Prometheus answers malformed data": (
            "Degraded",
            "Prometheus query failed, drift and performance cannot trigger: "
            "Prometheus answered malformed data: Input should be a valid list at data.vector.result",
        ),
        "retraining (the child has its own health)": (
            "Healthy",
            "retraining iris (champion iris-v1); in flight: iris-r1-uid-i Training",
        ),
        "invalid spec": (
            "Degraded",
            "invalid spec: String should match pattern '^([0-9]+(ms|s|m|h|d))+$' at spec.interval",
        ),
    },
}
SCRIPTS = {"modelversion": "ModelVersion", "retrainpolicy": "RetrainPolicy"}
STATES = {"Healthy", "Progressing", "Degraded", "Suspended"}

# The environment Argo CD gives a health script: base library (minus file access), table, and
# os.time/os.date; `obj` is the resource. String methods are switched off to match gopher-lua,
# where the string library is not opened.
SANDBOX = """
local function run(src, obj)
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
    print = print, rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
    getmetatable = getmetatable, setmetatable = setmetatable, tonumber = tonumber,
    tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
    table = table, os = {time = os.time, date = os.date}, obj = obj,
  }
  env._G = env
  local fn, err = loadstring(src, "=health.lua")
  if fn == nil then error(err) end
  setfenv(fn, env)
  local string_index = getmetatable("").__index
  getmetatable("").__index = nil
  local ok, hs = pcall(fn)
  getmetatable("").__index = string_index
  if not ok then error(hs) end
  if type(hs) ~= "table" then error("health script returned " .. type(hs) .. ", not a table") end
  return hs.status, hs.message
end
"""

Runner = Callable[[str, dict[str, Any]], tuple[str, str]]


def _lupa_runner() -> Runner | None:
    """Lua 5.1 inside the test process (lupa ships several Lua versions; we need 5.1)."""
    try:
        from lupa import lua51
    except ImportError:
        return None

    def run(script: str, obj: dict[str, Any]) -> tuple[str, str]:
        lua = lua51.LuaRuntime(unpack_returned_tuples=True)
        assert lua.eval("_VERSION") == "Lua 5.1"
        call = lua.execute(SANDBOX + "return run")
        status, message = call(script, lua.table_from(obj, recursive=True))
        return status, message

    return run


def _lua_literal(value: Any) -> str:
    """A Python value as a Lua 5.1 literal (strings byte-escaped, so any text survives)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(f"\\{b}" for b in value.encode()) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(_lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua_literal(k)}] = {_lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def _binary_runner() -> Runner | None:
    """Debian's lua5.1 in a subprocess: the script and the object travel as Lua literals."""
    binary = shutil.which("lua5.1")
    if binary is None:
        return None

    def run(script: str, obj: dict[str, Any]) -> tuple[str, str]:
        program = (
            SANDBOX
            + f"local status, message = run({_lua_literal(script)}, {_lua_literal(obj)})\n"
            + 'io.write(tostring(status), "\\0", tostring(message))\n'
        )
        out = subprocess.run([binary, "-"], input=program.encode(), capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr.decode()
        status, message = out.stdout.decode().split("\0", 1)
        return status, message

    return run


@pytest.fixture(scope="module")
def lua() -> Runner:
    runner = _lupa_runner() or _binary_runner()
    if runner is None:
        pytest.skip("no Lua 5.1: install lupa (pip install -e '.[test]') or Debian's lua5.1")
    return runner


def _cases() -> list[Any]:
    return [
        pytest.param(kind, case, id=f"{kind}: {case['name']}") for kind in SCRIPTS for case in CASES[kind]
    ]


@pytest.mark.parametrize(("kind", "case"), _cases())
def test_health_of_sample_object(lua: Runner, kind: str, case: dict[str, Any]) -> None:
    """Each sample object gets the health state (and message) a person watching Argo CD should see."""
    script = (HEALTH_DIR / f"{kind}.lua").read_text()
    assert (case["obj"]["apiVersion"], case["obj"]["kind"]) == ("modelops.dev/v1alpha1", SCRIPTS[kind])
    assert lua(script, case["obj"]) == EXPECT[kind][case["name"]]


@pytest.mark.parametrize("kind", SCRIPTS)
def test_every_sample_has_an_expectation_and_every_state_a_sample(kind: str) -> None:
    """Healthy, Progressing, Degraded and Suspended are each exercised for both kinds."""
    assert [case["name"] for case in CASES[kind]] == list(EXPECT[kind])
    assert {status for status, _ in EXPECT[kind].values()} == STATES


def test_samples_are_the_operators_own_statuses() -> None:
    """The fixture is what the planner and record paths write today (regenerate: python -m tests.support.argocd_samples)."""
    assert FIXTURE.read_text() == render(), "stale: run `python -m tests.support.argocd_samples`"


@pytest.mark.parametrize("kind", SCRIPTS)
def test_scripts_use_only_what_argo_cd_provides(kind: str) -> None:
    """No library Argo CD leaves closed (string, math, io, ...), even on paths the samples miss."""
    code = "\n".join(line.split("--", 1)[0] for line in (HEALTH_DIR / f"{kind}.lua").read_text().splitlines())
    assert not re.search(r"\b(string|math|io|debug|coroutine|package)\s*\.", code)
    assert not re.search(r"\b(require|dofile|loadfile|load|loadstring)\s*\(", code)
    assert not re.search(r"\)\s*:\s*\w+\s*\(|\"\s*:\s*\w+\s*\(", code), "string method call"


def test_argocd_cm_snippet_embeds_exactly_the_lua_files() -> None:
    """The argocd-cm snippet users install carries the very scripts tested here, byte for byte."""
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    expected = {
        f"resource.customizations.health.modelops.dev_{kind}": (HEALTH_DIR / f"{name}.lua").read_text()
        for name, kind in SCRIPTS.items()
    }
    assert cm["data"] == expected
