"""Phase runtime: instances follow f2f_control, acknowledge epochs in heartbeats, hold writes in cut-over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.control.runtime import PhaseRuntime
from f2f_cli.db.engine import create_engine_for
from f2f_cli.errors import WritesHeld
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings
from tests.servers import f2f_server

POLL = 1.5


async def _wait_for(predicate: object, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await predicate():  # type: ignore[operator]
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_two_servers_switch_and_acknowledge_in_heartbeats(pg_url: str, tmp_path: Path) -> None:
    env = {"F2F_DATABASE_URL": pg_url, "F2F_PHASE_POLL_SECONDS": str(POLL)}
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=pg_url))
    try:
        with f2f_server(env, cwd=tmp_path) as a, f2f_server(env, cwd=tmp_path) as b:

            async def both_registered() -> bool:
                return len(await control.live_instances(engine, within=_td(10), kind="serve")) == 2

            await _wait_for(both_registered, 10)
            new = await control.set_phase(engine, Phase.DUAL_WRITE, actor="test", action="test")

            async def both_acknowledged() -> bool:
                rows = await control.live_instances(engine, within=_td(10), kind="serve")
                return len(rows) == 2 and all(r.epoch_seen == new.epoch for r in rows)

            took = await _wait_for(both_acknowledged, 4 * POLL)
            assert took <= 2 * POLL  # the bound: two poll intervals
            async with httpx.AsyncClient() as client:
                for base in (a, b):
                    assert (await client.get(f"{base}/readyz")).json()["phase"] == "dual-write"
            rows = await control.live_instances(engine, within=_td(10), kind="serve")
            assert {r.phase_seen for r in rows} == {"dual-write"}
            assert len({r.pid for r in rows}) == 2
        # A stopped instance removes its heartbeat so it never blocks a phase step.
        assert await control.live_instances(engine, within=_td(10), kind="serve") == []
    finally:
        await engine.dispose()


def _td(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@pytest.fixture
async def runtime(sql_url: str) -> AsyncIterator[PhaseRuntime]:
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=sql_url))
    sql = SqlSessionStore(engine, ttl_seconds=600, max_ingredients=100)
    rt = PhaseRuntime(engine, sql, redis_factory=None, poll_seconds=0.2, instance_id="test-rt", hold_timeout=1.0)
    await rt.start()
    yield rt
    await rt.stop()
    await engine.dispose()


async def test_writes_are_held_during_cutover_and_resume_after(runtime: PhaseRuntime) -> None:
    store = runtime.facade
    sid = (await store.create()).session_id
    await control.set_phase(runtime.engine, Phase.CUTOVER, actor="test", action="test")
    await runtime.refresh()
    assert runtime.phase is Phase.CUTOVER
    # Reads continue while writes wait.
    assert (await store.get(sid)).session_id == sid
    with pytest.raises(WritesHeld):
        await store.add_ingredients(sid, ["두부"])
    held = asyncio.create_task(store.add_ingredients(sid, ["김치"]))
    await asyncio.sleep(0.3)
    assert not held.done()
    await control.set_phase(runtime.engine, Phase.POSTGRES, actor="test", action="test")
    mutation = await asyncio.wait_for(held, 5)
    assert mutation.changed == ("김치",)
    assert runtime.phase is Phase.POSTGRES


async def test_epoch_is_acknowledged_only_after_earlier_writes_finish(runtime: PhaseRuntime) -> None:
    sid = (await runtime.facade.create()).session_id
    release = asyncio.Event()

    async def slow_write() -> None:
        async with runtime.write_slot() as store:
            await release.wait()
            await store.add_ingredients(sid, ["늦은재료"])

    writer = asyncio.create_task(slow_write())
    await asyncio.sleep(0.05)
    new = await control.set_phase(runtime.engine, Phase.POSTGRES, actor="test", action="bump epoch")
    switching = asyncio.create_task(runtime.refresh())
    await asyncio.sleep(0.3)
    rows = await control.live_instances(runtime.engine, within=_td(60))
    acknowledged = [r.epoch_seen for r in rows if r.instance_id == "test-rt"]
    assert acknowledged and acknowledged[0] < new.epoch  # not yet: a write of the old epoch runs
    release.set()
    await writer
    await switching
    rows = await control.live_instances(runtime.engine, within=_td(60))
    assert [r.epoch_seen for r in rows if r.instance_id == "test-rt"] == [new.epoch]


async def test_redis_phase_without_redis_is_a_clean_503(runtime: PhaseRuntime) -> None:
    from f2f_cli.errors import StoreUnavailable

    await control.set_phase(runtime.engine, Phase.REDIS, actor="test", action="test")
    await runtime.refresh()
    with pytest.raises(StoreUnavailable):
        await runtime.facade.create()
