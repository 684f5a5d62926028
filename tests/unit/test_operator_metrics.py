"""The per-version gauges the operator builds at scrape time (metrics.VersionStates)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelops.api.modelversion import PHASES
from modelops.metrics import VersionStates


def scrape(states: VersionStates) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(states)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted({"namespace": "ml", "model": "iris", **labels}.items()))


def test_each_version_has_one_phase_at_1_and_every_other_at_0() -> None:
    states = VersionStates()
    states.set("ml", "iris", "iris-v1", "Training", False)
    states.set("ml", "iris", "iris-v1", "Serving", True)
    samples = scrape(states)
    assert samples[key("modelops_version_phase", version="iris-v1", phase="Serving")] == 1
    assert samples[key("modelops_version_phase", version="iris-v1", phase="Training")] == 0
    assert sum(v for (name, _), v in samples.items() if name == "modelops_version_phase") == 1
    assert len([n for n, _ in samples if n == "modelops_version_phase"]) == len(PHASES)
    assert samples[key("modelops_champion", version="iris-v1")] == 1


def test_a_forgotten_version_leaves_no_series() -> None:
    states = VersionStates()
    states.set("ml", "iris", "iris-v1", "Serving", True)
    states.set("ml", "iris", "iris-v2", "Pending", False)
    states.forget("ml", "iris", "iris-v1")
    states.forget("ml", "iris", "iris-v9")  # never seen: nothing to do
    samples = scrape(states)
    assert {dict(labels)["version"] for _, labels in samples} == {"iris-v2"}
    assert samples[key("modelops_champion", version="iris-v2")] == 0
