"""Recipe endpoints over HTTP on both SQL backends, with the catalog seeded."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.app import create_app
from f2f_cli.db.engine import create_engine_for
from f2f_cli.recipes.builtin import builtin_bytes, builtin_catalog
from f2f_cli.recipes.catalog import import_parsed
from f2f_cli.recipes.formats import parse_data
from tests.conftest import make_settings


async def _seed(url: str) -> None:
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=url))
    try:
        await import_parsed(engine, builtin_catalog())
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def seeded_sqlite(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at head with the built-in catalog imported, seeded once for the module."""
    path = tmp_path_factory.mktemp("recipes-seeded") / "f2f.db"
    shutil.copyfile(sqlite_template, path)
    asyncio.run(_seed(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def api(sql_url: str, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    if sql_url.startswith("sqlite"):
        # A copy of the file seeded once: the same rows the import writes, without importing again per test.
        shutil.copyfile(request.getfixturevalue("seeded_sqlite"), sql_url.removeprefix("sqlite+aiosqlite:///"))
    else:
        asyncio.run(_seed(sql_url))
    app = create_app(make_settings(F2F_DATABASE_URL=sql_url, F2F_COOKIE_SECURE="false"))
    with TestClient(app) as client:
        yield client


def fridge(api: TestClient, *names: str) -> str:
    sid: str = api.post("/v1/sessions").json()["session_id"]
    assert api.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": list(names)}).status_code == 200
    return sid


def test_recommendations_for_a_session(api: TestClient) -> None:
    sid = fridge(api, "두부", "계란", "대파", "우주먼지")
    body = api.get(f"/v1/sessions/{sid}/recommendations", params={"limit": 5}).json()
    assert body["session_id"] == sid and len(body["items"]) == 5
    assert body["unknown"] == ["우주먼지"]
    missing = [r["missing_count"] for r in body["items"]]
    assert missing == sorted(missing)
    assert all(r["matched"] for r in body["items"])
    ready = api.get(f"/v1/sessions/{sid}/recommendations", params={"max_missing": 0}).json()["items"]
    assert all(r["missing_count"] == 0 for r in ready)
    soups = api.get(f"/v1/sessions/{sid}/recommendations", params={"category": "국&찌개"}).json()["items"]
    assert soups and all(r["category"] == "국&찌개" for r in soups)
    by_header = api.get("/v1/sessions/current/recommendations", headers={"X-Session-ID": sid})
    assert by_header.status_code == 200


def test_recommendation_errors(api: TestClient) -> None:
    sid = fridge(api, "두부")
    bad = api.get(f"/v1/sessions/{sid}/recommendations", params={"limit": "lots"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"
    assert api.get(f"/v1/sessions/{sid}/recommendations", params={"limit": 0}).status_code == 422
    assert api.get("/v1/sessions/not-an-id/recommendations").json()["error"] == "invalid_session_id"
    gone = api.get(f"/v1/sessions/{'A' * 32}/recommendations")
    assert gone.status_code == 404 and set(gone.json()) == {"error", "message"}
    empty = fridge(api)
    assert api.get(f"/v1/sessions/{empty}/recommendations").json()["items"] == []


def test_recipe_search_pages_and_detail(api: TestClient) -> None:
    first = api.get("/v1/recipes", params={"search": "두부", "size": 5}).json()
    assert first["total"] >= 20 and len(first["items"]) == 5 and first["page"] == 1
    second = api.get("/v1/recipes", params={"search": "두부", "size": 5, "page": 2}).json()
    assert {r["id"] for r in first["items"]}.isdisjoint({r["id"] for r in second["items"]})
    by_alias = api.get("/v1/recipes", params={"search": "계란"}).json()["total"]
    assert by_alias > 50
    detail = api.get(f"/v1/recipes/{first['items'][0]['id']}").json()
    assert detail["title"] and detail["ingredients"] and detail["steps"]
    assert {i["role"] for i in detail["ingredients"]} <= {"main", "sub", "seasoning", "garnish"}
    missing = api.get("/v1/recipes/999999999")
    assert missing.status_code == 404 and missing.json()["error"] == "recipe_not_found"
    assert api.get("/v1/recipes/abc").status_code == 404
    assert api.get("/v1/recipes", params={"size": 1000}).status_code == 422


def test_recommendations_say_how_big_the_catalog_is(api: TestClient) -> None:
    body = api.get(f"/v1/sessions/{fridge(api, '두부')}/recommendations").json()
    assert body["catalog_size"] >= 500 and body["hint"] is None


def test_an_empty_catalog_answers_with_a_hint(sql_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sql_url, F2F_COOKIE_SECURE="false"))
    with TestClient(app) as empty:
        body = empty.get(f"/v1/sessions/{fridge(empty, '두부', '계란')}/recommendations").json()
    assert body["items"] == [] and body["catalog_size"] == 0
    assert "f2f recipes seed" in body["hint"]


def test_ingredient_autocomplete(api: TestClient) -> None:
    items = api.get("/v1/ingredients", params={"search": "ㄷㅂ"}).json()["items"]
    assert items[0]["name"] == "두부"
    egg = api.get("/v1/ingredients", params={"search": "계란"}).json()["items"]
    assert egg[0]["name"] == "달걀" and egg[0]["matched"] == "계란"
    assert api.get("/v1/ingredients", params={"search": "마늘"}).json()["items"][0]["name"] == "마늘"


def test_openapi_lists_recipe_endpoints(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    for path in ("/v1/sessions/{session_id}/recommendations", "/v1/recipes", "/v1/recipes/{recipe_id}",
                 "/v1/ingredients"):
        assert "get" in doc["paths"][path]
    assert {"RecommendationsOut", "RecipePage", "RecipeDetail", "IngredientSuggestionsOut"} <= set(
        doc["components"]["schemas"])


@pytest.mark.redis
def test_api_shares_the_index_through_redis(sql_url: str, redis_url: str, redis_prefix: str) -> None:
    asyncio.run(_seed(sql_url))
    settings = make_settings(F2F_DATABASE_URL=sql_url, F2F_REDIS_URL=redis_url, F2F_REDIS_KEY_PREFIX=redis_prefix,
                             F2F_COOKIE_SECURE="false")
    with TestClient(create_app(settings)) as one:
        assert one.get("/v1/ingredients", params={"search": "두"}).status_code == 200
        assert one.app.state.services.recommender.last_source == "sql"  # type: ignore[attr-defined]
    with TestClient(create_app(settings)) as two:
        assert two.get("/v1/ingredients", params={"search": "두"}).status_code == 200
        assert two.app.state.services.recommender.last_source == "redis"  # type: ignore[attr-defined]


def test_fuzz_findings_on_recipe_parameters(sql_url: str) -> None:
    """Found by schemathesis: a recipe id past 64 bits was a 500; an empty integer parameter was silently ignored."""
    app = create_app(make_settings(F2F_DATABASE_URL=sql_url, F2F_COOKIE_SECURE="false"))
    with TestClient(app) as api:
        huge = api.get(f"/v1/recipes/{2**64 + 7}")
        assert huge.status_code == 404 and huge.json()["error"] == "recipe_not_found"
        assert api.get("/v1/recipes/0").status_code == 404
        for path in ("/v1/recipes?page=", "/v1/recipes?size=", "/v1/ingredients?limit="):
            r = api.get(path)
            assert r.status_code == 422 and r.json()["error"] == "invalid_input", path


def test_public_data_imported_on_top_shows_each_dish_once(api: TestClient, sql_url: str) -> None:
    """The issue's case: seed, import the public sample again, ask for 토마토/달걀/대파."""

    async def import_again() -> int:
        engine = create_engine_for(make_settings(F2F_DATABASE_URL=sql_url))
        try:
            return (await import_parsed(engine, parse_data(json.loads(builtin_bytes())))).inserted
        finally:
            await engine.dispose()

    assert asyncio.run(import_again()) == 0
    sid = fridge(api, "토마토", "계란", "대파")
    items = api.get(f"/v1/sessions/{sid}/recommendations", params={"limit": 10}).json()["items"]
    titles = ["".join(r["title"].split()) for r in items]
    assert len(items) == 10 and len(set(titles)) == 10
    assert titles[0] == "토마토소스달걀볶음"
    # The autocomplete offers ingredients, not preparations or glued text.
    names = [i["name"] for i in api.get("/v1/ingredients", params={"search": "양파"}).json()["items"]]
    assert "양파" in names and not {"양파즙", "양파채친것"} & set(names)
    assert api.get("/v1/ingredients", params={"search": "두부강"}).json()["items"] == []
