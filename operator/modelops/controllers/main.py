"""`modelops run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random

import kopf


class _QuietWakeups(logging.Filter):
    """Every watch event runs the `wake` handler (it only queues keys): one log line per event is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Handler 'wake' succeeded."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelops run", description="Run the ModelOps operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--standalone", action="store_true", help="no peering (a single replica)")
    parser.add_argument(
        "--peering", default=None, help="peering object name for HA (needs kopf's peering CRDs)"
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority; with --peering a random one is chosen so replicas never tie (Kopf pauses on a tie)",
    )
    parser.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8081/healthz")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("kopf.objects").addFilter(_QuietWakeups())
    from . import modelversion, operator, retrainpolicy, watches  # noqa: F401  (registers the handlers)

    priority = args.priority
    if priority is None and args.peering:
        priority = random.randint(1, 2**31 - 1)
    asyncio.run(
        kopf.operator(
            priority=priority or 0,
            standalone=args.standalone or args.peering is None,
            peering_name=args.peering,
            namespaces=args.namespace or None,
            clusterwide=args.all_namespaces,
            liveness_endpoint=args.liveness,
        )
    )
    return 0
