"""Write the recipe catalog: upsert by (source, source_id), one transaction per import.

Every change bumps ``recipe_catalog.version`` in the same transaction, which
is how recommender instances notice their index is stale. A dry run does the
same work and rolls back, so its report is exactly what a real run would do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Column, ColumnElement, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.schema import (
    CANONICAL_NAME_LENGTH,
    ingredient_aliases,
    ingredients,
    recipe_catalog,
    recipe_ingredients,
    recipe_source_ids,
    recipes,
)
from f2f_cli.errors import SchemaNotReady, StoreUnavailable
from f2f_cli.recipes import vocab
from f2f_cli.recipes.formats import ParsedFile, RecipeRecord, Skipped
from f2f_cli.recipes.identity import fingerprint
from f2f_cli.recipes.normalize import alias_table, canonical_name, info

BATCH = 200
Progress = Callable[[int, int], None]


class CatalogStamp(msgspec.Struct, frozen=True):
    """The catalog's version; ``key`` also changes if the version row was ever recreated."""

    version: int
    updated_at: datetime | None

    @property
    def key(self) -> str:
        micros = int(self.updated_at.timestamp() * 1_000_000) if self.updated_at else 0
        return f"{self.version}-{micros}"


class Merged(msgspec.Struct, frozen=True):
    """A row of the file recognised as a recipe the catalog already holds under another (source, id)."""

    source: str
    source_id: str
    recipe_id: int
    title: str
    by: str  # "known id" (merged before), "fingerprint" (same title and ingredients), "copy in file"


class ImportReport(msgspec.Struct):
    format: str
    dry_run: bool
    rows: int
    parsed: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    ingredients_changed: int = 0
    skipped: list[Skipped] = msgspec.field(default_factory=list)
    merged: list[Merged] = msgspec.field(default_factory=list)
    catalog_version: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.ingredients_changed)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@asynccontextmanager
async def sql_errors(action: str) -> AsyncIterator[None]:
    """Turn driver errors into one-line F2FErrors; a missing table means the schema is behind."""
    try:
        yield
    except SQLAlchemyError as exc:
        line = _first_line(exc)
        if "no such table" in line or ("relation" in line and "does not exist" in line):
            raise SchemaNotReady(f"{action}: the recipe tables are missing, run 'f2f migrate db upgrade'") from None
        raise StoreUnavailable(f"{action}: {line}") from None


@asynccontextmanager
async def _transaction(engine: AsyncEngine, action: str, *, dry_run: bool) -> AsyncIterator[AsyncConnection]:
    """One transaction that commits, or that a dry run rolls back after doing exactly what the real run does."""
    async with sql_errors(action), engine.connect() as conn:
        trans = await conn.begin()
        try:
            yield conn
        except BaseException:
            await trans.rollback()
            raise
        if dry_run:
            await trans.rollback()
        else:
            await trans.commit()


async def read_stamp(conn: AsyncConnection) -> CatalogStamp:
    row = (await conn.execute(select(recipe_catalog.c.version, recipe_catalog.c.updated_at)
                              .where(recipe_catalog.c.id == 1))).first()
    return CatalogStamp(0, None) if row is None else CatalogStamp(int(row.version), row.updated_at)


async def _bump(conn: AsyncConnection) -> int:
    now = utcnow()
    result = await conn.execute(
        update(recipe_catalog).where(recipe_catalog.c.id == 1)
        .values(version=recipe_catalog.c.version + 1, updated_at=now)
        .returning(recipe_catalog.c.version)
    )
    row = result.first()
    if row is not None:
        return int(row.version)
    # The row is created by migration 0002; recreate it if someone removed it.
    await conn.execute(insert(recipe_catalog).values(id=1, version=1, updated_at=now))
    return 1


async def _sync_ingredients(conn: AsyncConnection, names: Iterable[str]) -> tuple[dict[str, int], int]:
    """Make sure every canonical name (and the vocabulary's aliases) exists; name → id, rows added."""
    wanted = set(names) | set(vocab.STAPLES) | {c for _, c, _ in alias_table()}
    existing = {r.name: (r.id, r.category, r.is_staple)
                for r in await conn.execute(select(ingredients.c.id, ingredients.c.name, ingredients.c.category,
                                                   ingredients.c.is_staple))}
    missing = sorted(wanted - existing.keys())
    changed = 0
    if missing:
        await conn.execute(insert(ingredients), [
            {"name": n, "category": info(n).category, "is_staple": info(n).is_staple} for n in missing
        ])
        changed += len(missing)
    for name, (ing_id, category, is_staple) in existing.items():
        meta = info(name)
        # Only names the vocabulary knows get re-flagged; others keep what an operator may have set.
        if name in wanted and (category, bool(is_staple)) != (meta.category, meta.is_staple):
            await conn.execute(update(ingredients).where(ingredients.c.id == ing_id)
                               .values(category=meta.category, is_staple=meta.is_staple))
            changed += 1
    ids = {r.name: int(r.id) for r in await conn.execute(select(ingredients.c.id, ingredients.c.name))}
    current = {r.alias: (int(r.ingredient_id), r.kind)
               for r in await conn.execute(select(ingredient_aliases))}
    for alias, canonical, kind in alias_table():
        target = (ids[canonical], kind)
        if alias not in current:
            await conn.execute(insert(ingredient_aliases).values(alias=alias, ingredient_id=target[0], kind=kind))
            changed += 1
        elif current[alias] != target:
            await conn.execute(update(ingredient_aliases).where(ingredient_aliases.c.alias == alias)
                               .values(ingredient_id=target[0], kind=kind))
            changed += 1
    return ids, changed


def _recipe_values(record: RecipeRecord, now: datetime) -> dict[str, object]:
    """Columns an import writes; (source, source_id) only on insert, so a merged row keeps its identity."""
    return {
        "title": record.title,
        "category": record.category,
        "method": record.method,
        "kcal": record.kcal,
        "image_url": record.image_url,
        "steps": list(record.steps),
        "content_hash": record.content_hash(),
        "fingerprint": record.fingerprint(),
        "updated_at": now,
    }


_Key = tuple[str, str]


def _by_source(keys: Iterable[_Key], source: Column[str], source_id: Column[str]) -> ColumnElement[bool]:
    grouped: dict[str, list[str]] = {}
    for s, sid in keys:
        grouped.setdefault(s, []).append(sid)
    return or_(*(and_(source == s, source_id.in_(ids)) for s, ids in grouped.items()))


async def _find(conn: AsyncConnection, batch: Sequence[RecipeRecord]) -> dict[_Key, tuple[int, str, str]]:
    """(source, id) → (recipe id, content hash, how it was found) for records the catalog already holds."""
    keys = {(r.source, r.source_id) for r in batch}
    found: dict[_Key, tuple[int, str, str]] = {}
    rows = await conn.execute(select(recipes.c.id, recipes.c.source, recipes.c.source_id, recipes.c.content_hash)
                              .where(_by_source(keys, recipes.c.source, recipes.c.source_id)))
    for r in rows:
        found[(r.source, r.source_id)] = (int(r.id), r.content_hash, "")
    rest = keys - found.keys()
    if rest:
        rows = await conn.execute(
            select(recipe_source_ids.c.source, recipe_source_ids.c.source_id, recipes.c.id, recipes.c.content_hash)
            .join(recipes, recipes.c.id == recipe_source_ids.c.recipe_id)
            .where(_by_source(rest, recipe_source_ids.c.source, recipe_source_ids.c.source_id)))
        for r in rows:
            found[(r.source, r.source_id)] = (int(r.id), r.content_hash, "known id")
    prints = {r.fingerprint() for r in batch if (r.source, r.source_id) not in found}
    if prints:
        rows = await conn.execute(select(recipes.c.id, recipes.c.fingerprint, recipes.c.content_hash)
                                  .where(recipes.c.fingerprint.in_(list(prints))).order_by(recipes.c.id.desc()))
        first = {row.fingerprint: (int(row.id), row.content_hash) for row in rows}  # descending: oldest wins
        for record in batch:
            hit = first.get(record.fingerprint())
            if hit is not None and (record.source, record.source_id) not in found:
                found[(record.source, record.source_id)] = (hit[0], hit[1], "fingerprint")
    return found


async def _write_batch(
    conn: AsyncConnection, batch: Sequence[RecipeRecord], ids: dict[str, int], report: ImportReport,
    claimed: set[int],
) -> None:
    """Insert, update or merge one batch.

    A record is the recipe stored under its (source, id), else the one an
    earlier import merged that id into, else the oldest with its fingerprint,
    else the first record of this file with its fingerprint; only when none
    exists is it new. ``claimed`` holds the recipes earlier records of this
    import matched: a later copy in the file changes nothing (as with a
    repeated id), so importing the same file twice is a no-op.
    """
    now = utcnow()
    found = await _find(conn, batch)
    new: list[RecipeRecord] = []
    first_new: dict[str, RecipeRecord] = {}
    copies_of_new: list[tuple[RecipeRecord, RecipeRecord]] = []
    changed: dict[int, RecipeRecord] = {}
    merged: list[tuple[RecipeRecord, int, str, bool]] = []  # record, recipe, how, whether to remember its id
    for r in batch:
        hit = found.get((r.source, r.source_id))
        if hit is None:
            fp = r.fingerprint()
            if fp in first_new:
                copies_of_new.append((r, first_new[fp]))
                report.unchanged += 1
            else:
                first_new[fp] = r
                new.append(r)
            continue
        recipe_id, content_hash, by = hit
        if recipe_id in claimed:
            report.unchanged += 1
            merged.append((r, recipe_id, "copy in file", by == "fingerprint"))
            continue
        claimed.add(recipe_id)
        if content_hash != r.content_hash():
            changed[recipe_id] = r
            report.updated += 1
        else:
            report.unchanged += 1
        if by:
            merged.append((r, recipe_id, by, by == "fingerprint"))
    if new:
        await conn.execute(insert(recipes), [
            {**_recipe_values(r, now), "source": r.source, "source_id": r.source_id, "created_at": now} for r in new])
        report.inserted += len(new)
    for recipe_id, r in changed.items():
        await conn.execute(update(recipes).where(recipes.c.id == recipe_id).values(**_recipe_values(r, now)))
    if changed:
        await conn.execute(delete(recipe_ingredients).where(recipe_ingredients.c.recipe_id.in_(list(changed))))
    new_ids = {k: v[0] for k, v in (await _find(conn, new)).items()} if new else {}
    claimed.update(new_ids.values())
    merged += [(r, new_ids[(first.source, first.source_id)], "copy in file", True) for r, first in copies_of_new]
    targets = [(new_ids[(r.source, r.source_id)], r) for r in new] + list(changed.items())
    rows = [
        {"recipe_id": recipe_id, "position": pos, "ingredient_id": ids[item.ingredient],
         "raw_text": item.raw_text, "name": item.name, "amount": item.amount, "role": item.role}
        for recipe_id, r in targets for pos, item in enumerate(r.items)
    ]
    if rows:
        await conn.execute(insert(recipe_ingredients), rows)
    aliases = [{"source": r.source, "source_id": r.source_id, "recipe_id": recipe_id}
               for r, recipe_id, _by, remember in merged if remember]
    if aliases:
        await conn.execute(insert(recipe_source_ids), aliases)
    report.merged.extend(Merged(r.source, r.source_id, recipe_id, r.title, by) for r, recipe_id, by, _ in merged)


async def prune_unused_ingredients(conn: AsyncConnection) -> int:
    """Delete ingredients no recipe lists and the vocabulary does not name; returns how many.

    A parser or vocabulary change leaves the names it used to produce
    ("두부강된장참기름") behind with no recipe; autocomplete would offer them.
    """
    used = select(recipe_ingredients.c.ingredient_id)
    aliased = select(ingredient_aliases.c.ingredient_id)
    vocabulary = set(vocab.STAPLES) | {c for _, c, _ in alias_table()}
    result = await conn.execute(delete(ingredients).where(
        ingredients.c.id.not_in(used), ingredients.c.id.not_in(aliased), ingredients.c.name.not_in(vocabulary)))
    return int(result.rowcount or 0)


async def refresh_fingerprints(conn: AsyncConnection, *, only_missing: bool) -> int:
    """Compute fingerprints from the stored rows with today's vocabulary; returns how many changed.

    Rows written before migration 0003 have none. ``only_missing=False`` also
    refreshes rows whose fingerprint an older vocabulary computed.
    """
    query = select(recipes.c.id, recipes.c.title, recipes.c.fingerprint)
    if only_missing:
        query = query.where(recipes.c.fingerprint.is_(None))
    rows = (await conn.execute(query)).all()
    if not rows:
        return 0
    names: dict[int, list[str]] = {}
    wanted = [int(r.id) for r in rows]
    for start in range(0, len(wanted), 5000):  # bounded IN lists on a large catalog
        parts = await conn.execute(select(recipe_ingredients.c.recipe_id, recipe_ingredients.c.name)
                                   .where(recipe_ingredients.c.recipe_id.in_(wanted[start:start + 5000])))
        for p in parts:
            names.setdefault(int(p.recipe_id), []).append(canonical_name(p.name)[:CANONICAL_NAME_LENGTH])
    stale = [{"rid": int(r.id), "fp": fp} for r in rows
             if (fp := fingerprint(r.title, names.get(int(r.id), ()))) != r.fingerprint]
    if stale:
        await conn.execute(update(recipes).where(recipes.c.id == bindparam("rid")).values(fingerprint=bindparam("fp")),
                           stale)
    return len(stale)


async def import_parsed(
    engine: AsyncEngine, parsed: ParsedFile, *, dry_run: bool = False, progress: Progress | None = None
) -> ImportReport:
    """Upsert every record of ``parsed`` in one transaction; the catalog version bumps if anything changed."""
    report = ImportReport(format=parsed.format, dry_run=dry_run, rows=parsed.rows, parsed=len(parsed.records),
                          skipped=list(parsed.skipped))
    records = parsed.records
    async with _transaction(engine, "cannot import recipes", dry_run=dry_run) as conn:
        ids, vocab_changes = await _sync_ingredients(conn, (i.ingredient for r in records for i in r.items))
        report.ingredients_changed = vocab_changes
        await refresh_fingerprints(conn, only_missing=True)
        claimed: set[int] = set()
        for start in range(0, len(records), BATCH):
            await _write_batch(conn, records[start:start + BATCH], ids, report, claimed)
            if progress is not None:
                progress(min(start + BATCH, len(records)), len(records))
        report.ingredients_changed += await prune_unused_ingredients(conn)
        report.catalog_version = await _bump(conn) if report.changed else (await read_stamp(conn)).version
    return report


async def recipe_count(engine: AsyncEngine) -> int:
    async with sql_errors("cannot count recipes"), engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(recipes))).scalar_one())


class RemovedCopy(msgspec.Struct, frozen=True):
    id: int
    source: str
    source_id: str


class DuplicateGroup(msgspec.Struct, frozen=True):
    """Recipes with one fingerprint: the oldest is kept, the others are removed and their ids point to it."""

    kept: int
    title: str
    source: str
    source_id: str
    removed: tuple[RemovedCopy, ...]


class DedupeReport(msgspec.Struct):
    dry_run: bool
    recipes: int  # in the catalog before
    removed: int
    groups: list[DuplicateGroup]
    fingerprints_refreshed: int
    catalog_version: int


async def dedupe(engine: AsyncEngine, *, dry_run: bool = False) -> DedupeReport:
    """Remove copies of a recipe (same title and ingredient set) from the catalog, in one transaction.

    The oldest row of each group stays. Each removed row's (source, id), and
    any id merged into it before, then names the kept recipe, so importing the
    copy again updates the kept recipe instead of adding it back.
    """
    async with _transaction(engine, "cannot deduplicate recipes", dry_run=dry_run) as conn:
        refreshed = await refresh_fingerprints(conn, only_missing=False)
        rows = (await conn.execute(select(recipes.c.id, recipes.c.source, recipes.c.source_id, recipes.c.title,
                                          recipes.c.fingerprint).order_by(recipes.c.id))).all()
        by_print: dict[str, list[Any]] = {}
        for row in rows:
            by_print.setdefault(row.fingerprint, []).append(row)
        groups = [
            DuplicateGroup(kept=int(first.id), title=first.title, source=first.source, source_id=first.source_id,
                           removed=tuple(RemovedCopy(int(c.id), c.source, c.source_id) for c in copies))
            for first, *copies in by_print.values() if copies
        ]
        for group in groups:
            copy_ids = [c.id for c in group.removed]
            await conn.execute(update(recipe_source_ids).where(recipe_source_ids.c.recipe_id.in_(copy_ids))
                               .values(recipe_id=group.kept))
            await conn.execute(insert(recipe_source_ids), [
                {"source": c.source, "source_id": c.source_id, "recipe_id": group.kept} for c in group.removed])
            await conn.execute(delete(recipes).where(recipes.c.id.in_(copy_ids)))
        removed = sum(len(g.removed) for g in groups)
        if removed:
            await prune_unused_ingredients(conn)
        version = await _bump(conn) if removed else (await read_stamp(conn)).version
    return DedupeReport(dry_run=dry_run, recipes=len(rows), removed=removed, groups=groups,
                        fingerprints_refreshed=refreshed, catalog_version=version)
