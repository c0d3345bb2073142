"""Redis faults in the redis phase: the fleet's Redis state, generation marker, restore progress,
each instance's last Redis contact, the failover fence and the conflict report.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from f2f_cli.db.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("f2f_control") as batch:
        batch.add_column(sa.Column("redis_state", sa.String(16), nullable=False, server_default="ok"))
        batch.add_column(sa.Column("redis_generation", sa.String(64), nullable=True))
        batch.add_column(sa.Column("redis_state_since", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("rpo_estimate", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("restore_done", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("restore_total", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("f2f_instances") as batch:
        batch.add_column(sa.Column("redis_ok_at", UTCDateTime(), nullable=True))
    op.create_table(
        "f2f_failover_fence",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("pre_version", sa.BigInteger(), nullable=False),
        sa.Column("fenced_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_f2f_failover_fence"),
    )
    op.create_table(
        "f2f_failover_conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("found_at", UTCDateTime(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("redis_version", sa.BigInteger(), nullable=False),
        sa.Column("sql_version", sa.BigInteger(), nullable=True),
        sa.Column("lost", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_f2f_failover_conflicts"),
    )
    op.create_index("ix_f2f_failover_conflicts_found_at", "f2f_failover_conflicts", ["found_at"])


def downgrade() -> None:
    op.drop_index("ix_f2f_failover_conflicts_found_at", table_name="f2f_failover_conflicts")
    op.drop_table("f2f_failover_conflicts")
    op.drop_table("f2f_failover_fence")
    with op.batch_alter_table("f2f_instances") as batch:
        batch.drop_column("redis_ok_at")
    with op.batch_alter_table("f2f_control") as batch:
        for name in ("restore_total", "restore_done", "rpo_estimate", "redis_state_since", "redis_generation",
                     "redis_state"):
            batch.drop_column(name)
