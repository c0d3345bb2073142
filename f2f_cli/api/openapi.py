"""The OpenAPI 3.1 document, generated from the msgspec schemas and an operation table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from f2f_cli import __version__
from f2f_cli.api.schemas import (
    ErrorOut,
    HealthOut,
    IngredientsIn,
    IngredientsOut,
    IngredientSuggestionsOut,
    RecommendationsOut,
    SessionOut,
)
from f2f_cli.recipes.queries import RecipeDetail, RecipePage

SESSION_ID_PARAM = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "description": "The session id (32 URL-safe characters), or `current` to use the X-Session-ID header "
    "or the f2f_session cookie.",
    "schema": {"type": "string", "pattern": "^([A-Za-z0-9_-]{32}|current)$"},
}
SESSION_HEADER_PARAM = {
    "name": "X-Session-ID",
    "in": "header",
    "required": False,
    "description": "The session id, used when the path says `current`.",
    "schema": {"type": "string"},
}
_ERROR_TEXT = {
    400: "Malformed session id",
    404: "Session not found or expired",
    413: "Request body too large",
    422: "Invalid body, ingredient or limit",
    429: "Too many requests",
    503: "A store the phase needs is unavailable",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    response: type | None
    status: int = 200
    body: type | None = None
    params: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[int, ...] = (503,)
    tag: str = "sessions"


def session_operations() -> list[Operation]:
    sid = [SESSION_ID_PARAM, SESSION_HEADER_PARAM]
    common = (400, 404, 503)
    return [
        Operation("post", "/sessions", "Create a session (also sets the f2f_session cookie)", SessionOut, 201),
        Operation("get", "/sessions/{session_id}", "Read a session", SessionOut, params=sid, errors=common),
        Operation("delete", "/sessions/{session_id}", "Delete a session", None, 204, params=sid, errors=common),
        Operation(
            "get", "/sessions/{session_id}/ingredients", "List the fridge", IngredientsOut, params=sid, errors=common
        ),
        Operation(
            "post",
            "/sessions/{session_id}/ingredients",
            "Add ingredients (atomic; names already present are kept)",
            IngredientsOut,
            body=IngredientsIn,
            params=sid,
            errors=(*common, 413, 422),
        ),
        Operation(
            "delete",
            "/sessions/{session_id}/ingredients",
            "Remove one ingredient (?name=) or clear the fridge",
            IngredientsOut,
            params=[
                *sid,
                {"name": "name", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "The ingredient to remove; omit to remove all."},
            ],
            errors=(*common, 422),
        ),
    ]


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def recipe_operations() -> list[Operation]:
    sid = [SESSION_ID_PARAM, SESSION_HEADER_PARAM]
    category = _query("category", "Only this dish category (반찬, 국&찌개, 일품, 밥, 후식, 기타).",
                      {"type": "string", "maxLength": 100})
    return [
        Operation(
            "get", "/sessions/{session_id}/recommendations",
            "Recipes for the fridge: grouped by missing core ingredients, IDF-weighted coverage inside a group",
            RecommendationsOut,
            params=[
                *sid,
                _query("limit", "How many recipes.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                _query("max_missing", "Hide recipes missing more core ingredients.", {"type": "integer", "minimum": 0}),
                category,
            ],
            errors=(400, 404, 422, 503), tag="recipes",
        ),
        Operation(
            "get", "/recipes", "Search the catalog by title or ingredient, with the total count", RecipePage,
            params=[
                _query("search", "Text in the title, or an ingredient name (exact, aliases understood).",
                       {"type": "string", "maxLength": 100}),
                category,
                _query("page", "Page number, from 1.", {"type": "integer", "minimum": 1, "default": 1}),
                _query("size", "Page size.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
            ],
            errors=(422, 503), tag="recipes",
        ),
        Operation(
            "get", "/recipes/{recipe_id}", "One recipe with ingredients, amounts, roles and steps", RecipeDetail,
            params=[{"name": "recipe_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            errors=(404, 503), tag="recipes",
        ),
        Operation(
            "get", "/ingredients", "Ingredient autocomplete by prefix or initial consonants (ㄷㅂ → 두부)",
            IngredientSuggestionsOut,
            params=[
                _query("search", "Prefix or initial consonants.", {"type": "string", "maxLength": 100}),
                _query("limit", "How many suggestions.", {"type": "integer", "minimum": 1, "maximum": 100}),
            ],
            errors=(422, 503), tag="recipes",
        ),
    ]


def health_operations() -> list[Operation]:
    return [
        Operation("get", "/healthz", "Liveness: the process serves", HealthOut, tag="operations"),
        Operation("get", "/readyz", "Readiness: the stores of the current phase answer", HealthOut,
                  errors=(503,), tag="operations"),
    ]


def build_openapi(api_prefix: str, prefixed: list[Operation], unprefixed: list[Operation]) -> dict[str, Any]:
    ops = [(api_prefix + op.path, op) for op in prefixed] + [(op.path, op) for op in unprefixed]
    types: set[type] = {ErrorOut}
    for _, op in ops:
        types.update(t for t in (op.response, op.body) if t is not None)
    ordered = sorted(types, key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(ordered, ref_template="#/components/schemas/{name}")
    refs = dict(zip(ordered, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for path, op in ops:
        responses: dict[str, Any] = {}
        if op.response is None:
            responses[str(op.status)] = {"description": "Done"}
        else:
            responses[str(op.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": refs[op.response]}},
            }
        for status in op.errors:
            responses[str(status)] = {
                "description": _ERROR_TEXT[status],
                "content": {"application/json": {"schema": refs[ErrorOut]}},
            }
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "tags": [op.tag],
            "parameters": op.params,
            "responses": responses,
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[op.body]}},
            }
        paths.setdefault(path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Fridge2Fork session API",
            "version": __version__,
            "description": "Anonymous fridge sessions and recipe recommendations. "
            "Errors are JSON {error, message}.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
