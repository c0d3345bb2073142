"""One migrator at a time (a lease) and a cut-over that cannot outlive its migrator (a deadline).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from f2f_cli.db.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("f2f_control", sa.Column("cutover_from", sa.String(16), nullable=True))
    op.add_column("f2f_control", sa.Column("cutover_to", sa.String(16), nullable=True))
    op.add_column("f2f_control", sa.Column("hold_deadline", UTCDateTime(), nullable=True))
    op.create_table(
        "f2f_migrator_lease",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("command", sa.String(200), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("heartbeat", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_f2f_migrator_lease"),
    )


def downgrade() -> None:
    op.drop_table("f2f_migrator_lease")
    # SQLite cannot drop a column in place: batch mode copies the table.
    with op.batch_alter_table("f2f_control") as batch:
        batch.drop_column("hold_deadline")
        batch.drop_column("cutover_to")
        batch.drop_column("cutover_from")
