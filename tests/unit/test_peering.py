"""The work queues pause with Kopf: `peering.apply` keeps the flag Kopf hands its daemon killer."""

from __future__ import annotations

import asyncio
import inspect

import kopf
from kopf._cogs.aiokits import aiotoggles
from kopf._core.engines import daemons
from kopf._core.reactor import running

from modelops.controllers import peering


def test_the_flag_kept_is_the_one_kopf_pauses_its_daemons_with():
    peering.apply()
    wrapped = daemons.daemon_killer
    peering.apply()
    assert daemons.daemon_killer is wrapped  # idempotent: one wrapper, not two

    async def main() -> aiotoggles.ToggleSet:
        flag = aiotoggles.ToggleSet(any)
        coro = daemons.daemon_killer(settings=kopf.OperatorSettings(), memories=None, operator_paused=flag)
        coro.close()  # never run: only its arguments matter here
        return flag

    flag = asyncio.run(main())
    assert peering.paused() is flag


def test_kopf_still_starts_its_daemon_killer_with_the_operators_pause_flag():
    """What `apply` relies on in Kopf's `spawn_tasks`: the killer looked up on the module at start
    (so the wrapper is what runs) and given the ToggleSet every pause of the operator turns on."""
    source = inspect.getsource(running.spawn_tasks)
    assert "operator_paused = aiotoggles.ToggleSet(any)" in source
    assert "daemons.daemon_killer(" in source
    call = source[source.index("daemons.daemon_killer(") :]
    assert "operator_paused=operator_paused" in call[: call.index(")))")]
