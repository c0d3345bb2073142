"""Builds the Redis session store the phase runtime asks for."""

from __future__ import annotations

from f2f_cli.domain.store import SessionStore
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore


def make_redis_store(settings: Settings, *, backup_stream: bool) -> SessionStore:
    """A Redis store with its own client; ``backup_stream`` for the ``redis`` phase."""
    return RedisSessionStore.from_settings(settings, backup_stream=backup_stream)
