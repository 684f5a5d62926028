"""Invalid objects are refused at admission by the CRD schema and CEL rules, with messages people read."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.integration.conftest import kubectl
from tests.support.admission_cases import GOOD_MV, GOOD_RP


def mv(**patch: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD_MV)
    for path, value in patch.items():
        node = body["spec"]
        keys = path.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is DELETE:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = value
    return body


def rp(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD_RP)
    body["spec"].update(spec)
    return body


DELETE = object()
IMPORTED = {
    "uri": "s3://ml-models/iris/model.skops",
    "sha256": "ab" * 32,
    "referenceDataset": {"uri": "sklearn:iris"},
}


def named(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {**body, "metadata": {"name": name}}


INVALID = [
    ("no model", mv(model=DELETE), "spec.model: Required value"),
    ("model not a DNS label", mv(model="Iris_Model"), "spec.model"),
    ("model too long", mv(model="m" * 41), "spec.model: Too long"),
    ("no training", mv(training=DELETE), "spec takes exactly one of training"),
    ("estimator not allowed", mv(training__estimator__class="os.system"), 'Unsupported value: "os.system"'),
    ("dataset over http", mv(training__dataset__uri="http://example.com/x.csv"), "spec.training.dataset.uri"),
    (
        "dataset of an unknown format",
        mv(training__dataset__uri="pvc://data/x.txt"),
        "spec.training.dataset.uri",
    ),
    ("test size above 1", mv(training__split__testSize=1.5), "spec.training.split.testSize"),
    ("test size zero", mv(training__split__testSize=0), "spec.training.split.testSize"),
    ("one reference bin", mv(training__referenceBins=1), "spec.training.referenceBins"),
    ("negative backoff", mv(training__backoffLimit=-1), "spec.training.backoffLimit"),
    (
        "gate min above max",
        mv(validation={"gates": [{"metric": "accuracy", "min": 0.9, "max": 0.5}]}),
        "gate min must be less than or equal to max",
    ),
    (
        "gate without bounds",
        mv(validation={"gates": [{"metric": "accuracy"}]}),
        "a gate needs min, max or both",
    ),
    ("gate on an unknown metric", mv(validation={"gates": [{"metric": "latency", "min": 1}]}), "latency"),
    ("champion metric unknown", mv(validation={"champion": {"metric": "speed"}}), "speed"),
    ("unknown rollout", mv(serving={"rollout": {"strategy": "BlueGreen"}}), "BlueGreen"),
    (
        "canary without its settings",
        mv(serving={"rollout": {"strategy": "Canary"}}),
        "rollout.canary is required for Canary",
    ),
    (
        "canary error rate above 1",
        mv(serving={"rollout": {"strategy": "Canary", "canary": {"maxErrorRate": 2}}}),
        "maxErrorRate",
    ),
    ("negative replicas", mv(serving={"replicas": -1}), "spec.serving.replicas"),
    ("unknown promotion mode", mv(promotion={"mode": "Sometimes"}), "Sometimes"),
    ("bad claim name", mv(storage={"pvc": "Bad_Claim"}), "spec.storage.pvc"),
    (
        "storage on a claim and a bucket",
        mv(storage={"pvc": "mine", "s3": {"bucket": "ml-models"}}),
        "storage takes either pvc or s3, not both",
    ),
    ("bad bucket name", mv(storage={"s3": {"bucket": "ML_Models"}}), "spec.storage.s3.bucket"),
    (
        "s3 endpoint not a URL",
        mv(storage={"s3": {"bucket": "ml-models", "endpointUrl": "seaweedfs:8333"}}),
        "spec.storage.s3.endpointUrl",
    ),
    (
        "policy: s3 dataset uri with a bad bucket",
        rp(template={"datasetUri": "s3://Data_Sets/x.csv"}),
        "spec.template.datasetUri",
    ),
    (
        "both training and an imported model",
        mv(source={"artifact": IMPORTED}),
        "spec takes exactly one of training",
    ),
    (
        "imported model with a short digest",
        mv(training=DELETE, source={"artifact": {**IMPORTED, "sha256": "abc"}}),
        "spec.source.artifact.sha256",
    ),
    (
        "search with artifacts on s3",
        mv(training__search={"space": {"C": [0.1, 1.0]}}, storage={"s3": {"bucket": "ml-models"}}),
        "training.search keeps its shard files on the storage claim",
    ),
    (
        "capture with artifacts on s3",
        mv(serving={"capture": {}}, storage={"s3": {"bucket": "ml-models"}}),
        "serving.capture writes served rows to the storage claim",
    ),
    ("unknown field", mv(trainng={"typo": True}), "unknown field"),
    ("policy: unknown drift method", rp(triggers={"drift": {"method": "chi2"}}), "chi2"),
    ("policy: interval not a duration", rp(interval="5 minutes"), "spec.interval"),
    (
        "policy: schedule with every and cron",
        rp(triggers={"schedule": {"every": "1h", "cron": "0 * * * *"}}),
        "schedule needs exactly one of every, cron",
    ),
    (
        "policy: performance floor and ceiling",
        rp(triggers={"performance": {"floor": 0.9, "ceiling": 0.1}}),
        "performance needs exactly one of floor, ceiling",
    ),
    ("policy: zero concurrency", rp(maxConcurrent=0), "spec.maxConcurrent"),
    ("name too long for a label value", named(mv(), "v" * 64), "metadata.name must be at most 63 characters"),
    ("name not a Service name", named(mv(), "1iris"), "metadata.name must start with a letter"),
    ("policy: name too long", named(rp(), "p" * 64), "metadata.name must be at most 63 characters"),
    ("model not a Service name", mv(model="1iris"), "spec.model"),
    (
        "bad training quantity",
        mv(training__resources={"requests": {"cpu": "lots"}}),
        "spec.training.resources.requests.cpu",
    ),
    (
        "bad serving quantity",
        mv(serving={"resources": {"limits": {"memory": "1 GB"}}}),
        "spec.serving.resources.limits.memory",
    ),
    (
        "halving search on several pods",
        mv(training__search={"method": "halving", "space": {"C": [1, 2]}, "parallelism": 3}),
        "search.parallelism must be 1 for halving",
    ),
    ("search with no space", mv(training__search={"space": {}}), "spec.training.search.space"),
    ("search with one fold", mv(training__search={"space": {"C": [1]}, "cv": 1}), "spec.training.search.cv"),
    (
        "autoscaling without a target",
        mv(serving={"autoscaling": {"maxReplicas": 3}}),
        "spec.serving.autoscaling.targetCPUUtilization: Invalid value: serving.autoscaling needs "
        "exactly one of targetCPUUtilization, targetRequestsPerSecond",
    ),
    (
        "autoscaling with two targets",
        mv(
            serving={
                "autoscaling": {"maxReplicas": 3, "targetCPUUtilization": 60, "targetRequestsPerSecond": 5}
            }
        ),
        "serving.autoscaling needs exactly one of targetCPUUtilization, targetRequestsPerSecond",
    ),
    (
        "autoscaling min above max",
        mv(serving={"autoscaling": {"minReplicas": 4, "maxReplicas": 3, "targetCPUUtilization": 60}}),
        "spec.serving.autoscaling.minReplicas",
    ),
    (
        "autoscaling without maxReplicas",
        mv(serving={"autoscaling": {"targetCPUUtilization": 60}}),
        "spec.serving.autoscaling.maxReplicas: Required value",
    ),
]


@pytest.mark.parametrize(("case", "body", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_object_is_refused_with_a_clear_message(cluster, crds, namespace, case, body, message):
    out = kubectl(
        str(cluster.kubeconfig), "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body), check=False
    )
    assert out.returncode != 0, f"{case}: accepted, but should be refused\n{out.stdout}"
    assert message in out.stderr, f"{case}: unclear refusal: {out.stderr}"


def test_at_least_twenty_invalid_manifests():
    assert len(INVALID) >= 20


def test_training_and_model_are_immutable(cluster, crds, namespace):
    kc = str(cluster.kubeconfig)
    kubectl(kc, "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(GOOD_MV))
    changed = mv(training__split={"seed": 7})
    out = kubectl(kc, "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(changed), check=False)
    assert out.returncode != 0 and "spec.training is immutable" in out.stderr, out.stderr
    out = kubectl(
        kc, "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(mv(model="other")), check=False
    )
    assert out.returncode != 0 and "spec.model is immutable" in out.stderr, out.stderr
    # an imported model is as fixed: its file and digest cannot change, nor can training replace it
    kubectl(
        kc,
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(named(mv(training=DELETE, source={"artifact": IMPORTED}), "iris-imp")),
    )
    other = named(mv(training=DELETE, source={"artifact": {**IMPORTED, "sha256": "cd" * 32}}), "iris-imp")
    out = kubectl(kc, "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(other), check=False)
    assert out.returncode != 0 and "spec.source is immutable" in out.stderr, out.stderr
    # what may change does change: serving and promotion are not part of the trained model
    ok = mv(serving={"replicas": 2})
    kubectl(kc, "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(ok))
