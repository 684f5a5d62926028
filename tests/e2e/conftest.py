"""One real node for the session's real-node modules (tests/e2e/test_real_node*.py): started and
stopped exactly as `make cluster-up REAL_NODE=1` / `make cluster-down` do, with the operator
installed from manifests/ as a pod of the node, querying the session's Prometheus on the host.
Starting it costs ≈ 10-40 s warm, plus the operator pod's start; sharing it keeps each new
real-node module to the cost of its own pods.

A module that sets `NS` gets that namespace (`store`, `mvs`) for itself, deleted when it ends, and
one with S3 cases its own SeaweedFS (`seaweedfs`) on the node's address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.cluster.localcluster import kubectl_on_path
from tests.cluster.node import NODE_IP, build_images, read_sysctls
from tests.support.operator import OperatorDeployment
from tests.support.prometheus import PrometheusServer, kubernetes_sd, kubernetes_sd_prometheus
from tests.support.realnode import Cluster, Versions, cluster_cli, model_namespace
from tests.support.seaweedfs import SeaweedFS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The node's teardown test stops the shared node: it runs after every other test."""
    last = [item for item in items if item.get_closest_marker("node_teardown")]
    items[:] = [item for item in items if item not in last] + last


@pytest.fixture(scope="session")
def sysctls_before() -> dict[str, str]:
    return read_sysctls()


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory, sysctls_before: dict[str, str]) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("real-node-cluster")
    kubectl_on_path()  # the modules run kubectl themselves, besides the cluster-up subprocess
    up = cluster_cli("up", directory, "--real-node", "--timeout", "300")
    cluster = Cluster(directory, build_images("all"))  # cached: the archives cluster-up imported
    print(up.stderr[-2000:])
    if up.returncode != 0:
        cluster.down()
        pytest.fail(f"cluster-up --real-node failed ({up.returncode}): {up.stderr[-3000:]}")
    yield cluster
    cluster.down()  # idempotent: the teardown test normally did it already


@pytest.fixture(scope="session")
def api(real: Cluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(real.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def project_image(real: Cluster) -> str:
    return real.images["project"].tag


@pytest.fixture(scope="session")
def prometheus(real: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus on the host, as a cluster's prometheus-operator would run it for the shipped
    PodMonitor: pods found by Kubernetes discovery in every namespace, the PodMonitor's relabelling,
    scraping every second. It listens on the node's address, where the operator's pod queries it
    (canary analysis). It outlives the node's teardown test, as a monitoring server outside the
    cluster would, and stops with the session."""
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus-node"),
        discovery=kubernetes_sd(real.kubeconfig),
        binary=kubernetes_sd_prometheus(),
        host=NODE_IP,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def operator(
    real: Cluster, api: client.ApiClient, project_image: str, prometheus: PrometheusServer
) -> client.V1Pod:
    """The operator installed from manifests/ (only the image and the Prometheus it queries swapped)
    and Ready as a pod of the node.

    The pod as it was then: the search module replaces it, so a test that needs the running one
    (to exec into it) reads it again."""
    installed = OperatorDeployment(real.kubeconfig, project_image, MODELOPS_PROMETHEUS_URL=prometheus.url)
    return installed.install().wait_ready(api)


@pytest.fixture(scope="module")
def seaweedfs(real: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """The S3 server of a real-node module, on the node's address: the node's pods reach the host
    there through the bridge (the kwok suite's server listens on 127.0.0.1). Stopped with the
    module, before the node's teardown test checks what is left on the host."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs-node"), host=NODE_IP).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store(
    real: Cluster,
    api: client.ApiClient,
    operator: client.V1Pod,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Path]:
    """The module's own model namespace (its `NS`), deleted when the module ends; yields the
    folder of its artifact PV on the host, where what the containers wrote is read back as files."""
    ns = request.module.NS
    with model_namespace(real, api, ns, tmp_path_factory.mktemp(f"{ns}-pv")) as folder:
        yield folder


@pytest.fixture(scope="module")
def mvs(real: Cluster, api: client.ApiClient, store: Path, request: pytest.FixtureRequest) -> Versions:
    """The ModelVersions of the module's namespace."""
    return Versions(real, api, request.module.NS)
