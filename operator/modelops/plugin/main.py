"""`kubectl modelops`: the operator's kubectl plugin (installed with the package as `kubectl-modelops`).

kubectl runs a plugin with every argument after its name, flags included, so the plugin takes
kubectl's own connection flags (--kubeconfig, --context, -n/--namespace, -A) itself. Every
request goes through `modelops.k8s.direct`; the words and decisions are in `render` (pure).
Errors are one line on stderr and exit code 1 (2 for a usage error, as argparse does).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import render

PROG = "kubectl modelops"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")
    p.add_argument("--context", help="The kubeconfig context to use.")
    p.add_argument("-n", "--namespace", help="Namespace (default: the context's, else default).")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG, description="Look at and steer ModelOps models: lineage, decisions, promotion, retraining."
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    get = sub.add_parser("get", help="a tree of each model's versions: phase, champion, metric, parent, age")
    get.add_argument("model", nargs="?", help="Only this model (default: every model).")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="Models of every namespace.")
    _common(get)

    hist = sub.add_parser("history", help="decisions about a model or a version, oldest first")
    hist.add_argument("name", help="A model, or one of its versions.")
    _common(hist)

    promote = sub.add_parser("promote", help="ask the operator to make a version the champion")
    promote.add_argument("version")
    promote.add_argument(
        "--approved-by", help="Also set modelops.dev/approved-by (promotion.requireApproval)."
    )
    _common(promote)

    rollback = sub.add_parser("rollback", help="promote the previous champion of a model again")
    rollback.add_argument("model")
    rollback.add_argument("--to", metavar="VERSION", help="A former champion other than the previous one.")
    rollback.add_argument("--approved-by", help="Also set modelops.dev/approved-by.")
    _common(rollback)

    retrain = sub.add_parser("retrain", help="ask a RetrainPolicy to retrain its model now")
    retrain.add_argument("policy", help="The RetrainPolicy, or the model it keeps (when it has one policy).")
    _common(retrain)

    retire = sub.add_parser("retire", help="retire a version (spec.retired: its server is removed)")
    retire.add_argument("version")
    _common(retire)

    card = sub.add_parser("card", help="print a serving version's model card (through the API server)")
    card.add_argument("name", help="A version, or a model (its champion).")
    card.add_argument("--json", action="store_true", help="The card as JSON (default: Markdown).")
    _common(card)
    return top


def colour_wanted(stream: Any = None) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def token() -> str:
    """A fresh request token (UTC, to the second): the operator acts on each new value once."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


class Plugin:
    def __init__(self, args: argparse.Namespace, out: Any = None) -> None:
        from modelops.k8s.direct import KubeClient, Target  # the Kubernetes client only when talking

        self.args = args
        self.out = out or sys.stdout
        self.kube = KubeClient(Target(args.kubeconfig, args.context, args.namespace))
        self.ns = self.kube.namespace

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def version(self, name: str) -> dict[str, Any]:
        mv = self.kube.get("modelversions", self.ns, name)
        if mv is None:
            raise render.Refusal(f'modelversion "{name}" not found in namespace {self.ns}')
        return mv

    def versions_of(self, model: str) -> list[dict[str, Any]]:
        mvs = [mv for mv in self.kube.list("modelversions", self.ns) if render.model_of(mv) == model]
        if not mvs:
            raise render.Refusal(f'no ModelVersion of model "{model}" in namespace {self.ns}')
        return mvs

    def model_or_version(self, name: str) -> tuple[str, list[dict[str, Any]]]:
        """A model's versions (for a model name), or one version's model and its versions."""
        mvs = self.kube.list("modelversions", self.ns)
        of_model = [mv for mv in mvs if render.model_of(mv) == name]
        if of_model:
            return name, of_model
        mine = next((mv for mv in mvs if mv["metadata"]["name"] == name), None)
        if mine is None:
            raise render.Refusal(f'no model or ModelVersion "{name}" in namespace {self.ns}')
        return render.model_of(mine), [mine]

    # --- commands ------------------------------------------------------------------------------------
    def get(self) -> None:
        ns = None if self.args.all_namespaces else self.ns
        mvs = self.kube.list("modelversions", ns)
        if self.args.model:
            mvs = [mv for mv in mvs if render.model_of(mv) == self.args.model]
        if not mvs:
            where = "any namespace" if ns is None else f"namespace {ns}"
            what = f'model "{self.args.model}"' if self.args.model else "any model"
            raise render.Refusal(f"no ModelVersion of {what} in {where}")
        pols = self.kube.list("retrainpolicies", ns)
        self.say(
            render.version_tree(
                mvs,
                pols,
                datetime.now(UTC),
                colour=colour_wanted(self.out),
                all_namespaces=self.args.all_namespaces,
            )
        )

    def history(self) -> None:
        _, mvs = self.model_or_version(self.args.name)
        events = self.kube.events(self.ns, "ModelVersion", [mv["metadata"]["name"] for mv in mvs])
        rows = render.decisions(mvs, events)
        self.say(render.history_table(rows, colour=colour_wanted(self.out)))

    def _promote(self, mv: dict[str, Any], why: str) -> None:
        render.check_promotable(mv)
        name = mv["metadata"]["name"]
        t = token()
        self.kube.patch("modelversions", self.ns, name, render.promotion_patch(t, self.args.approved_by))
        self.say(f"modelversion.modelops.dev/{name} {why} (request {t}); the operator promotes it once ready")

    def promote(self) -> None:
        self._promote(self.version(self.args.version), "promotion requested")

    def rollback(self) -> None:
        mvs = self.versions_of(self.args.model)
        target = self.args.to or render.previous_champion(mvs)
        mv = next((m for m in mvs if m["metadata"]["name"] == target), None)
        if mv is None:
            raise render.Refusal(f'{target} is not a ModelVersion of model "{self.args.model}"')
        if not (mv.get("status") or {}).get("timestamps", {}).get("promoted"):
            raise render.Refusal(f"{target} was never champion of {self.args.model}: use promote")
        self._promote(mv, "rollback requested")

    def retrain(self) -> None:
        name = self.args.policy
        policy = self.kube.get("retrainpolicies", self.ns, name)
        if policy is None:
            found = [p for p in self.kube.list("retrainpolicies", self.ns) if render.model_of(p) == name]
            if len(found) != 1:
                many = f"{len(found)} RetrainPolicies keep model {name}: name one" if found else "not found"
                raise render.Refusal(f'retrainpolicy "{name}": {many}')
            policy = found[0]
        pname = policy["metadata"]["name"]
        t = token()
        self.kube.patch("retrainpolicies", self.ns, pname, render.retrain_patch(t))
        suspended = (
            " (the policy is suspended: it waits)" if (policy.get("spec") or {}).get("suspend") else ""
        )
        self.say(f"retrainpolicy.modelops.dev/{pname} retrain requested (request {t}){suspended}")

    def retire(self) -> None:
        mv = self.version(self.args.version)
        render.check_retirable(mv)
        name = mv["metadata"]["name"]
        self.kube.patch("modelversions", self.ns, name, {"spec": {"retired": True}})
        self.say(f"modelversion.modelops.dev/{name} retired")

    def card(self) -> None:
        mv = self.kube.get("modelversions", self.ns, self.args.name)
        if mv is None:
            _, mvs = self.model_or_version(self.args.name)
            mv = next((m for m in mvs if render.is_champion(m)), None)
            if mv is None:
                raise render.Refusal(f"model {self.args.name} has no champion: name a version")
        service = render.card_service(mv)
        body = self.kube.service_proxy(
            self.ns, service, "http", render.card_path(render.model_of(mv), not self.args.json)
        )
        self.out.write(body.decode(errors="replace"))
        if not body.endswith(b"\n"):
            self.out.write("\n")


COMMANDS: dict[str, Callable[[Plugin], None]] = {
    "get": Plugin.get,
    "history": Plugin.history,
    "promote": Plugin.promote,
    "rollback": Plugin.rollback,
    "retrain": Plugin.retrain,
    "retire": Plugin.retire,
    "card": Plugin.card,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    from urllib3.exceptions import HTTPError

    from modelops.k8s.direct import ApiError

    plugin = None
    try:
        plugin = Plugin(args)
        COMMANDS[args.command](plugin)
    except (render.Refusal, ApiError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except HTTPError as e:  # connection refused, TLS, timeouts: the API server was not reached
        host = plugin.kube.api.configuration.host if plugin else "?"
        why = getattr(e, "reason", None) or e
        print(f"error: cannot reach the API server at {host}: {why}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
