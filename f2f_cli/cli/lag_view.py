"""How ``f2f worker --lag`` and ``f2f migrate status`` show the backup lag per shard (a Redis primary)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # annotations only: no store client loads for "f2f --help" (tests/cli/test_lazy_imports.py)
    from f2f_cli.backup.shard_lag import ShardedLag
    from f2f_cli.backup.worker import BackupLag


def lag_json(lag: BackupLag) -> dict[str, Any]:
    return {"total": lag.total, "pending": lag.pending, "undelivered": lag.undelivered,
            "oldest_age_ms": lag.oldest_age_ms, "streams": lag.streams}  # fmt: skip


def sharded_json(lag: ShardedLag) -> dict[str, Any]:
    """The totals at the top (the fields scripts read before shards existed), then ``shards`` by primary."""
    return {**lag_json(lag.overall), "shards": {name: lag_json(part) for name, part in lag.shards.items()}}


def _age(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


def shard_table(shards: dict[str, BackupLag]) -> Table:
    table = Table("shard (primary)", "backlog", "pending", "undelivered", "oldest", "streams with entries",
                  title="backup lag per shard")  # fmt: skip
    for name, part in shards.items():
        table.add_row(Text(name), f"{part.total:,}", f"{part.pending:,}", f"{part.undelivered:,}",
                      _age(part.oldest_age_ms), str(part.streams))  # fmt: skip
    return table


def summary(lag: BackupLag) -> Text:
    return Text(f"backlog {lag.total} (pending {lag.pending}, undelivered {lag.undelivered}), "
                f"oldest {_age(lag.oldest_age_ms)}, streams with entries {lag.streams}")  # fmt: skip
