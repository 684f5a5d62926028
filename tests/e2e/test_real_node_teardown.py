"""`make cluster-down` on the session's real node, after every other real-node test.

A module of its own so that every other module's namespaces, PVs and servers are gone through the
API server before it stops: in the module that made them, module fixtures would tear down after
this test, against an API server no longer there. The session's `real` fixture stops the node in
any case; this module checks that the stop leaves the host as it found it."""

from __future__ import annotations

import pytest

from tests.cluster.node import leftovers
from tests.support.realnode import Cluster, marks

pytestmark = marks()


@pytest.mark.node_teardown
def test_cluster_down_leaves_nothing_behind(real: Cluster, sysctls_before: dict[str, str]) -> None:
    """`make cluster-down` on the node with the operator, model pods and Prometheus' discoveries:
    no process, mount, netns, veth, bridge, iptables chain, cgroup, node IP or changed sysctl."""
    out = real.down()
    assert out.returncode == 0, out.stderr
    print(out.stderr[-1000:])
    found = leftovers(sysctls_before)
    assert not any(found.values()), found
