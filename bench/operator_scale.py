"""How the operator scales: N ModelVersions on one operator process, on the local cluster.

For each N: create N versions (one model each, so each becomes a champion) at a fixed rate,
let kwok hold their pods and tests/support/simulate.py play trainer and kubelet, then count
the operator's requests in the API server's audit log by verb (its user agents are
`modelops-operator/…` and Kopf's `kopf/…`) during a steady window, and read its RSS and CPU
from /proc; then restart it among those objects and time it until it has reconciled them all.
Writes bench/results/operator-scale-<date>.json and operator-scale-latest.md (`--models` or
`--set`: an experiment, printed only).

    python bench/operator_scale.py --sizes 100 1000 --steady 300
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402

from tests.cluster.localcluster import LocalCluster  # noqa: E402
from tests.support.kubelet import local_persistent_volume  # noqa: E402
from tests.support.operator import OperatorProcess  # noqa: E402
from tests.support.simulate import WRITERS, Simulator, modelversion  # noqa: E402

GROUP, VERSION = "modelops.dev", "v1alpha1"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
AGENTS = ("modelops-operator/", "kopf/")
WAIT = "modelops_workqueue_queue_duration_seconds"
CREATORS = 16
"""Threads creating versions on the schedule (and the API client's connection pool)."""
BEFORE = {
    "writes_per_min_100_serving": 1760,
    "reads_per_min_100_serving": 3500,
    "cpu_s_per_min_100_serving": 14,
    "create_to_job_p50_s_1000": 46,
    "create_to_job_p99_s_1000": 102,
    "rss_mib_1000": 177,
}
"""The figures measured before the controller core (issue 9), with the 10 s timer."""


def shipped_settings() -> dict[str, str]:
    """The shipped ConfigMap's tuning (workers, rate limit, resync, malloc arenas): the bench runs
    the operator as installed, less what only makes sense in a pod (ports, images, Prometheus)."""
    data = yaml.safe_load((ROOT / "manifests" / "base" / "settings.yaml").read_text())["data"]
    tuning = (
        "MODELOPS_WORKERS",
        "MODELOPS_API_QPS",
        "MODELOPS_API_BURST",
        "MODELOPS_SERVICE_CREATIONS",
        "MODELOPS_RESYNC_SECONDS",
    )
    return {k: v for k, v in data.items() if k in tuning or k.startswith("MALLOC_")}


SHIPPED = shipped_settings()


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process and its children threads."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def operator_pid(op: OperatorProcess) -> int:
    """The python process itself (the Popen is the session leader running it)."""
    assert op.proc is not None
    return op.proc.pid


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def operator_requests(path: Path, namespace: str, since: float, until: float) -> list[tuple[str, float]]:
    """The operator's requests that completed in [since, until), read once from the audit log:
    ("verb resource[/subresource]", seconds from received to response complete)."""
    found = []
    with path.open() as fh:
        for line in fh:
            ev = json.loads(line)
            if ev.get("stage") != "ResponseComplete" or not str(ev.get("userAgent", "")).startswith(AGENTS):
                continue
            ref = ev.get("objectRef") or {}
            if ref.get("namespace") not in (namespace, None):
                continue
            done = _timestamp(ev["stageTimestamp"])
            if since <= done < until:
                sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
                found.append(
                    (
                        f"{ev['verb']} {ref.get('resource')}{sub}",
                        done - _timestamp(ev["requestReceivedTimestamp"]),
                    )
                )
    return found


def mean_latency(requests: list[tuple[str, float]]) -> dict[str, list[float]]:
    """By "verb resource": [count, mean seconds], watches (open for minutes) left out."""
    seen: dict[str, list[float]] = {}
    for key, took in requests:
        if not key.startswith("watch "):
            count, total = seen.get(key, [0, 0.0])
            seen[key] = [count + 1, total + took]
    return {k: [c, round(t / c, 4)] for k, (c, t) in sorted(seen.items())}


class Watcher(threading.Thread):
    """One watch kept open, resumed from its last resourceVersion (a new watch without one would
    replay every object: at 10,000 that replay was itself a load on the API server)."""

    def __init__(self, list_call: Any, *args: Any) -> None:
        super().__init__(daemon=True)
        self.list_call, self.args = list_call, args
        self.stop = threading.Event()

    def seen(self, obj: dict[str, Any], now: float) -> None:
        raise NotImplementedError

    def run(self) -> None:
        w = watch.Watch()
        version: str | None = None
        while not self.stop.is_set():
            kwargs: dict[str, Any] = {"timeout_seconds": 60, "allow_watch_bookmarks": True}
            if version:
                kwargs["resource_version"] = version
            try:
                for ev in w.stream(self.list_call, *self.args, **kwargs):
                    obj = ev["raw_object"]
                    if ev["type"] == "ERROR":  # the watch expired: start again from a replay
                        version = None
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.seen(obj, time.monotonic())
                    if self.stop.is_set():
                        break
            except client.ApiException as e:
                if e.status != 410:
                    raise
                version = None  # expired: start again from a replay


class JobWatch(Watcher):
    """When each training Job appears, as a watch sees it (monotonic clock)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(client.BatchV1Api(api).list_namespaced_job, namespace)
        self.first_seen: dict[str, float] = {}

    def seen(self, obj: dict[str, Any], now: float) -> None:
        self.first_seen.setdefault(obj["metadata"]["name"].removesuffix("-train"), now)


class PhaseWatch(Watcher):
    """Each version's phase, as a watch sees it (no relist of N versions every few seconds)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        custom = client.CustomObjectsApi(api)
        super().__init__(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "modelversions")
        self.phase: dict[str, str] = {}
        self.serving_pods: dict[str, int] = {}
        """Ready server pods by version, as its status.serving says (a drained former champion: 0)."""

    def seen(self, obj: dict[str, Any], now: float) -> None:
        status = obj.get("status") or {}
        self.phase[obj["metadata"]["name"]] = status.get("phase", "")
        self.serving_pods[obj["metadata"]["name"]] = (status.get("serving") or {}).get("readyReplicas", 0)


def restart(op: OperatorProcess, settle: float = 15.0, timeout: float = 600.0) -> tuple[float, float]:
    """Restart the operator among the objects it made; (RSS MiB, seconds until it has re-reconciled
    them all: its reconcile count then stays put for `settle` seconds).

    What an upgrade or a crash costs: the seconds before the operator acts on everything again, and
    the memory of a start among existing objects (Kopf holds every watched object's body until all
    its indexes are filled, so this RSS is higher than the one after the burst)."""
    op.stop()
    started = time.monotonic()
    op.start()
    last, since = -1.0, started
    while time.monotonic() < started + timeout:
        try:
            total = sum(
                v for k, v in operator_metrics(op).items() if k.startswith("modelops_reconciles_total")
            )
        except Exception:  # not listening yet
            total = -1.0
        if total != last:
            last, since = total, time.monotonic()
        elif total > 0 and time.monotonic() - since > settle:
            break
        time.sleep(1)
    return proc_stats(operator_pid(op))[0], since - started


def operator_metrics(op: OperatorProcess) -> dict[str, float]:
    """The operator's own work-queue and reconcile figures, from its /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if labels.get("kind", labels.get("name")) != "ModelVersion":
                continue
            key = s.name + "".join(f"|{labels[k]}" for k in ("result", "priority", "le") if k in labels)
            out[key] = out.get(key, 0.0) + s.value
    return out


def histogram_quantile(m: dict[str, float], name: str, priority: str, q: float) -> float | None:
    """The upper bound of the bucket holding quantile q (as PromQL's histogram_quantile, unsmoothed)."""
    buckets = sorted(
        (float(k.rsplit("|", 1)[1]), v) for k, v in m.items() if k.startswith(f"{name}_bucket|{priority}|")
    )
    if not buckets or buckets[-1][1] == 0:
        return None
    target = q * buckets[-1][1]
    return next(le for le, count in buckets if count >= target)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def apiserver_latency(api: client.ApiClient) -> dict[str, tuple[float, float]]:
    """The API server's own request latency by verb, all clients together: verb -> (count, seconds)."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = api.call_api(
        "/metrics",
        "GET",
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=30,
    )
    out: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(resp.data.decode()):
        if family.name != "apiserver_request_duration_seconds":
            continue
        for s in family.samples:
            if s.name.endswith(("_count", "_sum")) and s.labels.get("verb") not in ("WATCH", "CONNECT"):
                count, total = out.get(s.labels["verb"], (0.0, 0.0))
                if s.name.endswith("_count"):
                    count += s.value
                else:
                    total += s.value
                out[s.labels["verb"]] = (count, total)
    return out


class Timeline(threading.Thread):
    """Every `every` seconds from the burst's start: versions created, Jobs seen, the operator's
    queue depth, reconciles and their mean duration since the last sample, its CPU, and the load
    average. It shows when new versions wait and what the workers were doing meanwhile."""

    def __init__(self, op: OperatorProcess, created: dict[str, float], jobs: JobWatch, every: float = 2.0):
        super().__init__(daemon=True)
        self.op, self.created, self.jobs, self.every = op, created, jobs, every
        self.samples: list[dict[str, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        start, pid = time.monotonic(), operator_pid(self.op)
        count0 = sum0 = cpu0 = 0.0
        while not self.stop.wait(self.every):
            try:
                m = operator_metrics(self.op)
                _rss, cpu = proc_stats(pid)
            except Exception:  # a slow scrape under load: skip this sample
                continue
            count = m.get("modelops_reconcile_duration_seconds_count", 0.0)
            total = m.get("modelops_reconcile_duration_seconds_sum", 0.0)
            done = count - count0
            self.samples.append(
                {
                    "t": round(time.monotonic() - start, 1),
                    "created": len(self.created),
                    "jobs": len(self.jobs.first_seen),
                    "depth": m.get("modelops_workqueue_depth", 0.0),
                    "reconciles": done,
                    "mean_reconcile_s": round((total - sum0) / done, 3) if done else None,
                    "cpu": round((cpu - cpu0) / self.every, 2) if cpu0 else None,
                    "load1": os.getloadavg()[0],
                }
            )
            count0, sum0, cpu0 = count, total, cpu


GOROUTINE = re.compile(r"^goroutine \d+ \[([^\],]+)")
CALL_ARGS = re.compile(r"\((0x|\{|\.\.\.).*\)$")


def apiserver_goroutines(api: client.ApiClient) -> str:
    """kube-apiserver's goroutine dump (needs profiling on), summarised by `request_handlers`."""
    resp = api.call_api(
        "/debug/pprof/goroutine",
        "GET",
        query_params=[("debug", "2")],
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=60,
    )
    return request_handlers(resp.data.decode())


def request_handlers(dump: str) -> str:
    """Where the request handlers of a goroutine dump are: grouped by state and innermost
    Kubernetes frame, most first. A request that waits (on a lock, on etcd, on a loopback call)
    shows here and not in a CPU profile."""
    groups: Counter[tuple[str, str]] = Counter()
    for stack in dump.split("\n\n"):
        if "finisher.finishRequest" not in stack or not (state := GOROUTINE.match(stack)):
            continue
        frames = [CALL_ARGS.sub("", line) for line in stack.splitlines()[1:] if not line.startswith("\t")]
        inner = next((f for f in frames if f.startswith("k8s.io/")), "")
        # A handler runs in a goroutine of its own; the one waiting for it in finishRequest is not
        # counted again.
        if inner and "finisher.finishRequest" not in inner:
            groups[(state.group(1), inner)] += 1
    lines = [f"{count:5}  [{state}]  {frame}" for (state, frame), count in groups.most_common()]
    return "\n".join(lines) or "no request handler running"


def run_size(
    cluster: LocalCluster,
    api: client.ApiClient,
    n: int,
    rate: float,
    steady: float,
    workdir: Path,
    models: int | None = None,
    goroutines: bool = False,
) -> dict[str, Any]:
    """`models`: how many models the n versions belong to, taken in turn (default n: every version
    its own model). With fewer, each version supersedes its model's previous champion, and a
    version counts as done once Serving or Superseded. `goroutines`: as the last create returns,
    write where the API server's request handlers are to bench/results/apiserver-goroutines-<n>-<date>.txt."""
    models = models or n
    ns = f"scale-{n}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": ns}})
    # Training pods run as the trainer's ServiceAccount (never used here: no real trainer runs).
    core.create_namespaced_service_account(ns, {"metadata": {"name": "modelops-trainer"}})
    core.create_persistent_volume(
        local_persistent_volume(f"artifacts-{ns}", ns, "modelops-artifacts", workdir)
    )
    core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "modelops-artifacts"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": f"artifacts-{ns}",
                "storageClassName": "",
            },
        },
    )
    time.sleep(2)
    op = OperatorProcess(
        str(cluster.kubeconfig), ns, workdir, MODELOPS_PROMETHEUS_URL="http://127.0.0.1:9", **SHIPPED
    )
    op.start()
    custom = client.CustomObjectsApi(api)
    jobs = JobWatch(api, ns)
    jobs.start()
    phases = PhaseWatch(api, ns)
    phases.start()
    sim = Simulator(api, ns)
    stop_sim = threading.Event()
    last_report = [0.0]

    def simulate() -> None:
        while not stop_sim.is_set():
            before = len(sim.reported)
            sim.step()
            if len(sim.reported) != before:
                last_report[0] = time.monotonic()
            time.sleep(0.5)

    sim_thread = threading.Thread(target=simulate, daemon=True)
    sim_thread.start()
    small = {"resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}
    # The clock starts once the operator is watching: a sentinel version gets its Job first.
    sentinel = modelversion("sentinel-v1", "sentinel")
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modelversions", sentinel)
    ready_by = time.monotonic() + 180
    while "sentinel-v1" not in jobs.first_seen:
        if time.monotonic() > ready_by:
            raise SystemExit(f"the operator made no Job in 180 s:\n{op.tail()}")
        time.sleep(0.2)
    burst_started = time.time()
    created: dict[str, float] = {}
    timeline = Timeline(op, created, jobs)
    timeline.start()
    latency0 = apiserver_latency(api)
    start = time.monotonic()

    def create(i: int) -> None:
        """The i-th create at its slot of the schedule: one client waiting on each answer in turn
        reached 3.6 to 4.7 creates/s on a loaded API server, so CREATORS hold the rate together."""
        name = f"m{i % models}-v{i // models + 1}"
        body = modelversion(name, f"m{i % models}")
        body["spec"]["training"].update(small)
        body["spec"]["serving"].update(small)
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        created[name] = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modelversions", body)

    with ThreadPoolExecutor(CREATORS) as pool:
        list(pool.map(create, range(n)))  # in order of the schedule; raises the first failure
    create_seconds = time.monotonic() - start
    burst_ended = time.time()
    if goroutines:
        out = ROOT / "bench" / "results" / f"apiserver-goroutines-{n}-{datetime.now(UTC).date()}.txt"
        out.write_text(
            f"# kube-apiserver's request handlers as the last of {n} creates returned "
            f"(load average %.2f %.2f %.2f)\n" % os.getloadavg() + apiserver_goroutines(api) + "\n"
        )
    latency1 = apiserver_latency(api)
    names = list(created)
    deadline = time.monotonic() + max(900, n * 0.5)
    while True:
        serving = sum(1 for name in names if phases.phase.get(name) in ("Serving", "Superseded"))
        if serving == n or time.monotonic() > deadline:
            break
        time.sleep(1)
    all_serving_at = time.monotonic()
    # Former champions drain (drainSeconds) before scaling to 0: their status records the servers
    # going, which is the world changing, not steady state.
    while time.monotonic() < deadline and any(
        phases.phase.get(name) == "Superseded" and phases.serving_pods.get(name) for name in names
    ):
        time.sleep(1)
    drained_at = time.monotonic()
    timeline.stop.set()
    stop_sim.set()
    sim_thread.join()
    sim.close()
    lifecycle = operator_metrics(op)
    latencies = [jobs.first_seen[k] - created[k] for k in names if k in jobs.first_seen]
    # When the slowest 1 % were created, in seconds from the burst's start: a cluster in time
    # points at a stall (of the operator or the API server), a spread at steady queueing.
    slowest = sorted(names, key=lambda k: jobs.first_seen.get(k, float("inf")) - created[k])[
        -max(1, n // 100) :
    ]
    slow_created_at = sorted(round(created[k] - start, 1) for k in slowest)
    time.sleep(10)  # echoes of the last promotions settle
    pid = operator_pid(op)
    _rss0, cpu0 = proc_stats(pid)
    t0 = time.time()
    time.sleep(steady)
    t1 = time.time()
    rss1, cpu1 = proc_stats(pid)
    time.sleep(2)  # the audit log flushes once a second
    counts = Counter(key for key, _ in operator_requests(cluster.audit_log, ns, t0, t1))
    burst = operator_requests(cluster.audit_log, ns, burst_started, burst_ended + 1)
    during_burst = Counter(key for key, _ in burst)
    burst_latency = mean_latency(burst)
    minutes = (t1 - t0) / 60
    writes = sum(v for k, v in counts.items() if k.split()[0] in WRITES)
    reads = sum(v for k, v in counts.items() if k.split()[0] in ("get", "list"))
    rss_restarted, restart_seconds = restart(op)
    op.stop()
    jobs.stop.set()
    phases.stop.set()
    result = {
        "n": n,
        "models": models,
        "rate_per_s": rate,
        "create_seconds": round(create_seconds, 1),
        "jobs_seen": len(latencies),
        "create_to_job_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "create_to_job_p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        "serving": serving,
        "all_serving_after_last_report_s": round(all_serving_at - last_report[0], 1),
        "superseded_drained_after_last_report_s": round(drained_at - last_report[0], 1),
        "steady_minutes": round(minutes, 2),
        "steady_writes_per_min": round(writes / minutes, 2),
        "steady_reads_per_min": round(reads / minutes, 2),
        "steady_requests_by_verb": dict(counts),
        "burst_requests_by_verb": dict(during_burst),
        "reconciles_per_version": round(
            sum(v for k, v in lifecycle.items() if k.startswith("modelops_reconciles_total")) / (n + 1), 2
        ),
        "queue_wait_new_p50_s": histogram_quantile(lifecycle, WAIT, "new", 0.5),
        "queue_wait_new_p99_s": histogram_quantile(lifecycle, WAIT, "new", 0.99),
        "queue_wait_urgent_p99_s": histogram_quantile(lifecycle, WAIT, "urgent", 0.99),
        "slowest_1pct_created_at_s": slow_created_at,
        "apiserver_mean_latency_in_burst_s": {
            verb: round((total - latency0.get(verb, (0, 0))[1]) / (count - latency0.get(verb, (0, 0))[0]), 4)
            for verb, (count, total) in sorted(latency1.items())
            if count > latency0.get(verb, (0, 0))[0]
        },
        "operator_requests_in_burst_count_mean_s": burst_latency,
        "burst_timeline": timeline.samples,
        "operator_rss_mib": round(rss1, 1),
        "operator_rss_restarted_mib": round(rss_restarted, 1),
        "restart_to_all_reconciled_s": round(restart_seconds, 1),
        "operator_cpu_s_per_min": round((cpu1 - cpu0) / minutes, 2),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result), flush=True)
    core.delete_namespace(ns)
    return result


def write_results(results: list[dict[str, Any]]) -> Path:
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    path = out / f"operator-scale-{stamp}.json"
    # A size run later the same day replaces that size's row and keeps the others (10,000 runs alone).
    by_size = {r["n"]: r for r in (json.loads(path.read_text())["results"] if path.exists() else [])}
    by_size.update({r["n"]: r for r in results})
    results = [by_size[n] for n in sorted(by_size)]
    path.write_text(json.dumps({"before": BEFORE, "results": results}, indent=2))
    lines = [
        f"# Operator scale ({stamp}, 2 cores; kwok nodes, simulated trainer reports and server readiness)",
        "",
        "| versions | creates/s reached | create→Job p50 / p99 | queue wait of new versions p50 / p99 | reconciles per version to Serving | all Serving after last report | steady writes/min | steady reads/min | operator CPU s/min | RSS MiB (after the burst / a new process) | load avg (1/5/15 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        load = "/".join(f"{x:.1f}" for x in r["loadavg"])
        lines.append(
            f"| {r['n']} | {r['n'] / r['create_seconds']:.1f} | "
            f"{r['create_to_job_p50_s']} s / {r['create_to_job_p99_s']} s | "
            f"≤ {r['queue_wait_new_p50_s']} s / ≤ {r['queue_wait_new_p99_s']} s | {r['reconciles_per_version']} | "
            f"{r['all_serving_after_last_report_s']} s ({r['serving']}/{r['n']}) | {r['steady_writes_per_min']} | "
            f"{r['steady_reads_per_min']} | {r['operator_cpu_s_per_min']} | {r['operator_rss_mib']} / "
            f"{r.get('operator_rss_restarted_mib', 'not measured')} | {load} |"
        )
    lines += [
        "",
        "Before (10 s timer, issue 9): 100 Serving → 1,760 writes/min, 3,500 reads/min, 14 CPU-s/min; "
        "1,000 created at 15/s → create→Job p50 46 s, p99 102 s; RSS 177 MiB at 1,000.",
    ]
    md = out / "operator-scale-latest.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, default=20.0, help="creates per second")
    parser.add_argument("--steady", type=float, default=300.0, help="seconds of steady state to count")
    parser.add_argument(
        "--models",
        type=int,
        default=None,
        help="versions spread over this many models in turn (default: one model each); results go to stdout only",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the shipped settings (e.g. MODELOPS_WORKERS=16); results go to stdout only",
    )
    parser.add_argument(
        "--apiserver-goroutines",
        action="store_true",
        help="start kube-apiserver with profiling and dump where its request handlers are at the end of each burst",
    )
    args = parser.parse_args()
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in SHIPPED:
            parser.error(f"--set {name}: not one of the shipped settings {sorted(SHIPPED)}")
        SHIPPED[name] = value
    subprocess.run(["kubectl", "version", "--client"], check=True, capture_output=True)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"modelops-scale-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    with LocalCluster(profiling=args.apiserver_goroutines) as cluster:
        subprocess.run(
            [
                "kubectl",
                f"--kubeconfig={cluster.kubeconfig}",
                "apply",
                "--server-side",
                "-f",
                str(ROOT / "crds"),
            ],
            check=True,
            capture_output=True,
        )
        conf = client.Configuration()
        config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        conf.connection_pool_maxsize = CREATORS + WRITERS + 2  # the creators, the simulator, two watches
        api = client.ApiClient(conf)
        time.sleep(3)
        for n in args.sizes:
            results.append(
                run_size(
                    cluster, api, n, args.rate, args.steady, workdir, args.models, args.apiserver_goroutines
                )
            )
    # A tuning experiment: the results file holds the shipped settings' figures only.
    if args.set or args.models:
        print(json.dumps({"settings": SHIPPED, "results": results}, indent=2))
        return 0
    print(write_results(results).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
