"""Kopf's peering pause, shared with the operator's own work queues.

With `--peering`, an operator that sees a live peer of higher (or equal) priority pauses: Kopf
disconnects its watch streams and stops calling handlers. The operator's reconciles do not run in
Kopf's handlers, though: they run in its own work queues, fed by Kopf's events, by the children's
reflectors and by the plans' wake-ups, and those would go on acting beside the peer that took over
(during a rolling update of the `kopf-peering/` overlay, the old and the new pod at once). So the
queues' workers wait while Kopf is paused, on the very flag Kopf pauses itself with.

Kopf does not expose that flag (a `ToggleSet` made in `spawn_tasks`, on while any peering conflict
or a missing peering CRD pauses the operator); it hands it to each of its root tasks, among them
the daemon killer, which every operator starts. `apply` wraps that function to keep the flag, and
refuses a Kopf whose daemon killer no longer takes it, so an upgrade that changes it fails the
unit test instead of leaving the queues running through a pause.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from kopf._cogs.aiokits import aiotoggles
from kopf._core.engines import daemons

_PATCHED = "_modelops_keeps_operator_paused"
_paused: aiotoggles.ToggleSet | None = None


def paused() -> aiotoggles.ToggleSet | None:
    """Kopf's pause flag of the running operator (None before Kopf has started)."""
    return _paused


def _keeping(original: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    def daemon_killer(*, operator_paused: aiotoggles.ToggleSet, **kwargs: Any) -> Coroutine[Any, Any, None]:
        global _paused
        _paused = operator_paused
        return original(operator_paused=operator_paused, **kwargs)

    setattr(daemon_killer, _PATCHED, True)
    return daemon_killer


def apply() -> None:
    """Keep the pause flag Kopf gives its daemon killer (idempotent)."""
    original = daemons.daemon_killer
    if getattr(original, _PATCHED, False):
        return
    if "operator_paused" not in inspect.signature(original).parameters:
        raise RuntimeError(
            "kopf's daemons.daemon_killer no longer takes operator_paused: check "
            "modelops.controllers.peering against the new Kopf and update it"
        )
    daemons.daemon_killer = _keeping(original)  # type: ignore[assignment]
