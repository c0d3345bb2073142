"""Seed and import on SQLite and PostgreSQL; the recommender built from SQL; snapshots in Redis."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db import migrate as schema
from f2f_cli.db.engine import create_engine_for, create_sync_engine_for
from f2f_cli.db.schema import ingredient_aliases, recipe_ingredients, recipes
from f2f_cli.errors import InvalidInput, SchemaNotReady, StoreUnavailable
from f2f_cli.recipes.builtin import builtin_catalog
from f2f_cli.recipes.catalog import import_parsed, read_stamp, recipe_count
from f2f_cli.recipes.formats import parse_data, parse_file
from f2f_cli.recipes.queries import RecipeNotFound, get_recipe, list_recipes
from f2f_cli.recipes.recommender import Recommender, snapshot_key
from tests.conftest import make_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


async def stamp(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await read_stamp(conn)).version


async def test_seed_is_idempotent(engine: AsyncEngine) -> None:
    before = await stamp(engine)
    first = await import_parsed(engine, builtin_catalog())
    copies = [m for m in first.merged if m.by == "copy in file"]
    assert first.inserted == first.parsed - len(copies) >= 500 and first.updated == 0
    assert first.catalog_version == before + 1 == await stamp(engine)
    again = await import_parsed(engine, builtin_catalog())
    assert (again.inserted, again.updated, again.unchanged, again.ingredients_changed) == (0, 0, first.parsed, 0)
    assert await stamp(engine) == before + 1  # nothing changed, no bump
    assert await recipe_count(engine) == first.inserted


async def test_import_upserts_by_source_id_and_reports(engine: AsyncEngine) -> None:
    data = json.loads((FIXTURES / "cookrcp01_simple.json").read_text(encoding="utf-8"))
    report = await import_parsed(engine, parse_data(data))
    assert (report.inserted, report.updated) == (12, 0)
    data[0]["title"] = "새우 두부 달걀찜"
    data[0]["ingredients"] = ["연두부 75g", "칵테일새우 20g", "달걀 30g"]
    data.append({"id": "x1", "title": "", "ingredients": ["두부"]})
    version = await stamp(engine)
    report = await import_parsed(engine, parse_data(data))
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 11)
    assert [(s.source_id, s.reason) for s in report.skipped] == [("x1", "missing title")]
    assert await stamp(engine) == version + 1
    page = await list_recipes(engine, search="달걀찜")
    assert page.total == 1
    detail = await get_recipe(engine, page.items[0].id)
    assert [i.ingredient for i in detail.ingredients] == ["연두부", "새우", "달걀"]
    assert detail.ingredients[1].name == "칵테일새우" and detail.ingredients[1].amount == "20g"


async def test_dry_run_changes_nothing(engine: AsyncEngine) -> None:
    version = await stamp(engine)
    report = await import_parsed(engine, parse_file(FIXTURES / "cookrcp01_api.json"), dry_run=True)
    assert report.dry_run and report.inserted == 4 and report.catalog_version == version + 1
    assert await recipe_count(engine) == 0 and await stamp(engine) == version


async def test_failed_import_commits_nothing(engine: AsyncEngine) -> None:
    parsed = parse_data([{"id": str(n), "title": f"두부조림 {n}", "ingredients": ["두부 300g"]} for n in range(450)])
    # The last row breaks a NOT NULL column after two batches were written: none of it may stay.
    bad = msgspec.structs.replace(parsed.records[-1], source_id=None)  # type: ignore[arg-type]
    broken = msgspec.structs.replace(parsed, records=(*parsed.records[:-1], bad))
    with pytest.raises(StoreUnavailable, match="cannot import recipes"):
        await import_parsed(engine, broken)
    assert await recipe_count(engine) == 0
    assert await stamp(engine) == 0


async def test_malformed_file_stops_before_the_database(engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"id": 1, "title": "두부", "ingredients": ["두부"]}', encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_file(path)
    assert await recipe_count(engine) == 0


async def test_search_by_title_and_ingredient(engine: AsyncEngine) -> None:
    await import_parsed(engine, builtin_catalog())
    by_title = await list_recipes(engine, search="두부", size=5)
    assert by_title.total >= 20 and len(by_title.items) == 5
    by_alias = await list_recipes(engine, search="계란")
    by_name = await list_recipes(engine, search="달걀")
    assert by_alias.total >= by_name.total > 50  # 계란 finds recipes that say 달걀
    garlic = await list_recipes(engine, search="마늘", size=100)
    stems = await list_recipes(engine, search="마늘종", size=100)
    assert stems.total < garlic.total  # and 마늘 does not find every 마늘종 recipe by ingredient
    assert (await list_recipes(engine, search="100%_", size=5)).total == 0  # LIKE wildcards are escaped
    page2 = await list_recipes(engine, page=2, size=10)
    assert page2.page == 2 and page2.items[0].id > (await list_recipes(engine, size=10)).items[-1].id
    with pytest.raises(RecipeNotFound):
        await get_recipe(engine, 10**9)


async def test_recommender_rebuilds_when_catalog_changes(engine: AsyncEngine) -> None:
    await import_parsed(engine, builtin_catalog())
    clock = [0.0]
    rec = Recommender(engine, check_interval=5.0, clock=lambda: clock[0])
    first = await rec.recommend(["두부", "계란", "대파"], limit=5)
    assert rec.last_source == "sql" and first.items
    await import_parsed(engine, parse_data([{"id": "n1", "title": "두부 달걀 파 볶음",
                                             "ingredients": ["두부 100g", "달걀 1개", "대파 10g"]}]))
    assert await rec.recommend(["두부", "계란", "대파"], limit=5) == first  # within the check interval
    clock[0] = 10.0
    fresh = await rec.recommend(["두부", "계란", "대파"], limit=5)
    assert fresh.items[0].title == "두부 달걀 파 볶음" and fresh.items[0].missing_count == 0
    assert rec.last_source == "sql"


@pytest.mark.redis
async def test_snapshot_shared_through_redis(engine: AsyncEngine, redis_url: str, redis_prefix: str) -> None:
    await import_parsed(engine, builtin_catalog())
    client = aioredis.Redis.from_url(redis_url)
    try:
        builder = Recommender(engine, redis=client, key_prefix=redis_prefix)
        expected = await builder.recommend(["두부", "계란"], limit=10)
        assert builder.last_source == "sql"
        async with engine.connect() as conn:
            key = snapshot_key(redis_prefix, (await read_stamp(conn)).key)
        assert await client.exists(key) and await client.ttl(key) > 0
        newcomer = Recommender(engine, redis=client, key_prefix=redis_prefix)
        assert await newcomer.recommend(["두부", "계란"], limit=10) == expected
        assert newcomer.last_source == "redis"
        await client.set(key, b"corrupt")
        repaired = Recommender(engine, redis=client, key_prefix=redis_prefix)
        assert await repaired.recommend(["두부", "계란"], limit=10) == expected
        assert repaired.last_source == "sql"
    finally:
        await client.aclose()


async def test_redis_down_falls_back_to_sql(engine: AsyncEngine, redis_prefix: str) -> None:
    await import_parsed(engine, parse_file(FIXTURES / "cookrcp01_simple.json"))
    dead = aioredis.Redis.from_url("redis://127.0.0.1:7399/0", socket_connect_timeout=0.2)
    try:
        rec = Recommender(engine, redis=dead, key_prefix=redis_prefix)
        assert (await rec.recommend(["연두부", "새우"], limit=3)).items[0].title == "새우 두부 계란찜"
        assert rec.last_source == "sql"
    finally:
        await dead.aclose()


async def test_aliases_are_stored(engine: AsyncEngine) -> None:
    await import_parsed(engine, parse_file(FIXTURES / "cookrcp01_simple.json"))
    async with engine.connect() as conn:
        aliases = dict((await conn.execute(select(ingredient_aliases.c.alias, ingredient_aliases.c.kind))).all())
        roles = dict((await conn.execute(select(recipe_ingredients.c.role, func.count())
                                         .group_by(recipe_ingredients.c.role))).all())
    assert aliases["계란"] == "alias" and aliases["칵테일새우"] == "parent"
    assert set(roles) <= {"main", "sub", "seasoning", "garnish"} and roles["seasoning"] > 0


async def test_missing_tables_are_one_clear_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    schema.upgrade(url, "0001")
    eng = create_engine_for(make_settings(F2F_DATABASE_URL=url))
    try:
        with pytest.raises(SchemaNotReady, match="f2f migrate db upgrade"):
            await recipe_count(eng)
    finally:
        await eng.dispose()


def test_migration_0002_up_and_down(sql_url: str) -> None:
    assert schema.state(sql_url).current == schema.head_revision()
    schema.downgrade(sql_url, "0001")
    sync = create_sync_engine_for(sql_url)
    try:
        from sqlalchemy import inspect

        assert "recipes" not in inspect(sync).get_table_names()
        schema.upgrade(sql_url)
        assert {"recipes", "ingredients", "ingredient_aliases", "recipe_ingredients", "recipe_catalog"} <= set(
            inspect(sync).get_table_names())
        with sync.connect() as conn:
            assert conn.execute(select(func.count()).select_from(recipes)).scalar_one() == 0
            conn.execute(update(recipes).values(title="x"))  # table usable after the round trip
    finally:
        sync.dispose()
