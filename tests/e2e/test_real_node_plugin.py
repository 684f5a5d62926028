"""`kubectl modelops` against the node with the operator pod running: run by kubectl itself (the
plugin found on PATH), reading what the operator wrote and asking it for promotions, a rollback, a
retrain and a retirement with the annotations and fields the operator acts on; and the model card
fetched through the API server's service proxy from a real server container.

Moved from the kwok suite: nothing here needs a fault on cue, and there the card's route could only
be shown to reach the proxy (kwok pods have addresses nothing listens on). The node and the
operator pod are the session's (tests/e2e/conftest.py); this module has its own namespace and PV.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import one_line_error
from tests.support.realnode import GROUP, VERSION, Versions, marks
from tests.support.wait import eventually

pytestmark = marks()

NS = "real-plugin"
BIN = Path(sys.executable).parent
"""Where pip put the console script kubectl-modelops (the venv's bin)."""


def plugin(mvs: Versions, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
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


def test_lineage_rollback_history_retire_and_retrain(mvs: Versions) -> None:
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    mvs.create("iris-v2", parent="iris-v1")
    mvs.wait_phase("iris-v2", "Serving")
    mvs.wait_phase("iris-v1", "Superseded")

    # get: the tree, with the champion marked, no colour when not a terminal
    out = plugin(mvs, "get").stdout
    lines = out.splitlines()
    assert lines[0] == "Model iris: champion iris-v2", out
    assert lines[1].split() == ["NAME", "CHAMPION", "PHASE", "METRIC", "AGE"]
    assert lines[2].split()[:3] == ["iris-v1", "Superseded", mvs.status("iris-v1")["primaryMetric"]], out
    assert lines[3].split()[:4] == ["└─", "iris-v2", "★", "Serving"], out
    assert "\033[" not in out
    assert f"Model iris (namespace {mvs.ns}): champion iris-v2" in plugin(mvs, "get", "-A").stdout

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

    def manual() -> dict[str, Any] | None:
        st = mvs.custom.get_namespaced_custom_object(GROUP, VERSION, mvs.ns, "retrainpolicies", "iris-keeper")
        trigger = (st.get("status") or {}).get("lastTrigger") or {}
        return trigger if trigger.get("reason") == "manual" else None

    child = eventually(manual, timeout=90, what="the manual retrain")["child"]
    assert mvs.get(child)["spec"]["parent"] == "iris-v1"
    assert "RetrainPolicy iris-keeper" in plugin(mvs, "get").stdout.splitlines()[0]


def test_the_card_comes_through_the_api_servers_service_proxy_from_the_server_container(
    mvs: Versions,
) -> None:
    """`kubectl modelops card` asks the API server to proxy to the version's server Service: on the
    node that reaches the real container, which answers with the card the trainer wrote; a version
    with no ready server is refused before any request. Its own model, beside the lineage test's."""
    mvs.create("tulip-v1", model="tulip", card={"owner": "flora@example.com", "description": "Tulips."})
    mvs.wait_phase("tulip-v1", "Serving")
    out = plugin(mvs, "card", "tulip")
    assert "Tulips." in out.stdout and "flora@example.com" in out.stdout, out.stdout
    card = json.loads(plugin(mvs, "card", "tulip-v1", "--json").stdout)
    assert card["version"] == "tulip-v1" and card["owner"] == "flora@example.com", card
    mvs.create("tulip-v2", model="tulip")
    mvs.wait_phase("tulip-v2", "Serving")
    eventually(
        lambda: (mvs.status("tulip-v1").get("serving") or {}).get("readyReplicas", 0) == 0,
        timeout=120,
        what="tulip-v1 to scale down",
    )
    one_line_error(plugin(mvs, "card", "tulip-v1", check=False), "tulip-v1 has no ready server")
