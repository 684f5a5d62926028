"""A misbehaving Prometheus, against the real operator and API server (issue 17 items 3 and 4).

Malformed and trickling answers come from a small stand-in (tests.support.prometheus.
MisbehavingPrometheus): the real Prometheus never sends them. Every malformed answer must end as an
Evaluated=False condition with its reason and a counted failure, a manual retrain request must be
honoured whatever Prometheus does, and a canary whose metrics are malformed is judged inconclusive
and rolled back, as when Prometheus is unreachable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from modelops.prometheus import EVALUATION_SECONDS, QUERY_SECONDS
from tests.integration.test_retrainpolicy import DRIFT, Policies, serve_champion, wait_evaluations
from tests.support.operator import OperatorProcess
from tests.support.prometheus import MisbehavingPrometheus
from tests.support.wait import eventually

pytestmark = pytest.mark.prometheus

VECTOR_OF = (
    '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, %s]}]}}'
)
MALFORMED = [
    # (answer, what the condition must say)
    (b"[1, 2, 3]", "malformed data"),
    (b'{"status": "success", "data": {"resultType": "vector", "result": null}}', "malformed data"),
    (
        b'{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"]]}]}}',
        "a matrix where an instant vector was expected",
    ),
    ((VECTOR_OF % '"lots"').encode(), "not a number"),
    ((VECTOR_OF % '"+Inf"').encode(), "+Inf"),
    (b'{"status": "success"}', "malformed data"),
]


def _operator(cluster: Any, namespace: str, tmp_path: Path, prometheus_url: str) -> OperatorProcess:
    return OperatorProcess(
        str(cluster.kubeconfig), namespace, tmp_path, MODELOPS_PROMETHEUS_URL=prometheus_url
    ).start()


def test_malformed_answers_are_reported_counted_and_manual_requests_still_honoured(
    mvs: Any, kubelet: Any, operator: OperatorProcess
) -> None:
    policies = Policies(mvs)
    serve_champion(mvs, kubelet)
    with MisbehavingPrometheus(MALFORMED[0][0]) as bad:
        policies.create("iris", prometheus={"url": bad.url}, triggers={"drift": DRIFT})
        failures = 0
        for answer, reason in MALFORMED:
            bad.answer = answer

            def reported(reason: str = reason, after: int = failures) -> dict[str, Any] | None:
                st = policies.status("iris")
                cond = next((c for c in st.get("conditions", []) if c["type"] == "Evaluated"), {})
                ok = (
                    cond.get("reason") == "PrometheusUnreachable"
                    and reason in cond.get("message", "")
                    and st.get("evaluationFailures", 0) > after
                )
                return st if ok else None

            # Retries back off (interval x 2^n, at most 8x the 2s interval).
            st = eventually(reported, timeout=60, what=f"the answer {answer[:60]!r} reported as {reason!r}")
            failures = st["evaluationFailures"]
        assert bad.queries, "the policy asked the stand-in"
        assert operator.proc is not None and operator.proc.poll() is None, "the operator keeps running"
        policies.annotate("iris", "modelops.dev/retrain", "please-1")
        child = eventually(lambda: policies.children("iris"), timeout=60, what="the manual retrain")[0]
        st = policies.committed("iris")
        assert (
            st["lastTrigger"]["reason"] == "manual"
            and st["lastTrigger"]["child"] == child["metadata"]["name"]
        )
        assert len(policies.children("iris")) == 1


def test_a_trickling_answer_never_holds_a_manual_request_for_long(
    mvs: Any, kubelet: Any, operator: OperatorProcess
) -> None:
    """One byte every 2 s: each read is in time, so only a total deadline stops the query."""
    policies = Policies(mvs)
    serve_champion(mvs, kubelet)
    answer = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
    with MisbehavingPrometheus(answer, trickle_seconds=2.0) as bad:
        policies.create("iris", prometheus={"url": bad.url}, triggers={"drift": DRIFT})
        cond = eventually(
            lambda: (
                (
                    c := next(
                        (
                            c
                            for c in policies.status("iris").get("conditions", [])
                            if c["type"] == "Evaluated"
                        ),
                        {},
                    )
                )
                and "did not answer within" in c.get("message", "")
                and c
            ),
            timeout=60,
            what="a slow answer to be reported",
        )
        assert f"{QUERY_SECONDS:.1f}s" in cond["message"], cond
        wait_evaluations(policies, "iris", 2, timeout=90)
        asked = time.monotonic()
        policies.annotate("iris", "modelops.dev/retrain", "please-1")
        eventually(
            lambda: policies.children("iris"),
            timeout=EVALUATION_SECONDS + 30,
            what="the manual retrain while Prometheus trickles",
        )
        assert time.monotonic() - asked < EVALUATION_SECONDS + 30


@pytest.mark.parametrize(("answer", "reason"), [MALFORMED[1], MALFORMED[4]], ids=["null result", "+Inf"])
def test_a_canary_with_malformed_metrics_is_rolled_back_as_inconclusive(
    mvs: Any,
    kubelet: Any,
    cluster: Any,
    namespace: str,
    crds: None,
    tmp_path: Path,
    answer: bytes,
    reason: str,
) -> None:
    with MisbehavingPrometheus(answer) as bad:
        op = _operator(cluster, namespace, tmp_path, bad.url)
        try:
            mvs.create("iris-v1")
            mvs.wait_phase("iris-v1", "Serving")
            canary = {"replicas": 1, "analysisSeconds": 10, "minRequests": 20}
            mvs.create(
                "iris-v2", serving={"drainSeconds": 0, "rollout": {"strategy": "Canary", "canary": canary}}
            )
            mvs.wait_phase("iris-v2", "Canary")
            st = mvs.wait_phase("iris-v2", "Rejected", timeout=120)
            assert "canary rolled back at step 1/1: analysis inconclusive" in st["message"], st["message"]
            assert reason in st["message"], st["message"]
            mvs.wait_event("iris-v2", "CanaryRolledBack")
            assert mvs.champion_of("iris") == "iris-v1"
            assert bad.queries and all('namespace="' + namespace + '"' in q for q in bad.queries)
        except BaseException:
            print(f"\n----- operator log ({op.log}) -----\n{op.tail(120)}")
            raise
        finally:
            op.stop()
