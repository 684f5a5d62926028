"""Champion vs challenger on the same data, on the real node: the challenger's trainer container
loads the champion's artifact from the namespace's PV and scores both on the same rows.

Two models, each a story the recorded metrics get wrong:
- "shift": the champion learned the old concept perfectly (recorded ~0.99); the data moved to
  another concept, where the challenger is ~0.85 on its own held-out split. The old numbers say
  keep the champion; on the same rows the champion is a coin toss, so the challenger must win.
- "noisy": the champion was trained on noisy labels (recorded ~0.7) but learned the right
  boundary; a shallow tree on clean data records ~0.85. The old numbers say replace; on the
  same rows the champion is better (~0.98), so the challenger must lose.
And a champion whose artifact was removed from the PV (on the host, under the serving container)
cannot be compared: the challenger is Rejected, or judged on its gates alone when asked.

Moved from the kwok suite: the data and the removed file are put on the PV's host folder, which
the containers read as they would a provisioned volume; nothing needs a fault on cue. The node and
the operator pod are the session's (tests/e2e/conftest.py); this module has its own namespace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.support.realnode import SERVING_TIMEOUT, Versions, marks, on_claim
from tests.support.wait import eventually

pytestmark = marks()

NS = "real-comparison"


def write(store: Path, name: str, label: str, noise: float, seed: int, rows: int = 1200) -> str:
    """A CSV on the artifact claim: features a, b; y from `label` (a, b or a+b > 0), `noise` flipped."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    signal = {"a": frame.a, "b": frame.b, "a+b": frame.a + frame.b}[label]
    y = (signal > 0).astype(int)
    frame["y"] = np.where(rng.random(rows) < noise, 1 - y, y)
    return on_claim(store, name, frame)


def training(uri: str, cls: str = "LogisticRegression", **params: object) -> dict:
    return {"dataset": {"uri": uri, "target": "y"}, "estimator": {"class": cls, "params": params}}


COMPARE = {"champion": {"metric": "accuracy", "minImprovement": 0.0}}


def test_the_same_data_decides_not_the_recorded_numbers(mvs: Versions, store: Path) -> None:
    old = write(store, "old.csv", "a", 0.0, 1)
    new = write(store, "new.csv", "b", 0.15, 2)
    golden = write(store, "golden.csv", "b", 0.0, 3, rows=400)
    noisy = write(store, "noisy.csv", "a+b", 0.30, 4)
    clean = write(store, "clean.csv", "a+b", 0.0, 5)

    # both champions first (in parallel), with no gates: they only have to serve
    mvs.create("shift-v1", model="shift", training=training(old), validation={})
    mvs.create("noisy-v1", model="noisy", training=training(noisy), validation={})
    v1 = mvs.wait_phase("shift-v1", "Serving")
    n1 = mvs.wait_phase("noisy-v1", "Serving")

    mvs.create(
        "shift-v2",
        model="shift",
        parent="shift-v1",
        training=training(new),
        validation={**COMPARE, "dataset": {"uri": golden}},
    )
    mvs.create(
        "noisy-v2",
        model="noisy",
        parent="noisy-v1",
        training=training(clean, "DecisionTreeClassifier", max_depth=2),
        validation=COMPARE,
    )

    # shift: the challenger records less than the champion did, yet wins on the same rows
    v2 = mvs.wait_phase("shift-v2", "Serving")
    assert v2["training"]["metrics"]["accuracy"] < v1["training"]["metrics"]["accuracy"]
    comp = v2["training"]["comparison"]
    assert comp["champion"] == "shift-v1"
    assert comp["championSha256"] == v1["training"]["artifact"]["sha256"]
    held, gold = comp["evaluations"]
    assert held["set"] == "heldOut" and held["rows"] == v2["training"]["rows"]["test"]
    assert gold["set"] == "golden" and gold["rows"] == 400 and gold["uri"] == golden
    for ev in (held, gold):
        assert ev["challenger"]["accuracy"] > ev["champion"]["accuracy"], ev
    verdict = v2["comparison"]
    assert verdict["verdict"] == "ChallengerBetter" and verdict["champion"] == "shift-v1"
    assert verdict["championSha256"] == v1["training"]["artifact"]["sha256"]
    assert "beats champion shift-v1 on the same data" in mvs.condition("shift-v2", "Validated")["message"]
    assert mvs.champion_of("shift") == "shift-v2"

    # noisy: the challenger records more than the champion did, yet loses on the same rows
    n2 = mvs.wait_phase("noisy-v2", "Rejected")
    assert n2["training"]["metrics"]["accuracy"] > n1["training"]["metrics"]["accuracy"]
    (held,) = n2["training"]["comparison"]["evaluations"]
    assert held["champion"]["accuracy"] > held["challenger"]["accuracy"]
    assert n2["comparison"]["verdict"] == "ChampionBetter"
    assert mvs.condition("noisy-v2", "Validated")["reason"] == "ChampionBetter"
    assert "noisy-v1 is better on the same data" in n2["message"]
    assert mvs.champion_of("noisy") == "noisy-v1"


def test_a_champion_whose_artifact_is_gone_is_incomparable(mvs: Versions, store: Path) -> None:
    """The champion's files were removed from the claim: Reject by default, GatesOnly goes on; both say why."""
    data = write(store, "old.csv", "a", 0.0, 1)
    mvs.create("gone-v1", model="gone", training=training(data), validation={})
    mvs.wait_phase("gone-v1", "Serving")
    model_file = store / "gone" / "gone-v1" / "model.skops"
    model_file.rename(model_file.with_suffix(".moved"))
    try:
        mvs.create("gone-v2", model="gone", training=training(data), validation=COMPARE)
        mvs.create(
            "gone-v3",
            model="gone",
            training=training(data),
            validation={
                **COMPARE,
                "onIncomparable": "GatesOnly",
                "gates": [{"metric": "accuracy", "min": 0.9}],
            },
            promotion={"mode": "Manual"},  # stays a challenger, so gone-v2's champion does not change
        )
        st = mvs.wait_phase("gone-v2", "Rejected")
        assert mvs.condition("gone-v2", "Validated")["reason"] == "ChampionIncomparable"
        assert "cannot be loaded" in st["message"] and st["comparison"]["verdict"] == "Incomparable"
        eventually(
            lambda: (mvs.condition("gone-v3", "Validated") or {}).get("status") == "True",
            timeout=SERVING_TIMEOUT,
            what="gone-v3 to be validated on its gates",
        )
        c = mvs.condition("gone-v3", "Validated")
        assert c["status"] == "True" and c["reason"] == "GatesOnly" and "cannot be loaded" in c["message"]
        mvs.wait_event("gone-v3", "ChampionIncomparable")
    finally:
        model_file.with_suffix(".moved").rename(model_file)
