"""PostgreSQL: one function for every session write of the request path (one round trip each).

``f2f_session_write(op, session_id, names, now, expires_at, max_ingredients)``
bumps the session row (version + 1, sliding expiry; that UPDATE takes the row
lock), applies the change (``a`` add, ``r`` remove, ``x`` clear, ``t`` touch),
checks the ingredient limit and returns the resulting state, all inside one
statement. A PL/pgSQL function rather than one CTE because each statement in it
takes a fresh snapshot (READ COMMITTED): after waiting for the row lock, the
limit check and the returned ingredients see what a concurrent write to the
same session committed, which the single snapshot of a CTE would not.

Rows returned (none: the session is unknown, expired or deleted):
- one head row: ``(created_at, version, NULL, NULL, false)``;
- one row per stored ingredient: ``(created_at, version, name, added_at, changed)``;
- one row per ingredient this call removed: ``(created_at, version, name, NULL, true)``.
Over the limit it raises SQLSTATE ``F2F01`` (the write is rolled back) with the
number of ingredients already stored as the DETAIL.

SQLite has no stored functions: the embedded store runs the same steps as one
SQLAlchemy transaction, so this revision does nothing there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION f2f_session_write(
    p_op text, p_session_id text, p_names text[], p_now timestamptz, p_expires timestamptz, p_limit integer
) RETURNS TABLE (created_at timestamptz, version bigint, name text, added_at timestamptz, changed boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_created timestamptz;
    v_version bigint;
    v_changed text[] := '{}';
    v_removed text[] := '{}';
    v_count integer;
BEGIN
    UPDATE fridge_sessions AS s
       SET version = s.version + 1, updated_at = p_now, expires_at = p_expires
     WHERE s.session_id = p_session_id AND s.expires_at > p_now AND s.deleted_at IS NULL
    RETURNING s.created_at, s.version INTO v_created, v_version;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_op = 'a' THEN
        WITH ins AS (
            INSERT INTO fridge_session_ingredients AS i (session_id, name, added_at)
            SELECT p_session_id, n, p_now FROM unnest(p_names) AS n
            ON CONFLICT DO NOTHING
            RETURNING i.name
        )
        SELECT coalesce(array_agg(ins.name), '{}') INTO v_changed FROM ins;
        IF cardinality(v_changed) > 0 THEN
            SELECT count(*) INTO v_count FROM fridge_session_ingredients AS i WHERE i.session_id = p_session_id;
            IF v_count > p_limit THEN
                RAISE EXCEPTION USING ERRCODE = 'F2F01', MESSAGE = 'too many ingredients',
                    DETAIL = (v_count - cardinality(v_changed))::text;
            END IF;
        END IF;
    ELSIF p_op = 'r' OR p_op = 'x' THEN
        WITH gone AS (
            DELETE FROM fridge_session_ingredients AS i
             WHERE i.session_id = p_session_id AND (p_op = 'x' OR i.name = ANY(p_names))
            RETURNING i.name
        )
        SELECT coalesce(array_agg(gone.name), '{}') INTO v_removed FROM gone;
    END IF;
    RETURN QUERY
        SELECT v_created, v_version, NULL::text, NULL::timestamptz, false
        UNION ALL
        SELECT v_created, v_version, i.name::text, i.added_at, i.name = ANY(v_changed)
          FROM fridge_session_ingredients AS i WHERE i.session_id = p_session_id
        UNION ALL
        SELECT v_created, v_version, r, NULL::timestamptz, true FROM unnest(v_removed) AS r;
END
$fn$
"""

SIGNATURE = "f2f_session_write(text, text, text[], timestamptz, timestamptz, integer)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
