"""The data plane as real processes: `modelops train`, then `modelops serve` on a free port, then
infer, feedback and scrape over HTTP; SIGTERM drains an in-flight request and exits 0; a tampered
artifact is refused with exit 3. No cluster needed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer

DEADLINE = 60.0


def modelops(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelops.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dataplane")


@pytest.fixture(scope="module")
def env(work) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}
    env["MODELOPS_TERMINATION_LOG"] = str(work / "termination-log")
    return env


@pytest.fixture(scope="module")
def trained(work, env) -> dict:
    spec = work / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "dataset": {"uri": "sklearn:breast_cancer"},
                "estimator": {"class": "HistGradientBoostingClassifier", "params": {"max_iter": 20}},
                "referenceBins": 10,
            }
        )
    )
    proc = subprocess.run(
        modelops(
            "train",
            "--spec",
            str(spec),
            "--model",
            "cancer",
            "--version",
            "cancer-v1",
            "--store",
            str(work / "store"),
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["succeeded"] and result["metrics"]["accuracy"] > 0.9
    return result


def serve(work: Path, env: dict[str, str], sha256: str, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        modelops(
            "serve",
            "--artifact-dir",
            str(work / "store" / "cancer" / "cancer-v1"),
            "--sha256",
            sha256,
            "--model",
            "cancer",
            "--version",
            "cancer-v1",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--graceful-seconds",
            "20",
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def server(work, env, trained) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    proc = serve(work, env, trained["artifact"]["sha256"], port)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            return httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    poll(ready, "the server to become ready")
    yield proc, base
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def scrape(base: str) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("model", "version")))
            out.setdefault(s.name, {})[key] = s.value
    return out


def test_train_serve_infer_feedback_scrape(server, trained):
    _, base = server
    data = load_breast_cancer()
    names = list(data.feature_names)
    rows = data.data[:20]
    with httpx.Client(base_url=base, timeout=10) as client:
        v2 = {"inputs": [{"name": "x", "shape": [20, 30], "datatype": "FP64", "data": rows.ravel().tolist()}]}
        r = client.post("/v2/models/cancer/infer", json=v2)
        assert r.status_code == 200
        predicted = r.json()["outputs"][0]["data"]
        assert len(predicted) == 20
        single = client.post(
            "/predict", json={"instances": [dict(zip(names, rows[0].tolist(), strict=True))]}
        )
        assert single.json()["predictions"] == predicted[:1]
        bad = client.post("/predict", json={"instances": [{names[0]: "x"}]})
        assert bad.status_code == 422
        labels = data.target[:20].tolist()
        fb = client.post("/feedback", json={"id": r.headers["x-request-id"], "labels": labels})
        assert fb.json() == {"matched": 20, "unmatched": 0}
        m = scrape(base)
    assert m["modelops_server_rows_total"][()] == 21
    assert m["modelops_server_feedback_labelled_total"][()] == 20
    assert m["modelops_server_feedback_correct_total"][()] == sum(
        p == t for p, t in zip(predicted, labels, strict=True)
    )
    assert m["modelops_server_requests_total"][(("code", "422"), ("handler", "predict"))] == 1
    assert sum(m["modelops_server_prediction_class_total"].values()) == 21
    buckets = {
        dict(k)["le"]: v
        for k, v in m["modelops_server_feature_value_bucket"].items()
        if dict(k)["feature"] == names[0]
    }
    edges = trained["reference"][names[0]]["edges"]
    assert len(buckets) == len(edges) + 1 and buckets["+Inf"] == 21
    assert m["modelops_server_model_ready"][()] == 1


def test_sigterm_drains_the_request_in_flight_then_exits_0(server):
    proc, base = server
    port = int(base.rsplit(":", 1)[1])
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 30],
                    "datatype": "FP64",
                    "data": load_breast_cancer().data[0].tolist(),
                }
            ]
        }
    ).encode()
    head = (
        f"POST /v2/models/cancer/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body[:10])  # the request is in flight: headers and part of the body
        time.sleep(0.2)  # let the server parse the headers before the signal
        proc.send_signal(signal.SIGTERM)

        def refusing() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except OSError:
                return True

        poll(refusing, "the server to stop accepting connections", 20)
        assert proc.poll() is None  # still draining
        sock.sendall(body[10:])
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert proc.wait(timeout=30) == 0
    err = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in err


def test_tampered_artifact_is_refused_with_exit_3(work, env, trained):
    proc = serve(work, env, "f" * 64, free_port())
    _, err = proc.communicate(timeout=60)
    line = f"error: artifact sha256 mismatch: expected {'f' * 64}, got {trained['artifact']['sha256']}"
    assert proc.returncode == 3
    assert err.strip().splitlines()[-1] == line
    assert (work / "termination-log").read_text().strip() == line


def test_bad_data_exits_2_with_one_line(work, env):
    empty = work / "empty.csv"
    empty.write_text("")
    spec = {"dataset": {"uri": f"file://{empty}", "target": "y"}, "estimator": {"class": "Ridge"}}
    proc = subprocess.run(
        modelops("train", "--model", "m", "--version", "v1", "--store", str(work / "store")),
        env={**env, "MODELOPS_TRAINING_SPEC": json.dumps(spec)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"error: dataset {empty} is empty\n"
