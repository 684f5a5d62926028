"""The Helm chart (charts/modelops) against the kustomize tree it is generated from, with the real
helm (built from its Go module): no cluster.

- The committed chart is what `make chart` writes from manifests/ (a stale chart fails).
- `helm lint --strict` passes, with every part on and off.
- `helm template` with default values is the kustomize install (manifests/ + monitoring/, and
  Kopf's peering CRDs, which the chart's crds/ always carries) object for object, compared as
  parsed YAML after removing only the labels the chart adds (see `normalise`); each optional part
  gives its overlay's build; non-default values change exactly what they name and nothing else.
- Values that would fail later are refused at render time, naming the value.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops import chartgen
from tests.support.helm import CHART, helm, template
from tests.unit.test_manifests import build

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/modelops/modelops:0.1.0"
Key = tuple[str, str, str, str]


def key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


def normalise(objs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Objects by identity, minus the three labels the chart adds to every object it templates,
    and nothing else: `helm.sh/chart`, `app.kubernetes.io/managed-by` (Helm's own; `helm install`
    would set it anyway) and `app.kubernetes.io/instance` (the release), Helm's best-practice
    labels, which tell one release's objects from another's; and on the Namespace the annotation
    `helm.sh/resource-policy: keep` (helm uninstall must not delete the namespace that holds the
    release's own records). A map left empty is dropped (the kustomize objects have none)."""
    out: dict[Key, dict[str, Any]] = {}
    for obj in objs:
        obj = copy.deepcopy(obj)
        labels = obj["metadata"].get("labels")
        if labels is not None:
            for name in chartgen.HELM_LABELS:
                labels.pop(name, None)
            if not labels:
                del obj["metadata"]["labels"]
        if obj["kind"] == "Namespace":
            annotations = obj["metadata"]["annotations"]
            assert annotations.pop("helm.sh/resource-policy") == "keep"
            if not annotations:
                del obj["metadata"]["annotations"]
        assert key(obj) not in out, f"{key(obj)} twice"
        out[key(obj)] = obj
    return out


def kustomize(*paths: str) -> dict[Key, dict[str, Any]]:
    """The union of kustomize builds (an object in several builds must be the same in each)."""
    out: dict[Key, dict[str, Any]] = {}
    for path in paths:
        for obj in build(path):
            assert out.get(key(obj), obj) == obj, f"{key(obj)} differs between builds"
            out[key(obj)] = copy.deepcopy(obj)
    return out


def assert_same(rendered: dict[Key, dict[str, Any]], expected: dict[Key, dict[str, Any]]) -> None:
    assert sorted(rendered) == sorted(expected), (
        f"only in helm: {sorted(set(rendered) - set(expected))}\nonly in kustomize: {sorted(set(expected) - set(rendered))}"
    )
    for k, obj in expected.items():
        assert rendered[k] == obj, (
            f"{k} differs:\nhelm:      {json.dumps(rendered[k])}\nkustomize: {json.dumps(obj)}"
        )


DEFAULT = ("manifests", "manifests/monitoring", "manifests/kopf-peering/crds")


# --- generated ------------------------------------------------------------------------------------
def test_committed_chart_is_what_make_chart_writes() -> None:
    files = chartgen.generate(ROOT)
    on_disk = {str(p.relative_to(CHART)) for p in CHART.rglob("*") if p.is_file()}
    assert on_disk == set(files), "charts/modelops is stale: run `make chart` and commit the result"
    for rel, text in files.items():
        assert (CHART / rel).read_text() == text, f"charts/modelops/{rel} is stale: run `make chart`"


def test_values_defaults_are_the_kustomize_install() -> None:
    """values.yaml says what the kustomize install does (and so what the README documents)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    settings = next(o for o in build("manifests") if o["kind"] == "ConfigMap")["data"]
    assert f"{values['image']['repository']}:{values['image']['tag']}" == settings["MODELOPS_IMAGE"] == IMAGE
    assert values["image"]["pullPolicy"] == settings["MODELOPS_IMAGE_PULL_POLICY"]
    assert values["settings"] == {k: v for k, v in settings.items() if k not in chartgen.DERIVED_SETTINGS}
    assert (
        values["monitoring"]["enabled"]
        and not values["webhook"]["enabled"]
        and not values["peering"]["enabled"]
    )


# --- helm lint ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("webhook.enabled=true", "peering.enabled=true"),
        ("monitoring.enabled=false", "namespace.create=false"),
    ],
    ids=["defaults", "every-part", "core-only"],
)
def test_helm_lint_passes(sets: tuple[str, ...]) -> None:
    args = [a for s in sets for a in ("--set", s)]
    out = helm("lint", "--strict", CHART, "--namespace", "modelops-system", *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout


# --- helm template = kustomize build ---------------------------------------------------------------
def test_default_values_render_the_kustomize_install() -> None:
    assert_same(normalise(template()), kustomize(*DEFAULT))


def test_every_object_carries_the_release_labels() -> None:
    """What `normalise` removes is there, on every templated object (CRDs are not templated)."""
    for obj in template():
        if obj["kind"] != "CustomResourceDefinition":
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/managed-by"] == "Helm", key(obj)
            assert labels["app.kubernetes.io/instance"] == "modelops", key(obj)
            assert labels["helm.sh/chart"] == "modelops-0.1.0", key(obj)


@pytest.mark.parametrize(
    ("part", "overlay"), [("webhook", "manifests/webhook"), ("peering", "manifests/kopf-peering")]
)
def test_each_part_renders_its_overlay(part: str, overlay: str) -> None:
    rendered = normalise(template("--set", f"{part}.enabled=true"))
    assert_same(rendered, kustomize(overlay, "manifests/monitoring", "manifests/kopf-peering/crds"))


def test_webhook_and_peering_together_change_the_deployment_both_ways() -> None:
    """No kustomization combines the two; the chart applies both overlays' changes, each as its
    own overlay does, and everything else is the union of the two builds."""
    rendered = normalise(template("--set", "webhook.enabled=true", "--set", "peering.enabled=true"))
    webhook, peering = kustomize("manifests/webhook"), kustomize("manifests/kopf-peering")
    expected = {**kustomize(*DEFAULT), **webhook, **peering}
    dep = ("apps/v1", "Deployment", "modelops-system", "modelops-operator")
    both = copy.deepcopy(webhook[dep])
    both["spec"]["strategy"] = peering[dep]["spec"]["strategy"]
    both["spec"]["template"]["spec"]["containers"][0]["args"] = peering[dep]["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    expected[dep] = both
    assert_same(rendered, expected)


def _replace_strings(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: _replace_strings(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_strings(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


def test_non_default_values_change_exactly_what_they_name() -> None:
    """Another namespace, image, replicas, resources and a setting, monitoring off: the kustomize
    install with exactly those edits (the namespace everywhere it is named: metadata, the
    ClusterRoleBinding's subject, alert texts), and no monitoring objects."""
    rendered = normalise(
        template(
            "--set",
            "image.repository=registry.example.com/ml/modelops",
            "--set",
            "image.tag=0.2.0",
            "--set",
            "image.pullPolicy=Always",
            "--set",
            "replicas=0",
            "--set",
            "resources.limits.memory=1Gi",
            "--set",
            "settings.MODELOPS_WORKERS=16",
            "--set",
            "settings.MODELOPS_TRAINER_IMAGE=registry.example.com/ml/trainer:1",
            "--set",
            "monitoring.enabled=false",
            namespace="ml-platform",
        )
    )
    expected = {}
    for obj in kustomize("manifests", "manifests/kopf-peering/crds").values():
        obj = _replace_strings(obj, "modelops-system", "ml-platform")
        obj = _replace_strings(obj, IMAGE, "registry.example.com/ml/modelops:0.2.0")
        expected[key(obj)] = obj
    dep = expected[("apps/v1", "Deployment", "ml-platform", "modelops-operator")]
    dep["spec"]["replicas"] = 0
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicy"] = "Always"
    container["resources"]["limits"]["memory"] = "1Gi"
    data = expected[("v1", "ConfigMap", "ml-platform", "modelops-settings")]["data"]
    data.update(
        MODELOPS_IMAGE_PULL_POLICY="Always",
        MODELOPS_WORKERS="16",
        MODELOPS_TRAINER_IMAGE="registry.example.com/ml/trainer:1",
    )
    assert_same(rendered, expected)
    assert not any("modelops-system" in json.dumps(o) for o in rendered.values())


def test_an_empty_image_tag_is_the_charts_app_version() -> None:
    dep = next(o for o in template("--set", "image.tag=") if o["kind"] == "Deployment")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (
        dep["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"ghcr.io/modelops/modelops:{chart['appVersion']}"
    )


def test_namespace_create_false_leaves_the_namespace_out() -> None:
    rendered = normalise(template("--set", "namespace.create=false"))
    expected = kustomize(*DEFAULT)
    del expected[("v1", "Namespace", "", "modelops-system")]
    assert_same(rendered, expected)


# --- refused at render time -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "namespace", "says"),
    [
        ((), "default", "install ModelOps into its own namespace"),
        ((), "kube-system", "install ModelOps into its own namespace"),
        (
            ("--set", "settings.MODELOPS_IMAGE=x:1"),
            "modelops-system",
            "settings.MODELOPS_IMAGE: set image.repository",
        ),
        (("--set", "image.repository="), "modelops-system", "/image/repository"),
        (("--set", "replicas=-1"), "modelops-system", "replicas"),
        (("--set", "monitoring.enable=false"), "modelops-system", "enable"),
        (("--set", "image.pullPolicy=Sometimes"), "modelops-system", "pullPolicy"),
        (("--set", "settings.modelops_workers=4"), "modelops-system", "modelops_workers"),
    ],
    ids=[
        "default-namespace",
        "kube-system",
        "image-in-settings",
        "no-repository",
        "negative-replicas",
        "misspelt-switch",
        "pull-policy",
        "setting-name",
    ],
)
def test_values_that_would_fail_later_are_refused(args: tuple[str, ...], namespace: str, says: str) -> None:
    out = helm("template", "modelops", CHART, "--namespace", namespace, *args, check=False)
    assert out.returncode != 0 and says in out.stderr, out.stderr
