"""Start-up: every Kopf setting in one place, and the operator's metrics endpoint."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from . import runtime


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    st = runtime.settings()
    # Our own annotation prefix: progress and diff-base are stored on the objects.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelops.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelops.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "modelops.dev/operator"
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 8
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 70
    settings.networking.request_timeout = 30
    runtime.kube()  # fail fast on a bad kubeconfig
    if st.metrics_port:
        start_http_server(st.metrics_port)
    logger.info(
        "modelops operator started: metrics on :%s, prometheus %s", st.metrics_port, st.prometheus_url
    )
