"""Command line for the local cluster: ``python -m tests.cluster up|down|status --dir .cluster``.

``up`` leaves the processes running after it returns (for a shell, a demo, or an operator run by hand)
and records them in the directory's state file, which ``down`` and ``status`` read.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tests.cluster.localcluster import (
    ClusterError,
    LocalCluster,
    api_ready,
    component_status,
    kubectl_on_path,
    read_state,
    stop_detached,
)


def _running(directory: Path) -> bool:
    state = read_state(directory)
    return state is not None and all(alive for _, _, alive in component_status(state))


def up(directory: Path, timeout: float, real_node: bool = False) -> int:
    if _running(directory):
        print(f"local cluster already running in {directory}", file=sys.stderr)
        print(f"export KUBECONFIG={directory / 'kubeconfig'}")
        return 0
    if read_state(directory) is not None:  # a stale or half-dead cluster: clear it out first
        stop_detached(directory)
        for sub in ("etcd", "pki", "kwok", "logs"):
            shutil.rmtree(directory / sub, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(directory, detach=True, start_timeout=timeout, real_node=real_node)
    try:
        cluster.start()
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"local cluster ready in {cluster.startup_seconds:.1f}s at {cluster.server}", file=sys.stderr)
    print(f"stop it with: python -m tests.cluster down --dir {directory}", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def down(directory: Path) -> int:
    if not stop_detached(directory):
        print(f"no local cluster state in {directory}", file=sys.stderr)
        return 0
    print(f"local cluster in {directory} stopped (logs kept in {directory / 'logs'})", file=sys.stderr)
    return 0


def status(directory: Path) -> int:
    state = read_state(directory)
    if state is None:
        print(f"no local cluster in {directory}")
        return 1
    healthy = True
    for name, pid, alive in component_status(state):
        healthy &= alive
        print(f"{name:<24} pid {pid:<8} {'running' if alive else 'DEAD'}")
    ready = api_ready(directory, state["server"])
    healthy &= ready
    print(f"{'api /readyz':<24} {state['server']:<13} {'ok' if ready else 'NOT READY'}")
    print(f"export KUBECONFIG={state['kubeconfig']}")
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", default=".cluster", type=Path, help="cluster directory (default .cluster)")
    parser.add_argument("--timeout", default=180.0, type=float, help="seconds to wait for readiness (up)")
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="up: a real kubelet + containerd + kube-proxy node instead of kwok's (root; one per machine)",
    )
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    # A real node's teardown drains it with kubectl: the system's, else the one built here.
    kubectl_on_path(build=args.command == "up")
    if args.command == "up":
        return up(directory, args.timeout, args.real_node)
    if args.command == "down":
        return down(directory)
    return status(directory)


if __name__ == "__main__":
    sys.exit(main())
