"""The storage layer's pure parts: which credentials a role gets, and how failures are classified."""

import pytest

from modelops import storage


def test_each_role_reads_only_its_own_variables():
    env = {
        "MODELOPS_S3_ACCESS_KEY_ID": "store-key",
        "MODELOPS_S3_SECRET_ACCESS_KEY": "store-secret",
        "MODELOPS_S3_ENDPOINT_URL": "http://seaweedfs:8333",
        "MODELOPS_DATASET_S3_REGION": "eu-west-1",
    }
    store = storage.s3_options(storage.STORE, env)
    assert (store["key"], store["secret"], store["endpoint_url"]) == (
        "store-key",
        "store-secret",
        "http://seaweedfs:8333",
    )
    assert "client_kwargs" not in store
    data = storage.s3_options(storage.DATASET, env)
    # no keys: the SDK's default chain (the pod's workload identity), not the store's keys
    assert "key" not in data and "secret" not in data and "endpoint_url" not in data
    assert data["client_kwargs"] == {"region_name": "eu-west-1"}


def test_local_paths_local_and_remote_schemes_remote():
    assert storage.is_remote("s3://b/k") and storage.is_remote("https://h/x.csv")
    assert not storage.is_remote("/artifacts/iris/v1") and not storage.is_remote("file:///x")
    assert storage.join("s3://b/p/", "iris", "/v1/") == "s3://b/p/iris/v1"


@pytest.mark.parametrize(
    ("exc", "permanent", "words"),
    [
        (FileNotFoundError("k"), True, "no such object"),
        (PermissionError("InvalidAccessKeyId"), True, "access denied"),
        (ConnectionRefusedError("refused"), False, "ConnectionRefusedError"),
        (TimeoutError(), False, "TimeoutError"),
    ],
)
def test_failures_are_classified_for_retrying(exc, permanent, words):
    err = storage._reason(exc, "read", "s3://b/k")
    assert err.permanent is permanent and words in str(err) and "s3://b/k" in str(err)
