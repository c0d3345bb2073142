"""The fast lane answers exactly as the Starlette routes do, and steps aside when it must."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.app import F2FApp, create_app
from f2f_cli.api.fastlane import SessionFastLane
from f2f_cli.api.middleware import SECURITY_HEADERS
from tests.api.test_observability import sample
from tests.conftest import make_settings

SETTINGS = {"F2F_MAX_INGREDIENTS": "3", "F2F_MAX_BODY_BYTES": "300", "F2F_SESSIONS_PER_MINUTE": "0",
            "F2F_METRICS_CACHE_SECONDS": "0"}
# Headers whose values differ between two answers by nature: the body's length moves with its times
# (a time on a whole second is written without a fraction), so it is checked against the body instead.
_VARYING = {"x-request-id", "date", "content-length"}


@pytest.fixture
def app(sqlite_url: str) -> F2FApp:
    application = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, **SETTINGS))
    assert isinstance(application.fast_lane, SessionFastLane)
    return application


def _answer(client: TestClient, method: str, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
    r = client.request(method, path, **kwargs)
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json() if r.content else None
    if isinstance(body, dict):
        for key in ("created_at", "updated_at", "expires_at", "session_id"):
            body.pop(key, None)
        for item in body.get("ingredients", []):
            item.pop("added_at", None)
    headers = {k: v for k, v in r.headers.items() if k not in _VARYING}
    return r.status_code, body, headers


class _Counting:
    """The lane, counting the requests it served itself."""

    def __init__(self, lane: SessionFastLane) -> None:
        self.lane = lane
        self.served = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> bool:
        done = await self.lane(scope, receive, send)
        self.served += done
        return done


def _both_ways(app: F2FApp, make_request: Any) -> tuple[Any, Any]:
    """The same request on a new session, once through the fast lane and once through Starlette."""
    lane = app.fast_lane
    assert lane is not None
    counting = _Counting(lane)
    answers = []
    with TestClient(app) as client:
        for fast in (True, False):
            app.fast_lane = counting if fast else None  # type: ignore[assignment]
            sid = client.post("/v1/sessions").json()["session_id"]
            client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]})
            before = counting.served
            answers.append(make_request(client, sid))
            assert counting.served == before + (1 if fast else 0)
    app.fast_lane = lane
    return answers[0], answers[1]


CASES: dict[str, Any] = {
    "get": lambda c, sid: _answer(c, "GET", f"/v1/sessions/{sid}"),
    "list": lambda c, sid: _answer(c, "GET", f"/v1/sessions/{sid}/ingredients"),
    "add": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients",
                                  json={"ingredients": [" 김치 ", "두부"]}),
    "add-nfd": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients",
                                      json={"ingredients": ["\u1100\u1161\u11b7\u110c\u1161"]}),
    "unknown-session": lambda c, sid: _answer(c, "GET", f"/v1/sessions/{'Z' * 32}"),
    "bad-id": lambda c, sid: _answer(c, "GET", "/v1/sessions/not-an-id"),
    "bad-id-post": lambda c, sid: _answer(c, "POST", "/v1/sessions/x/ingredients", content=b"{"),
    "no-content-type": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients",
                                              content=b'{"ingredients": ["a"]}'),
    "form": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients", data={"ingredients": "a"}),
    "declared-too-large": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients",
                                                 json={"ingredients": ["가" * 200]}),
    "bad-json": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients", content=b"{nope",
                                       headers={"content-type": "application/json"}),
    "bad-shape": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients",
                                        json={"ingredients": "a", "extra": 1}),
    "too-many": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients",
                                       json={"ingredients": ["a", "b", "c"]}),
    "empty-name": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients", json={"ingredients": [" "]}),
    "add-to-unknown": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{'Z' * 32}/ingredients",
                                             json={"ingredients": ["a"]}),
    "current-by-header": lambda c, sid: _answer(c, "GET", "/v1/sessions/current", headers={"X-Session-ID": sid}),
    "current-by-cookie": lambda c, sid: _answer(c, "GET", "/v1/sessions/current/ingredients"),
    "current-add": lambda c, sid: _answer(c, "POST", "/v1/sessions/current/ingredients",
                                          json={"ingredients": ["파"]}, headers={"X-Session-ID": sid}),
    "current-bad-header": lambda c, sid: _answer(c, "GET", "/v1/sessions/current", headers={"X-Session-ID": "x"}),
    "current-none": lambda c, sid: (c.cookies.clear(), _answer(c, "GET", "/v1/sessions/current"))[1],
    "current-none-post": lambda c, sid: (c.cookies.clear(), _answer(c, "POST", "/v1/sessions/current/ingredients",
                                                                    content=b"not json"))[1],
    "charset": lambda c, sid: _answer(c, "POST", f"/v1/sessions/{sid}/ingredients",
                                      content=json.dumps({"ingredients": ["파"]}).encode(),
                                      headers={"content-type": "Application/JSON; charset=utf-8"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fast_lane_answers_as_the_starlette_route_does(app: F2FApp, case: str) -> None:
    fast, routed = _both_ways(app, CASES[case])
    assert fast == routed
    status, _, headers = fast
    for name, value in SECURITY_HEADERS:
        assert headers[name.decode()] == value.decode()
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"
    assert status in (200, 400, 404, 413, 415, 422)


def test_the_request_id_and_metrics_are_the_edges(app: F2FApp) -> None:
    with TestClient(app) as client:
        sid = client.post("/v1/sessions").json()["session_id"]
        r = client.get(f"/v1/sessions/{sid}", headers={"X-Request-ID": "rid-fast-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "rid-fast-1"
        generated = client.get(f"/v1/sessions/{sid}").headers["x-request-id"]
        assert len(generated) == 32 and generated != "rid-fast-1"
        bad = client.get(f"/v1/sessions/{sid}", headers={"X-Request-ID": "no spaces allowed"})
        assert bad.headers["x-request-id"] != "no spaces allowed"
        client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]})
        text = client.get("/metrics").text
    route = "/v1/sessions/{session_id}"
    assert sample(text, "f2f_http_requests_total", method="GET", route=route, status="200") == 3
    assert sample(text, "f2f_http_requests_total", method="POST", route=route + "/ingredients", status="200") == 1
    assert sample(text, "f2f_store_operation_duration_seconds_count", operation="get", outcome="ok") == 3
    assert sid not in text


def test_access_lines_come_from_the_fast_lane_too(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_LOG_FORMAT="json", **SETTINGS))
    logging.getLogger("f2f.access").setLevel(logging.INFO)
    try:
        with TestClient(app) as client:
            sid = client.post("/v1/sessions").json()["session_id"]
            client.get(f"/v1/sessions/{sid}", headers={"X-Request-ID": "rid-access"})
            client.get(f"/v1/sessions/{'Z' * 32}", headers={"X-Request-ID": "rid-missing"})
    finally:
        logging.getLogger("f2f.access").setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    by_id = {line.get("request_id"): line for line in lines}
    assert by_id["rid-access"]["route"] == "/v1/sessions/{session_id}"
    assert by_id["rid-access"]["status"] == 200 and by_id["rid-access"]["method"] == "GET"
    assert by_id["rid-missing"]["status"] == 404
    assert all(sid not in json.dumps(line) for line in lines)


def test_cross_origin_requests_head_and_other_paths_take_the_starlette_way(sqlite_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_CORS_ORIGINS="https://app.example",
                                   **SETTINGS))
    with TestClient(app) as client:
        created = client.post("/v1/sessions")
        sid = created.json()["session_id"]
        r = client.get(f"/v1/sessions/{sid}", headers={"Origin": "https://app.example"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in client.get(f"/v1/sessions/{sid}").headers
        current = client.get("/v1/sessions/current", headers={"X-Session-ID": sid})
        assert current.status_code == 200 and current.json()["session_id"] == sid
        head = client.head(f"/v1/sessions/{sid}")
        assert head.status_code == 200 and head.content == b""
        assert client.get(f"/v1/sessions/{sid}/").status_code == 404
        assert client.put(f"/v1/sessions/{sid}/ingredients").status_code == 405


def test_the_current_alias_names_the_header_session_then_the_cookie_session(app: F2FApp) -> None:
    with TestClient(app) as client:
        first = client.post("/v1/sessions").json()["session_id"]
        second = client.post("/v1/sessions").json()["session_id"]  # the cookie now names this one
        assert client.get("/v1/sessions/current").json()["session_id"] == second
        by_header = client.get("/v1/sessions/current", headers={"X-Session-ID": first})
        assert by_header.json()["session_id"] == first
        added = client.post("/v1/sessions/current/ingredients", json={"ingredients": ["두부"]})
        assert added.json()["session_id"] == second and added.json()["added"] == ["두부"]
        assert client.get(f"/v1/sessions/{first}").json()["ingredients"] == []


class _Stamp:
    """A middleware the fast lane does not know: it stamps every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-stamp", b"1")]}
            await send(message)

        await self.app(scope, receive, stamped)


def test_an_unknown_middleware_turns_the_fast_lane_off(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Added after create_app, it would be skipped on the lane's routes: the lane steps aside, logged once."""
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, **SETTINGS))
    app.add_middleware(_Stamp)
    assert app.unknown_middleware() == ["_Stamp"]
    with caplog.at_level(logging.WARNING, logger="f2f_cli.api.app"), TestClient(app) as client:
        sid = client.post("/v1/sessions").json()["session_id"]
        for r in (client.get(f"/v1/sessions/{sid}"),
                  client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]})):
            assert r.status_code in (200, 201) and r.headers["x-stamp"] == "1"
    assert app.fast_lane is None
    warnings = [r.getMessage() for r in caplog.records if "fast lane off" in r.getMessage()]
    assert len(warnings) == 1 and "_Stamp" in warnings[0]


def test_the_app_s_own_middleware_keeps_the_fast_lane(sqlite_url: str) -> None:
    """CORS and the metrics port split are known: the lane stays on and serves."""
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_CORS_ORIGINS="https://app.example",
                                   F2F_METRICS_PORT="9464", **SETTINGS))
    assert app.unknown_middleware() == []
    lane = app.fast_lane
    assert lane is not None
    counting = _Counting(lane)
    with TestClient(app) as client:
        app.fast_lane = counting  # type: ignore[assignment]
        sid = client.post("/v1/sessions").json()["session_id"]
        assert client.get(f"/v1/sessions/{sid}").status_code == 200
    assert counting.served == 1
