"""Operator settings, read once from the environment (the manifests' ConfigMap sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    trainer_image: str = "ghcr.io/modelops/modelops:0.1.0"
    server_image: str = "ghcr.io/modelops/modelops:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    trainer_service_account: str = "modelops-trainer"
    pvc_root: str = "/mnt/pvc"
    server_port: int = 8080
    metrics_port: int = 8000
    health_port: int = 8081
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    """Watched namespaces when `modelops run` is given neither -n nor -A (empty: all)."""
    resync_seconds: float = 300.0
    """Safety-net reconcile of every object when nothing woke it; events and plans wake it sooner."""
    workers: int = 32
    """Reconciles at most at once (per kind): the bounded worker pool."""
    api_qps: float = 100.0
    api_burst: int = 200
    """Client-side rate limit of the operator's own API requests (watches excluded), like client-go's."""
    api_timeout_seconds: float = 30.0
    """How long one of the operator's own API requests may wait for its answer (watches have
    their own), as Kopf's `networking.request_timeout`; then it fails and the reconcile retries."""
    shutdown_grace_seconds: float = 20.0
    """On SIGTERM, how long reconciles already running may take to finish before the process
    exits without them: under the pod's terminationGracePeriodSeconds (30), so it is not killed."""
    service_creations: int = 2
    """Service creations in flight at most: the API server allocates ClusterIPs one at a time, so
    more would only hold workers waiting (0: no cap)."""
    webhook_port: int = 0
    """Serve the validating admission webhook on this port (HTTPS); 0 serves none."""
    webhook_addr: str = "0.0.0.0"
    webhook_cert_dir: str = "/etc/modelops/webhook"
    """tls.crt and tls.key of the webhook (a cert-manager Secret); Kopf reloads them when they change."""

    def __post_init__(self) -> None:
        for env, value in (
            ("MODELOPS_API_TIMEOUT_SECONDS", self.api_timeout_seconds),
            ("MODELOPS_SHUTDOWN_GRACE_SECONDS", self.shutdown_grace_seconds),
        ):
            if value < 0:
                raise ValueError(f"{env}={value:g}: give 0 or more seconds")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        # An empty value means "not set": a ConfigMap key left blank must not become an image name.
        env = {k: v for k, v in (os.environ if env is None else env).items() if v.strip()}
        d = cls()
        image = env.get("MODELOPS_IMAGE")
        return cls(
            trainer_image=env.get("MODELOPS_TRAINER_IMAGE", image or d.trainer_image),
            server_image=env.get("MODELOPS_SERVER_IMAGE", image or d.server_image),
            image_pull_policy=env.get("MODELOPS_IMAGE_PULL_POLICY", d.image_pull_policy),
            prometheus_url=env.get("MODELOPS_PROMETHEUS_URL", d.prometheus_url),
            trainer_service_account=env.get("MODELOPS_TRAINER_SERVICE_ACCOUNT", d.trainer_service_account),
            metrics_port=int(env.get("MODELOPS_METRICS_PORT", d.metrics_port)),
            health_port=int(env.get("MODELOPS_HEALTH_PORT", d.health_port)),
            namespaces=tuple(n.strip() for n in env.get("MODELOPS_NAMESPACES", "").split(",") if n.strip()),
            resync_seconds=float(env.get("MODELOPS_RESYNC_SECONDS", d.resync_seconds)),
            workers=int(env.get("MODELOPS_WORKERS", d.workers)),
            api_qps=float(env.get("MODELOPS_API_QPS", d.api_qps)),
            api_burst=int(env.get("MODELOPS_API_BURST", d.api_burst)),
            api_timeout_seconds=float(env.get("MODELOPS_API_TIMEOUT_SECONDS", d.api_timeout_seconds)),
            shutdown_grace_seconds=float(
                env.get("MODELOPS_SHUTDOWN_GRACE_SECONDS", d.shutdown_grace_seconds)
            ),
            service_creations=int(env.get("MODELOPS_SERVICE_CREATIONS", d.service_creations)),
            webhook_port=int(env.get("MODELOPS_WEBHOOK_PORT", d.webhook_port)),
            webhook_addr=env.get("MODELOPS_WEBHOOK_ADDR", d.webhook_addr),
            webhook_cert_dir=env.get("MODELOPS_WEBHOOK_CERT_DIR", d.webhook_cert_dir),
        )
