"""The standalone client's pool: no waiting machinery while a connection is free, waiting beyond it."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from f2f_cli.redis.client import WaitingPool, create_redis_for_url


def _client(url: str, max_connections: int) -> tuple[object, WaitingPool]:
    client = create_redis_for_url(url, connect_timeout=1.0, command_timeout=5.0, max_connections=max_connections)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    return client, pool


async def test_a_burst_beyond_the_pool_waits_its_turn_and_every_command_answers(redis_url: str) -> None:
    client, pool = _client(redis_url, max_connections=2)
    try:
        # Each BLPOP on an empty list holds its connection for 50 ms: 8 of them through 2 connections.
        key = f"f2f-pool-test-{id(pool)}"
        replies = await asyncio.gather(*(client.blpop([key], timeout=0.05) for _ in range(8)))
        assert replies == [None] * 8
        assert len(pool._in_use_connections) == 0
        assert len(pool._available_connections) <= 2
        assert pool._waiting == 0
        # The quick path serves a lone command afterwards, on one of the same connections.
        assert await client.ping()
        assert len(pool._available_connections) <= 2
    finally:
        await client.aclose()


async def test_waiters_are_served_when_connections_come_back(redis_url: str) -> None:
    client, pool = _client(redis_url, max_connections=1)
    try:
        held = await pool.get_connection()
        waiter = asyncio.create_task(client.ping())
        await asyncio.sleep(0.05)
        assert not waiter.done() and pool._waiting == 1
        # A newcomer queues behind the waiter instead of taking the released connection first.
        newcomer = asyncio.create_task(client.echo("late"))
        await asyncio.sleep(0.05)
        assert pool._waiting == 2
        await pool.release(held)
        assert await asyncio.wait_for(waiter, 5) is True
        assert await asyncio.wait_for(newcomer, 5) == b"late"
        assert pool._waiting == 0
    finally:
        await client.aclose()


async def test_a_pool_that_stays_full_fails_after_its_wait(redis_url: str) -> None:
    client, pool = _client(redis_url, max_connections=1)
    pool.timeout = 0.2
    try:
        held = await pool.get_connection()
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await client.ping()
        assert pool._waiting == 0
        await pool.release(held)
        assert await client.ping()
    finally:
        await client.aclose()
