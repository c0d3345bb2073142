"""One translator from database driver errors to f2f's errors, for every module that talks SQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from f2f_cli.errors import SchemaNotReady, StoreUnavailable


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Connection trouble becomes StoreUnavailable (503), never a traceback."""
    try:
        yield
    except (PoolTimeout, DBAPIError, OSError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        if detail and _missing_table(detail[0]):
            # An empty or never-migrated database answers, it just lacks f2f's tables: say what to run.
            raise SchemaNotReady(f"the SQL schema is missing ({detail[0]}): run 'f2f migrate db upgrade'") from exc
        raise StoreUnavailable(f"SQL database unavailable: {detail[0] if detail else type(exc).__name__}") from exc
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"SQL database error: {type(exc).__name__}") from exc


def _missing_table(message: str) -> bool:
    """SQLite's "no such table: x", PostgreSQL's 'relation "x" does not exist'."""
    return message.startswith("no such table") or (message.startswith("relation ") and "does not exist" in message)
