"""SQLAlchemy Core tables: one ``MetaData`` for every table f2f owns.

The Alembic migrations in ``f2f_cli/migrations`` create exactly these tables;
``tests/unit/test_schema.py`` checks the two never drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from f2f_cli.db.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

SESSION_ID_LENGTH = 64
INGREDIENT_NAME_LENGTH = 200

fridge_sessions = Table(
    "fridge_sessions",
    metadata,
    Column("session_id", String(SESSION_ID_LENGTH), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("version", BigInteger(), nullable=False),
    # A deleted session stays as a tombstone (no ingredients) until it would have
    # expired, so a late, older copy from the other store cannot bring it back.
    Column("deleted_at", UTCDateTime(), nullable=True),
    Index("ix_fridge_sessions_expires_at", "expires_at"),
)

fridge_session_ingredients = Table(
    "fridge_session_ingredients",
    metadata,
    Column(
        "session_id",
        String(SESSION_ID_LENGTH),
        ForeignKey("fridge_sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(INGREDIENT_NAME_LENGTH), primary_key=True),
    Column("added_at", UTCDateTime(), nullable=False),
)

# One row (id = 1): the phase every instance must follow.
f2f_control = Table(
    "f2f_control",
    metadata,
    Column("id", SmallInteger(), primary_key=True, autoincrement=False),
    Column("phase", String(16), nullable=False),
    Column("epoch", BigInteger(), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("changed_by", String(200), nullable=False),
    # False while a failed Redis copy in `dual` awaits repair: every instance then reads SQL.
    Column("redis_trusted", Boolean(), nullable=False),
    # Redis faults (migration 0005): ok | recovering | failed-over, the generation marker Redis must
    # carry, when the state began, the estimated writes lost (RPO), the background restore's progress.
    Column("redis_state", String(16), nullable=False, server_default="ok"),
    Column("redis_generation", String(64), nullable=True),
    Column("redis_state_since", UTCDateTime(), nullable=True),
    Column("rpo_estimate", BigInteger(), nullable=True),
    Column("restore_done", BigInteger(), nullable=True),
    Column("restore_total", BigInteger(), nullable=True),
    # Set only in `cutover` (migration 0006): where the cut-over came from and goes, and
    # the deadline its migrator keeps renewing. Once the deadline passes, the first instance to see it
    # returns the fleet to `cutover_from` (a guarded update), so held writes never outlive the migrator.
    Column("cutover_from", String(16), nullable=True),
    Column("cutover_to", String(16), nullable=True),
    Column("hold_deadline", UTCDateTime(), nullable=True),
)

# At most one row (id = 1): the `f2f migrate` run allowed to change the phase. Its holder renews
# `heartbeat`; a lease whose heartbeat is older than F2F_MIGRATE_LEASE_SECONDS may be taken over.
f2f_migrator_lease = Table(
    "f2f_migrator_lease",
    metadata,
    Column("id", SmallInteger(), primary_key=True, autoincrement=False),
    Column("token", String(64), nullable=False),
    Column("holder", String(255), nullable=False),  # host:pid
    Column("actor", String(200), nullable=False),
    Column("command", String(200), nullable=False),
    Column("step", String(64), nullable=False),
    Column("since", UTCDateTime(), nullable=False),
    Column("heartbeat", UTCDateTime(), nullable=False),
)

f2f_instances = Table(
    "f2f_instances",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # serve | worker
    Column("host", String(255), nullable=False),
    Column("pid", Integer(), nullable=False),
    Column("phase_seen", String(16), nullable=False),
    Column("epoch_seen", BigInteger(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    # The last time this instance reached Redis (serve only): the fleet's failover vote.
    Column("redis_ok_at", UTCDateTime(), nullable=True),
    Index("ix_f2f_instances_last_seen", "last_seen"),
)

# Resumable bulk copies (backfill, restore): where the last committed batch ended.
f2f_checkpoints = Table(
    "f2f_checkpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_session_id", String(SESSION_ID_LENGTH), nullable=True),
    Column("copied", BigInteger(), nullable=False),
    Column("skipped", BigInteger(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Sessions whose Redis copy failed in `dual`; drained by the repair pass.
f2f_repair_queue = Table(
    "f2f_repair_queue",
    metadata,
    Column("session_id", String(SESSION_ID_LENGTH), primary_key=True),
    Column("queued_at", UTCDateTime(), nullable=False),
    Column("reason", String(200), nullable=False),
)

# Audit trail of phase steps, shown by `f2f migrate status`.
f2f_phase_history = Table(
    "f2f_phase_history",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("from_phase", String(16), nullable=True),
    Column("to_phase", String(16), nullable=True),
    Column("epoch", BigInteger(), nullable=True),
    Column("detail", Text(), nullable=True),
)

# Sessions written in SQL after an automatic failover, with the version SQL held before: a Redis copy
# newer than that lost to a failover-time write (migration 0003).
f2f_failover_fence = Table(
    "f2f_failover_fence",
    metadata,
    Column("session_id", String(SESSION_ID_LENGTH), primary_key=True),
    Column("pre_version", BigInteger(), nullable=False),
    Column("fenced_at", UTCDateTime(), nullable=False),
)

# The report of Redis writes that lost to a failover-time write, read by `f2f migrate status`.
f2f_failover_conflicts = Table(
    "f2f_failover_conflicts",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("found_at", UTCDateTime(), nullable=False),
    Column("session_id", String(SESSION_ID_LENGTH), nullable=False),
    Column("redis_version", BigInteger(), nullable=False),
    Column("sql_version", BigInteger(), nullable=True),
    Column("lost", Text(), nullable=False),
    Index("ix_f2f_failover_conflicts_found_at", "found_at"),
)


# ---------------------------------------------------------------------------
# Recipe catalog (migration 0002)

RECIPE_TITLE_LENGTH = 200
CANONICAL_NAME_LENGTH = 100

recipes = Table(
    "recipes",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("title", String(RECIPE_TITLE_LENGTH), nullable=False),
    Column("category", String(32), nullable=True),
    Column("method", String(32), nullable=True),
    Column("kcal", Float(), nullable=True),
    Column("image_url", Text(), nullable=True),
    Column("steps", JSON(), nullable=False),
    # Hash of the normalised record: an import that changes nothing is reported as unchanged.
    Column("content_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Normalised title + ingredient set (migration 0003): the same recipe from another source.
    Column("fingerprint", String(64), nullable=True),
    UniqueConstraint("source", "source_id", name="uq_recipes_source_source_id"),
    Index("ix_recipes_category", "category"),
    Index("ix_recipes_fingerprint", "fingerprint"),
)

# The other (source, id) pairs a recipe is known by: rows merged into it by an
# import or by dedupe, so importing them again updates it instead of adding a copy.
recipe_source_ids = Table(
    "recipe_source_ids",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("source_id", String(64), primary_key=True),
    Column("recipe_id", Integer(), ForeignKey("recipes.id", ondelete="CASCADE"), nullable=False),
    Index("ix_recipe_source_ids_recipe_id", "recipe_id"),
)

ingredients = Table(
    "ingredients",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("name", String(CANONICAL_NAME_LENGTH), nullable=False, unique=True),
    Column("category", String(32), nullable=False),
    # Staples (salt, water, sugar, soy sauce ...) never count as missing.
    Column("is_staple", Boolean(), nullable=False),
)

ingredient_aliases = Table(
    "ingredient_aliases",
    metadata,
    Column("alias", String(CANONICAL_NAME_LENGTH), primary_key=True),
    Column("ingredient_id", Integer(), ForeignKey("ingredients.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # alias (same thing) | parent (a specific form of it)
)

recipe_ingredients = Table(
    "recipe_ingredients",
    metadata,
    Column("recipe_id", Integer(), ForeignKey("recipes.id", ondelete="CASCADE"), primary_key=True),
    Column("position", SmallInteger(), primary_key=True, autoincrement=False),
    Column("ingredient_id", Integer(), ForeignKey("ingredients.id"), nullable=False),
    Column("raw_text", Text(), nullable=False),
    Column("name", String(INGREDIENT_NAME_LENGTH), nullable=False),
    Column("amount", String(INGREDIENT_NAME_LENGTH), nullable=False),
    Column("role", String(16), nullable=False),  # main | sub | seasoning | garnish
    Index("ix_recipe_ingredients_ingredient_id", "ingredient_id"),
)

# One row (id = 1): bumped in the same transaction as every catalog change, so
# each instance knows when its in-memory recommender index is stale.
recipe_catalog = Table(
    "recipe_catalog",
    metadata,
    Column("id", SmallInteger(), primary_key=True, autoincrement=False),
    Column("version", BigInteger(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
