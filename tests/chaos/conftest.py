"""Fixtures the fault tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.redis_servers import RedisProcess, data_node, free_port


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A private ``redis-server`` on a free loopback port, persistence off as in the plan's Helm values:
    the test may kill, pause or restart it; it is stopped afterwards."""
    node = data_node(free_port(), tmp_path / "redis").start()
    yield node
    node.stop()
