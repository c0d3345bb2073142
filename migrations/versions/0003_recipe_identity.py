"""Recipe identity across sources: a content fingerprint per recipe and the other ids it is known by.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``fingerprint`` starts empty: the importer and ``f2f recipes dedupe`` fill it
for rows that lack one, so the migration needs no copy of the parser.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recipes") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.create_index("ix_recipes_fingerprint", ["fingerprint"])
    op.create_table(
        "recipe_source_ids",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("recipe_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["recipe_id"], ["recipes.id"], name="fk_recipe_source_ids_recipe_id_recipes",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source", "source_id", name="pk_recipe_source_ids"),
    )
    op.create_index("ix_recipe_source_ids_recipe_id", "recipe_source_ids", ["recipe_id"])


def downgrade() -> None:
    op.drop_index("ix_recipe_source_ids_recipe_id", table_name="recipe_source_ids")
    op.drop_table("recipe_source_ids")
    with op.batch_alter_table("recipes") as batch:
        batch.drop_index("ix_recipes_fingerprint")
        batch.drop_column("fingerprint")
