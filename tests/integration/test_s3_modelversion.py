"""A tampered S3 artifact, on kwok: the only S3 case that needs a fault on cue. The kubelet stand-in
holds the version's server back until the test has changed the object the trainer uploaded, so the
server's digest check meets it; a real container would start (and load the genuine file) first.
Training from and to S3, serving from it, the failures' reasons and the clean-up Job run as real
containers in tests/e2e/test_real_node_s3.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.seaweedfs import SeaweedFS, arrange_bucket, training
from tests.support.wait import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.s3]


@pytest.fixture
def s3(mvs: Any, seaweedfs: SeaweedFS, bucket: str) -> Callable[..., dict[str, Any]]:
    return arrange_bucket(mvs, seaweedfs, bucket)


def test_a_tampered_object_fails_the_version(mvs, kubelet, operator, seaweedfs, bucket, s3):
    kubelet.hold_servers.add("iris-v1")
    mvs.create("iris-v1", storage=s3(), training=training(f"s3://{bucket}/data/iris.csv"))
    art = eventually(
        lambda: (mvs.status("iris-v1").get("training") or {}).get("artifact"),
        timeout=240,
        what="iris-v1 to be trained",
    )
    fs = seaweedfs.fs()
    key = art["uri"][len("s3://") :]
    fs.pipe_file(key, fs.cat_file(key) + b"tampered")
    kubelet.hold_servers.discard("iris-v1")
    st = mvs.wait_phase("iris-v1", "Failed", timeout=240)
    assert "sha256" in st["message"], st
    assert mvs.champion_of("iris") is None
