"""`modelops run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random

import kopf


class _QuietWakeups(logging.Filter):
    """Every watch event runs the `wake` handler (it only queues keys): one log line per event is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Handler 'wake' succeeded."


def scope(namespaces: list[str]) -> tuple[list[str], bool]:
    """Kopf's `namespaces` and `clusterwide`: the namespaces given, or cluster-wide with an EMPTY list.

    Kopf iterates `namespaces` whatever `clusterwide` says, so None crashes it at start-up
    (the shipped Deployment runs `-A`). Neither flag means cluster-wide, said explicitly
    rather than through Kopf's deprecated implicit fallback.
    """
    return (list(namespaces), False) if namespaces else ([], True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelops run", description="Run the ModelOps operator.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    where.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default, unless MODELOPS_NAMESPACES lists some)",
    )
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
    parser.add_argument(
        "--liveness",
        default=None,
        help="e.g. http://0.0.0.0:8081/healthz (default: that URL on MODELOPS_HEALTH_PORT, when it is set)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("kopf.objects").addFilter(_QuietWakeups())
    from . import kopf_fixes, modelversion, operator, peering, retrainpolicy, watches  # noqa: F401  (registers the handlers)

    kopf_fixes.apply()  # a start among thousands of objects: linear, not quadratic (see the module)
    peering.apply()  # the work queues pause with Kopf when a peer takes over (see the module)

    priority = args.priority
    if priority is None and args.peering:
        priority = random.randint(1, 2**31 - 1)
    from . import runtime  # settings are read in one place: Settings.from_env

    st = runtime.settings()
    if st.webhook_port:
        # Registered only when served: Kopf stops an operator with admission handlers and no server.
        from . import admission  # noqa: F401
    namespaces, clusterwide = scope(args.namespace or ([] if args.all_namespaces else list(st.namespaces)))
    runtime.set_namespaces(namespaces)  # the reflectors watch what Kopf watches
    liveness = args.liveness
    if liveness is None and os.environ.get("MODELOPS_HEALTH_PORT"):
        liveness = f"http://0.0.0.0:{st.health_port}/healthz"
    asyncio.run(
        kopf.operator(
            priority=priority or 0,
            standalone=args.standalone or args.peering is None,
            peering_name=args.peering,
            namespaces=namespaces,
            clusterwide=clusterwide,
            liveness_endpoint=liveness,
        )
    )
    left = runtime.finish(st.shutdown_grace_seconds)
    if left:
        # Safe to abandon: every reconcile is redone from the cluster's state by the next operator.
        logging.getLogger(__name__).warning(
            "Exiting with %d reconcile(s) still running %.0fs after the stop (%s); the next operator redoes them.",
            len(left),
            st.shutdown_grace_seconds,
            ", ".join(f"{kind} {key}" for kind, key in left[:5]) + (", ..." if len(left) > 5 else ""),
        )
        logging.shutdown()
        os._exit(0)  # the interpreter would join their threads first, without bound
    return 0
