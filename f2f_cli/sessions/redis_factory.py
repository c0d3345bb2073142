"""Builds the Redis session store from settings (filled in when the Redis store lands)."""

from __future__ import annotations

from f2f_cli.errors import NotAvailable
from f2f_cli.sessions.store import SessionStore
from f2f_cli.settings import Settings


def make_redis_store(settings: Settings, *, backup_stream: bool) -> SessionStore:
    raise NotAvailable("the Redis session store is not part of this build yet")
