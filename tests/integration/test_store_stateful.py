"""Hypothesis stateful test: random create/add/remove/clear/delete/expire sequences, each store versus a model.

The model is a dict of session id -> (ingredient names, version). After every
step every session the model knows is read back from the store and compared;
sessions the model has deleted or expired must be invisible. "Expire" hands
the store a newer full-state copy that expires a few milliseconds later and
waits for that moment (stores drop copies that have already expired, so the
TTL must really run out). For the dual store the copy goes to both SQL and
Redis, as the phase tools would. One expiry per sequence keeps the test fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from f2f_cli.clock import utcnow
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import SessionNotFound, TooManyIngredients
from f2f_cli.stores.breaker import CircuitBreaker
from f2f_cli.stores.dual import DualSessionStore
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings

T = TypeVar("T")
MAX_INGREDIENTS = 4
NAMES = st.sampled_from(["두부", "계란", "대파", "마늘", "마늘종", "김치"])  # 마늘종 is not 마늘
TTL = 3600
EXPIRE_AFTER_MS = 40


class Target:
    """The store under test and the stores an expired copy must reach."""

    def __init__(self, store: SessionStore, copy_targets: list[SessionStore]) -> None:
        self.store = store
        self.copy_targets = copy_targets


@asynccontextmanager
async def _sql(url: str) -> AsyncIterator[Target]:
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=url))
    store = SqlSessionStore(engine, ttl_seconds=TTL, max_ingredients=MAX_INGREDIENTS)
    try:
        yield Target(store, [store])
    finally:
        await engine.dispose()


def _redis_settings(request: pytest.FixtureRequest, **extra: str) -> Any:
    return make_settings(
        F2F_REDIS_URL=request.getfixturevalue("redis_url"),
        F2F_REDIS_KEY_PREFIX=request.getfixturevalue("redis_prefix"),
        F2F_SESSION_TTL_SECONDS=str(TTL),
        F2F_MAX_INGREDIENTS=str(MAX_INGREDIENTS),
        F2F_REDIS_COMMAND_TIMEOUT="5",
        **extra,
    )


@asynccontextmanager
async def _redis(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    store = RedisSessionStore.from_settings(_redis_settings(request))
    try:
        yield Target(store, [store])
    finally:
        await store.close()


@asynccontextmanager
async def _dual(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    from f2f_cli.control import phase

    settings = _redis_settings(request, F2F_DATABASE_URL=request.getfixturevalue("pg_url"))
    engine = create_engine_for(settings)
    sql = SqlSessionStore(engine, ttl_seconds=TTL, max_ingredients=MAX_INGREDIENTS)
    cache = RedisSessionStore.from_settings(settings)

    async def copy_failed(session_id: str, reason: str) -> None:
        await phase.mark_redis_untrusted(engine, session_id, reason)

    dual = DualSessionStore(sql, cache, read_from_cache=True, breaker=CircuitBreaker(), on_copy_failed=copy_failed)
    try:
        yield Target(dual, [sql, cache])
    finally:
        await cache.close()
        await engine.dispose()


TARGETS: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "sqlite": lambda r: _sql(r.getfixturevalue("sqlite_url")),
    "postgres": lambda r: _sql(r.getfixturevalue("pg_url")),
    "redis": _redis,
    "dual": _dual,
}


def machine_for(target: Target, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> type[RuleBasedStateMachine]:
    class StoreVersusModel(RuleBasedStateMachine):
        sessions = Bundle("sessions")

        def __init__(self) -> None:
            super().__init__()
            self.model: dict[str, tuple[frozenset[str], int]] = {}
            self.gone: set[str] = set()
            self.expired_once = False

        @rule(target=sessions)
        def create(self) -> str:
            s = run(target.store.create())
            assert s.version == 1 and s.ingredients == ()
            self.model[s.session_id] = (frozenset(), 1)
            return s.session_id

        def _write(self, sid: str, call: Coroutine[Any, Any, T]) -> T | None:
            if sid not in self.model:
                with pytest.raises(SessionNotFound):
                    run(call)
                return None
            return run(call)  # type: ignore[no-any-return]

        @rule(sid=sessions, names=st.lists(NAMES, max_size=5))
        def add(self, sid: str, names: list[str]) -> None:
            if sid not in self.model:
                self._write(sid, target.store.add_ingredients(sid, names))
                return
            held, version = self.model[sid]
            wanted = held | set(names)
            if len(wanted) > MAX_INGREDIENTS:
                with pytest.raises(TooManyIngredients):
                    run(target.store.add_ingredients(sid, names))
                return  # refused atomically: nothing changed
            mutation = run(target.store.add_ingredients(sid, names))
            assert set(mutation.changed) == wanted - held
            # An empty list is no write (every store): same version, same expiry.
            bumped = version + 1 if names else version
            self.model[sid] = (frozenset(wanted), bumped)
            assert mutation.session.version == bumped

        @rule(sid=sessions, name=NAMES)
        def remove(self, sid: str, name: str) -> None:
            mutation = self._write(sid, target.store.remove_ingredient(sid, name))
            if mutation is not None:
                held, version = self.model[sid]
                assert mutation.changed == ((name,) if name in held else ())
                self.model[sid] = (held - {name}, version + 1)
                assert mutation.session.version == version + 1

        @rule(sid=sessions)
        def clear(self, sid: str) -> None:
            mutation = self._write(sid, target.store.clear(sid))
            if mutation is not None:
                held, version = self.model[sid]
                assert set(mutation.changed) == held
                self.model[sid] = (frozenset(), version + 1)

        @rule(sid=consumes(sessions))
        def delete(self, sid: str) -> None:
            self._write(sid, target.store.delete(sid))
            self.model.pop(sid, None)
            self.gone.add(sid)

        @precondition(lambda self: not self.expired_once)
        @rule(sid=consumes(sessions))
        def expire(self, sid: str) -> None:
            if sid not in self.model:
                return
            self.expired_once = True
            held, version = self.model.pop(sid)
            current = run(target.store.get(sid))
            assert current.names == held
            now = utcnow()
            expired = Session(
                session_id=sid,
                created_at=current.created_at,
                updated_at=now,
                expires_at=now + timedelta(milliseconds=EXPIRE_AFTER_MS),
                version=version + 1,
                ingredients=tuple(Ingredient(i.name, i.added_at) for i in current.ingredients),
            )
            for store in target.copy_targets:
                assert run(store.apply_copy(expired))
            time.sleep(2 * EXPIRE_AFTER_MS / 1000)
            self.gone.add(sid)

        @invariant()
        def store_matches_model(self) -> None:
            for sid, (held, version) in self.model.items():
                s = run(target.store.get(sid))
                assert (s.names, s.version) == (held, version), sid
            for sid in self.gone:
                with pytest.raises(SessionNotFound):
                    run(target.store.get(sid))

    return StoreVersusModel


@pytest.mark.parametrize("backend", sorted(TARGETS))
def test_store_behaves_like_the_model(backend: str, request: pytest.FixtureRequest) -> None:
    if backend in ("redis", "dual"):
        request.applymarker(pytest.mark.redis)
    loop = asyncio.new_event_loop()
    try:
        cm = TARGETS[backend](request)
        target = loop.run_until_complete(cm.__aenter__())
        try:
            machine = machine_for(target, loop.run_until_complete)
            run_state_machine_as_test(
                machine,
                settings=settings(
                    max_examples=25, stateful_step_count=20, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            loop.run_until_complete(cm.__aexit__(None, None, None))
    finally:
        loop.close()
