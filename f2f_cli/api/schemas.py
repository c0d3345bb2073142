"""Request and response bodies. The same Structs generate the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import msgspec

from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.recipes.autocomplete import Suggestion
from f2f_cli.recipes.index import Recommendation, Recommendations


class ErrorOut(msgspec.Struct):
    """Every error: a stable machine code and a sentence for people."""

    error: str
    message: str


class IngredientOut(msgspec.Struct):
    name: str
    added_at: datetime


class SessionOut(msgspec.Struct):
    session_id: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    version: int
    ingredients: list[IngredientOut]


class IngredientsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Ingredient names to add; each is NFC-normalised and trimmed."""

    ingredients: list[str]


class IngredientsOut(SessionOut, omit_defaults=True):
    """The session after an ingredient call: the same shape as ``GET /sessions/{id}``, plus what changed."""

    added: list[str] | None = None
    removed: list[str] | None = None


class HealthOut(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}
    phase: str | None = None


def _stored(items: tuple[Ingredient, ...]) -> list[IngredientOut]:
    """The stored ``Ingredient`` values as they are: msgspec encodes them exactly as ``IngredientOut``
    (same fields, same order), so the response needs no copy per item. The type is for the schema."""
    return cast("list[IngredientOut]", items)


def session_out(session: Session) -> SessionOut:
    return SessionOut(
        session_id=session.session_id,
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        version=session.version,
        ingredients=_stored(session.ingredients),
    )


def ingredients_out(
    session: Session, *, added: tuple[str, ...] | None = None, removed: tuple[str, ...] | None = None
) -> IngredientsOut:
    return IngredientsOut(
        session_id=session.session_id,
        created_at=session.created_at,
        updated_at=session.updated_at,
        version=session.version,
        expires_at=session.expires_at,
        ingredients=_stored(session.ingredients),
        added=list(added) if added is not None else None,
        removed=list(removed) if removed is not None else None,
    )


class RecommendationsOut(msgspec.Struct):
    """Recipes for a session's fridge: ready ones first, then missing 1, 2, … core ingredients."""

    session_id: str
    items: list[Recommendation]
    considered: int
    known: list[str]
    unknown: list[str]
    catalog_size: int
    # Set when the catalog is empty (nothing seeded or imported yet): a sentence a client can show.
    hint: str | None = None


class IngredientSuggestionsOut(msgspec.Struct):
    items: list[Suggestion]


def recommendations_out(session_id: str, result: Recommendations) -> RecommendationsOut:
    return RecommendationsOut(
        session_id=session_id,
        items=list(result.items),
        considered=result.considered,
        known=list(result.known),
        unknown=list(result.unknown),
        catalog_size=result.catalog_size,
        hint=result.hint,
    )
