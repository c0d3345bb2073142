"""Schema migrations (Alembic) driven from code, so they work from an installed wheel."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from f2f_cli.db.engine import create_sync_engine_for
from f2f_cli.errors import InvalidInput, PreconditionFailed, StoreUnavailable
from f2f_cli.settings import mask_url


def migrations_dir() -> Path:
    """Where Alembic's environment is: the top-level ``migrations/`` shipped as ``f2f_cli.migrations``.

    Resolved through the import system, so a wheel, an editable install and a
    source checkout all find the same files.
    """
    package = importlib.import_module("f2f_cli.migrations")
    return Path(package.__file__ or "").resolve().parent


@dataclass(frozen=True, slots=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def _config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    # '%' is Alembic's interpolation character; passwords may contain it.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def _run(database_url: str, action: str, target: str) -> None:
    engine = create_sync_engine_for(database_url)
    cfg = _config(database_url)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            if action == "upgrade":
                command.upgrade(cfg, target)
            else:
                command.downgrade(cfg, target)
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"cannot migrate {mask_url(database_url)}: {_first_line(exc)}") from exc
    except CommandError as exc:
        # Alembic's own refusals (an unknown revision, a target on the wrong side of the current one).
        raise InvalidInput(f"cannot {action} to {target!r}: {_first_line(exc)} ('f2f migrate db history' lists "
                           "the revisions)") from None
    finally:
        engine.dispose()


def upgrade(database_url: str, target: str = "head") -> None:
    _run(database_url, "upgrade", target)


def downgrade(database_url: str, target: str = "-1") -> None:
    _run(database_url, "downgrade", target)


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def state(database_url: str) -> SchemaState:
    """The revision the database is at, next to the code's head."""
    engine = create_sync_engine_for(database_url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"cannot reach {mask_url(database_url)}: {_first_line(exc)}") from exc
    finally:
        engine.dispose()
    return SchemaState(current=current, head=head_revision())


def history() -> list[Revision]:
    """Every revision, newest first."""
    script = ScriptDirectory.from_config(_config("sqlite://"))
    heads = set(script.get_heads())
    return [
        Revision(
            revision=rev.revision,
            down_revision=rev.down_revision if isinstance(rev.down_revision, str) else None,
            message=(rev.doc or "").strip().splitlines()[0] if rev.doc else "",
            is_head=rev.revision in heads,
        )
        for rev in script.walk_revisions()
    ]


def downgrade_steps(current: str | None, target: str) -> list[Revision]:
    """The revisions ``downgrade(target)`` would undo from ``current``, newest first (empty: nothing to do).

    ``target`` is what the CLI takes: ``-N`` (N steps back), ``base`` (an empty schema) or a revision
    at or below ``current``. Worked out from the shipped history, so a dry run and the question
    asked before a downgrade name real revisions instead of repeating ``-1``.
    """
    if current is None:
        raise PreconditionFailed("the schema is empty: nothing to downgrade")
    by_id = {r.revision: r for r in history()}
    if current not in by_id:
        raise PreconditionFailed(f"the database is at {current}, a revision this f2f does not ship")
    chain: list[Revision] = []
    rev: str | None = current
    while rev is not None:
        chain.append(by_id[rev])
        rev = by_id[rev].down_revision
    if target == "base":
        return chain
    if target.startswith("-"):
        steps = target[1:]
        if not steps.isdigit() or int(steps) < 1:
            raise InvalidInput(f"downgrade target {target!r}: use -N (N >= 1), 'base' or a revision")
        if int(steps) > len(chain):
            raise InvalidInput(f"cannot go {steps} steps back from {current}: only {len(chain)} revisions "
                               "below it (use 'base' for an empty schema)")
        return chain[: int(steps)]
    ids = [r.revision for r in chain]
    if target not in ids:
        known = "a newer revision" if target in by_id else "not a revision of this f2f"
        raise InvalidInput(f"downgrade target {target!r} is {known} (the database is at {current}; "
                           "'f2f migrate db history' lists them)")
    return chain[: ids.index(target)]


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
