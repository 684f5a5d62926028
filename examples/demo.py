"""The ModelOps demo: one model's whole life on a local Kubernetes, narrated as it happens.

  make demo            # or: python examples/demo.py [--keep]; root: a real node
  make demo KWOK=1     # or: --kwok; kwok nodes and the kubelet stand-in, no root needed

It builds or reuses the local control plane (tests/cluster) with a real node (kubelet,
containerd, kube-proxy; the trainer and model servers run as containers of the image built
here), starts the real Prometheus (finding the server pods by Kubernetes discovery), installs
the operator from manifests/ (it runs as the shipped Deployment's pod), applies examples/iris
as written, then drives traffic through the champion's Service:
first drawn from the training data, then drifted. With --kwok, kwok holds the pods and the
kubelet stand-in runs the trainer and servers as host processes, and the operator is a host
process too. The RetrainPolicy notices, retrains on the new data, the
challenger is validated against the champion and promoted, and retention collects the
oldest version. Exits 0 only if that loop closed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402

from tests.cluster.localcluster import LocalCluster, kubectl_on_path  # noqa: E402
from tests.cluster.node import NODE_IP  # noqa: E402
from tests.support.kubelet import Kubelet, local_persistent_volume  # noqa: E402
from tests.support.operator import OperatorDeployment, OperatorProcess  # noqa: E402
from tests.support.prometheus import (  # noqa: E402
    PrometheusServer,
    kubernetes_sd,
    kubernetes_sd_prometheus,
)
from tests.support.traffic import IrisTraffic  # noqa: E402

GROUP, VERSION, NS = "modelops.dev", "v1alpha1", "modelops-demo"
SHIFT = {"petal length (cm)": 3.0, "petal width (cm)": 1.5}
NEW_DATA = "datasets/iris-2026-q4.csv"
T0 = time.monotonic()
BOLD, DIM, RED, GREEN, YELLOW, RESET = (
    ("\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m", "\033[0m")
    if sys.stdout.isatty()
    else ("",) * 6
)


def say(who: str, text: str, colour: str = "") -> None:
    print(
        f"{DIM}[{time.monotonic() - T0:6.1f}s]{RESET} {BOLD}{who:<16}{RESET} {colour}{text}{RESET}",
        flush=True,
    )


def kubectl(kubeconfig: str, *args: str) -> str:
    out = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


class Narrator:
    """Polls the two kinds and tells every change once."""

    def __init__(self, custom: client.CustomObjectsApi) -> None:
        self.custom = custom
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.evaluations: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def versions(self) -> dict[str, dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "modelversions")["items"]
        return {i["metadata"]["name"]: i for i in items}

    def policy(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, "retrainpolicies", "iris")

    def tick(self) -> None:
        current = self.versions()
        for name, mv in sorted(current.items(), key=lambda kv: kv[1]["metadata"]["creationTimestamp"]):
            st = mv.get("status") or {}
            key = (st.get("phase"), st.get("message"))
            if self.seen.get(name) != key and st.get("phase"):
                colour = {"Serving": GREEN, "Failed": RED, "Rejected": RED, "Superseded": YELLOW}.get(
                    st["phase"], ""
                )
                say(name, f"{st['phase']:<11} {st.get('message', '')}", colour)
                self.seen[name] = key
        for name in [n for n in self.seen if n not in current and not n.startswith("policy")]:
            say(name, "deleted by retention (artifacts removed first)", YELLOW)
            self.deleted.append(name)
            del self.seen[name]
        st = self.policy().get("status") or {}
        t = st.get("lastEvaluationTime")
        if t and self.seen.get("policy/eval") != (t,):
            self.seen["policy/eval"] = (t,)
            feats = st.get("features") or {}
            scores = ", ".join(
                f"{f.split(' (')[0]} {v['score']:.2f}"
                if v.get("score") is not None
                else f"{f.split(' (')[0]} n/a"
                for f, v in sorted(feats.items())
            )
            ev = next((c for c in st.get("conditions", []) if c["type"] == "Evaluated"), {})
            colour = RED if ev.get("reason") == "Drifted" else ""
            say(
                "policy/iris",
                f"psi [{scores}] → {ev.get('reason', '?')} ({st.get('consecutiveDrifted', 0)} in a row)",
                colour,
            )
            self.evaluations.append(st)
        trig = st.get("lastTrigger") or {}
        if trig and self.seen.get("policy/trigger") != (trig.get("child"),):
            self.seen["policy/trigger"] = (trig.get("child"),)
            say(
                "policy/iris",
                f"retrain triggered by {trig['reason']}: {trig.get('detail', '')} → {trig['child']}",
                BOLD,
            )


def champion_url(core: client.CoreV1Api, kubelet: Kubelet | None) -> str | None:
    """Clients call the model's champion: on a real node through the stable Service's ClusterIP
    (kube-proxy routes it), otherwise where the stand-in's server listens."""
    try:
        svc = core.read_namespaced_service("iris", NS)
        version = svc.spec.selector["modelops.dev/version"]
    except Exception:  # no champion yet, or the cluster is going away
        return None
    if kubelet is None:
        return f"http://{svc.spec.cluster_ip}:{svc.spec.ports[0].port}"
    srv = kubelet.server_for(version)
    return srv.url if srv else None


def wait(narrator: Narrator, what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        narrator.tick()
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def write_new_data(volume: Path) -> str:
    """Fresh labelled data in the new distribution, as a data team would land it on the claim."""
    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    for k, v in SHIFT.items():
        frame[k] = frame[k] + v
    frame["species"] = iris.target
    path = volume / NEW_DATA
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return f"pvc://modelops-artifacts/{NEW_DATA}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the cluster, Prometheus and operator running"
    )
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    parser.add_argument(
        "--kwok",
        action="store_true",
        help="kwok nodes and the kubelet stand-in instead of a real node (which needs root)",
    )
    args = parser.parse_args(argv)
    if not args.kwok and os.geteuid() != 0:
        parser.error(
            "a real node needs root (kubelet, containerd, iptables); run with --kwok (make demo KWOK=1)"
        )
    print(f"{BOLD}ModelOps demo{RESET}: one model's whole life on a local Kubernetes\n")
    kubectl_on_path()  # the system's kubectl, else the one built from the control plane's module
    work = Path(tempfile.mkdtemp(prefix="modelops-demo-"))
    real = not args.kwok
    say(
        "cluster",
        "building or reusing the control plane and "
        + ("a real node (kubelet, kube-proxy, containerd, the project image) …" if real else "kwok …"),
    )
    cluster = LocalCluster(
        directory=work / "cluster", real_node=real, start_timeout=600 if real else 120
    ).start()
    kc = str(cluster.kubeconfig)
    say("cluster", f"ready: {kubectl(kc, 'get', 'nodes', '-o', 'name').split()} (kubeconfig {kc})")
    if real:
        # On the node's address: the operator's pod queries it from the pod network.
        prom = PrometheusServer(
            work / "prometheus",
            discovery=kubernetes_sd(cluster.kubeconfig, [NS]),
            binary=kubernetes_sd_prometheus(),
            host=NODE_IP,
        ).start()
        say("prometheus", f"ready at {prom.url}, finding server pods by kubernetes_sd, scraping every 1s")
    else:
        prom = PrometheusServer(work / "prometheus").start()
        say("prometheus", f"ready at {prom.url}, scraping every 1s")
    api = config.new_client_from_config(config_file=kc)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    op: OperatorProcess | OperatorDeployment
    if real:
        assert cluster.node is not None
        op = OperatorDeployment(
            cluster.kubeconfig, cluster.node.images["project"].tag, MODELOPS_PROMETHEUS_URL=prom.url
        ).install()
        say("kubectl", "applied manifests/ (CRDs, RBAC, the operator's Deployment) with the image built here")
    else:
        kubectl(kc, "apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl(
            kc, "apply", "--server-side", "-f", str(ROOT / "manifests" / "base" / "rbac" / "trainer.yaml")
        )
    kubectl(
        kc,
        "wait",
        "--for=condition=Established",
        "crd/modelversions.modelops.dev",
        "crd/retrainpolicies.modelops.dev",
    )
    core.create_namespace({"metadata": {"name": NS}})
    claim = "modelops-artifacts"
    kubelet: Kubelet | None = None
    if real:
        # A hostPath volume gets no fsGroup: the folder belongs to the pods' uid, as a provisioner would do.
        volume = work / "pv"
        volume.mkdir()
        os.chown(volume, 65532, 65532)
    else:
        kubelet = Kubelet(api, NS, kc, work / "kubelet", on_targets=prom.set_targets).start()
        volume = kubelet.volume(claim)
    # The local cluster has no storage provisioner: bind the example's claim to a local folder.
    core.create_persistent_volume(local_persistent_volume(f"{NS}-artifacts", NS, claim, volume))
    if real:
        assert isinstance(op, OperatorDeployment)
        pod = op.wait_ready(api)
        say("operator", f"pod {pod.metadata.name} Ready on {pod.spec.node_name}; log: {op.log}")
    else:
        op = OperatorProcess(kc, NS, work, MODELOPS_PROMETHEUS_URL=prom.url).start()
        say("operator", f"started (modelops run -n {NS}); log {op.log}")
    traffic = IrisTraffic(lambda: champion_url(core, kubelet), limit=200_000, pause=0.03, seed=7)
    narrator = Narrator(custom)
    ok = False
    try:
        kubectl(kc, "apply", "-n", NS, "-k", str(ROOT / "examples" / "iris"))
        say("kubectl", f"applied examples/iris (ModelVersion iris-v1, RetrainPolicy iris) to {NS}")
        speed = {
            "spec": {
                "interval": "3s",
                "window": "30s",
                "cooldown": "20s",
                "triggers": {"drift": {"minSamples": 100}},
                "retention": {"keepRetired": 1},
            }
        }
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, "retrainpolicies", "iris", speed)
        say("kubectl", "demo speed: policy interval 3s, window 30s, cooldown 20s, keepRetired 1")
        wait(
            narrator,
            "iris-v1 to serve",
            lambda: narrator.versions().get("iris-v1", {}).get("status", {}).get("phase") == "Serving",
            args.timeout,
        )
        v1 = narrator.versions()["iris-v1"].get("status", {})
        top = ((v1.get("training") or {}).get("explanations") or {}).get("top", [])[:3]
        say("card", f"model card: {(v1.get('serving') or {}).get('card')}")
        say("card", "top features: " + ", ".join(f"{t['feature']} ({t['importance']:.3f})" for t in top))
        traffic.start()
        say(
            "traffic", "clients send rows drawn from the training data to the champion (with feedback labels)"
        )
        start = len(narrator.evaluations)
        wait(
            narrator,
            "drift-free evaluations",
            lambda: len([e for e in narrator.evaluations[start:] if e.get("features")]) >= 4,
            args.timeout,
        )
        assert len(narrator.versions()) == 1, "a retrain without drift would be a false alarm"
        say("traffic", "no retrain on drift-free traffic: 0 false alarms", GREEN)

        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            "retrainpolicies",
            "iris",
            {"metadata": {"annotations": {"modelops.dev/retrain": "demo-1"}}},
        )
        say("kubectl", "a person asks for a retrain: annotate retrainpolicy iris modelops.dev/retrain=demo-1")
        r1 = wait(
            narrator,
            "the manual retrain to be promoted",
            lambda: next(
                (
                    n
                    for n, m in narrator.versions().items()
                    if n != "iris-v1" and (m.get("status") or {}).get("phase") == "Serving"
                ),
                None,
            ),
            args.timeout,
        )

        uri = write_new_data(volume)
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            "retrainpolicies",
            "iris",
            {
                "spec": {
                    "template": {"datasetUri": uri, "spec": {"training": {"dataset": {"target": "species"}}}}
                }
            },
        )
        say("data", f"new labelled data landed at {uri}; the policy's template now trains on it")
        traffic.shift = SHIFT
        say("traffic", "DRIFT: clients now send petal length +3.0cm, petal width +1.5cm", RED)
        r2 = wait(
            narrator,
            "a retrain on the shifted data to be promoted",
            lambda: next(
                (
                    n
                    for n, m in narrator.versions().items()
                    if n not in ("iris-v1", r1) and (m.get("status") or {}).get("phase") == "Serving"
                ),
                None,
            ),
            args.timeout,
        )
        wait(narrator, "retention to collect iris-v1", lambda: "iris-v1" in narrator.deleted, args.timeout)
        v1_files = volume / "iris" / "iris-v1"
        start = len(narrator.evaluations)
        settled = wait(
            narrator,
            "drift to resolve against the new champion",
            lambda: next(
                (
                    e
                    for e in narrator.evaluations[start:]
                    if e.get("champion") == r2
                    and e.get("features")
                    and all(f.get("result") == "Stable" for f in e["features"].values())
                ),
                None,
            ),
            args.timeout,
        )
        trig = (narrator.policy().get("status") or {}).get("history", [])
        ok = (
            not v1_files.exists()
            # The shift moves the features (drift) and costs accuracy on the feedback labels
            # (performance); whichever trigger is due first closes the loop.
            and any(t["reason"] in ("drift", "performance") and t["child"] == r2 for t in trig)
            and bool(settled)
        )
        summary(kc, narrator, traffic, trig)
    except (TimeoutError, AssertionError, RuntimeError) as e:
        say("demo", f"FAILED: {e}", RED)
        print(f"\noperator log tail ({op.log}):\n{op.tail(40)}")
    finally:
        traffic.stop()
        if args.keep:
            print(
                f"\nkept running: export KUBECONFIG={kc}   (stop: python -m tests.cluster down --dir {work / 'cluster'}"
                f"; kill {' '.join(str(p.pid) for p in (getattr(op, 'proc', None), prom.proc) if p)})"
            )
        else:
            op.stop()
            if kubelet is not None:
                kubelet.stop()
            prom.stop()
            cluster.stop()
    print(f"\n{GREEN if ok else RED}{BOLD}{'the loop closed' if ok else 'the loop did not close'}{RESET}")
    return 0 if ok else 1


def summary(kc: str, narrator: Narrator, traffic: IrisTraffic, history: list[dict[str, Any]]) -> None:
    print(f"\n{BOLD}kubectl get modelversions,retrainpolicies{RESET}")
    print(kubectl(kc, "-n", NS, "get", "mv,rp", "-o", "wide"))
    print(f"{BOLD}{'version':<16}{'parent':<16}{'phase':<12}{'accuracy':>9}  {'trained on':<40}{RESET}")
    for name, mv in sorted(
        narrator.versions().items(), key=lambda kv: kv[1]["metadata"]["creationTimestamp"]
    ):
        st = mv.get("status") or {}
        acc = (st.get("training") or {}).get("metrics", {}).get("accuracy")
        print(
            f"{name:<16}{mv['spec'].get('parent') or '-':<16}{st.get('phase', '?'):<12}"
            f"{'-' if acc is None else f'{acc:.4f}':>9}  {mv['spec']['training']['dataset']['uri']:<40}"
        )
    for name in narrator.deleted:
        print(f"{name:<16}{'-':<16}{'(deleted)':<12}{'':>9}  artifacts removed by retention")
    print(
        f"\n{BOLD}retrains{RESET}: " + "; ".join(f"{t['reason']} → {t['child']}" for t in reversed(history))
    )
    print(
        f"{BOLD}traffic{RESET}: {traffic.sent} rows predicted, {len(narrator.evaluations)} policy evaluations"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
