"""Cluster fixtures shared by tests/integration and tests/e2e.

By default a :class:`~tests.cluster.localcluster.LocalCluster` is started once per session, lazily: only
when a test asks for ``cluster`` (directly or through ``api_client``/``namespace``), so
``pytest tests/unit`` never starts one. ``--existing-cluster`` uses $KUBECONFIG as it is; ``--kind``
creates a kind cluster through pytest-kind (needs Docker).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_TESTS = Path(__file__).resolve().parent
_CLUSTER_DIRS = ("integration", "e2e")
_kept_logs = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelops cluster")
    group.addoption(
        "--existing-cluster",
        action="store_true",
        help="run cluster tests against the cluster in $KUBECONFIG instead of starting a local one",
    )
    group.addoption(
        "--kind",
        action="store_true",
        help="run cluster tests on a kind cluster created by pytest-kind (needs Docker)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """A kubectl already built here (make deps) counts as installed, for unit tests that use one
    too; the cluster fixtures build it if there is none at all."""
    from tests.cluster.localcluster import kubectl_on_path

    kubectl_on_path(build=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration and tests/e2e needs a cluster: mark it ``cluster``."""
    for item in items:
        if item.path.is_relative_to(_TESTS) and item.path.relative_to(_TESTS).parts[0] in _CLUSTER_DIRS:
            item.add_marker(pytest.mark.cluster)


@dataclass(frozen=True)
class ClusterHandle:
    """What tests get from the ``cluster`` fixture, whatever kind of cluster is behind it."""

    kubeconfig: Path
    kind: str  # "local", "existing" or "kind"
    audit_log: Path | None = None
    """The API server's audit log (local clusters only): what the operator asked for, by verb."""

    @property
    def simulated(self) -> bool:
        """Pods are played by kwok: held ModelOps pods obey sim.modelops.dev/* annotations."""
        return self.kind == "local"


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    """The session's cluster; KUBECONFIG points at it for the whole session (subprocesses included)."""
    from tests.cluster.localcluster import kubectl_on_path

    config = request.config
    previous = os.environ.get("KUBECONFIG")
    stop = None
    kubectl_on_path()  # the tests run kubectl: the system's, else the one built here
    if config.getoption("--existing-cluster"):
        path = Path(previous or Path.home() / ".kube" / "config").expanduser()
        if not path.exists():
            pytest.exit(f"--existing-cluster: no kubeconfig at {path} (set KUBECONFIG)", returncode=4)
        handle = ClusterHandle(path.resolve(), "existing")
    elif config.getoption("--kind"):
        try:
            from pytest_kind import KindCluster
        except ImportError:
            pytest.exit("--kind needs pytest-kind (pip install -e '.[test]') and Docker", returncode=4)
        kind_cluster = KindCluster("modelops-test")
        kind_cluster.create()
        handle = ClusterHandle(Path(kind_cluster.kubeconfig_path).resolve(), "kind")
        stop = kind_cluster.delete
    else:
        from tests.cluster.localcluster import LocalCluster

        local = LocalCluster().start()
        handle = ClusterHandle(local.kubeconfig, "local", local.audit_log)

        def stop() -> None:
            failed = request.session.testsfailed > 0
            local.stop(keep=failed)
            if failed:
                config.stash[_kept_logs] = local.logs

    os.environ["KUBECONFIG"] = str(handle.kubeconfig)
    try:
        yield handle
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        if stop is not None:
            stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3 server (SeaweedFS built from its Go module), one per session, on free ports."""
    from tests.support.seaweedfs import SeaweedFS

    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(seaweedfs: Any, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, named after it."""
    import hashlib

    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]
    return seaweedfs.bucket(f"t-{digest}")


@pytest.fixture(scope="session")
def api_client(cluster: ClusterHandle) -> Iterator[Any]:
    """A kubernetes.client.ApiClient for the session's cluster, as cluster-admin."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: Any) -> Iterator[str]:
    """A fresh namespace named after the test, ready for pods (its default ServiceAccount exists).

    Deleted afterwards without waiting: the namespace controller finishes the job in the background.
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from tests.helpers import wait_for

    core = client.CoreV1Api(api_client)
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "modelops-tests"}}}
    )
    try:
        wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=30,
            message=f"ServiceAccount {name}/default",
            ignore=(ApiException,),
        )
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """When a test that used ``namespace`` fails, attach that namespace's events to its report."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        if "namespace" in funcargs and "api_client" in funcargs:
            report.sections.append(
                (
                    f"events in namespace {funcargs['namespace']}",
                    _describe_namespace(funcargs["api_client"], funcargs["namespace"]),
                )
            )
        stand_in = funcargs.get("kubelet")
        if report_text := getattr(stand_in, "not_ready_report", lambda: "")():
            report.sections.append(("servers the kubelet stand-in still probes", report_text))
    return report


def _describe_namespace(api_client: Any, namespace: str) -> str:
    """Events (oldest first) and pod phases of ``namespace``, for a post-mortem."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    lines = []
    try:
        events = core.list_namespaced_event(namespace, _request_timeout=10).items

        def when(e: Any) -> str:
            t = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
            return t.isoformat() if t else ""

        for e in sorted(events, key=when):
            obj = e.involved_object
            lines.append(f"{when(e)[11:19]} {e.type:<7} {obj.kind}/{obj.name} {e.reason}: {e.message}")
        lines.append("")
        for pod in core.list_namespaced_pod(namespace, _request_timeout=10).items:
            states = [
                next((k for k, v in (cs.state.to_dict() or {}).items() if v), "?")
                for cs in pod.status.container_statuses or []
            ]
            lines.append(
                f"pod {pod.metadata.name}: phase={pod.status.phase} node={pod.spec.node_name} "
                f"containers={states} annotations={pod.metadata.annotations or {}}"
            )
    except Exception as e:  # the dump must never hide the real failure
        lines.append(f"(could not read namespace {namespace}: {e})")
    return "\n".join(lines) or "(no events)"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if logs := config.stash.get(_kept_logs, None):
        terminalreporter.write_line(f"local cluster logs kept for the failures above: {logs}", yellow=True)
