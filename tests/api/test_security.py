"""Security behaviour of the HTTP edge: rate limit, trusted proxies, CORS, cookies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.app import create_app
from tests.conftest import make_settings


@pytest.fixture
def limited(sqlite_url: str) -> Iterator[TestClient]:
    app = create_app(
        make_settings(F2F_DATABASE_URL=sqlite_url, F2F_SESSIONS_PER_MINUTE="2", F2F_TRUSTED_PROXIES="10.0.0.0/8")
    )
    with TestClient(app, client=("10.0.0.5", 40000)) as c:
        yield c


def test_session_creation_is_limited_per_client(limited: TestClient) -> None:
    alice = {"X-Forwarded-For": "198.51.100.1"}
    bob = {"X-Forwarded-For": "198.51.100.2"}
    assert [limited.post("/v1/sessions", headers=alice).status_code for _ in range(2)] == [201, 201]
    r = limited.post("/v1/sessions", headers=alice)
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited" and "2 per minute" in r.json()["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 30
    assert limited.post("/v1/sessions", headers=bob).status_code == 201
    # Spoofing a new address on the left of the chain does not help: the proxy appended the real one.
    spoofed = {"X-Forwarded-For": "203.0.113.99, 198.51.100.1"}
    assert limited.post("/v1/sessions", headers=spoofed).status_code == 429
    # Only creation is limited: reading is not.
    assert limited.get("/healthz", headers=alice).status_code == 200


def test_forwarded_for_from_an_untrusted_peer_is_ignored(sqlite_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_SESSIONS_PER_MINUTE="1"))
    with TestClient(app, client=("203.0.113.50", 40000)) as c:
        assert c.post("/v1/sessions", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 201
        assert c.post("/v1/sessions", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 429


def test_limit_zero_turns_it_off(sqlite_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_SESSIONS_PER_MINUTE="0"))
    with TestClient(app) as c:
        assert {c.post("/v1/sessions").status_code for _ in range(5)} == {201}


def test_cors_allows_only_configured_origins(sqlite_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_CORS_ORIGINS="https://app.example"))
    with TestClient(app) as c:
        pre = c.options(
            "/v1/sessions",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "x-session-id"},
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example"
        assert pre.headers["x-content-type-options"] == "nosniff"
        evil = c.options(
            "/v1/sessions", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in evil.headers
        r = c.get("/healthz", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()


def test_no_cors_headers_without_configured_origins(sqlite_url: str) -> None:
    with TestClient(create_app(make_settings(F2F_DATABASE_URL=sqlite_url))) as c:
        r = c.get("/healthz", headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({}, False),  # embedded: plain http on a laptop
        ({"F2F_REDIS_URL": "redis://127.0.0.1:7699/0"}, True),
        ({"F2F_COOKIE_SECURE": "true"}, True),
    ],
)
def test_cookie_flags(sqlite_url: str, env: dict[str, str], secure: bool) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_SESSIONS_PER_MINUTE="0", **env))
    with TestClient(app) as c:
        cookie = c.post("/v1/sessions").headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert ("Secure" in cookie) is secure


def test_secure_cookie_is_the_default_on_postgres() -> None:
    assert make_settings(F2F_DATABASE_URL="postgresql://db/x").secure_cookies
