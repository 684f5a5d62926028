"""Start-up: every Kopf setting in one place, and the operator's metrics endpoint."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

from . import runtime
from .watches import CHILDREN, OWNED_SELECTOR, Children


class NoDiffBase(kopf.DiffBaseStorage):
    """Kopf's diff-base, switched off: this operator registers no change-detecting handlers
    (on.create/update/delete/resume) and no daemons or timers, so the essence Kopf builds from
    every event (a deep copy of the whole body) is never read. Measured with py-spy during a
    burst of 1,000 new versions, building it was a tenth of the operator's CPU.
    tests/unit/test_layers.py keeps the handler set that makes this true."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    st = runtime.settings()
    # Our own annotation prefix for Kopf's handler progress; no diff-base (see NoDiffBase).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelops.dev")
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.INFO
    # Kopf's own handlers are few and short now (the work queue reconciles); errors retry fast
    # so work resumes within seconds of the API server coming back.
    settings.execution.max_workers = 4
    settings.execution.default_backoff = 5
    settings.queueing.error_delays = (1, 1, 2, 3, 5, 8, 10)
    settings.watching.server_timeout = 60
    # Lists (at start, and after a watch expires) come in pages, as client-go's reflector pages
    # them: 10,000 versions in one answer would be parsed whole, and the process keeps its peak.
    settings.watching.chunk_size = 500
    settings.watching.client_timeout = 70
    settings.networking.request_timeout = 30
    if st.webhook_port:
        # Kopf's own HTTPS server with the certificate cert-manager keeps in the mounted Secret
        # (re-read when it is renewed); the webhook configuration is shipped, not managed by Kopf.
        certs = Path(st.webhook_cert_dir)
        settings.admission.server = kopf.WebhookServer(
            addr=st.webhook_addr,
            port=st.webhook_port,
            certfile=str(certs / "tls.crt"),
            pkeyfile=str(certs / "tls.key"),
        )
        settings.admission.managed = None
    # A watch that cannot reach the API server retries with these delays, then starts over: no
    # more than 5 s pass between the API server's return and the watches' (Kopf's default grows
    # to 21 s). Measured by test_work_in_flight_resumes_within_seconds_of_an_api_server_outage.
    settings.networking.error_backoffs = (0.5, 1, 2, 3, 5, 5, 5, 5)
    runtime.set_kopf_settings(settings)
    runtime.kube()  # fail fast on a bad kubeconfig
    if st.metrics_port:
        start_http_server(st.metrics_port)
    logger.info(
        "modelops operator started: metrics on :%s, webhook on :%s, prometheus %s, %d workers per kind, "
        "resync %.0fs, API %g QPS (burst %d)",
        st.metrics_port,
        st.webhook_port or "(off)",
        st.prometheus_url,
        st.workers,
        st.resync_seconds,
        st.api_qps,
        st.api_burst,
    )


@kopf.on.startup()
async def watch_children(**_: Any) -> None:
    """The children's reflectors, started before Kopf's own watches; only what the operator
    labels as its own is listed and watched (filtered by the API server)."""
    runtime.watch_children(
        [*CHILDREN, "pods"], OWNED_SELECTOR, Children(runtime.cache, asyncio.get_running_loop())
    )


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    await runtime.stop()
