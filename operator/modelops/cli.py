"""The one `modelops` command: `run` (the operator), `train` and `import` (the Job), `search-shard`
(an index of the search Job), `serve` (the Deployment), `resolve` and `cleanup` (small Jobs).

Sub-commands import their module lazily so the trainer image never loads kopf and
the operator never loads scikit-learn at start-up.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "run": ("modelops.controllers.main", "main", "run the operator"),
    "train": ("modelops.trainer.main", "main", "train one model version (the training Job's entry point)"),
    "search-shard": (
        "modelops.trainer.main",
        "shard_main",
        "evaluate one index's share of a search (the search Job's entry point)",
    ),
    "import": (
        "modelops.trainer.importer",
        "main",
        "verify, score and store a model trained elsewhere (the import Job's entry point)",
    ),
    "serve": (
        "modelops.server.main",
        "main",
        "serve one model version (the serving Deployment's entry point)",
    ),
    "resolve": (
        "modelops.trainer.resolve",
        "main",
        "find a retrain's data and its sha256 (the resolve Job's entry point)",
    ),
    "cleanup": (
        "modelops.cleanup",
        "main",
        "delete one version's artifacts (the clean-up Job's entry point)",
    ),
    "crds": ("modelops.api.crdgen", "main", "print or write the CustomResourceDefinitions"),
    "chart": ("modelops.chartgen", "main", "write the Helm chart (charts/modelops) from manifests/"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        lines = ["usage: modelops <command> [args]", "", "commands:"]
        lines += [f"  {name:<12} {help_}" for name, (_, _, help_) in COMMANDS.items()]
        print("\n".join(lines), file=sys.stderr if argv and argv[0] not in {"-h", "--help"} else sys.stdout)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module, func, _ = COMMANDS[argv[0]]
    result = getattr(importlib.import_module(module), func)(argv[1:])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
