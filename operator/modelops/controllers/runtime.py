"""Process-wide state of the operator: settings, the API client over the watch caches, the work queues."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client

from modelops import metrics
from modelops.api.base import format_time
from modelops.k8s.cache import Cache
from modelops.k8s.kube import USER_AGENT, Conflict, Kube, Refused, load_config
from modelops.k8s.reflector import Reflector, Sink
from modelops.k8s.reflector import scope as watch_scope
from modelops.lifecycle.conditions import apply_conditions, refusal, refusal_is_new
from modelops.lifecycle.patches import merge_diff
from modelops.settings import Settings

from . import peering
from .memory import release_after_work
from .workqueue import Backoff, Pause, WorkQueue

log = logging.getLogger(__name__)

_settings: Settings | None = None
_kube: Kube | None = None
_kopf_settings: kopf.OperatorSettings | None = None
cache = Cache()
queues: dict[str, WorkQueue] = {}
"""One queue per kind ("ModelVersion", "RetrainPolicy"), registered by the controllers at import."""
_tasks: list[asyncio.Task[None]] = []
_namespaces: list[str] = []
"""What `modelops run` watches (empty: every namespace), for the reflectors as for Kopf."""
reflectors: list[Reflector] = []
_stopping: float | None = None
"""time.monotonic() when the operator began to stop (Kopf's cleanup)."""
RELEASE_MEMORY_EVERY = 60.0
"""Seconds between looks for reconciles that left free memory to give back (`memory.py`)."""


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def kube() -> Kube:
    global _kube
    if _kube is None:
        load_config()
        st = settings()
        # Each kind's workers may all be writing at once.
        _kube = Kube(
            cache=cache,
            qps=st.api_qps,
            burst=st.api_burst,
            connections=2 * st.workers,
            service_creations=st.service_creations,
            timeout=st.api_timeout_seconds,
        )
    return _kube


def awaits_service_slot(key: tuple[str, str]) -> bool:
    """Whether a version waits for a Service creation slot (none can before the first reconcile)."""
    return _kube is not None and _kube.service_slots.awaits(key)


def set_kopf_settings(value: kopf.OperatorSettings) -> None:
    global _kopf_settings
    _kopf_settings = value


def logger(body: Mapping[str, Any]) -> logging.LoggerAdapter[logging.Logger]:
    """Kopf's per-object logger (the object's reference on every line), without posting Events:
    decisions that deserve an Event are posted explicitly."""
    if _kopf_settings is None:
        return logging.LoggerAdapter(logging.getLogger("modelops"), {})
    return kopf.LocalObjectLogger(body=kopf.Body(dict(body)), settings=_kopf_settings)


def set_namespaces(namespaces: list[str]) -> None:
    _namespaces[:] = namespaces


def watch_children(kinds: list[str], selector: str, sink: Sink) -> None:
    """Start a reflector per kind (and per namespace watched), on an API client of their own:
    their requests are long polls, not the writes the rate limit is for."""
    kube()  # loads the configuration
    namespaces, keep = watch_scope(_namespaces)
    cfg = client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = max(cfg.connection_pool_maxsize, len(kinds) * len(namespaces))
    api = client.ApiClient(cfg)
    api.user_agent = USER_AGENT
    for kind in kinds:
        for namespace in namespaces:
            reflector = Reflector(api, kind, sink, namespace=namespace, selector=selector, keep=keep)
            reflectors.append(reflector)
            reflector.start()


async def _synced() -> None:
    """Until every reflector's first list is in the cache (Kopf waits so for its own indexes)."""
    for reflector in reflectors:
        while not reflector.synced.is_set():
            await asyncio.sleep(0.05)


async def _serve(q: WorkQueue, workers: int, paused: Pause | None) -> None:
    await _synced()
    await q.run(workers, paused)


async def _report_pauses(paused: Pause) -> None:
    """One line as the queues stop for a peer and one as they resume (Kopf logs why)."""
    while True:
        await paused.wait_for(True)
        log.info("Paused by peering: no reconciles until resumed (%d keys queued).", _queued())
        await paused.wait_for(False)
        log.info("Resumed after the peering pause (%d keys queued).", _queued())


def _queued() -> int:
    return sum(len(q) for q in queues.values())


def _reconciles() -> int:
    return sum(q.processed for q in queues.values())


def start(indexes: Mapping[str, Any]) -> None:
    """Bind the caches and start the workers, once, from the first watch event.

    Kopf calls event handlers only after every index holds its initial listing, and the
    workers wait for the reflectors' first lists, so the first reconcile already sees a
    complete cache; the workers inherit this handler's context, where Kopf's Event poster lives.
    """
    if not cache.bound:
        cache.bind(indexes)
    if _tasks:
        return
    workers = settings().workers
    paused = peering.paused()
    for q in queues.values():
        _tasks.append(asyncio.create_task(_serve(q, workers, paused), name=f"queue-{q.name}"))
    if paused is not None:
        _tasks.append(asyncio.create_task(_report_pauses(paused), name="peering-pauses"))
    _tasks.append(asyncio.create_task(release_after_work(RELEASE_MEMORY_EVERY, _reconciles), name="memory"))


async def stop() -> None:
    global _stopping
    _stopping = time.monotonic()
    for reflector in reflectors:
        reflector.stop()
    for t in _tasks:
        t.cancel()
    await asyncio.gather(*_tasks, return_exceptions=True)
    _tasks.clear()


@contextmanager
def measured(kind: str) -> Iterator[None]:
    """Count a reconcile by result (ok, conflict, error) and time it."""
    started = time.monotonic()
    try:
        yield
    except Exception as e:
        metrics.RECONCILES.labels(kind, "conflict" if isinstance(e, Conflict) else "error").inc()
        raise
    else:
        metrics.RECONCILES.labels(kind, "ok").inc()
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)


def post_events(body: Mapping[str, Any], events: list[tuple[str, str, str]]) -> None:
    """Every decision a plan made, as Kubernetes Events on the object."""
    for type_, reason, message in events:
        kopf.event(dict(body), type=type_, reason=reason, message=message)


def now() -> datetime:
    return datetime.now(UTC)


def ts(when: datetime | None = None) -> str:
    return format_time(when or now())


def report_refusal(
    plural: str, body: dict[str, Any], e: Refused, *, extra: Mapping[str, Any] | None = None
) -> Backoff:
    """Show a write the API server refused on the owner (Ready=False with the server's message, one
    Warning Event per new message) and return the Backoff for the work queue to raise.

    The plan's own status is not written: the refused object does not exist, so the next plan,
    after the backoff or a change of the owner, decides from the world as it is.
    """
    meta = body["metadata"]
    current = body.get("status") or {}
    msg = str(e)
    conds = apply_conditions(
        current.get("conditions") or [], refusal(msg), generation=meta.get("generation"), now=ts()
    )
    patch = merge_diff(current, {**(extra or {}), "conditions": conds})
    if patch:
        with contextlib.suppress(Conflict):  # the watch brings the newer object; the retry reports again
            kube().patch_status(plural, body, patch)
    if refusal_is_new(current.get("conditions") or [], msg):
        kopf.warn(dict(body), reason="ApiRefused", message=msg[:1000])
    logger(body).warning("%s", msg)
    return Backoff(msg)


def finish(grace: float) -> list[tuple[str, Hashable]]:
    """Wait, up to `grace` seconds after `stop` began, for the reconciles still running in their
    threads; the (kind, key) of those still running then. The interpreter would otherwise wait for
    them at exit without bound (each API request may take `api_timeout_seconds`, and a reconcile
    makes several), and the kubelet kills a pod that outlasts its termination grace."""
    deadline = (_stopping if _stopping is not None else time.monotonic()) + grace
    return [(q.name, key) for q in queues.values() for key in q.finish(deadline)]
