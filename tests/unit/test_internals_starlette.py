"""The Starlette internals f2f leans on, checked against the installed Starlette without a server.

- ``api/fastlane.py`` parses the session cookie with ``starlette.requests.cookie_parser`` (not public API) and
  must read the ``current`` alias's cookie exactly as ``Request.cookies`` does on the Starlette path.
- ``api/middleware.py`` ``route_template`` reads ``scope["route"]``, which Starlette's router sets.
- ``api/app.py`` ``_prefixed`` rewrites ``Route.path`` and recompiles ``path_regex``/``path_format``/
  ``param_convertors`` with ``compile_path``; ``F2FApp`` overrides ``Starlette.__call__``; the router's
  ``redirect_slashes`` is switched off.
- ``api/routing.py`` overrides ``Route.handle`` and reads ``Route.methods``.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request, cookie_parser
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from f2f_cli.api.app import _prefixed
from f2f_cli.api.fastlane import _current
from f2f_cli.api.middleware import UNMATCHED, route_template
from f2f_cli.api.routes.sessions import CURRENT, SESSION_COOKIE
from f2f_cli.api.routing import resource

# Fixed ids: they appear in the parametrised test names, which every xdist worker must collect alike.
SID = "Vq3k0bJ2m7yXcRZl9dW4tPfHsA8eN1uG"
OTHER = "oibqdq5rSeH5ckyQZTwva0BotX5OVMdg"

# The Cookie headers browsers and clients send, as one header or several.
COOKIE_FORMS: list[tuple[list[str], str | None]] = [
    ([f"{SESSION_COOKIE}={SID}"], SID),
    ([f"theme=dark; {SESSION_COOKIE}={SID}; lang=fr"], SID),
    ([f" {SESSION_COOKIE} = {SID} ; x=1"], SID),
    ([f'{SESSION_COOKIE}="{SID}"'], SID),
    ([f"a=1;;{SESSION_COOKIE}={SID};"], SID),
    ([f"{SESSION_COOKIE}={OTHER}; {SESSION_COOKIE}={SID}"], SID),  # the last one in a header wins
    ([f"{SESSION_COOKIE}={OTHER}", f"{SESSION_COOKIE}={SID}"], SID),  # every header, later ones winning
    (["theme=dark", f"{SESSION_COOKIE}={SID}"], SID),
    (["theme=dark"], None),
    ([""], None),
    ([f"{SESSION_COOKIE}"], None),  # a bare word is no session cookie
]


def _scope(cookie_headers: list[str]) -> Scope:
    return {
        "type": "http", "method": "GET", "path": "/", "query_string": b"", "root_path": "",
        "headers": [(b"cookie", value.encode("latin-1")) for value in cookie_headers],
    }


@pytest.mark.parametrize(("headers", "expected"), COOKIE_FORMS)
def test_cookie_parser_reads_the_session_cookie_forms(headers: list[str], expected: str | None) -> None:
    jar: dict[str, str] = {}
    for header in headers:
        jar.update(cookie_parser(header))
    assert jar.get(SESSION_COOKIE) == expected


@pytest.mark.parametrize(("headers", "expected"), COOKIE_FORMS)
async def test_the_fast_lane_resolves_current_as_the_starlette_path_does(
    headers: list[str], expected: str | None
) -> None:
    assert Request(_scope(headers)).cookies.get(SESSION_COOKIE) == expected
    resolved: list[str] = []

    async def operation(_services: Any, session_id: str, *_rest: Any) -> Any:
        resolved.append(session_id)

    on_current = _current(operation, None, [h.encode("latin-1") for h in headers])
    if expected is None:
        from f2f_cli.errors import F2FError

        with pytest.raises(F2FError):
            await on_current(None, CURRENT, None, None, None)  # type: ignore[arg-type]
    else:
        await on_current(None, CURRENT, None, None, None)  # type: ignore[arg-type]
        assert resolved == [expected]


async def _noop_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _call(app: Any, method: str, path: str) -> tuple[int, dict[str, str], Scope]:
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "scheme": "http",
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, _noop_receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], headers, scope


def _app() -> Starlette:
    async def session(request: Request) -> Response:
        return Response(request.path_params["session_id"])

    app = Starlette(routes=_prefixed("/v1", [resource("/sessions/{session_id}", "session", GET=session)]))
    app.router.redirect_slashes = False
    return app


async def test_the_router_records_the_matched_route_under_the_prefixed_template() -> None:
    status, _, scope = await _call(_app(), "GET", f"/v1/sessions/{SID}")
    assert status == 200
    assert scope["path_params"] == {"session_id": SID}
    assert route_template(scope, "") == "/v1/sessions/{session_id}"


async def test_an_unknown_path_has_no_route_and_no_redirect() -> None:
    status, _, scope = await _call(_app(), "GET", f"/v1/sessions/{SID}/")
    assert status == 404  # redirect_slashes off: no 307 to the path without the slash
    assert route_template(scope, "") == UNMATCHED


async def test_a_resource_answers_405_and_options_with_every_method_it_serves() -> None:
    status, headers, scope = await _call(_app(), "DELETE", f"/v1/sessions/{SID}")
    assert status == 405
    assert headers["allow"] == "GET, HEAD, OPTIONS"
    assert route_template(scope, "") == "/v1/sessions/{session_id}"  # a partial match still names its route
    status, headers, _ = await _call(_app(), "OPTIONS", f"/v1/sessions/{SID}")
    assert (status, headers["allow"]) == (204, "GET, HEAD, OPTIONS")


async def test_f2f_app_runs_its_fast_lane_before_starlette() -> None:
    from f2f_cli.api.app import F2FApp

    class Lane:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
            self.seen.append(scope["path"])
            if scope["path"] != "/fast":
                return False
            await send({"type": "http.response.start", "status": 299, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return True

    async def slow(_request: Request) -> Response:
        return Response("slow")

    app = F2FApp(routes=[resource("/slow", "slow", GET=slow)])
    lane = Lane()
    app.fast_lane = lane  # type: ignore[assignment]
    assert (await _call(app, "GET", "/fast"))[0] == 299
    assert (await _call(app, "GET", "/slow"))[0] == 200
    assert lane.seen == ["/fast", "/slow"]
