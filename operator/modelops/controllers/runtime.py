"""Process-wide state of the operator: settings, the API client, per-object locks."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import kopf

from modelops import metrics
from modelops.api.base import format_time
from modelops.k8s.kube import Kube, load_config
from modelops.settings import Settings

RECONCILE_INTERVAL = float(os.environ.get("MODELOPS_RECONCILE_INTERVAL", "10"))
"""Timer period of the level-based re-check; events still react at once."""

_settings: Settings | None = None
_kube: Kube | None = None
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_guard = threading.Lock()


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def kube() -> Kube:
    global _kube
    if _kube is None:
        load_config()
        _kube = Kube()
    return _kube


def lock_for(uid: str) -> threading.Lock:
    """Handlers and timers of one object never run at the same time (they share a plan)."""
    with _guard:
        return _locks[uid]


@contextmanager
def measured(kind: str) -> Iterator[None]:
    """Count a reconcile by result (ok, retry, error) and time it."""
    started = time.monotonic()
    try:
        yield
    except kopf.TemporaryError:
        metrics.RECONCILES.labels(kind, "retry").inc()
        raise
    except Exception:
        metrics.RECONCILES.labels(kind, "error").inc()
        raise
    else:
        metrics.RECONCILES.labels(kind, "ok").inc()
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)


def run_locked(body: dict[str, Any], reconcile: Callable[[dict[str, Any]], object], *, wait: bool) -> None:
    """Run one object's reconcile under its lock; a timer that finds it busy just skips this tick."""
    lock = lock_for(body["metadata"]["uid"])
    if not lock.acquire(blocking=wait, timeout=60 if wait else -1):
        return
    try:
        reconcile(body)
    finally:
        lock.release()


def post_events(body: dict[str, Any], events: list[tuple[str, str, str]]) -> None:
    """Every decision a plan made, as Kubernetes Events on the object."""
    for type_, reason, message in events:
        kopf.event(body, type=type_, reason=reason, message=message)


def crash_point(name: str) -> None:
    """Fault injection for tests: die like a SIGKILL at a named point when MODELOPS_CRASH_AT says so."""
    if os.environ.get("MODELOPS_CRASH_AT") == name:
        os._exit(137)


def now() -> datetime:
    return datetime.now(UTC)


def ts(when: datetime | None = None) -> str:
    return format_time(when or now())
