"""The OpenAPI 3.1 document, generated from the msgspec schemas and an operation table."""

from __future__ import annotations

import functools
import sys
import unicodedata
from dataclasses import dataclass, field, replace
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
from f2f_cli.domain.model import JOINERS, is_dropped_before_checks
from f2f_cli.recipes.queries import RecipeDetail, RecipePage

MAX_SEARCH_LENGTH = 100

SESSION_ID_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_-]{32}$"}
SESSION_ID_PARAM = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "description": "The session id (32 URL-safe characters). The same operations exist under "
    "`/sessions/current`, where the id comes from the X-Session-ID header or the f2f_session cookie.",
    "schema": SESSION_ID_SCHEMA,
}
SESSION_HEADER_PARAM = {
    "name": "X-Session-ID",
    "in": "header",
    "required": True,
    "description": "The session id. A browser may send the f2f_session cookie instead (set by POST /sessions); "
    "with neither the answer is 400 invalid_session_id.",
    "schema": SESSION_ID_SCHEMA,
}
NAME_REF = {"$ref": "#/components/schemas/IngredientName"}
_ERROR_TEXT = {
    400: "Malformed or missing session id",
    404: "Session (or recipe) not found, expired or deleted",
    413: "Request body too large",
    415: "The body is not declared as application/json",
    422: "Invalid body, ingredient, query parameter or limit",
    429: "Too many requests",
    503: "A store the phase needs is unavailable",
}
# Characters f2f's NFC normalisation would expand to more than one: excluded from the document so
# that a name within maxLength stays within it on the server.
_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


def _class_item(low: int, high: int) -> str:
    def one(cp: int) -> str:
        # BMP as \uXXXX (the same in ECMA-262 and Python); astral characters literally (code points in both).
        return f"\\u{cp:04X}" if cp <= 0xFFFF else chr(cp)

    return one(low) if low == high else f"{one(low)}-{one(high)}"


@functools.cache
def _character_classes() -> tuple[str, str, str]:
    """(visible, spaces, lead): regex class bodies of the characters a name or search text may hold.

    Built from this Python's Unicode database once per process (~0.2 s): no control, format, surrogate,
    private-use or unassigned character, nor one that NFC expands (so maxLength holds after NFC);
    whitespace is allowed anywhere, since f2f collapses it. ``spaces`` also holds what f2f drops before its
    checks (default-ignorable characters, blank symbols); ``lead`` is what may start a name once those are
    gone: a visible character that is not a combining mark.
    """
    forbidden = {"Cc", "Cf", "Cs", "Co", "Cn"}
    visible: list[tuple[int, int]] = []
    lead: list[tuple[int, int]] = []
    skipped: list[str] = list(_WHITESPACE)
    starts: dict[str, int | None] = {"visible": None, "lead": None}

    def track(name: str, ranges: list[tuple[int, int]], ok: bool, cp: int) -> None:
        start = starts[name]
        if ok and start is None:
            starts[name] = cp
        elif not ok and start is not None:
            ranges.append((start, cp - 1))
            starts[name] = None

    for cp in range(sys.maxunicode + 2):
        ch = chr(cp) if cp <= sys.maxunicode else ""
        ok = bool(ch) and not ch.isspace() and unicodedata.category(ch) not in forbidden and (
            cp < 0x300 or len(unicodedata.normalize("NFC", ch)) == 1
        )
        dropped = ok and is_dropped_before_checks(ch)
        if dropped:
            skipped.append(ch)
        track("visible", visible, ok and not dropped, cp)
        track("lead", lead, ok and not dropped and not unicodedata.category(ch).startswith("M"), cp)
    skipped.extend(JOINERS)  # format characters, yet allowed anywhere: kept between visible ones, else removed
    spaces = "".join(_class_item(ord(c), ord(c)) for c in skipped)
    return (
        "".join(_class_item(lo, hi) for lo, hi in visible),
        spaces,
        "".join(_class_item(lo, hi) for lo, hi in lead),
    )


def ingredient_name_schema(max_length: int) -> dict[str, Any]:
    """What ``normalize_ingredient`` accepts, as JSON Schema."""
    visible, spaces, lead = _character_classes()
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": f"^[{spaces}]*[{lead}](?:[{visible}]|[{spaces}])*$",
        "description": "An ingredient name: at least one visible character, no control, format or unassigned "
        "character except the zero-width joiner and non-joiner (U+200D, U+200C: kept between two visible "
        "characters, removed elsewhere). f2f stores it NFC-normalised and trimmed, inner whitespace collapsed, "
        "and compares names exactly: letter case is kept and matters (\"Tofu\" and \"tofu\" are two names; the Korean "
        "catalog has no case).",
    }


def search_text_schema(max_length: int) -> dict[str, Any]:
    """A search or category text: like a name, but may be empty (no filter)."""
    visible, spaces, _lead = _character_classes()
    return {
        "type": "string",
        "maxLength": max_length,
        "pattern": f"^[{spaces}]*(?:[{visible}][{spaces}]*)*$",
        "description": "Trimmed, inner whitespace collapsed; no control, format or unassigned character except "
        "the zero-width joiner and non-joiner (U+200D, U+200C).",
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
    # A text/plain body instead of a JSON schema (the Prometheus exposition).
    text: bool = False
    # OpenAPI links from the success response: how a client (or a stateful fuzzer) chains calls.
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


def _session_links(api_prefix: str) -> dict[str, dict[str, Any]]:
    targets = {
        "GetSession": ("get", "/sessions/{session_id}"),
        "DeleteSession": ("delete", "/sessions/{session_id}"),
        "ListIngredients": ("get", "/sessions/{session_id}/ingredients"),
        "AddIngredients": ("post", "/sessions/{session_id}/ingredients"),
        "RemoveIngredients": ("delete", "/sessions/{session_id}/ingredients"),
        "Recommend": ("get", "/sessions/{session_id}/recommendations"),
    }
    # No links into /sessions/current: a client (or fuzzer) cannot tell from the paths that it names the
    # same session as /sessions/{session_id}, so a chain through both would look inconsistent.
    return {
        name: {
            "operationId": operation_id(method, api_prefix + path),
            "parameters": {"session_id": "$response.body#/session_id"},
        }
        for name, (method, path) in targets.items()
    }


def operation_id(method: str, path: str) -> str:
    return f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"


_CLEAR = (
    "With `name`, removes that ingredient (absent is fine). Without `name`, removes every ingredient: "
    "the fridge (the collection) stays and reads back empty, the session is not deleted; "
    "`DELETE /sessions/{session_id}` ends the session itself. Either way the answer is the session after "
    "the change, with `removed` listing what was taken out."
)


def session_operations(api_prefix: str = "/v1") -> list[Operation]:
    sid = [SESSION_ID_PARAM]
    common = (400, 404, 503)
    return [
        Operation(
            "post",
            "/sessions",
            "Create a session (also sets the f2f_session cookie); limited per client address per minute",
            SessionOut,
            201,
            errors=(429, 503),
            links=_session_links(api_prefix),
        ),
        Operation("get", "/sessions/{session_id}", "Read a session", SessionOut, params=sid, errors=common),
        Operation("delete", "/sessions/{session_id}", "Delete a session", None, 204, params=sid, errors=common,
                  description="Ends the session. The f2f_session cookie is cleared only when it names this "
                  "session."),
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
            errors=(*common, 413, 415, 422),
            links=_session_links(api_prefix),
            description="The body must be sent as application/json. `added` lists the names that were new.",
        ),
        Operation(
            "delete",
            "/sessions/{session_id}/ingredients",
            "Remove one ingredient (?name=) or clear the fridge (no name)",
            IngredientsOut,
            params=[
                *sid,
                {"name": "name", "in": "query", "required": False, "schema": NAME_REF,
                 "description": "The ingredient to remove; omit it to remove all."},
            ],
            errors=(*common, 422),
            description=_CLEAR,
        ),
    ]


def with_current(operations: list[Operation]) -> list[Operation]:
    """Each ``/sessions/{session_id}...`` operation again under ``/sessions/current...``, where the id
    comes from the X-Session-ID header (or the cookie), so the document says the header is needed there."""
    out = list(operations)
    for op in operations:
        if "{session_id}" not in op.path:
            continue
        params = [SESSION_HEADER_PARAM if p is SESSION_ID_PARAM else p for p in op.params]
        out.append(replace(op, path=op.path.replace("{session_id}", "current"), params=params, links={},
                           summary=op.summary + " (the session of the X-Session-ID header or cookie)"))
    return out


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def recipe_operations() -> list[Operation]:
    sid = [SESSION_ID_PARAM]
    text = {"$ref": "#/components/schemas/SearchText"}
    category = _query("category", "Only this dish category (반찬, 국&찌개, 일품, 밥, 후식, 기타).", text)
    return [
        Operation(
            "get", "/sessions/{session_id}/recommendations",
            "Recipes for the fridge: grouped by missing core ingredients, IDF-weighted coverage inside a group",
            RecommendationsOut,
            params=[
                *sid,
                _query("limit", "How many recipes.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                _query("max_missing", "Hide recipes missing more core ingredients.",
                       {"type": "integer", "minimum": 0, "maximum": 1000}),
                category,
            ],
            errors=(400, 404, 422, 503), tag="recipes",
        ),
        Operation(
            "get", "/recipes", "Search the catalog by title or ingredient, with the total count", RecipePage,
            params=[
                _query("search", "Text in the title, or an ingredient name (exact, aliases understood).", text),
                category,
                _query("page", "Page number, from 1.",
                       {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}),
                _query("size", "Page size.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
            ],
            errors=(422, 503), tag="recipes",
        ),
        Operation(
            "get", "/recipes/{recipe_id}", "One recipe with ingredients, amounts, roles and steps", RecipeDetail,
            params=[{"name": "recipe_id", "in": "path", "required": True,
                     "schema": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 2**31 - 1}}],
            errors=(404, 503), tag="recipes",
        ),
        Operation(
            "get", "/ingredients", "Ingredient autocomplete by prefix or initial consonants (ㄷㅂ → 두부)",
            IngredientSuggestionsOut,
            params=[
                _query("search", "Prefix or initial consonants.", text),
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
        Operation("get", "/metrics", "Prometheus metrics (text exposition format)", None,
                  errors=(429,), tag="operations", text=True,
                  description="Served from a rendering at most F2F_METRICS_CACHE_SECONDS old; scrapes are "
                  "spaced 0.1 s apart per process, and one that would wait over 1 s is answered 429."),
    ]


def build_openapi(
    api_prefix: str, prefixed: list[Operation], unprefixed: list[Operation], *, max_ingredient_length: int = 50
) -> dict[str, Any]:
    ops = [(api_prefix + op.path, op) for op in with_current(prefixed)] + [(op.path, op) for op in unprefixed]
    types: set[type] = {ErrorOut}
    for _, op in ops:
        types.update(t for t in (op.response, op.body) if t is not None)
    ordered = sorted(types, key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(ordered, ref_template="#/components/schemas/{name}")
    refs = dict(zip(ordered, schemas, strict=True))
    # What the server enforces on names, beyond "a list of strings".
    components["IngredientName"] = ingredient_name_schema(max_ingredient_length)
    components["SearchText"] = search_text_schema(MAX_SEARCH_LENGTH)
    components["IngredientsIn"]["properties"]["ingredients"]["items"] = NAME_REF
    paths: dict[str, dict[str, Any]] = {}
    for path, op in ops:
        responses: dict[str, Any] = {}
        if op.text:
            responses[str(op.status)] = {
                "description": "OK",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        elif op.response is None:
            responses[str(op.status)] = {"description": "Done"}
        else:
            responses[str(op.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": refs[op.response]}},
            }
        if op.links:
            responses[str(op.status)]["links"] = op.links
        for status in op.errors:
            responses[str(status)] = {
                "description": _ERROR_TEXT[status],
                "content": {"application/json": {"schema": refs[ErrorOut]}},
            }
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": operation_id(op.method, path),
            "tags": [op.tag],
            "parameters": op.params,
            "responses": responses,
        }
        if op.description:
            entry["description"] = op.description
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
            "Errors are JSON {error, message}. Request bodies must be sent as application/json (415 otherwise).",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
