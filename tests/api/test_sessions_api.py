"""Every session endpoint and every error status, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.app import create_app
from f2f_cli.control.phase import Phase, set_phase
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.ids import new_session_id
from f2f_cli.stores import pg_hot
from tests.clock import ShiftedClock
from tests.conftest import make_settings


def _create(client: TestClient) -> str:
    r = client.post("/v1/sessions")
    assert r.status_code == 201
    sid: str = r.json()["session_id"]
    return sid


def _error(r: object, status: int, code: str) -> None:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in r.text  # type: ignore[attr-defined]


def test_create_sets_location_and_cookie(client: TestClient) -> None:
    r = client.post("/v1/sessions")
    assert r.status_code == 201
    body = r.json()
    sid = body["session_id"]
    assert r.headers["location"] == f"/v1/sessions/{sid}"
    assert body["version"] == 1
    assert body["ingredients"] == []
    cookie = r.headers["set-cookie"]
    assert f"f2f_session={sid}" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # the fixture turns Secure off; see test_secure_cookie_outside_embedded_mode


def test_get_and_delete_session(client: TestClient) -> None:
    sid = _create(client)
    r = client.get(f"/v1/sessions/{sid}")
    assert r.status_code == 200
    assert r.json()["session_id"] == sid
    r = client.delete(f"/v1/sessions/{sid}")
    assert r.status_code == 204
    _error(client.get(f"/v1/sessions/{sid}"), 404, "session_not_found")
    _error(client.delete(f"/v1/sessions/{sid}"), 404, "session_not_found")


def test_add_list_remove_clear_ingredients(client: TestClient) -> None:
    sid = _create(client)
    url = f"/v1/sessions/{sid}/ingredients"
    r = client.post(url, json={"ingredients": ["두부", "  계란 ", "두부", "대\u1111파"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == ["두부", "계란", "대\u1111파"]
    assert body["version"] == 2
    r = client.post(url, json={"ingredients": ["계란", "김치"]})
    assert r.json()["added"] == ["김치"]
    names = {i["name"] for i in client.get(url).json()["ingredients"]}
    assert names == {"두부", "계란", "대\u1111파", "김치"}
    r = client.delete(url, params={"name": "계란"})
    assert r.status_code == 200
    assert r.json()["removed"] == ["계란"]
    r = client.delete(url, params={"name": "없음"})
    assert r.status_code == 200
    assert r.json()["removed"] == []
    r = client.delete(url)
    assert sorted(r.json()["removed"]) == sorted(["두부", "대\u1111파", "김치"])
    assert client.get(url).json()["ingredients"] == []
    assert client.get(f"/v1/sessions/{sid}").json()["version"] == 6


def test_names_are_nfc_normalised(client: TestClient) -> None:
    sid = _create(client)
    decomposed = "\u1103\u116e\u1107\u116e"  # 두부 as conjoining jamo
    r = client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": [decomposed]})
    assert r.json()["added"] == ["두부"]


def test_session_id_from_header_or_cookie(client: TestClient) -> None:
    sid = _create(client)  # the client now holds the cookie
    client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["양파"]})
    by_cookie = client.get("/v1/sessions/current")
    assert by_cookie.json()["session_id"] == sid
    other = new_session_id()
    _error(client.get("/v1/sessions/current", headers={"X-Session-ID": other}), 404, "session_not_found")
    client.cookies.clear()
    r = client.get("/v1/sessions/current/ingredients", headers={"X-Session-ID": sid})
    assert [i["name"] for i in r.json()["ingredients"]] == ["양파"]
    _error(client.get("/v1/sessions/current"), 400, "invalid_session_id")
    _error(client.get("/v1/sessions/current", headers={"X-Session-ID": "../../etc"}), 400, "invalid_session_id")


@pytest.mark.parametrize(
    "bad",
    ["short", "x" * 33, "a" * 31 + "!", "f2f:s:{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}", "%00" * 11, "*" * 32],
)
def test_malformed_ids_are_rejected_before_any_store(client: TestClient, bad: str) -> None:
    _error(client.get(f"/v1/sessions/{bad}"), 400, "invalid_session_id")
    _error(client.post(f"/v1/sessions/{bad}/ingredients", json={"ingredients": ["a"]}), 400, "invalid_session_id")


def test_unknown_session_is_404(client: TestClient) -> None:
    sid = new_session_id()
    _error(client.get(f"/v1/sessions/{sid}"), 404, "session_not_found")
    _error(client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["a"]}), 404, "session_not_found")
    _error(client.delete(f"/v1/sessions/{sid}/ingredients"), 404, "session_not_found")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_body"),
        (b"", "invalid_body"),
        ('{"ingredients": "두부"}'.encode(), "invalid_body"),
        (b'{"ingredients": [1, 2]}', "invalid_body"),
        (b'{"items": ["tofu"]}', "invalid_body"),
        (b'{"ingredients": ["a"], "extra": 1}', "invalid_body"),
        (b'{"ingredients": ["   "]}', "invalid_ingredient"),
        (b'{"ingredients": ["' + b"x" * 51 + b'"]}', "invalid_ingredient"),
        (b'{"ingredients": ["a\\u0000b"]}', "invalid_ingredient"),
    ],
)
def test_bad_bodies_are_422(client: TestClient, body: bytes, code: str) -> None:
    sid = _create(client)
    r = client.post(f"/v1/sessions/{sid}/ingredients", content=body, headers={"content-type": "application/json"})
    _error(r, 422, code)
    assert client.get(f"/v1/sessions/{sid}").json()["version"] == 1  # nothing written


def test_too_many_ingredients_is_422_naming_the_limit(client: TestClient) -> None:
    sid = _create(client)
    url = f"/v1/sessions/{sid}/ingredients"
    r = client.post(url, json={"ingredients": [f"x{i}" for i in range(6)]})
    _error(r, 422, "too_many_ingredients")
    assert "5" in r.json()["message"]
    client.post(url, json={"ingredients": ["a", "b", "c", "d"]})
    r = client.post(url, json={"ingredients": ["e", "f"]})
    _error(r, 422, "too_many_ingredients")
    assert len(client.get(url).json()["ingredients"]) == 4  # the refused write left nothing behind


def test_oversized_body_is_413(client: TestClient) -> None:
    sid = _create(client)
    big = {"ingredients": ["가" * 40] * 200}
    _error(client.post(f"/v1/sessions/{sid}/ingredients", json=big), 413, "body_too_large")

    def chunks() -> object:
        yield b'{"ingredients": ["'
        for _ in range(100):
            yield b"x" * 100
        yield b'"]}'

    r = client.post(f"/v1/sessions/{sid}/ingredients", content=chunks(),  # type: ignore[arg-type]
                    headers={"Content-Type": "application/json"})
    _error(r, 413, "body_too_large")


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    _error(client.get("/v1/nothing-here"), 404, "not_found")
    _error(client.put(f"/v1/sessions/{new_session_id()}"), 405, "method_not_allowed")


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}, "phase": "postgres"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"sql": "ok"}
    assert r.json()["phase"] == "postgres"


def test_openapi_document_covers_every_endpoint(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert set(paths["/v1/sessions/{session_id}/ingredients"]) == {"get", "post", "delete"}
    assert set(paths["/v1/sessions/{session_id}"]) == {"get", "delete"}
    assert "post" in paths["/v1/sessions"]
    assert {"/healthz", "/readyz"} <= set(paths)
    schemas = doc["components"]["schemas"]
    assert {"SessionOut", "IngredientsIn", "IngredientsOut", "ErrorOut"} <= set(schemas)
    post = paths["/v1/sessions/{session_id}/ingredients"]["post"]
    assert {"200", "400", "404", "413", "415", "422", "503"} <= set(post["responses"])


def test_expired_session_is_404_and_writes_extend_expiry(sqlite_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_SESSION_TTL_SECONDS="1"))
    clock = ShiftedClock()
    with TestClient(app) as c:
        # The store reads the time from the test's clock: expiry is judged without sleeping on a real TTL.
        app.state.services.sql_store._clock = clock
        sid = _create(c)
        first_expiry = datetime.fromisoformat(c.get(f"/v1/sessions/{sid}").json()["expires_at"])
        clock.advance(0.5)
        r = c.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]})
        assert r.status_code == 200, r.text
        # Compared as times: a time on a whole second is written without a fraction, so text can misorder.
        assert datetime.fromisoformat(r.json()["expires_at"]) >= first_expiry + timedelta(seconds=0.5)
        clock.advance(0.6)  # past the first expiry, before the new one
        assert c.get(f"/v1/sessions/{sid}").status_code == 200
        clock.advance(1)
        _error(c.get(f"/v1/sessions/{sid}"), 404, "session_not_found")


def test_secure_cookie_outside_embedded_mode(pg_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=pg_url))
    with TestClient(app, base_url="https://testserver") as c:
        assert "Secure" in c.post("/v1/sessions").headers["set-cookie"]


def test_unreachable_database_is_503_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pool's wait for a connection (5 s in production) shortened: the answer is the same 503, sooner.
    monkeypatch.setattr(pg_hot, "POOL_TIMEOUT", 0.2)
    app = create_app(make_settings(F2F_DATABASE_URL="postgresql://root@127.0.0.1:1/none"))
    with TestClient(app) as c:
        _error(c.post("/v1/sessions"), 503, "store_unavailable")
        _error(c.get(f"/v1/sessions/{new_session_id()}"), 503, "store_unavailable")
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["sql"] != "ok"
        assert c.get("/healthz").status_code == 200


def test_custom_api_prefix(sqlite_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_API_PREFIX="/api/v2"))
    with TestClient(app) as c:
        assert c.post("/api/v2/sessions").status_code == 201
        assert c.post("/v1/sessions").status_code == 404
        assert "/api/v2/sessions" in c.get("/openapi.json").json()["paths"]


def test_a_phase_that_uses_redis_without_its_url_is_degraded_and_warns(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def to_dual() -> None:
        engine = create_engine_for(make_settings(F2F_DATABASE_URL=sqlite_url))
        try:
            await set_phase(engine, Phase.DUAL, actor="test", action="to dual")
        finally:
            await engine.dispose()

    asyncio.run(to_dual())
    caplog.set_level(logging.WARNING, logger="f2f_cli.api.services")
    with TestClient(create_app(make_settings(F2F_DATABASE_URL=sqlite_url))) as c:
        r = c.get("/readyz")
        assert r.status_code == 200  # every pod has the same environment: failing them all helps nobody
        assert r.json() == {"status": "degraded", "phase": "dual",
                            "checks": {"sql": "ok", "redis": "not configured: F2F_REDIS_URL is not set"}}
        assert c.get("/readyz").json()["status"] == "degraded"
        # Requests are still served, from SQL.
        sid = c.post("/v1/sessions").json()["session_id"]
        assert c.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]}).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "phase dual uses Redis but F2F_REDIS_URL is not set" in w]) == 1, warnings
