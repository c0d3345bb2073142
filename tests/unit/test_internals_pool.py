"""``WaitingPool`` (f2f_cli/redis/client.py) against the redis-py it is installed with, without a server.

WaitingPool reaches past ``BlockingConnectionPool.get_connection`` to ``ConnectionPool.get_connection`` and
relies on ``get_available_connection`` raising ``MaxConnectionsError`` when the pool is full. A redis-py
release that changes either turns into a pool that never waits, never wakes or leaks connections; these
tests fail on it first. The connections are redis-py's own class with only the socket work left out.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from f2f_cli.redis.client import WaitingPool


class OfflineConnection(Connection):
    """A redis-py connection that never opens a socket: the pool's bookkeeping runs as it does for real."""

    refuse = False

    async def connect(self) -> None:
        if self.refuse:
            raise RedisConnectionError("refused (test)")

    async def can_read(self) -> bool:
        return False

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        return None


def offline_pool(max_connections: int, timeout: float = 30.0) -> WaitingPool:
    return WaitingPool(max_connections=max_connections, timeout=timeout, connection_class=OfflineConnection)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_pool_with_room_hands_out_connections_without_waiting() -> None:
    pool = offline_pool(2)
    first = await pool.get_connection()
    second = await pool.get_connection()
    assert isinstance(first, OfflineConnection) and isinstance(second, OfflineConnection)
    assert first is not second
    await pool.release(first)
    assert await pool.get_connection() is first  # a released connection is reused, not a new one made
    await pool.release(first)
    await pool.release(second)
    await pool.disconnect()


async def test_a_full_pool_waits_and_a_release_wakes_the_waiter_with_that_connection() -> None:
    pool = offline_pool(1)
    held = await pool.get_connection()
    waiter = asyncio.create_task(pool.get_connection())
    await settle()
    assert not waiter.done()  # full: it waits instead of failing or making a second connection
    await pool.release(held)
    assert await asyncio.wait_for(waiter, 5) is held
    await pool.release(held)
    await pool.disconnect()


async def test_waiters_are_served_in_the_order_they_came() -> None:
    pool = offline_pool(1)
    held = await pool.get_connection()
    served: list[int] = []

    async def take(n: int) -> None:
        connection = await pool.get_connection()
        served.append(n)
        await asyncio.sleep(0)
        await pool.release(connection)

    waiters = []
    for n in range(4):
        waiters.append(asyncio.create_task(take(n)))
        await settle()
    assert served == []
    await pool.release(held)
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert served == [0, 1, 2, 3]
    await pool.disconnect()


async def test_a_newcomer_queues_behind_a_waiter_instead_of_taking_the_released_connection() -> None:
    pool = offline_pool(1)
    held = await pool.get_connection()
    order: list[str] = []

    async def take(name: str) -> None:
        connection = await pool.get_connection()
        order.append(name)
        await pool.release(connection)

    waiter = asyncio.create_task(take("waiter"))
    await settle()
    await pool.release(held)
    newcomer = asyncio.create_task(take("newcomer"))  # arrives before the woken waiter has run
    await asyncio.wait_for(asyncio.gather(waiter, newcomer), 5)
    assert order == ["waiter", "newcomer"]
    await pool.disconnect()


async def test_a_caller_that_loses_the_last_slot_waits_instead_of_failing() -> None:
    # Both callers see room, then queue on the pool's lock; the second finds the pool full
    # (MaxConnectionsError from get_available_connection) and must fall back to waiting.
    pool = offline_pool(1)
    await pool._lock.acquire()
    first = asyncio.create_task(pool.get_connection())
    second = asyncio.create_task(pool.get_connection())
    await settle()
    pool._lock.release()
    connection = await asyncio.wait_for(first, 5)
    await settle()
    assert not second.done()
    await pool.release(connection)
    assert await asyncio.wait_for(second, 5) is connection
    await pool.release(connection)
    await pool.disconnect()


async def test_waiting_past_the_timeout_raises_connection_error() -> None:
    pool = offline_pool(1, timeout=0.05)
    held = await pool.get_connection()
    with pytest.raises(RedisConnectionError, match="No connection available"):
        await pool.get_connection()
    # The pool still works afterwards: the held connection goes back and is handed out again.
    await pool.release(held)
    assert await pool.get_connection() is held
    await pool.release(held)
    await pool.disconnect()


async def test_a_connection_that_fails_to_connect_goes_back_to_the_pool() -> None:
    pool = offline_pool(1, timeout=0.05)
    OfflineConnection.refuse = True
    try:
        with pytest.raises(RedisConnectionError, match="refused"):
            await pool.get_connection()
    finally:
        OfflineConnection.refuse = False
    # Had the failed connection leaked, the one-connection pool would now be full and time out.
    connection = await pool.get_connection()
    await pool.release(connection)
    await pool.disconnect()
