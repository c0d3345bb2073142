"""Write the recipe catalog: upsert by (source, source_id), one transaction per import.

Every change bumps ``recipe_catalog.version`` in the same transaction, which
is how recommender instances notice their index is stale. A dry run does the
same work and rolls back, so its report is exactly what a real run would do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import msgspec
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.schema import ingredient_aliases, ingredients, recipe_catalog, recipe_ingredients, recipes
from f2f_cli.errors import SchemaNotReady, StoreUnavailable
from f2f_cli.recipes import vocab
from f2f_cli.recipes.formats import ParsedFile, RecipeRecord, Skipped
from f2f_cli.recipes.normalize import alias_table, info

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
    return {
        "source": record.source,
        "source_id": record.source_id,
        "title": record.title,
        "category": record.category,
        "method": record.method,
        "kcal": record.kcal,
        "image_url": record.image_url,
        "steps": list(record.steps),
        "content_hash": record.content_hash(),
        "updated_at": now,
    }


async def _existing(conn: AsyncConnection, batch: Sequence[RecipeRecord]) -> dict[tuple[str, str], tuple[int, str]]:
    by_source: dict[str, list[str]] = {}
    for r in batch:
        by_source.setdefault(r.source, []).append(r.source_id)
    cond = or_(*(and_(recipes.c.source == s, recipes.c.source_id.in_(ids)) for s, ids in by_source.items()))
    rows = await conn.execute(select(recipes.c.id, recipes.c.source, recipes.c.source_id, recipes.c.content_hash)
                              .where(cond))
    return {(r.source, r.source_id): (int(r.id), r.content_hash) for r in rows}


async def _write_batch(
    conn: AsyncConnection, batch: Sequence[RecipeRecord], ids: dict[str, int], report: ImportReport
) -> None:
    now = utcnow()
    existing = await _existing(conn, batch)
    new = [r for r in batch if (r.source, r.source_id) not in existing]
    changed = [r for r in batch if (r.source, r.source_id) in existing
               and existing[(r.source, r.source_id)][1] != r.content_hash()]
    report.unchanged += len(batch) - len(new) - len(changed)
    if new:
        await conn.execute(insert(recipes), [{**_recipe_values(r, now), "created_at": now} for r in new])
    for r in changed:
        await conn.execute(update(recipes).where(recipes.c.id == existing[(r.source, r.source_id)][0])
                           .values(**_recipe_values(r, now)))
    if changed:
        await conn.execute(delete(recipe_ingredients).where(
            recipe_ingredients.c.recipe_id.in_([existing[(r.source, r.source_id)][0] for r in changed])))
    if new:
        existing.update(await _existing(conn, new))
    rows = [
        {"recipe_id": existing[(r.source, r.source_id)][0], "position": pos, "ingredient_id": ids[item.ingredient],
         "raw_text": item.raw_text, "name": item.name, "amount": item.amount, "role": item.role}
        for r in (*new, *changed) for pos, item in enumerate(r.items)
    ]
    if rows:
        await conn.execute(insert(recipe_ingredients), rows)
    report.inserted += len(new)
    report.updated += len(changed)


async def import_parsed(
    engine: AsyncEngine, parsed: ParsedFile, *, dry_run: bool = False, progress: Progress | None = None
) -> ImportReport:
    """Upsert every record of ``parsed`` in one transaction; the catalog version bumps if anything changed."""
    report = ImportReport(format=parsed.format, dry_run=dry_run, rows=parsed.rows, parsed=len(parsed.records),
                          skipped=list(parsed.skipped))
    records = parsed.records
    async with sql_errors("cannot import recipes"), engine.connect() as conn:
        trans = await conn.begin()
        try:
            ids, vocab_changes = await _sync_ingredients(conn, (i.ingredient for r in records for i in r.items))
            report.ingredients_changed = vocab_changes
            for start in range(0, len(records), BATCH):
                await _write_batch(conn, records[start:start + BATCH], ids, report)
                if progress is not None:
                    progress(min(start + BATCH, len(records)), len(records))
            report.catalog_version = await _bump(conn) if report.changed else (await read_stamp(conn)).version
        except BaseException:
            await trans.rollback()
            raise
        if dry_run:
            await trans.rollback()
        else:
            await trans.commit()
    return report


async def recipe_count(engine: AsyncEngine) -> int:
    async with sql_errors("cannot count recipes"), engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(recipes))).scalar_one())
