"""Sample objects for the Argo CD health checks, with statuses written by the operator's own code.

A hand-written sample can hold a field the code never writes, or miss one it forgets (the status
written for an invalid spec had no observedGeneration, so Argo CD showed it Progressing forever).
Here each sample is a ModelVersion or RetrainPolicy advanced through the same steps as in a
cluster: the trainer's report (`trainer.report.patch_body`), the planner (`lifecycle.*.plan`) on an
observed world, and the controllers' record paths (`record`, `write_status`, `reject_invalid`)
writing into a recording stand-in for the API client that applies their merge patches. Only the
world is described here (which Job, Deployment, champion, Prometheus answer); every status field
comes from the code. Time is fixed, so the output is stable: `python -m tests.support.argocd_samples`
rewrites tests/fixtures/argocd_health.yaml, and a unit test fails when that file is stale.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from unittest import mock

import kopf
import yaml

from modelops import GROUP, VERSION
from modelops.api.modelversion import Artifact, ModelVersion, TrainingResult
from modelops.api.retrainpolicy import RetrainPolicy
from modelops.controllers import modelversion as mv_controller
from modelops.controllers import retrainpolicy as rp_controller
from modelops.controllers import runtime
from modelops.drift.evaluate import evaluate_features
from modelops.k8s.kube import Kube
from modelops.k8s.slots import Slots
from modelops.lifecycle import modelversion as mv_lifecycle
from modelops.lifecycle import retrainpolicy as rp_lifecycle
from modelops.trainer.report import Target, patch_body

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "argocd_health.yaml"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NS = "ml"


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch, as the API server applies a merge patch to the status subresource."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class RecordingKube:
    """The part of `Kube` the record paths use, writing into one stored object instead of an API server."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.service_slots = Slots("Service creations", 0)  # it creates none

    def modelversion(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.stored)

    policy = modelversion

    def patch_status(self, plural: str, body: dict[str, Any], status: dict[str, Any]) -> None:
        merge(self.stored.setdefault("status", {}), {k: v for k, v in status.items()})
        if not self.stored["status"]:
            del self.stored["status"]


@contextmanager
def frozen_operator(at: datetime) -> Iterator[None]:
    """The controllers' clock fixed at `at`; Events dropped (they are not status)."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(runtime, "now", lambda: at))
        for name in ("event", "info", "warn", "exception"):
            stack.enter_context(mock.patch.object(kopf, name, lambda *a, **k: None))
        yield


def _meta(name: str, generation: int) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "generation": generation,
        "creationTimestamp": "2026-01-01T11:00:00Z",
    }


# --- ModelVersion -------------------------------------------------------------------------------------
IRIS_SPEC: dict[str, Any] = {
    "model": "iris",
    "training": {
        "dataset": {"uri": "sklearn:iris"},
        "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
    },
    "validation": {"gates": [{"metric": "accuracy", "min": 0.9}]},
}
JOB_UID = "job-uid-1"


class Version:
    """One ModelVersion as stored, moved on by the operator's steps in an observed world."""

    def __init__(self, name: str, **spec: Any) -> None:
        self.name = name
        self.obj: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelVersion",
            "metadata": _meta(name, 1),
            "spec": {**copy.deepcopy(IRIS_SPEC), **spec},
        }
        self.now = NOW

    def step(self, **world: Any) -> Version:
        """One reconcile: observe (the world given) -> plan -> record, a minute after the last."""
        self.now += timedelta(minutes=1)
        mv = ModelVersion.model_validate(self.obj)
        observed = mv_lifecycle.Observed(
            name=self.name,
            generation=self.obj["metadata"]["generation"],
            spec=mv.spec,
            status=mv.status,
            now=self.now,
            **world,
        )
        p = mv_lifecycle.plan(observed)
        with frozen_operator(self.now):
            mv_controller.record(copy.deepcopy(self.obj), mv, p, cast(Kube, RecordingKube(self.obj)))
        return self

    def report(self, accuracy: float, *, succeeded: bool = True, message: str | None = None) -> Version:
        """The trainer's own report (its merge patch of status.training)."""
        result = TrainingResult(
            succeeded=succeeded,
            message=message,
            task="classification",
            metrics={"accuracy": accuracy} if succeeded else {},
            artifact=Artifact(uri=f"pvc://modelops-artifacts/iris/{self.name}", sha256="0" * 64)
            if succeeded
            else None,
        )
        merge(self.obj, patch_body(result, Target(self.name, NS, f"uid-{self.name}", JOB_UID)))
        return self

    def spec_edit(self, **spec: Any) -> Version:
        """A person or Git changes the spec: the API server bumps the generation."""
        self.obj["spec"].update(spec)
        self.obj["metadata"]["generation"] += 1
        return self


def job(*, active: int = 0, succeeded: int = 0, failed: bool = False, message: str | None = None) -> Any:
    return mv_lifecycle.JobView(
        uid=JOB_UID, active=active, succeeded=succeeded, failed=failed, failure_message=message
    )


def deployment(ready: int, replicas: int = 1, failure: str | None = None) -> Any:
    return mv_lifecycle.DeploymentView(replicas=replicas, ready_replicas=ready, pod_failure=failure)


def champion(name: str, accuracy: float = 0.95) -> Any:
    return mv_lifecycle.ChampionView(name=name, metrics={"accuracy": accuracy})


def trained(name: str = "iris-v1", accuracy: float = 0.9737, **spec: Any) -> Version:
    v = Version(name, **spec).step().step(job=job(active=1))
    return v.report(accuracy).step(job=job(succeeded=1))


def serving(name: str = "iris-v1", **spec: Any) -> Version:
    v = trained(name, **spec).step(job=job(succeeded=1), deployment=deployment(1))
    return v.step(job=job(succeeded=1), deployment=deployment(1), champion=champion(name))


CANARY = {
    "rollout": {"strategy": "Canary", "canary": {"replicas": 1, "analysisSeconds": 300, "minRequests": 20}}
}
SHORT_CANARY = {"rollout": {"strategy": "Canary", "canary": {"replicas": 1, "analysisSeconds": 30}}}
MANUAL = {"mode": "Manual"}


class _Samples(dict[str, dict[str, Any]]):
    """Name -> object; each object is copied when stored, since the worlds go on changing."""

    def __setitem__(self, name: str, obj: dict[str, Any]) -> None:
        super().__setitem__(name, copy.deepcopy(obj))


def modelversion_samples() -> dict[str, dict[str, Any]]:
    """Name -> object, for each health state and cause of a ModelVersion."""
    out = _Samples()
    out["no status yet"] = Version("iris-v1").obj
    out["pending (a status without a phase, defaulted by the API server)"] = _defaulted_status(
        Version("iris-v1").obj
    )
    out["training"] = Version("iris-v1").step().step(job=job(active=1)).obj
    out["deploying"] = trained().step(job=job(succeeded=1), deployment=deployment(0)).obj
    out["champion serving"] = serving().obj
    out["spec changed, not observed yet"] = serving().spec_edit(serving={"replicas": 2}).obj
    superseded = serving().step(job=job(succeeded=1), deployment=deployment(1), champion=champion("iris-v2"))
    out["superseded, kept for rollback"] = superseded.obj
    out["retired"] = (
        superseded.spec_edit(retired=True).step(job=job(succeeded=1), champion=champion("iris-v2")).obj
    )
    out["training failed"] = (
        Version("iris-v2")
        .step()
        .step(job=job(active=1))
        .report(0.0, succeeded=False, message="dataset sklearn:iris has no column 'species'")
        .step(job=job(failed=True, message="exit code 1"))
        .obj
    )
    out["rejected by its gates (a correct outcome, but it will never be Ready)"] = trained(
        "iris-v2", 0.85
    ).obj
    out["server failed while deploying"] = (
        trained("iris-v2")
        .step(job=job(succeeded=1), deployment=deployment(0, failure="artifact sha256 mismatch"))
        .obj
    )
    out["deployed, waiting for manual promotion"] = (
        trained("iris-v2", promotion=MANUAL)
        .step(job=job(succeeded=1), deployment=deployment(1), champion=champion("iris-v1"))
        .obj
    )
    canary = trained("iris-v2", serving={"drainSeconds": 0, **CANARY})
    # A replicas canary of one pod beside a champion of one, the stable Service selecting both.
    shared = mv_lifecycle.ChampionView(
        name="iris-v1",
        metrics={"accuracy": 0.95},
        deployment=mv_lifecycle.DeploymentView(replicas=1, ready_replicas=1),
        pool=True,
    )
    canary_dep = mv_lifecycle.DeploymentView(replicas=1, ready_replicas=1, pool_pods=1)
    world = {"job": job(succeeded=1), "deployment": canary_dep, "champion": shared}
    out["canary under analysis"] = (
        copy.deepcopy(canary)
        .step(**world)
        .step(**world, canary=mv_lifecycle.CanaryView(requests=3, error_rate=0.0, p99_seconds=0.01))
        .obj
    )
    short = trained("iris-v2", serving={"drainSeconds": 0, **SHORT_CANARY})
    out["canary with malformed metrics, rolled back as inconclusive"] = (
        short.step(**world)
        .step(
            **world,
            canary=mv_lifecycle.CanaryView(
                error="Prometheus answered malformed data: Field required at data"
            ),
        )
        .step(
            **world,
            canary=mv_lifecycle.CanaryView(
                error="Prometheus answered malformed data: Field required at data"
            ),
        )
        .obj
    )
    passed = trained("iris-v2", serving={"drainSeconds": 0, **CANARY}, promotion=MANUAL).step(**world)
    for _ in range(6):
        passed.step(**world, canary=mv_lifecycle.CanaryView(requests=250, error_rate=0.0, p99_seconds=0.012))
    out["canary passed, waiting for manual promotion"] = passed.obj
    # Refused by the models after the API server stored it (e.g. written before a CRD upgrade).
    invalid = Version("iris-v3", bogus=1)
    out["invalid spec"] = _reject(invalid.obj)
    deleting = serving().obj
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T13:00:00Z"
    out["being deleted"] = deleting
    return out


def _defaulted_status(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with an empty status as the API server serves it: the CRD's status defaults applied.

    The planner never writes phase Pending; the CRD defaults it, so a status written without a phase
    (by an older operator, or a person) reads back as Pending. The defaults come from crds/, not here.
    """
    crd = yaml.safe_load((ROOT / "crds" / f"{GROUP}_modelversions.yaml").read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == VERSION)["schema"]["openAPIV3Schema"]
    props = schema["properties"]["status"]["properties"]
    obj["status"] = {k: copy.deepcopy(p["default"]) for k, p in props.items() if "default" in p}
    assert obj["status"].get("phase") == "Pending", obj["status"]
    return obj


def _reject(obj: dict[str, Any]) -> dict[str, Any]:
    """What the ModelVersion controller writes for a spec the models refuse."""
    with (
        frozen_operator(NOW),
        mock.patch.object(mv_controller.runtime, "measured", _unmeasured),
        mock.patch.object(mv_controller.runtime, "kube", lambda: RecordingKube(obj)),
    ):
        mv_controller.reconcile((obj["metadata"]["namespace"], obj["metadata"]["name"]))
    assert obj["status"]["phase"] == "Failed", "the sample's spec was accepted"
    return obj


@contextmanager
def _unmeasured(kind: str) -> Iterator[None]:
    yield


# --- RetrainPolicy ------------------------------------------------------------------------------------
REFERENCE = {"petal length (cm)": {"edges": [1.6, 4.35, 5.1], "shares": [0.25, 0.25, 0.25, 0.25]}}


class Policy:
    """One RetrainPolicy as stored, moved on by the planner and the controller's write_status."""

    def __init__(self, **spec: Any) -> None:
        self.obj: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RetrainPolicy",
            "metadata": _meta("iris", 1),
            "spec": {"model": "iris", "interval": "5m", "window": "1h", **spec},
        }
        self.now = NOW

    def step(
        self,
        *,
        champion: str | None = "iris-v1",
        versions: tuple[Any, ...] = (),
        evaluation: Any = None,
        request: str | None = None,
    ) -> Policy:
        self.now += timedelta(minutes=1)
        policy = RetrainPolicy.model_validate(self.obj)
        champ_spec = ModelVersion.model_validate({"metadata": _meta("x", 1), "spec": IRIS_SPEC}).spec
        observed = rp_lifecycle.Observed(
            name="iris",
            uid="uid-iris",
            spec=policy.spec,
            status=policy.status,
            now=self.now,
            created=NOW,
            champion=rp_lifecycle.Champion(champion, champ_spec, {"accuracy": 0.97}) if champion else None,
            versions=versions
            or ((rp_lifecycle.VersionView(champion, "Serving", champion=True),) if champion else ()),
            evaluation=evaluation,
            retrain_request=request,
        )
        p = rp_lifecycle.plan(observed)
        with frozen_operator(self.now):
            rp_controller.write_status(copy.deepcopy(self.obj), p, cast(Kube, RecordingKube(self.obj)))
        return self

    def spec_edit(self, **spec: Any) -> Policy:
        self.obj["spec"].update(spec)
        self.obj["metadata"]["generation"] += 1
        return self


def stable() -> Any:
    from modelops.api.modelversion import Bin

    reference = {k: Bin.model_validate(v) for k, v in REFERENCE.items()}
    counts = [("1.6", 300.0), ("4.35", 600.0), ("5.1", 900.0), ("+Inf", 1200.0)]
    samples = [_Sample({"feature": "petal length (cm)", "le": le}, n) for le, n in counts]
    drift = evaluate_features(reference, samples, [], "psi", 0.25, 100)
    return rp_lifecycle.Evaluation(drift=drift)


class _Sample:
    def __init__(self, labels: dict[str, str], value: float) -> None:
        self.labels, self.value = labels, value


DRIFT = {"drift": {"method": "psi", "threshold": 0.25, "minSamples": 100}}


def retrainpolicy_samples() -> dict[str, dict[str, Any]]:
    """Name -> object, for each health state and cause of a RetrainPolicy."""
    out = _Samples()
    out["no status yet"] = Policy(triggers=DRIFT).obj
    out["evaluating, all stable"] = Policy(triggers=DRIFT).step(evaluation=stable()).obj
    out["spec changed, not observed yet"] = (
        Policy(triggers=DRIFT).step(evaluation=stable()).spec_edit(window="2h").obj
    )
    out["waiting for the first evaluation"] = Policy(triggers=DRIFT).step().obj
    out["suspended"] = Policy(triggers=DRIFT, suspend=True).step(evaluation=stable()).obj
    out["suspend requested, not observed yet"] = (
        Policy(triggers=DRIFT).step(evaluation=stable()).spec_edit(suspend=True).obj
    )
    out["the model has no champion yet"] = Policy(triggers=DRIFT).step(champion=None).obj
    unreachable = rp_lifecycle.Evaluation(
        error="Prometheus at http://prometheus:9090 is unreachable: ConnectError"
    )
    out["Prometheus unreachable"] = Policy(triggers=DRIFT).step(evaluation=unreachable).obj
    malformed = rp_lifecycle.Evaluation(
        error="Prometheus answered malformed data: Input should be a valid list at data.vector.result"
    )
    out["Prometheus answers malformed data"] = Policy(triggers=DRIFT).step(evaluation=malformed).obj
    retraining = Policy(triggers=DRIFT).step(evaluation=stable(), request="please")
    child = retraining.obj["status"]["pending"]["child"]
    in_flight = (
        rp_lifecycle.VersionView("iris-v1", "Serving", champion=True),
        rp_lifecycle.VersionView(child, "Training", parent="iris-v1", owned=True),
    )
    out["retraining (the child has its own health)"] = retraining.step(
        versions=in_flight, request="please"
    ).obj
    # Refused by the models after the API server stored it (e.g. written before a CRD upgrade).
    out["invalid spec"] = _reject_policy(Policy(triggers=DRIFT, interval="soon").obj)
    return out


def _reject_policy(obj: dict[str, Any]) -> dict[str, Any]:
    with (
        frozen_operator(NOW),
        mock.patch.object(rp_controller.runtime, "measured", _unmeasured),
        mock.patch.object(rp_controller.runtime, "kube", lambda: RecordingKube(obj)),
    ):
        rp_controller.reconcile((obj["metadata"]["namespace"], obj["metadata"]["name"]))
    assert any(c["reason"] == "InvalidSpec" for c in obj["status"]["conditions"]), (
        "the sample's spec was accepted"
    )
    return obj


SAMPLES: dict[str, Callable[[], dict[str, dict[str, Any]]]] = {
    "modelversion": modelversion_samples,
    "retrainpolicy": retrainpolicy_samples,
}


def render() -> str:
    """The fixture file's text: every sample object, generated."""
    doc = {kind: [{"name": n, "obj": o} for n, o in make().items()] for kind, make in SAMPLES.items()}
    head = (
        "# GENERATED by `python -m tests.support.argocd_samples` from the operator's own planner and record\n"
        "# paths (see that module); do not edit. Expected health per sample: tests/unit/test_argocd_health.py.\n"
    )
    return head + yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=120, allow_unicode=True)


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


if __name__ == "__main__":
    FIXTURE.write_text(render())
    sys.stdout.write(f"wrote {FIXTURE}\n")
