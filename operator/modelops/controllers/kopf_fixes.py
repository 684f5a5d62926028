"""A fix to Kopf's start-up barrier, applied by `modelops run` before the operator starts.

Kopf holds every object's handlers until every index holds its initial listing: a `ToggleSet(all)`
with one toggle per object still being indexed, which every object's worker waits on once it has
indexed its own. Kopf's `make_toggle` and `drop_toggle` wake every waiting task each time, whether
or not the set's state changed, and each woken task re-checks the whole set. A start among N
existing objects so wakes tasks about N²/2 times. Measured with 1,000 Serving versions (about 7,000
watched objects: versions, Jobs, Deployments, Services, pods), a restarted operator spent 3.5
minutes at a full core and reached 411 MiB before it handled its first event
(`bench/operator_scale.py`, `operator_rss_restarted_mib`); at 10,000 versions it would not finish.
Kopf now watches only the versions and policies (the children have reflectors of their own,
`k8s/reflector.py`), a sixth of those objects, and this keeps their start linear too.

Here a make or a drop wakes the waiters only when it changes what they wait for, the set's state.
Nothing else changes: a set's waiters wait for its state, and an individual toggle's waiters (which
share the condition) for that toggle's own state, which only `Toggle.turn_to` changes, and that
still wakes everyone. `all()` and `any()` stop at the first deciding toggle, so the checks stay
cheap while thousands of toggles are off. Written against Kopf 1.44-1.45 (`kopf>=1.44,<2` in
pyproject); `apply` refuses a Kopf whose ToggleSet no longer looks like that, so an upgrade that
changes it fails the unit test instead of running unpatched or half-patched.
"""

from __future__ import annotations

from collections.abc import Iterable

from kopf._cogs.aiokits import aiotoggles

_PATCHED = "_modelops_wakes_on_change"


async def _make_toggle(
    self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None
) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggles(self: aiotoggles.ToggleSet, toggles: Iterable[aiotoggles.Toggle]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    await _drop_toggles(self, (toggle,))


def apply() -> None:
    """Patch `kopf`'s ToggleSet in place (idempotent)."""
    cls = aiotoggles.ToggleSet
    if getattr(cls, _PATCHED, False):
        return
    probe = cls(all)
    expected = ("make_toggle", "drop_toggle", "drop_toggles", "is_on")
    if not all(callable(getattr(cls, name, None)) for name in expected) or not (
        hasattr(probe, "_condition") and isinstance(getattr(probe, "_toggles", None), set)
    ):
        raise RuntimeError(
            "kopf's aiotoggles.ToggleSet is not the one modelops.controllers.kopf_fixes was written "
            "for: check the fix against the new Kopf and update it"
        )
    cls.make_toggle = _make_toggle  # type: ignore[method-assign]
    cls.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    cls.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    setattr(cls, _PATCHED, True)
