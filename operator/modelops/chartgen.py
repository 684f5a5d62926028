"""Generate the Helm chart (charts/modelops) from the kustomize tree, so the two never disagree.

The kustomize builds of manifests/ are the one source: this module renders them with
`kubectl kustomize` and writes them back out as Helm templates, templating only what users set
(namespace, image, replicas, resources, settings, and whether the monitoring, webhook and
peering parts are installed). The overlays' changes to the operator Deployment (webhook/,
kopf-peering/) are found by comparing their builds with the base's, not copied by hand: an
appended list item becomes an `if` block, a replaced value an `if`/`else`. A unit test fails when
the committed chart differs from what this writes (`make chart`).

How the YAML becomes a template: objects are dumped with placeholder tokens where a template
goes, literal `{{`/`}}` of the sources (Prometheus and Grafana templates) are escaped for Go's
template engine, then each token is replaced by its template text.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "modelops-system"
IMAGE = "ghcr.io/modelops/modelops"
DEPLOYMENT = ("Deployment", "modelops-operator")
SETTINGS = ("ConfigMap", "modelops-settings")
# Settings derived from the image values rather than set twice (the kustomize install's pitfall).
DERIVED_SETTINGS = {"MODELOPS_IMAGE": "modelops.image", "MODELOPS_IMAGE_PULL_POLICY": "modelops.pullPolicy"}
# Optional parts: values key -> kustomization whose additions over the base it installs.
PARTS = {"webhook": "manifests/webhook", "peering": "manifests/kopf-peering"}
# Labels the chart adds to every object it templates (Helm's best-practice labels). The chart
# tests strip exactly these before comparing with the kustomize build.
HELM_LABELS = {
    "helm.sh/chart": 'printf "%s-%s" .Chart.Name (.Chart.Version | replace "+" "_")',
    "app.kubernetes.io/managed-by": ".Release.Service",
    "app.kubernetes.io/instance": ".Release.Name",
}


# helm uninstall keeps the Namespace: deleting it would take the release's own records (Secrets in
# that namespace) with it before Helm purges them, and uninstall would end in an error.
NAMESPACE_ANNOTATIONS = {"helm.sh/resource-policy": "keep"}


def kustomize(root: Path, path: str) -> list[dict[str, Any]]:
    """`kubectl kustomize <path>`, parsed: the build users apply."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl is needed to build the kustomizations (make kubectl)")
    out = subprocess.run(
        [kubectl, "kustomize", str(root / path)], capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise SystemExit(f"kubectl kustomize {path} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def ident(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


# --- YAML with placeholders ----------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings as literal blocks; strings holding a token double-quoted
    (a template inside a plain scalar could change its type or break the line)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "__MO" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=1 << 30, default_flow_style=False)


def escape_braces(text: str) -> str:
    """Literal `{{`/`}}` (alert and legend templates) survive Helm's template engine."""
    return re.sub(r"\{\{|\}\}", lambda m: '{{ "' + m.group() + '" }}', text)


@dataclass
class Template:
    """One object on its way to a template: placeholder tokens and what each one becomes."""

    obj: Any
    blocks: dict[str, Callable[[str, str], str]] = field(default_factory=dict)
    inline: dict[str, str] = field(default_factory=dict)

    def token(self) -> str:
        return f"__MO{len(self.blocks) + len(self.inline)}__"

    def block(self, render: Callable[[str, str], str]) -> str:
        """A token standing for whole lines; `render(prefix, key)` writes them (prefix is the
        line's indentation, with `- ` if the token's key opens a list item)."""
        tok = self.token()
        self.blocks[tok] = render
        return tok

    def expr(self, text: str, quote: bool = True) -> str:
        """A token replaced by template text inside a scalar (a whole scalar is quoted, so a
        value never changes type, unless `quote` is false: numbers)."""
        tok = self.token()
        self.inline[tok] = text if quote else text + " | int"
        return tok

    def text(self) -> str:
        out = escape_braces(dump(self.obj))
        lines = []
        for line in out.splitlines():
            m = re.fullmatch(r'(\s*(?:- )?)(?:([^:\s]+): )?"?(__MO\d+__)"?(?:: null)?', line)
            if m and m.group(3) in self.blocks:
                lines.append(self.blocks[m.group(3)](m.group(1), m.group(2) or ""))
            else:
                lines.append(line)
        out = "\n".join(lines) + "\n"
        for tok, text in self.inline.items():
            whole = "{{ " + text + " }}" if text.endswith(" | int") else "{{ " + text + " | quote }}"
            out = out.replace(f'"{tok}"', whole).replace(tok, "{{ " + text + " }}")
        assert "__MO" not in out, out
        return out


def _indent(text: str, prefix: str) -> str:
    """Lines of `text` under `prefix`: the first after it, the rest aligned with it."""
    pad = " " * len(prefix)
    lines = text.rstrip("\n").splitlines()
    return "\n".join([prefix + lines[0], *(pad + line for line in lines[1:])])


def _when(cond: str, on: str, off: str | None = None) -> str:
    out = "{{- if " + cond + " }}\n" + on
    if off is not None:
        out += "\n{{- else }}\n" + off
    return out + "\n{{- end }}"


# --- the overlays' changes to one object ----------------------------------------------------------
def overlay(tpl: Template, base: Any, changed: Any, cond: str, path: str = "") -> Any:
    """`base` with `changed`'s differences as conditional blocks: appended list items and replaced
    values (anything else an overlay might do is refused, so the chart never silently differs)."""
    if base == changed:
        return base
    if isinstance(base, dict) and isinstance(changed, dict):
        if set(changed) != set(base):
            raise ValueError(
                f"{path}: an overlay adds or removes keys; only append and replace are supported"
            )
        out = {}
        for key, value in base.items():
            new = changed[key]
            lists = isinstance(value, list) and isinstance(new, list)
            # Appended items, or the same objects (containers) changed inside; a list of
            # scalars that changed (args) is replaced whole.
            objects = all(isinstance(v, dict) for v in value + new) if lists else False
            appends = lists and (new[: len(value)] == value or (len(new) == len(value) and objects))
            same_keys = isinstance(value, dict) and isinstance(new, dict) and set(value) == set(new)
            if value == new or same_keys or appends:
                out[key] = overlay(tpl, value, new, cond, f"{path}/{key}")
            else:
                on, off = substitute(tpl, new), substitute(tpl, value)
                out[key] = tpl.block(
                    lambda prefix, k, on=on, off=off: _when(
                        cond,
                        _indent(escape_braces(dump({k: on})), prefix),
                        _indent(escape_braces(dump({k: off})), prefix),
                    )
                )
        return out
    if isinstance(base, list) and isinstance(changed, list) and len(base) == len(changed):
        return [
            overlay(tpl, b, c, cond, f"{path}[{i}]")
            for i, (b, c) in enumerate(zip(base, changed, strict=True))
        ]
    if isinstance(base, list) and isinstance(changed, list) and changed[: len(base)] == base:
        extra = substitute(tpl, changed[len(base) :])
        return [
            *base,
            tpl.block(
                lambda prefix, _k, items=extra: _when(cond, _indent(escape_braces(dump(items)), prefix[:-2]))
            ),
        ]
    raise ValueError(f"{path}: cannot express this overlay change")


def _is_token(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("__MO")


def merge_views(first: Any, second: Any) -> Any:
    """Two overlays' views of one object (each with its own tokens) in one: they must touch
    different places."""
    if first == second:
        return first
    if _is_token(first) != _is_token(second):
        return first if _is_token(first) else second
    if isinstance(first, dict) and isinstance(second, dict):
        return {k: merge_views(v, second[k]) for k, v in first.items()}
    if isinstance(first, list) and isinstance(second, list):
        if len(first) == len(second):
            return [merge_views(a, b) for a, b in zip(first, second, strict=True)]
        shorter, longer = sorted((first, second), key=len)
        if longer[: len(shorter)] == shorter:
            return longer
    raise ValueError("two overlays change the same field")


# --- values ----------------------------------------------------------------------------------------
def substitute(tpl: Template, node: Any) -> Any:
    """Every mention of the namespace and the image in strings becomes a template expression."""
    if isinstance(node, dict):
        return {k: substitute(tpl, v) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(tpl, v) for v in node]
    if isinstance(node, str) and not _is_token(node):
        if IMAGE + ":" in node:
            node = re.sub(re.escape(IMAGE) + r":[\w.\-]+", tpl.expr('include "modelops.image" .'), node)
        if NAMESPACE in node:
            node = node.replace(NAMESPACE, tpl.expr('include "modelops.namespace" .'))
    return node


def template_object(
    obj: dict[str, Any], when: str | None = None, overlays: dict[str, dict[str, Any]] | None = None
) -> str:
    """One object as a template: each part's changes to it under `.Values.<part>.enabled`, the
    namespace, image and user-set values templated, Helm's labels added."""
    tpl = Template(copy.deepcopy(obj))
    views = [
        overlay(tpl, obj, changed, f".Values.{part}.enabled") for part, changed in (overlays or {}).items()
    ]
    for view in views:
        tpl.obj = merge_views(tpl.obj, view)
    labels = tpl.obj["metadata"].setdefault("labels", {})
    for key, text in HELM_LABELS.items():
        labels[key] = tpl.expr(text)
    if ident(obj) == DEPLOYMENT:
        spec = tpl.obj["spec"]
        spec["replicas"] = tpl.expr(".Values.replicas", quote=False)
        container = spec["template"]["spec"]["containers"][0]
        container["imagePullPolicy"] = tpl.expr('include "modelops.pullPolicy" .')
        container["resources"] = tpl.block(
            lambda prefix, k: f"{prefix}{k}:\n{{{{- toYaml .Values.resources | nindent {len(prefix) + 2} }}}}"
        )
    if obj["kind"] == "Namespace":
        tpl.obj["metadata"].setdefault("annotations", {}).update(NAMESPACE_ANNOTATIONS)
    if ident(obj) == SETTINGS:
        data = tpl.obj["data"]
        for key in list(data):
            del data[key]
        for key, helper in DERIVED_SETTINGS.items():
            data[key] = tpl.expr(f'include "{helper}" .')
        data[tpl.block(_settings_range)] = None
    tpl.obj = substitute(tpl, tpl.obj)
    text = tpl.text()
    return _when(when, text.rstrip("\n")) + "\n" if when else text


def _settings_range(prefix: str, _key: str) -> str:
    return (
        "{{- range $key, $value := .Values.settings }}\n"
        f"{prefix}{{{{ $key }}}}: {{{{ $value | toString | quote }}}}\n"
        "{{- end }}"
    )


# --- the chart -------------------------------------------------------------------------------------
HELPERS = """\
{{/* Generated by `make chart` (modelops/chartgen.py) from manifests/: do not edit. */}}

{{/* The namespace of the install: the release's (`helm install -n ...`), never `default`. */}}
{{- define "modelops.namespace" -}}
{{- if and .Values.namespace.create (has .Release.Namespace (list "default" "kube-system" "kube-public")) -}}
{{- fail (printf "install ModelOps into its own namespace (helm install -n modelops-system --create-namespace): namespace.create would relabel %q with the restricted Pod Security profile" .Release.Namespace) -}}
{{- end -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/* The operator's image, also the image of the training and serving pods it starts. */}}
{{- define "modelops.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- if not .Values.image.repository -}}{{- fail "image.repository must be set" -}}{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{- define "modelops.pullPolicy" -}}
{{- .Values.image.pullPolicy -}}
{{- end -}}
"""

SETTINGS_CHECK = """\
{{- range $key := list "MODELOPS_IMAGE" "MODELOPS_IMAGE_PULL_POLICY" }}
{{- if hasKey $.Values.settings $key }}
{{- fail (printf "settings.%s: set image.repository, image.tag and image.pullPolicy instead (the chart derives %s from them)" $key $key) }}
{{- end }}
{{- end }}
"""

NOTES = """\
ModelOps {{ .Chart.AppVersion }} is installed in namespace {{ include "modelops.namespace" . }}.

  kubectl -n {{ include "modelops.namespace" . }} rollout status deployment/modelops-operator

In every namespace where models train, bind the trainer's ServiceAccount to the ClusterRole
modelops-trainer with a RoleBinding (examples/iris/trainer-rbac.yaml), then:

  kubectl get modelversions -A
"""


def _switch(what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"enabled": {"type": "boolean", "description": what}},
    }


# Helm checks values against this before rendering: a typo or a wrong type is refused at
# `helm install`/`template`/`lint`, naming the value, instead of rendering something else.
VALUES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "namespace": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"create": {"type": "boolean"}},
        },
        "image": {
            "type": "object",
            "additionalProperties": False,
            "required": ["repository", "pullPolicy"],
            "properties": {
                "repository": {"type": "string", "minLength": 1},
                "tag": {"type": ["string", "integer"]},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
        },
        "replicas": {"type": "integer", "minimum": 0},
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                key: {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
                for key in ("requests", "limits")
            },
        },
        "settings": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Z_][A-Z0-9_]*$"},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "monitoring": _switch("ServiceMonitor, PodMonitor, PrometheusRule, dashboard"),
        "webhook": _switch("the validating admission webhook (cert-manager)"),
        "peering": _switch("Kopf peering instead of --standalone"),
    },
}

HELMIGNORE = "# Generated by `make chart`.\n.DS_Store\n*.orig\n*~\n"


def _settings_values(settings: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in settings["data"].items() if k not in DERIVED_SETTINGS}


def generate(root: Path) -> dict[str, str]:
    """Every file of charts/modelops, by relative path."""
    core = kustomize(root, "manifests")
    monitoring = kustomize(root, "manifests/monitoring")
    peering_crds = kustomize(root, "manifests/kopf-peering/crds")
    parts = {part: kustomize(root, path) for part, path in PARTS.items()}
    by_id = {ident(o): o for o in core}
    deployment = by_id[DEPLOYMENT]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    repository, tag = container["image"].rsplit(":", 1)
    if repository != IMAGE:
        raise ValueError(f"the Deployment's image {container['image']} is not {IMAGE}:<tag>")

    files: dict[str, str] = {}
    header = "# Generated by `make chart` (modelops/chartgen.py) from {src}: do not edit.\n"
    for obj in [o for o in core if o["kind"] == "CustomResourceDefinition"] + peering_crds:
        files[f"crds/{obj['metadata']['name']}.yaml"] = header.format(src="the kustomize build") + dump(obj)

    core_objects = [o for o in core if o["kind"] != "CustomResourceDefinition"]
    for obj in core_objects:
        kind, name = ident(obj)
        if (kind, name) == DEPLOYMENT:
            changed = {part: next(o for o in objs if ident(o) == DEPLOYMENT) for part, objs in parts.items()}
            text = template_object(obj, overlays=changed)
        elif kind == "Namespace":
            text = template_object(obj, when=".Values.namespace.create")
        else:
            text = template_object(obj)
        if (kind, name) == SETTINGS:
            text = SETTINGS_CHECK + text
        files[f"templates/{kind.lower()}-{name}.yaml"] = header.format(src="manifests/") + text
    for part, objs in parts.items():
        for obj in objs:
            if ident(obj) in by_id and ident(obj) != DEPLOYMENT and obj != by_id[ident(obj)]:
                raise ValueError(
                    f"{PARTS[part]} changes {ident(obj)}: the chart only knows its Deployment changes"
                )
        added = [o for o in objs if ident(o) not in by_id and o["kind"] != "CustomResourceDefinition"]
        body = "---\n".join(template_object(o) for o in added)
        files[f"templates/{part}.yaml"] = (
            header.format(src=PARTS[part] + "/") + _when(f".Values.{part}.enabled", body.rstrip("\n")) + "\n"
        )
    body = "---\n".join(template_object(o) for o in monitoring)
    files["templates/monitoring.yaml"] = (
        header.format(src="manifests/monitoring/")
        + _when(".Values.monitoring.enabled", body.rstrip("\n"))
        + "\n"
    )
    files["templates/_helpers.tpl"] = HELPERS
    files["templates/NOTES.txt"] = NOTES
    files[".helmignore"] = HELMIGNORE
    files["values.schema.json"] = json.dumps(VALUES_SCHEMA, indent=2) + "\n"
    files["Chart.yaml"] = header.format(src="manifests/") + dump(
        {
            "apiVersion": "v2",
            "name": "modelops",
            "description": "ModelOps: a Kubernetes operator for the whole life of ML models",
            "type": "application",
            "version": tag,
            "appVersion": tag,
            "kubeVersion": ">=1.25.0-0",
        }
    )
    files["values.yaml"] = values_yaml(
        repository=repository,
        tag=tag,
        pull_policy=container["imagePullPolicy"],
        replicas=deployment["spec"]["replicas"],
        resources=container["resources"],
        settings=_settings_values(by_id[SETTINGS]),
        root=root,
    )
    return files


def _setting_comments(root: Path) -> dict[str, list[str]]:
    """The comment lines above each key of base/settings.yaml, to carry them into values.yaml."""
    comments: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in (root / "manifests/base/settings.yaml").read_text().splitlines():
        stripped = line.strip()
        if line.startswith("  #") and not re.match(r"#\s*MODELOPS_\w+:", stripped):
            pending.append(stripped)
        elif re.match(r"  #?\s*[A-Z_]+:", line):
            key = stripped.lstrip("# ").split(":", 1)[0]
            comments[key] = pending
            pending = []
        else:
            pending = []
    return comments


def values_yaml(
    *,
    repository: str,
    tag: str,
    pull_policy: str,
    replicas: int,
    resources: dict[str, Any],
    settings: dict[str, str],
    root: Path,
) -> str:
    comments = _setting_comments(root)
    out = [
        "# Generated by `make chart` (modelops/chartgen.py) from manifests/: do not edit; defaults are",
        "# the kustomize install's. Install: helm install modelops charts/modelops -n modelops-system --create-namespace",
        "",
        "# The Namespace object with the restricted Pod Security labels, named after the release's",
        "# namespace (-n). Set false to install into a namespace you manage yourself.",
        "namespace:",
        "  create: true",
        "",
        "# The operator's image, also the image of the training and serving pods it starts",
        "# (MODELOPS_IMAGE and MODELOPS_IMAGE_PULL_POLICY are derived from it). An empty tag is the",
        "# chart's appVersion.",
        dump({"image": {"repository": repository, "tag": tag, "pullPolicy": pull_policy}}).rstrip("\n"),
        "",
        "# Keep 1 unless peering.enabled: two operators must never handle the same objects at once.",
        dump({"replicas": replicas}).rstrip("\n"),
        "",
        "# The operator container's requests and limits.",
        dump({"resources": resources}).rstrip("\n"),
        "",
        "# The operator's settings (ConfigMap modelops-settings, read at start-up; see manifests/README.md).",
        "settings:",
    ]
    for key, value in settings.items():
        out += ["  " + c for c in comments.get(key, [])]
        out.append("  " + dump({key: value}).rstrip("\n"))
    for key in comments:
        if key not in settings and key not in DERIVED_SETTINGS:
            out += ["  " + c for c in comments[key]]
            out.append(f"  # {key}: ...")
    out += [
        "",
        "# ServiceMonitor, PodMonitor, PrometheusRule and the Grafana dashboard (manifests/monitoring/):",
        "# needs the Prometheus Operator's CRDs.",
        "monitoring:",
        "  enabled: true",
        "",
        "# The validating admission webhook (manifests/webhook/): needs cert-manager.",
        "webhook:",
        "  enabled: false",
        "",
        "# Kopf peering instead of --standalone (manifests/kopf-peering/); the chart's crds/ always",
        "# carries Kopf's peering CRDs, which Helm installs before the templates.",
        "peering:",
        "  enabled: false",
    ]
    return "\n".join(out) + "\n"


def write(root: Path, out: Path) -> list[Path]:
    """Replace the chart directory's generated files (and remove files no longer generated)."""
    files = generate(root)
    for old in sorted(out.rglob("*")) if out.exists() else []:
        if old.is_file() and str(old.relative_to(out)) not in files:
            old.unlink()
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelops chart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=".", help="the repository (with manifests/); default: .")
    parser.add_argument("--write", metavar="DIR", default="charts/modelops", help="chart directory to write")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    for path in write(root, root / args.write if not Path(args.write).is_absolute() else Path(args.write)):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
