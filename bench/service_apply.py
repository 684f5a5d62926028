"""Service writes on an idle local cluster: POST against server-side apply, alone and 16 or 32 at
once, then applies 32 at once while the number of Services grows to 2,400.

Why: in the 1,000-version burst of bench/operator_scale.py the API server takes seconds for each of
the operator's Service applies while its Job, Deployment and status writes take tens of
milliseconds. This separates what the API server does with a Service write on its own (the
ClusterIP allocation, the IPAddress object, the apply) from what the burst's load adds.

Writes bench/results/service-apply-<date>.txt; prints the same lines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster.localcluster import LocalCluster  # noqa: E402


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def timed(write: Callable[[str], object]) -> Callable[[str], float]:
    def run(name: str) -> float:
        start = time.monotonic()
        write(name)
        return time.monotonic() - start

    return run


def batch(write: Callable[[str], float], names: list[str], parallel: int) -> str:
    with ThreadPoolExecutor(parallel) as pool:
        start = time.monotonic()
        latencies = sorted(pool.map(write, names))
        wall = time.monotonic() - start
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return (
        f"n {len(names):4}, {parallel:2} at once: p50 {statistics.median(latencies) * 1000:6.1f} ms, "
        f"p99 {p99 * 1000:6.1f} ms, {len(names) / wall:5.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grow-to", type=int, default=2400, help="Services applied in the growth run")
    args = parser.parse_args()
    lines = [f"# {date.today()}, load average %.2f %.2f %.2f at the start" % os.getloadavg()]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with LocalCluster() as cluster:
        conf = client.Configuration()
        config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        conf.connection_pool_maxsize = 40
        api = client.ApiClient(conf)
        core = client.CoreV1Api(api)
        time.sleep(3)

        def post(name: str) -> object:
            return core.create_namespaced_service("default", service(name))

        def apply(name: str) -> object:
            return api.call_api(
                f"/api/v1/namespaces/default/services/{name}",
                "PATCH",
                query_params=[("fieldManager", "bench"), ("force", "true")],
                body=service(name),
                header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
            )

        for label, write in (("POST ", post), ("apply", apply)):
            for parallel in (1, 16, 32):
                names = [
                    f"{label.strip().lower()}-{parallel}-{i}" for i in range(16 if parallel == 1 else 64)
                ]
                say(f"{label} {batch(timed(write), names, parallel)}")
        existing = len(core.list_namespaced_service("default").items)
        step = 400
        for first in range(0, args.grow_to, step):
            names = [f"grow-{i}" for i in range(first, first + step)]
            say(f"apply with {existing + first:5} Services before: {batch(timed(apply), names, 32)}")
    out = ROOT / "bench" / "results" / f"service-apply-{date.today()}.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
