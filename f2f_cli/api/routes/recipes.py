"""Recipe endpoints: recommendations for a session's fridge, the catalog, ingredient autocomplete."""

from __future__ import annotations

import re
import unicodedata

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from f2f_cli.api.openapi import MAX_SEARCH_LENGTH
from f2f_cli.api.responses import JSONResponse
from f2f_cli.api.routes.sessions import session_id_of
from f2f_cli.api.routing import resource
from f2f_cli.api.schemas import IngredientSuggestionsOut, recommendations_out
from f2f_cli.api.services import Services
from f2f_cli.domain.model import JOINERS, keep_inner_joiners
from f2f_cli.errors import InvalidInput
from f2f_cli.recipes.queries import MAX_PAGE_SIZE, RecipeNotFound, get_recipe, list_recipes

MAX_LIMIT = 100
# recipes.id is a 32-bit INTEGER: past it no recipe can exist, and PostgreSQL would refuse the value.
MAX_RECIPE_ID = 2**31 - 1
# Control, format, surrogate, private-use and unassigned characters: no title, category or ingredient
# holds them, and PostgreSQL text cannot hold NUL at all.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# Whitespace runs (tabs, newlines) collapse to one space, as in ingredient names.
_SPACES = re.compile(r"\s+")


class RecipeIdConvertor(Convertor[int]):
    """Digits, as Starlette's ``int``, but a number too long for any recipe is 0 (not found) instead of
    Python's int() refusing past 4,300 digits with a ValueError (a 500)."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value) if len(value) <= 12 else 0

    def to_string(self, value: int) -> str:
        return str(value)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() would also take "٥", "５", "1_0", "+5" and " 5".
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise InvalidInput(f"'{name}' must be a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"'{name}' must be between {low} and {high}")
    return value


def _text_param(request: Request, name: str) -> str | None:
    """A search text, checked here so no store ever sees a value it cannot hold (422, not a 503)."""
    raw = request.query_params.get(name) or ""
    if len(raw) > MAX_SEARCH_LENGTH:  # as sent: the limit the OpenAPI document states
        raise InvalidInput(f"'{name}' is limited to {MAX_SEARCH_LENGTH} characters")
    value = _SPACES.sub(" ", keep_inner_joiners(raw)).strip()  # ZWJ/ZWNJ as in ingredient names
    if not value.isprintable() and any(
        unicodedata.category(c) in FORBIDDEN_CATEGORIES and c not in JOINERS for c in value
    ):
        raise InvalidInput(f"'{name}' must not contain control, format or unassigned characters")
    return value or None


async def recommendations(request: Request) -> Response:
    services = _services(request)
    session_id = session_id_of(request)
    limit = _int_param(request, "limit", 20, 1, MAX_LIMIT)
    max_missing = _int_param(request, "max_missing", None, 0, 1000)
    category = _text_param(request, "category")
    session = await services.store().get(session_id)
    result = await services.recommender.recommend(
        [i.name for i in session.ingredients], limit=limit or 20, max_missing=max_missing, category=category
    )
    return JSONResponse(recommendations_out(session.session_id, result))


async def recipes_index(request: Request) -> Response:
    page = await list_recipes(
        _services(request).engine,
        search=_text_param(request, "search"),
        category=_text_param(request, "category"),
        page=_int_param(request, "page", 1, 1, 1_000_000) or 1,
        size=_int_param(request, "size", 20, 1, MAX_PAGE_SIZE) or 20,
    )
    return JSONResponse(page)


async def recipe_detail(request: Request) -> Response:
    recipe_id: int = request.path_params["recipe_id"]
    if not 1 <= recipe_id <= MAX_RECIPE_ID:
        raise RecipeNotFound(f"recipe {recipe_id} not found")
    return JSONResponse(await get_recipe(_services(request).engine, recipe_id))


async def ingredients_index(request: Request) -> Response:
    services = _services(request)
    found = await services.recommender.suggest(
        _text_param(request, "search") or "", limit=_int_param(request, "limit", 20, 1, MAX_LIMIT) or 20
    )
    return JSONResponse(IngredientSuggestionsOut(items=found))


def routes() -> list[Route]:
    register_url_convertor("recipe_id", RecipeIdConvertor())
    return [
        resource("/sessions/{session_id}/recommendations", "recommendations", GET=recommendations),
        resource("/recipes", "recipes", GET=recipes_index),
        resource("/recipes/{recipe_id:recipe_id}", "recipe", GET=recipe_detail),
        resource("/ingredients", "ingredients_catalog", GET=ingredients_index),
    ]
