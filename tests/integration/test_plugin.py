"""`kubectl modelops` against the real API server with the operator running: run by kubectl itself
(the plugin found on PATH), reading what the operator wrote and asking it for promotions, a rollback,
a retrain and a retirement with the annotations and fields the operator acts on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.wait import eventually

pytestmark = pytest.mark.cluster
GROUP, VERSION = "modelops.dev", "v1alpha1"
BIN = Path(sys.executable).parent
"""Where pip put the console script kubectl-modelops (the venv's bin)."""


def plugin(mvs, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl modelops ...` as a user types it: kubectl finds the plugin on PATH and passes the flags on."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": ""}
    out = subprocess.run(
        ["kubectl", "modelops", *args, "--kubeconfig", mvs.kubeconfig, "-n", mvs.ns],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if check:
        assert out.returncode == 0, f"kubectl modelops {' '.join(args)}: {out.returncode}\n{out.stderr}"
    return out


def one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> str:
    assert out.returncode == 1, out
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, err
    return err


def test_kubectl_finds_the_plugin():
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(["kubectl", "plugin", "list"], capture_output=True, text=True, env=env)
    assert str(BIN / "kubectl-modelops") in out.stdout, out.stdout + out.stderr


def test_lineage_rollback_history_retire_and_retrain(mvs, kubelet, operator):
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    mvs.create("iris-v2", parent="iris-v1")
    mvs.wait_phase("iris-v2", "Serving", timeout=180)
    mvs.wait_phase("iris-v1", "Superseded")

    # get: the tree, with the champion marked, no colour when not a terminal
    out = plugin(mvs, "get").stdout
    lines = out.splitlines()
    assert lines[0] == "Model iris: champion iris-v2", out
    assert lines[1].split() == ["NAME", "CHAMPION", "PHASE", "METRIC", "AGE"]
    assert lines[2].split()[:3] == ["iris-v1", "Superseded", mvs.status("iris-v1")["primaryMetric"]], out
    assert lines[3].split()[:4] == ["└─", "iris-v2", "★", "Serving"], out
    assert "\033[" not in out
    assert plugin(mvs, "get", "-A").stdout.startswith(f"Model iris (namespace {mvs.ns}): champion iris-v2")

    # rollback: the previous champion is asked for, with the operator's own promotion annotation
    out = plugin(mvs, "rollback", "iris").stdout
    assert out.startswith("modelversion.modelops.dev/iris-v1 rollback requested"), out
    assert "modelops.dev/promote" in mvs.get("iris-v1")["metadata"]["annotations"]
    eventually(lambda: mvs.champion_of("iris") == "iris-v1", timeout=120, what="the rollback to iris-v1")
    mvs.wait_phase("iris-v1", "Serving")

    # history: the audit trail names the plugin as who asked, in time order with the Events
    hist = plugin(mvs, "history", "iris").stdout.splitlines()
    assert hist[0].split() == ["TIME", "VERSION", "DECISION", "BY", "MESSAGE"]
    rolled = [h for h in hist if " RolledBack " in h]
    assert rolled and "iris-v1" in rolled[-1] and "field manager kubectl-modelops" in rolled[-1], hist
    times = [h.split()[0] for h in hist[1:]]
    assert times == sorted(times), hist
    assert any(" Trained " in h for h in hist) and any(" TrainingStarted " in h for h in hist)
    one = plugin(mvs, "history", "iris-v2").stdout.splitlines()[1:]
    assert one and {h.split()[1] for h in one} == {"iris-v2"}, one  # one version's decisions only

    # refusals: one line, non-zero, nothing sent
    one_line_error(plugin(mvs, "promote", "iris-v1", check=False), "iris-v1 is already the champion of iris")
    one_line_error(plugin(mvs, "retire", "iris-v1", check=False), "cannot retire iris-v1", "champion")
    one_line_error(plugin(mvs, "promote", "nope", check=False), '"nope" not found')
    one_line_error(plugin(mvs, "rollback", "nomodel", check=False), 'no ModelVersion of model "nomodel"')

    # retire the superseded version: spec.retired, acted on by the operator
    assert "retired" in plugin(mvs, "retire", "iris-v2").stdout
    mvs.wait_phase("iris-v2", "Retired")
    assert "Retired" in plugin(mvs, "get", "iris").stdout

    # retrain: the policy's manual request annotation, acted on once
    mvs.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        mvs.ns,
        "retrainpolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RetrainPolicy",
            "metadata": {"name": "iris-keeper"},
            "spec": {"model": "iris", "interval": "2s", "window": "20s", "cooldown": "1h"},
        },
    )
    out = plugin(mvs, "retrain", "iris").stdout  # by model name: its one policy
    assert out.startswith("retrainpolicy.modelops.dev/iris-keeper retrain requested"), out

    def manual() -> dict | None:
        st = mvs.custom.get_namespaced_custom_object(GROUP, VERSION, mvs.ns, "retrainpolicies", "iris-keeper")
        trigger = (st.get("status") or {}).get("lastTrigger") or {}
        return trigger if trigger.get("reason") == "manual" else None

    child = eventually(manual, timeout=90, what="the manual retrain")["child"]
    assert mvs.get(child)["spec"]["parent"] == "iris-v1"
    assert "RetrainPolicy iris-keeper" in plugin(mvs, "get").stdout.splitlines()[0]


def test_card_goes_through_the_api_servers_service_proxy(mvs, kubelet, operator):
    """The card route is the API server's service proxy. Simulated pods (kwok) have addresses nothing
    listens on, so here the proxy's own answer comes back, as one line naming the route; a version with
    no ready server is refused before any request."""
    mvs.create("iris-v1", serving={"drainSeconds": 0})
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    out = plugin(mvs, "card", "iris", check=False)
    if out.returncode == 0:  # a cluster whose pods are reachable (kind, a real node): the card itself
        assert "iris" in out.stdout
    else:
        one_line_error(
            out, f"/api/v1/namespaces/{mvs.ns}/services/iris-v1-server:http/proxy/v2/models/iris/card"
        )
    mvs.create("iris-v2")
    mvs.wait_phase("iris-v2", "Serving", timeout=180)
    eventually(
        lambda: (mvs.status("iris-v1").get("serving") or {}).get("readyReplicas", 0) == 0,
        timeout=60,
        what="iris-v1 to scale down",
    )
    one_line_error(plugin(mvs, "card", "iris-v1", check=False), "iris-v1 has no ready server")


def test_an_unreachable_api_server_is_one_line(tmp_path):
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
