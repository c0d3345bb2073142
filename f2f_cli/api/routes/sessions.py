"""Session and ingredient endpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from f2f_cli.api.clientip import limit_key
from f2f_cli.api.middleware import CLIENT_ADDRESS_KEY
from f2f_cli.api.responses import JSONResponse, read_json
from f2f_cli.api.routing import resource
from f2f_cli.api.schemas import IngredientsIn, IngredientsOut, SessionOut, ingredients_out, session_out
from f2f_cli.api.services import Services
from f2f_cli.domain.ids import check_session_id
from f2f_cli.domain.model import normalize_ingredient, normalize_ingredients
from f2f_cli.errors import InvalidIngredient, InvalidSessionId, TooManyIngredients

SESSION_COOKIE = "f2f_session"
SESSION_HEADER = "x-session-id"
# Path alias for "the session named by the X-Session-ID header or the cookie".
CURRENT = "current"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def session_id_of(request: Request) -> str:
    """The session id from the path, or for ``current`` from the header, then the cookie (checked)."""
    return resolve_session_id(
        request.path_params["session_id"], request.headers.get(SESSION_HEADER), lambda: request.cookies
    )


def resolve_session_id(raw: str, header: str | None, cookies: Callable[[], Mapping[str, str]]) -> str:
    """``raw`` from the path, or for ``current`` the ``X-Session-ID`` header, then the session cookie.

    The format is checked here, before any store is touched.
    """
    if raw == CURRENT:
        raw = header or cookies().get(SESSION_COOKIE, "")
        if not raw:
            raise InvalidSessionId(
                f"no session id: send the {SESSION_HEADER.title()} header or the {SESSION_COOKIE} cookie"
            )
    return check_session_id(raw)


def _as_sent(names: list[str], max_length: int) -> list[str]:
    """Names within ``max_length`` characters as sent, the limit the OpenAPI document states; the
    normaliser checks it again after trimming and NFC."""
    if any(len(name) > max_length for name in names):
        raise InvalidIngredient(f"ingredient names are limited to {max_length} characters")
    return names


async def create_session(request: Request) -> Response:
    services = _services(request)
    if services.session_limit is not None:
        await services.session_limit.check(limit_key(request.scope.get(CLIENT_ADDRESS_KEY)))
    session = await services.store().create()
    base = services.settings.api_prefix
    response = JSONResponse(
        session_out(session), status_code=201, headers={"Location": f"{base}/sessions/{session.session_id}"}
    )
    response.set_cookie(
        SESSION_COOKIE,
        session.session_id,
        max_age=services.settings.session_ttl_seconds,
        path="/",
        secure=services.settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


# The reads and the ingredient add below are also served by ``api/fastlane.py`` without Starlette's
# layers: both ways call these, so they answer alike.


async def read_session(services: Services, session_id: str) -> SessionOut:
    return session_out(await services.store().get(check_session_id(session_id)))


async def read_ingredients(services: Services, session_id: str) -> IngredientsOut:
    return ingredients_out(await services.store().get(check_session_id(session_id)))


async def add_names(services: Services, session_id: str, body: IngredientsIn) -> IngredientsOut:
    settings = services.settings
    check_session_id(session_id)
    names = normalize_ingredients(
        _as_sent(body.ingredients, settings.max_ingredient_length), settings.max_ingredient_length
    )
    if len(names) > settings.max_ingredients:
        raise TooManyIngredients(f"a session holds at most {settings.max_ingredients} ingredients")
    mutation = await services.store().add_ingredients(session_id, names)
    return ingredients_out(mutation.session, added=mutation.changed)


async def get_session(request: Request) -> Response:
    return JSONResponse(await read_session(_services(request), session_id_of(request)))


async def delete_session(request: Request) -> Response:
    services = _services(request)
    session_id = session_id_of(request)
    await services.store().delete(session_id)
    response = Response(status_code=204)
    if request.cookies.get(SESSION_COOKIE) == session_id:
        # Only the caller's own session ends its cookie: deleting another id by its path must not log
        # the caller out of theirs.
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def list_ingredients(request: Request) -> Response:
    return JSONResponse(await read_ingredients(_services(request), session_id_of(request)))


async def add_ingredients(request: Request) -> Response:
    services = _services(request)
    session_id = session_id_of(request)
    body = await read_json(request, IngredientsIn, services.settings.max_body_bytes)
    return JSONResponse(await add_names(services, session_id, body))


async def remove_ingredients(request: Request) -> Response:
    """``?name=`` removes one ingredient (absent is fine); without it, clears the fridge."""
    services = _services(request)
    session_id = session_id_of(request)
    name = request.query_params.get("name")
    store = services.store()
    if name is None:
        mutation = await store.clear(session_id)
    else:
        limit = services.settings.max_ingredient_length
        mutation = await store.remove_ingredient(session_id, normalize_ingredient(_as_sent([name], limit)[0], limit))
    return JSONResponse(ingredients_out(mutation.session, removed=mutation.changed))


def routes() -> list[Route]:
    return [
        resource("/sessions", "sessions", POST=create_session),
        resource("/sessions/{session_id}", "session", GET=get_session, DELETE=delete_session),
        resource(
            "/sessions/{session_id}/ingredients", "ingredients",
            GET=list_ingredients, POST=add_ingredients, DELETE=remove_ingredients,
        ),
    ]
