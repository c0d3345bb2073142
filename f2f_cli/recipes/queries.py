"""Read the recipe catalog: search with totals, one recipe in full."""

from __future__ import annotations

import msgspec
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.schema import ingredient_aliases, ingredients, recipe_ingredients, recipes
from f2f_cli.errors import F2FError
from f2f_cli.recipes.catalog import sql_errors
from f2f_cli.recipes.normalize import canonical_name

MAX_PAGE_SIZE = 100


class RecipeNotFound(F2FError):
    code = "recipe_not_found"
    http_status = 404


class RecipeSummary(msgspec.Struct, frozen=True):
    id: int
    title: str
    category: str | None
    method: str | None
    image_url: str | None
    source: str
    source_id: str


class RecipePage(msgspec.Struct, frozen=True):
    total: int
    page: int
    size: int
    items: tuple[RecipeSummary, ...]


class RecipeIngredientView(msgspec.Struct, frozen=True):
    name: str
    ingredient: str
    amount: str
    role: str
    is_staple: bool
    raw_text: str


class RecipeDetail(msgspec.Struct, frozen=True):
    id: int
    title: str
    category: str | None
    method: str | None
    kcal: float | None
    image_url: str | None
    source: str
    source_id: str
    steps: tuple[str, ...]
    ingredients: tuple[RecipeIngredientView, ...]


def _summary_columns() -> list[ColumnElement[object]]:
    return [recipes.c.id, recipes.c.title, recipes.c.category, recipes.c.method, recipes.c.image_url,
            recipes.c.source, recipes.c.source_id]


def _search_filter(search: str) -> ColumnElement[bool]:
    """Title contains the text, or the recipe uses the ingredient it names (exact canonical match)."""
    text = " ".join(search.split())
    canonical = canonical_name(text)
    alias_target = select(ingredient_aliases.c.ingredient_id).where(ingredient_aliases.c.alias == canonical)
    ingredient_ids = select(ingredients.c.id).where(
        or_(ingredients.c.name == canonical, ingredients.c.id.in_(alias_target))
    )
    uses = select(recipe_ingredients.c.recipe_id).where(recipe_ingredients.c.ingredient_id.in_(ingredient_ids))
    return or_(recipes.c.title.icontains(text, autoescape=True), recipes.c.id.in_(uses))


async def list_recipes(
    engine: AsyncEngine, *, search: str | None = None, category: str | None = None, page: int = 1, size: int = 20
) -> RecipePage:
    page = max(page, 1)
    size = min(max(size, 1), MAX_PAGE_SIZE)
    conditions: list[ColumnElement[bool]] = []
    if search and search.strip():
        conditions.append(_search_filter(search))
    if category:
        conditions.append(recipes.c.category == category)
    async with sql_errors("cannot list recipes"), engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(recipes).where(*conditions))).scalar_one()
        rows = await conn.execute(
            select(*_summary_columns()).where(*conditions).order_by(recipes.c.id)
            .limit(size).offset((page - 1) * size)
        )
        items = tuple(RecipeSummary(int(r.id), r.title, r.category, r.method, r.image_url, r.source, r.source_id)
                      for r in rows)
    return RecipePage(total=int(total), page=page, size=size, items=items)


async def get_recipe(engine: AsyncEngine, recipe_id: int) -> RecipeDetail:
    async with sql_errors("cannot read the recipe"), engine.connect() as conn:
        row = (await conn.execute(select(recipes).where(recipes.c.id == recipe_id))).first()
        if row is None:
            raise RecipeNotFound(f"recipe {recipe_id} not found")
        parts = await conn.execute(
            select(recipe_ingredients.c.name, recipe_ingredients.c.amount, recipe_ingredients.c.role,
                   recipe_ingredients.c.raw_text, ingredients.c.name.label("ingredient"), ingredients.c.is_staple)
            .join(ingredients, ingredients.c.id == recipe_ingredients.c.ingredient_id)
            .where(recipe_ingredients.c.recipe_id == recipe_id)
            .order_by(recipe_ingredients.c.position)
        )
        views = tuple(RecipeIngredientView(p.name, p.ingredient, p.amount, p.role, bool(p.is_staple), p.raw_text)
                      for p in parts)
    return RecipeDetail(
        id=int(row.id), title=row.title, category=row.category, method=row.method, kcal=row.kcal,
        image_url=row.image_url, source=row.source, source_id=row.source_id, steps=tuple(row.steps or ()),
        ingredients=views,
    )
