"""The operator is a controller, not a poller: events wake it, and a steady state costs no writes.

The operator runs with its default slow resync (300 s), so anything that happens within
seconds here happened because a watch event woke the right object. Its requests are
counted in the API server's audit log by its user agents (`modelops-operator/…` for its
client, `kopf/…` for Kopf's watches, finalizers and Events).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.support.harness import ROOT
from tests.support.kubelet import EXIT_CODE, MESSAGE, RESULT
from tests.support.simulate import Simulator, modelversion
from tests.support.wait import eventually

GROUP, VERSION = "modelops.dev", "v1alpha1"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
OPERATOR_AGENTS = ("modelops-operator/", "kopf/")


def operator_requests(audit_log: Path, namespace: str, since: float) -> list[dict[str, Any]]:
    """The operator's completed requests about `namespace` after `since` (epoch seconds)."""
    out = []
    with audit_log.open() as fh:
        for line in fh:
            ev = json.loads(line)
            if ev.get("stage") != "ResponseComplete" or not str(ev.get("userAgent", "")).startswith(
                OPERATOR_AGENTS
            ):
                continue
            if (ev.get("objectRef") or {}).get("namespace") != namespace:
                continue
            stamp = ev["stageTimestamp"].replace("Z", "+00:00")
            if datetime.fromisoformat(stamp).timestamp() >= since:
                out.append(ev)
    return out


def summary(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ev in events:
        ref = ev.get("objectRef") or {}
        key = (
            f"{ev['verb']} {ref.get('resource')}{'/' + ref['subresource'] if ref.get('subresource') else ''}"
        )
        counts[key] = counts.get(key, 0) + 1
    return counts


def serve_champions(
    mvs: Any, api_client: client.ApiClient, namespace: str, prefix: str, n: int, timeout: float
) -> float:
    """n versions, each the first of a model of its own (`<prefix><i>-v1`), played by the simulator
    until all are Serving; returns the seconds it took."""
    sim = Simulator(api_client, namespace)
    for i in range(n):
        mvs.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "modelversions", modelversion(f"{prefix}{i}-v1", f"{prefix}{i}")
        )
    try:
        return sim.run_until([f"{prefix}{i}-v1" for i in range(n)], "Serving", timeout=timeout)
    finally:
        sim.close()


@pytest.fixture
def audit_log(cluster: Any) -> Path:
    if cluster.audit_log is None:
        pytest.skip("reads the local cluster's audit log")
    assert cluster.audit_log.exists(), f"no audit log at {cluster.audit_log}"
    return cluster.audit_log


def test_a_failed_job_wakes_its_version_at_once(mvs, storage, operator, api_client, namespace):
    """No timer could have fired: the Job's watch event moved the version."""
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    mvs.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "modelversions", modelversion("v1", "m")
    )
    pod = eventually(
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(namespace, label_selector="modelops.dev/version=v1").items
                if p.status.phase == "Running"
            ),
            None,
        ),
        timeout=60,
        what="the training pod to run",
    )
    core.patch_namespaced_pod(
        pod.metadata.name,
        namespace,
        {
            "metadata": {
                "annotations": {RESULT: "Failed", EXIT_CODE: "2", MESSAGE: "error: column 'y' not found"}
            }
        },
    )

    def job_failed_at() -> float | None:
        job = batch.read_namespaced_job("v1-train", namespace)
        failed = any(c.type == "Failed" and c.status == "True" for c in job.status.conditions or [])
        return time.monotonic() if failed else None

    failed_at = eventually(job_failed_at, timeout=60, interval=0.05, what="the Job to fail")
    st = eventually(
        lambda: s if (s := mvs.status("v1")).get("phase") == "Failed" else None,
        timeout=10,
        interval=0.05,
        what="the version to see its failed Job (a watch event, not the 300 s resync)",
    )
    latency = time.monotonic() - failed_at
    print(f"Job failed → version Failed in {latency:.2f}s")
    assert "column 'y' not found" in st["message"]


def test_serving_versions_cost_no_writes(mvs, storage, operator, api_client, namespace, audit_log):
    """100 champions Serving, nothing changing: the operator writes nothing and reads nothing per object."""
    n = 100
    took = serve_champions(mvs, api_client, namespace, "m", n, timeout=600)
    print(f"{n} versions created → Serving in {took:.0f}s")
    time.sleep(5)  # let the last promotions' own echoes (status, Events) settle
    since = time.time()
    window = 120
    time.sleep(window + 2)  # the audit log batches for up to 1 s
    seen = operator_requests(audit_log, namespace, since)
    writes = [e for e in seen if e["verb"] in WRITES]
    reads = [e for e in seen if e["verb"] in ("get", "list")]
    assert not writes, f"operator wrote at steady state: {summary(writes)}"
    assert not reads, f"operator read outside its watches: {summary(reads)}"
    for i in (0, n - 1):
        assert mvs.phase(f"m{i}-v1") == "Serving"


def test_each_child_is_written_once_on_the_way_to_serving(
    mvs, storage, operator, api_client, namespace, audit_log
):
    """Create → Serving applies each version's Job, Deployment and Service once: a reconcile that
    finds its own last write in the cache writes nothing (writes only differences)."""
    n = 5
    since = time.time()
    serve_champions(mvs, api_client, namespace, "w", n, timeout=300)
    time.sleep(3)  # the audit log batches for up to 1 s
    applies: Counter[str] = Counter()
    for ev in operator_requests(audit_log, namespace, since):
        ref = ev.get("objectRef") or {}
        kind = ref.get("resource")
        if (
            ev["verb"] in WRITES
            and kind in ("jobs", "deployments", "services")
            and not ref.get("subresource")
        ):
            applies[f"{kind}/{ref.get('name')}"] += 1
    per_version = {"jobs", "deployments", "services"}
    assert {k.split("/")[0] for k in applies} == per_version, applies
    assert all(v == 1 for v in applies.values()), f"written more than once: {applies}"
    assert len(applies) == 3 * n + n, applies  # + each model's stable Service


def test_a_restart_among_serving_versions_writes_nothing(
    mvs, storage, operator, api_client, namespace, audit_log
):
    """An upgrade or a crash: the restarted operator lists every child, reconciles every version
    and, nothing having changed, writes nothing (it re-applied every Deployment and Service while
    listed objects were cached without their kind)."""
    import httpx

    n = 10
    serve_champions(mvs, api_client, namespace, "r", n, timeout=300)
    time.sleep(5)  # the last promotions' own echoes settle
    operator.stop()
    since = time.time()
    operator.start()

    def reconciled() -> bool:
        try:
            samples = operator.samples()
        except httpx.HTTPError:
            return False  # not listening yet
        total = sum(
            v
            for (name, labels), v in samples.items()
            if name == "modelops_reconciles_total" and ("kind", "ModelVersion") in labels
        )
        return total >= n

    eventually(reconciled, timeout=120, interval=0.5, what=f"the restarted operator to reconcile all {n}")
    time.sleep(5)  # writes it would make follow its reconciles within a second; the audit log flushes
    writes = [e for e in operator_requests(audit_log, namespace, since) if e["verb"] in WRITES]
    assert not writes, f"the restarted operator wrote: {summary(writes)}"
    assert all(mvs.phase(f"r{i}-v1") == "Serving" for i in range(n))


def most_at_once(events: list[dict[str, Any]]) -> int:
    """The most requests in flight at one moment, from their received and completed times."""
    edges = []
    for ev in events:
        for stamp, step in ((ev["requestReceivedTimestamp"], 1), (ev["stageTimestamp"], -1)):
            edges.append((datetime.fromisoformat(stamp.replace("Z", "+00:00")), step))
    inside = most = 0
    for _, step in sorted(edges):  # a request ending at the instant another starts: not together
        inside += step
        most = max(most, inside)
    return most


def test_service_creations_never_exceed_the_cap(mvs, storage, operator, api_client, namespace, audit_log):
    """30 models' first versions at once, each promoted with a version Service and a stable Service
    of its own: the API server allocates ClusterIPs one at a time, so the operator sends at most
    MODELOPS_SERVICE_CREATIONS of those creations at once (2, as shipped), and every version still
    gets both. The others wait in the queue, not in a worker."""
    shipped = yaml.safe_load((ROOT / "manifests/base/settings.yaml").read_text())["data"]
    cap = int(shipped["MODELOPS_SERVICE_CREATIONS"])
    n = 30
    since = time.time()
    serve_champions(mvs, api_client, namespace, "m", n, timeout=600)
    time.sleep(2)  # the audit log batches for up to 1 s
    created = [
        e
        for e in operator_requests(audit_log, namespace, since)
        if (e.get("objectRef") or {}).get("resource") == "services"
        and e["verb"] in ("create", "patch")
        and (e.get("responseStatus") or {}).get("code") == 201
    ]
    names = {e["objectRef"]["name"] for e in created}
    assert names == {f"m{i}-v1-server" for i in range(n)} | {f"m{i}" for i in range(n)}, sorted(names)
    assert most_at_once(created) <= cap, f"{most_at_once(created)} Service creations at once"


@contextlib.contextmanager
def _operator(kubeconfig: Path, namespace: str, tmp_path: Path, prometheus: Any, **env: str) -> Iterator[Any]:
    """An operator process of the test's own, with `env` settings; its log is printed when the
    test fails, and it is stopped after."""
    from tests.support.operator import OperatorProcess

    op = OperatorProcess(str(kubeconfig), namespace, tmp_path, MODELOPS_PROMETHEUS_URL=prometheus.url, **env)
    op.start()
    try:
        yield op
    except BaseException:
        print(f"\n----- operator log ({op.log}) -----\n{op.tail(120)}")
        raise
    finally:
        op.stop()


def test_a_version_waiting_for_a_service_creation_slot_says_so(
    mvs, storage, cluster, api_client, namespace, prometheus, tmp_path
):
    """One Service creation at a time (MODELOPS_SERVICE_CREATIONS=1), each held by a webhook as a
    loaded API server holds them: a deployed version that finds no slot free says Deploying and
    why, rather than keeping its last phase (Training, for 40 minutes in the 10,000 run), and both
    versions serve once the creations go through."""
    from tests.support.held_admission import held_service_creations

    names = ("a-v1", "b-v1")
    with (
        held_service_creations(api_client, namespace, tmp_path / "hold") as release,
        _operator(cluster.kubeconfig, namespace, tmp_path, prometheus, MODELOPS_SERVICE_CREATIONS="1"),
    ):
        sim = Simulator(api_client, namespace)
        try:
            for name in names:
                mvs.create(name, name.split("-")[0])

            def one_waits() -> tuple[str, dict[str, Any]] | None:
                """A version waiting for a slot, with the status that says so (read once)."""
                sim.step()
                for name in names:
                    st = mvs.status(name)
                    ready = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})
                    if ready.get("reason") == "WaitingForServiceSlot":
                        return name, st
                return None

            name, st = eventually(one_waits, timeout=120, interval=0.5, what="a version waiting for a slot")
            assert st["phase"] == "Deploying", st
            assert "waiting for a Service creation slot (1 Service creations in flight" in st["message"], st
            release.set()
            sim.run_until(names, "Serving", timeout=120)
            assert mvs.condition(name, "Ready")["reason"] != "WaitingForServiceSlot"
        finally:
            sim.close()


KOPF_DEFAULT_BACKOFF = 60.0
"""Kopf's default retry delay after a failed handler: what recovery took before issue 17.6."""


@contextlib.contextmanager
def _operator_via_proxy(
    cluster: Any, namespace: str, tmp_path: Path, prometheus: Any, **env: str
) -> Iterator[tuple[Any, Any]]:
    """The operator reaching the API server through a TcpProxy: (operator, proxy)."""
    from tests.support.proxy import TcpProxy

    server = next(c["cluster"]["server"] for c in yaml.safe_load(cluster.kubeconfig.read_text())["clusters"])
    host, port = server.removeprefix("https://").rsplit(":", 1)
    proxy = TcpProxy(host, int(port)).start()
    kubeconfig = proxy.kubeconfig(Path(cluster.kubeconfig), tmp_path / "via-proxy.kubeconfig")
    try:
        with _operator(kubeconfig, namespace, tmp_path, prometheus, **env) as op:
            yield op, proxy
    finally:
        proxy.stop()


def _job(api_client: client.ApiClient, namespace: str, name: str) -> Any:
    jobs = client.BatchV1Api(api_client).list_namespaced_job(
        namespace, label_selector=f"modelops.dev/version={name}"
    )
    return jobs.items or None


def _silence_then_create(mvs: Any, api_client: client.ApiClient, namespace: str, proxy: Any) -> float:
    """a-v1 gets its Job (the operator's pool now holds connections), the operator's connections go
    silent, then b-v1 is created: its reconcile's first write is lost. When they went silent."""
    mvs.create("a-v1", "a")
    eventually(lambda: _job(api_client, namespace, "a-v1"), timeout=120, what="a-v1's Job")
    time.sleep(2)  # its reconciles end; their connections wait in the pool
    proxy.silence()
    silenced = time.monotonic()
    mvs.create("b-v1", "b")  # Kopf's watch, sent before, still streams: the operator sees it
    return silenced


def test_work_in_flight_resumes_within_seconds_of_an_api_server_outage(
    mvs, storage, kubelet, cluster, namespace, prometheus, tmp_path
):
    """The operator loses the API server (a proxy on its path is cut) while a version trains; the
    trainer reports meanwhile. Once the path is back, the version moves on within seconds, not
    after a 60 s handler backoff, and reaches Serving."""
    with _operator_via_proxy(cluster, namespace, tmp_path, prometheus) as (_, proxy):
        mvs.create("iris-v1")
        eventually(lambda: mvs.phase("iris-v1") == "Training", timeout=180, what="iris-v1 Training")
        proxy.cut()
        eventually(
            lambda: (mvs.status("iris-v1").get("training") or {}).get("succeeded"),
            timeout=180,
            what="the trainer's report, written while the operator is cut off",
        )
        time.sleep(15)  # the operator's retries and watch reconnects have failed and backed off
        assert mvs.phase("iris-v1") == "Training", "the operator could not have seen the report"
        proxy.restore()
        back = time.monotonic()
        eventually(
            lambda: mvs.phase("iris-v1") in ("Deploying", "Serving"),
            timeout=KOPF_DEFAULT_BACKOFF,
            what="the version to move on after the API server came back",
        )
        resumed = time.monotonic() - back
        print(f"resumed {resumed:.1f}s after the outage")
        assert resumed < KOPF_DEFAULT_BACKOFF / 2, f"resumed {resumed:.1f}s after the outage"
        eventually(lambda: mvs.phase("iris-v1") == "Serving", timeout=180, what="iris-v1 Serving")


def test_a_request_lost_on_a_dead_connection_times_out_and_the_reconcile_retries(
    mvs, storage, cluster, api_client, namespace, prometheus, tmp_path
):
    """The operator's open connections die silently (what it sends is lost and nothing errs, as
    after an API server's fail-over behind a virtual IP). A new version's first write waits
    MODELOPS_API_TIMEOUT_SECONDS, fails, and the retry on a new connection makes its Job. Without
    a timeout the request waited forever, holding its worker and the version."""
    with _operator_via_proxy(cluster, namespace, tmp_path, prometheus, MODELOPS_API_TIMEOUT_SECONDS="3") as (
        op,
        proxy,
    ):
        silenced = _silence_then_create(mvs, api_client, namespace, proxy)
        # Without the timeout: 89 s, when the API server gave up on the request it never read.
        eventually(lambda: _job(api_client, namespace, "b-v1"), timeout=60, what="b-v1's Job")
        took = time.monotonic() - silenced
        print(f"b-v1's Job {took:.1f}s after the connections went silent")
        assert took >= 3, "no request was lost: the test would not see a missing timeout"
        assert took < 30, f"b-v1's Job only {took:.0f}s after"
        assert "Read timed out" in op.log.read_text(errors="replace"), op.tail(60)


def test_a_stopping_operator_waits_for_a_stuck_reconcile_only_as_long_as_its_grace(
    mvs, storage, cluster, api_client, namespace, prometheus, tmp_path
):
    """SIGTERM while a reconcile waits on a request that cannot be answered (its connection died
    silently; the request timeout is longer than the pod's termination grace): the operator exits
    after MODELOPS_SHUTDOWN_GRACE_SECONDS, saying what it left, not when the request gives up."""
    with _operator_via_proxy(
        cluster,
        namespace,
        tmp_path,
        prometheus,
        MODELOPS_API_TIMEOUT_SECONDS="300",
        MODELOPS_SHUTDOWN_GRACE_SECONDS="3",
    ) as (op, proxy):
        _silence_then_create(mvs, api_client, namespace, proxy)

        def stuck() -> bool:
            samples = op.samples()
            return any(
                v >= 2
                for (name, labels), v in samples.items()
                if name == "modelops_workqueue_longest_running_processor_seconds"
            )

        eventually(stuck, timeout=60, interval=0.5, what="a reconcile stuck on a silent connection")
        took = op.terminate(timeout=40)
        print(f"exited {took}s after SIGTERM")
        log = op.log.read_text(errors="replace")
        assert took is not None, f"still running 40 s after SIGTERM:\n{op.tail(40)}"
        assert took < 20, f"exited only after {took:.0f}s"
        assert "Exiting with 1 reconcile(s) still running" in log and "b-v1" in log, op.tail(40)
        assert _job(api_client, namespace, "b-v1") is None, "the stuck reconcile cannot have written"


@pytest.fixture
def peering_crds(cluster: Any) -> Any:
    """Kopf's peering CRDs as the kopf-peering overlay installs them; removed after if made here."""
    from tests.integration.test_install import kubectl

    kc = cluster.kubeconfig
    made = []
    for crd in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        if not kubectl(kc, "get", "crd", crd, "--ignore-not-found", "-o", "name").stdout.strip():
            made.append(crd)
    kubectl(kc, "apply", "--server-side", "-k", ROOT / "manifests/kopf-peering/crds")
    kubectl(kc, "wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    yield kc
    for crd in made:
        kubectl(kc, "delete", "crd", crd, "--ignore-not-found", "--wait=false", check=False)


def test_an_operator_paused_by_a_peer_of_higher_priority_reconciles_nothing(
    mvs, storage, peering_crds, cluster, api_client, namespace, prometheus, tmp_path
):
    """Two operators on one peering object, as in a rolling update of the kopf-peering overlay.
    The one of lower priority pauses; the other is then frozen (SIGSTOP: its peering record stays
    alive). A training Job fails meanwhile, which the paused one's own watches see: nobody may act
    on it. Thawed, the operator of higher priority marks the version Failed; stopped, it leaves
    the peering object and the first one resumes."""
    from tests.support.operator import OperatorProcess

    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    mvs.custom.create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "modelops"}},
    )
    peer = {"MODELOPS_PROMETHEUS_URL": prometheus.url}
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    low = OperatorProcess(
        str(cluster.kubeconfig),
        namespace,
        tmp_path / "low",
        args=("--peering=modelops", "--priority=100"),
        **peer,
    ).start()
    high = OperatorProcess(
        str(cluster.kubeconfig),
        namespace,
        tmp_path / "high",
        args=("--peering=modelops", "--priority=200"),
        **peer,
    )
    try:
        mvs.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "modelversions", modelversion("v1", "m")
        )
        pod = eventually(
            lambda: next(
                (
                    p
                    for p in core.list_namespaced_pod(
                        namespace, label_selector="modelops.dev/version=v1"
                    ).items
                    if p.status.phase == "Running"
                ),
                None,
            ),
            timeout=60,
            what="the training pod the first operator started",
        )
        high.start()
        eventually(
            lambda: "Pausing operations in favour of" in low.log.read_text(errors="replace"),
            timeout=60,
            what="Kopf in the first operator to pause for the second",
        )
        high.freeze()
        core.patch_namespaced_pod(
            pod.metadata.name, namespace, {"metadata": {"annotations": {RESULT: "Failed", EXIT_CODE: "2"}}}
        )

        def job_failed() -> bool:
            job = batch.read_namespaced_job("v1-train", namespace)
            return any(c.type == "Failed" and c.status == "True" for c in job.status.conditions or [])

        eventually(job_failed, timeout=60, what="the Job to fail")
        time.sleep(10)  # a woken reconcile takes well under a second (test_a_failed_job_wakes_…)
        assert mvs.phase("v1") == "Training", "the paused operator acted while its peer held the objects"
        high.thaw()
        eventually(lambda: mvs.phase("v1") == "Failed", timeout=60, what="the operator of higher priority")
        assert "Paused by peering" in low.log.read_text(errors="replace")
        high.stop()
        eventually(
            lambda: "Resumed after the peering pause" in low.log.read_text(errors="replace"),
            timeout=120,
            what="the first operator to resume once its peer left",
        )
    except BaseException:
        for op in (low, high):
            print(f"\n----- operator log ({op.log}) -----\n{op.tail(60)}")
        raise
    finally:
        high.stop()
        low.stop()
