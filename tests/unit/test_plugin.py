"""The kubectl plugin's pure part: the lineage tree, the decision history, and what it refuses to send."""

from datetime import UTC, datetime

import pytest

from modelops.plugin import render
from modelops.plugin.main import colour_wanted, parser

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def mv(name, phase, *, parent=None, model="iris", champion=False, metric=None, created="2026-11-29T10:00:00Z",
       ns="default", timestamps=None, history=None, retired=False, serving=None):  # fmt: skip
    status = {"phase": phase, "champion": champion, "timestamps": timestamps or {}, "history": history or []}
    if metric:
        status["primaryMetric"] = metric
    if serving:
        status["serving"] = serving
    spec = {
        "model": model,
        **({"parent": parent} if parent else {}),
        **({"retired": True} if retired else {}),
    }
    return {
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec,
        "status": status,
    }


LINEAGE = [
    mv("iris-v1", "Superseded", metric="accuracy=0.9474", created="2026-11-29T09:00:00Z",
       timestamps={"promoted": "2026-11-29T09:05:00Z", "superseded": "2026-11-29T11:10:00Z"}),
    mv("iris-r1-a1b2c", "Serving", parent="iris-v1", champion=True, metric="accuracy=0.9737",
       created="2026-11-29T11:00:00Z", timestamps={"promoted": "2026-11-29T11:10:00Z"}),
    mv("iris-r2-a1b2c", "Rejected", parent="iris-r1-a1b2c", metric="accuracy=0.9211", created="2026-11-29T11:50:00Z"),
    mv("iris-v0", "Failed", created="2026-11-29T08:00:00Z"),
    mv("iris-x", "Training", parent="iris-v1", created="2026-11-29T11:59:30Z"),
    mv("iris-orphan", "Retired", parent="iris-deleted", created="2026-11-29T07:00:00Z", retired=True),
]  # fmt: skip


def test_tree_shows_lineage_champion_metric_and_age():
    out = render.version_tree(LINEAGE, [], NOW)
    assert out == "\n".join(
        [
            "Model iris: champion iris-r1-a1b2c",
            "NAME                 CHAMPION  PHASE       METRIC           AGE",
            "iris-orphan                    Retired                      5h  (parent iris-deleted, gone)",
            "iris-v0                        Failed                       4h",
            "iris-v1                        Superseded  accuracy=0.9474  3h",
            "├─ iris-r1-a1b2c     ★         Serving     accuracy=0.9737  1h",
            "│  └─ iris-r2-a1b2c            Rejected    accuracy=0.9211  10m",
            "└─ iris-x                      Training                     30s",
        ]
    )


def test_tree_groups_models_and_names_namespaces_and_policies_with_all_namespaces():
    other = mv("churn-v1", "Serving", model="churn", ns="ml", champion=True)
    policy = {"metadata": {"name": "iris-retrain", "namespace": "default"}, "spec": {"model": "iris"}}
    out = render.version_tree([*LINEAGE, other], [policy], NOW, all_namespaces=True)
    heads = [line for line in out.splitlines() if line.startswith("Model ")]
    assert heads == [
        "Model iris (namespace default): champion iris-r1-a1b2c, RetrainPolicy iris-retrain",
        "Model churn (namespace ml): champion churn-v1",
    ]


def test_colour_only_when_asked_and_alignment_kept():
    plain = render.version_tree(LINEAGE, [], NOW)
    painted = render.version_tree(LINEAGE, [], NOW, colour=True)
    assert "\033[" not in plain and "\033[32mServing" in painted and "\033[31mRejected" in painted
    strip = __import__("re").compile(r"\033\[[0-9;]*m")
    assert strip.sub("", painted).replace("\033[1m", "") == plain


class Tty:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_colour_wanted_follows_the_terminal_and_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_wanted(Tty(True)) and not colour_wanted(Tty(False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_wanted(Tty(True))


def test_age_like_kubectl():
    assert [
        render.age(t, NOW) for t in ("2026-11-29T11:59:58Z", "2026-11-29T11:53:00Z", "2026-11-27T11:00:00Z")
    ] == [
        "2s",
        "7m",
        "2d",
    ]
    assert render.age(None, NOW) == "<unknown>"


# --- history --------------------------------------------------------------------------------------------


def test_history_merges_audit_and_events_in_time_order_once_each():
    promoted = (
        "Promoting: promotion requested (r1); requested by annotation:r1 (field manager kubectl-modelops)"
    )
    versions = [
        mv("iris-v2", "Serving", history=[
            {"time": "2026-11-29T11:10:00Z", "decision": "Promoted", "reason": "Promoting", "message": promoted,
             "by": "annotation:r1 (field manager kubectl-modelops)", "approvedBy": "alice"},
        ]),
        mv("iris-v3", "Rejected", history=[
            {"time": "2026-11-29T11:20:00Z", "decision": "Rejected", "reason": "Rejected", "message": "rejected: x",
             "by": "operator"},
        ]),
    ]  # fmt: skip
    events = [
        {"involvedObject": {"name": "iris-v2"}, "reason": "Promoting", "message": promoted, "type": "Normal",
         "lastTimestamp": "2026-11-29T11:10:00Z"},  # the same decision: shown once
        {"involvedObject": {"name": "iris-v2"}, "reason": "Trained", "message": "Trained iris: accuracy=0.97",
         "type": "Normal", "lastTimestamp": "2026-11-29T11:05:00Z", "count": 1},
        {"involvedObject": {"name": "iris-v3"}, "reason": "TrainingStarted", "message": "Training ...",
         "eventTime": "2026-11-29T11:15:00.123456Z", "type": "Normal", "count": 3},
    ]  # fmt: skip
    rows = render.decisions(versions, events)
    assert [(d.version, d.what) for d in rows] == [
        ("iris-v2", "Trained"),
        ("iris-v2", "Promoted"),
        ("iris-v3", "TrainingStarted"),
        ("iris-v3", "Rejected"),
    ]
    assert rows[1].by == "annotation:r1 (field manager kubectl-modelops), approved by alice"
    # within one second, Events keep the order etcd wrote them in
    same = [
        {"involvedObject": {"name": "v"}, "reason": r, "message": r, "lastTimestamp": "2026-11-29T11:00:00Z",
         "metadata": {"resourceVersion": rv}}
        for r, rv in (("Validated", "120"), ("Trained", "99"), ("Deployed", "130"))
    ]  # fmt: skip
    assert [d.what for d in render.decisions([], same)] == ["Trained", "Validated", "Deployed"]
    assert rows[2].by == "event x3" and rows[3].warning
    table = render.history_table(rows)
    assert table.splitlines()[0].split() == ["TIME", "VERSION", "DECISION", "BY", "MESSAGE"]
    assert "\033[" not in table and "\033[31mRejected" in render.history_table(rows, colour=True)


# --- what the commands send or refuse ------------------------------------------------------------------


def test_previous_champion_is_the_one_superseded_last():
    assert render.previous_champion(LINEAGE) == "iris-v1"
    older = mv("iris-v0b", "Superseded", created="2026-11-29T08:30:00Z",
               timestamps={"promoted": "2026-11-29T08:31:00Z", "superseded": "2026-11-29T09:05:00Z"})  # fmt: skip
    assert render.previous_champion([*LINEAGE, older]) == "iris-v1"
    retired = [m for m in LINEAGE if m["metadata"]["name"] != "iris-v1"]
    with pytest.raises(render.Refusal, match="no earlier champion of iris to roll back to"):
        render.previous_champion([*retired, {**older, "spec": {**older["spec"], "retired": True}}])
    with pytest.raises(render.Refusal, match="has no champion"):
        render.previous_champion([mv("a", "Training")])


@pytest.mark.parametrize(
    ("version", "words"),
    [
        (mv("a", "Serving", champion=True), "a is already the champion of iris"),
        (mv("a", "Failed"), "cannot promote a: it failed"),
        (mv("a", "Rejected"), "cannot promote a: it was rejected"),
        (mv("a", "Superseded", retired=True), "spec.retired is true"),
    ],
)
def test_promotions_the_operator_would_never_act_on_are_refused(version, words):
    with pytest.raises(render.Refusal, match=words):
        render.check_promotable(version)


def test_promotable_and_the_annotations_sent():
    render.check_promotable(mv("a", "Superseded"))
    render.check_promotable(mv("a", "Deploying"))
    assert render.promotion_patch("t1") == {"metadata": {"annotations": {"modelops.dev/promote": "t1"}}}
    assert (
        render.promotion_patch("t1", "alice")["metadata"]["annotations"]["modelops.dev/approved-by"]
        == "alice"
    )
    assert render.retrain_patch("t2") == {"metadata": {"annotations": {"modelops.dev/retrain": "t2"}}}


def test_the_champion_cannot_be_retired():
    with pytest.raises(render.Refusal, match="it is the champion of iris; promote another first"):
        render.check_retirable(mv("a", "Serving", champion=True))
    render.check_retirable(mv("a", "Superseded"))


def test_card_route_and_service():
    assert render.card_path("iris", True) == "v2/models/iris/card?format=markdown"
    assert render.card_path("iris", False) == "v2/models/iris/card"
    serving = {"service": "iris-v1-server", "replicas": 1, "readyReplicas": 1}
    assert render.card_service(mv("iris-v1", "Serving", serving=serving)) == "iris-v1-server"
    with pytest.raises(render.Refusal, match=r"no ready server \(0/0 replicas ready\)"):
        render.card_service(
            mv("iris-v1", "Superseded", serving={**serving, "replicas": 0, "readyReplicas": 0})
        )
    gone = mv("iris-v1", "Retired")
    gone["status"]["training"] = {"card": "pvc://modelops-artifacts/iris/iris-v1/model-card.md"}
    with pytest.raises(render.Refusal, match=r"no server \(phase Retired\); the card file is at pvc://"):
        render.card_service(gone)


def test_kubectl_connection_flags_on_every_command():
    for argv in (["get", "-A"], ["history", "iris"], ["promote", "v2"], ["rollback", "iris", "--to", "v1"],
                 ["retrain", "iris"], ["retire", "v1"], ["card", "iris", "--json"]):  # fmt: skip
        args = parser().parse_args([*argv, "--kubeconfig", "/k", "--context", "c", "-n", "ns"])
        assert (args.kubeconfig, args.context, args.namespace) == ("/k", "c", "ns")
