"""The store switch's drain protocol (``control.switch.StoreSwitch``) under random interleavings.

Requests enter and leave, switches happen in between (one at a time, as the runtime's refresh lock
runs them), all on in-memory stores. Whatever the order: once a switch has returned, no request is
still running on the store it switched away from, no request ever writes to such a store later, and
every in-flight count is back to zero at the end. This is what lets the runtime acknowledge an epoch
right after the switch returns (invariant 4).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from f2f_cli.control.switch import StoreSwitch
from f2f_cli.domain.store import SessionStore
from f2f_cli.stores.memory import MemorySessionStore

# Longer than any example runs: a drain that times out would hide exactly what this test looks for.
DRAIN_TIMEOUT = 60.0

Op = tuple[str, int]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("enter"), st.just(0)),
        st.tuples(st.just("leave"), st.integers(0, 20)),
        st.tuples(st.just("switch"), st.just(0)),
        st.tuples(st.just("tick"), st.integers(1, 5)),
    ),
    max_size=60,
)


@dataclass
class Harness:
    stores: list[MemorySessionStore]
    switch: StoreSwitch
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Index of each store a switch has returned from (its drain finished): it must see no request again.
    retired: set[int] = field(default_factory=set)
    running: dict[int, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def index(self, store: SessionStore) -> int:
        return next(i for i, s in enumerate(self.stores) if s is store)

    async def request(self, release: asyncio.Event) -> None:
        async with self.switch.slot() as store:
            i = self.index(store)
            if i in self.retired:
                self.violations.append(f"a request started on store {i} after its drain")
            self.running[i] = self.running.get(i, 0) + 1
            try:
                await release.wait()
                if i in self.retired:
                    self.violations.append(f"a request wrote to store {i} after its drain")
                await store.create()
            finally:
                self.running[i] -= 1

    async def switch_once(self) -> None:
        async with self.lock:  # the runtime switches under its refresh lock: never two at once
            old = self.index(self.switch.store)
            new = MemorySessionStore(ttl_seconds=60, max_ingredients=10)
            self.stores.append(new)
            await self.switch.switch_to(new)
            if self.running.get(old, 0):
                self.violations.append(f"switch away from store {old} returned with "
                                       f"{self.running[old]} request(s) still on it")
            self.retired.add(old)


async def tick(n: int = 1) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def run(ops: list[Op]) -> Harness:
    first = MemorySessionStore(ttl_seconds=60, max_ingredients=10)
    h = Harness([first], StoreSwitch(first, drain_timeout=DRAIN_TIMEOUT))
    waiting: list[asyncio.Event] = []
    tasks: list[asyncio.Task[None]] = []
    for op, arg in ops:
        if op == "enter":
            release = asyncio.Event()
            waiting.append(release)
            tasks.append(asyncio.create_task(h.request(release)))
        elif op == "leave" and waiting:
            waiting.pop(arg % len(waiting)).set()
        elif op == "switch":
            tasks.append(asyncio.create_task(h.switch_once()))
        await tick(arg if op == "tick" else 1)
    for release in waiting:
        release.set()
    async with asyncio.timeout(DRAIN_TIMEOUT / 2):
        await asyncio.gather(*tasks)
    for number in range(h.switch.switch_number + 1):
        if h.switch.inflight(number):
            h.violations.append(f"{h.switch.inflight(number)} write(s) still counted under switch {number}")
    return h


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_a_returned_switch_leaves_nothing_on_the_old_store(ops: list[Op]) -> None:
    h = asyncio.run(run(ops))
    assert h.violations == []
    assert all(n == 0 for n in h.running.values())


def test_a_switch_waits_for_a_write_of_the_previous_store() -> None:
    """The shape hypothesis must find: a write in flight, a switch, then the write ends."""
    h = asyncio.run(run([("enter", 0), ("switch", 0), ("tick", 5), ("leave", 0), ("tick", 5)]))
    assert h.violations == [] and h.retired == {0}
    assert asyncio.run(h.stores[0].count()) == 1  # the write landed on the store it started on
