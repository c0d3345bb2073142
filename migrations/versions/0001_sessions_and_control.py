"""Sessions, ingredients and the phase control tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from f2f_cli.db.types import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fridge_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", name="pk_fridge_sessions"),
    )
    op.create_index("ix_fridge_sessions_expires_at", "fridge_sessions", ["expires_at"])
    op.create_table(
        "fridge_session_ingredients",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["fridge_sessions.session_id"],
            name="fk_fridge_session_ingredients_session_id_fridge_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "name", name="pk_fridge_session_ingredients"),
    )
    control = op.create_table(
        "f2f_control",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("redis_trusted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_f2f_control"),
    )
    op.bulk_insert(
        control,
        [
            {
                "id": 1,
                "phase": "postgres",
                "epoch": 1,
                "changed_at": datetime.now(UTC),
                "changed_by": "f2f migrate db upgrade",
                "redis_trusted": True,
            }
        ],
    )
    op.create_table(
        "f2f_instances",
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("phase_seen", sa.String(16), nullable=False),
        sa.Column("epoch_seen", sa.BigInteger(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name="pk_f2f_instances"),
    )
    op.create_index("ix_f2f_instances_last_seen", "f2f_instances", ["last_seen"])
    op.create_table(
        "f2f_checkpoints",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("last_session_id", sa.String(64), nullable=True),
        sa.Column("copied", sa.BigInteger(), nullable=False),
        sa.Column("skipped", sa.BigInteger(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_f2f_checkpoints"),
    )
    op.create_table(
        "f2f_repair_queue",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_f2f_repair_queue"),
    )
    op.create_table(
        "f2f_phase_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("from_phase", sa.String(16), nullable=True),
        sa.Column("to_phase", sa.String(16), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_f2f_phase_history"),
    )


def downgrade() -> None:
    op.drop_table("f2f_phase_history")
    op.drop_table("f2f_repair_queue")
    op.drop_table("f2f_checkpoints")
    op.drop_index("ix_f2f_instances_last_seen", table_name="f2f_instances")
    op.drop_table("f2f_instances")
    op.drop_table("f2f_control")
    op.drop_table("fridge_session_ingredients")
    op.drop_index("ix_fridge_sessions_expires_at", table_name="fridge_sessions")
    op.drop_table("fridge_sessions")
