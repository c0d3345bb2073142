"""The in-memory recommender index: a sparse recipe × core-ingredient matrix.

Ranking (DESIGN.md, "Recipes and recommendations"; the README writes the formula out):

* only core ingredients count (staples and seasonings are left out of the matrix);
* a recipe needs at least one matched core ingredient;
* each recipe gets ``place = missing − min(FRIDGE_WEIGHT × fridge_share, matched − 1)``,
  lowest first: ``missing`` is the number of its core ingredients the fridge
  lacks, ``matched`` the number it finds there, and ``fridge_share`` the
  IDF-weighted share of the fridge's known items it uses (Σ idf of the fridge
  items it uses / Σ idf of all the fridge's known items). Using the whole
  fridge is worth FRIDGE_WEIGHT missing items, but never more than one per
  fridge item used beyond the first. So "ready now" still leads among small
  dishes and small fridges, while a big recipe that uses nearly all of a
  fridge visibly bought for it goes ahead of complete dishes that use a
  corner of it;
* equal places go to fewer missing items, then to the higher IDF-weighted
  coverage of the recipe (``score``), then to more matches, then to the lower id. Places and
  coverage are compared to nine decimals so float noise never decides a tie;
* every item keeps its ``missing_count`` and ``missing`` list, so a client can
  still show "ready now / missing 1 / missing 2";
* a list shows each dish once (:func:`~f2f_cli.recipes.identity.dish_key`):
  copies of a recipe and same-titled variants give way to the best of them.

Scoring one fridge is two sparse matrix–vector products over the whole
catalog plus a partial sort, with no Python loop per recipe. Only the few
returned recipes are turned into Python objects.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np
import numpy.typing as npt
from scipy import sparse

from f2f_cli.errors import F2FError
from f2f_cli.recipes.identity import dish_key
from f2f_cli.recipes.normalize import canonical_name

SNAPSHOT_MAGIC = b"F2FRIDX1"
TIE = 1e-9  # places and coverage are compared to nine decimals
# How many missing items using the whole fridge is worth (chosen on scripts/recipes_recall.py's raw
# fridges while keeping random fridges' lists as close to ready as before; see the README).
FRIDGE_WEIGHT = 4.0
SNAPSHOT_FORMAT = 2  # 2: dish codes stored, so a pod loading it does not re-read every title

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class SnapshotError(F2FError):
    """A snapshot that this build cannot use (corrupt, or written by another format)."""

    code = "snapshot_invalid"


class Recommendation(msgspec.Struct, frozen=True):
    recipe_id: int
    title: str
    category: str | None
    missing_count: int
    matched_count: int
    core_count: int
    score: float  # IDF-weighted share of the recipe's core ingredients the fridge covers, 0..1
    fridge_share: float  # IDF-weighted share of the fridge's known items the recipe uses, 0..1
    matched: tuple[str, ...]
    missing: tuple[str, ...]


# Said wherever recommendations come back empty because no recipe is loaded (CLI message, API field).
EMPTY_CATALOG_HINT = (
    "the recipe catalog is empty: load the built-in one with 'f2f recipes seed' "
    "(or your own with 'f2f recipes import FILE')"
)


class Recommendations(msgspec.Struct, frozen=True):
    items: tuple[Recommendation, ...]
    considered: int  # recipes with at least one matched core ingredient before filters on missing/category
    known: tuple[str, ...]  # fridge items that matched an ingredient of the catalog
    unknown: tuple[str, ...]  # fridge items no recipe uses as a core ingredient
    catalog_size: int = 0  # recipes in the catalog (0: nothing seeded or imported yet)

    @property
    def hint(self) -> str | None:
        """What to do when the answer is empty because the catalog is (EMPTY_CATALOG_HINT), else None."""
        return EMPTY_CATALOG_HINT if self.catalog_size == 0 else None


class _Meta(msgspec.Struct):
    format: int
    stamp: str
    titles: list[str]
    categories: list[str]
    ingredient_names: list[str]
    ingredient_categories: list[str]
    ingredient_staple: list[bool]
    aliases: dict[str, str]


@dataclass(slots=True)
class RecipeIndex:
    stamp: str
    recipe_ids: IntArray
    titles: list[str]
    category_names: list[str]  # index 0 is "no category"
    category_codes: npt.NDArray[np.int32]
    ingredient_names: list[str]
    ingredient_categories: list[str]
    ingredient_staple: list[bool]
    aliases: dict[str, str]
    matrix: sparse.csr_matrix
    # Rows with the same dish key share a code; computed from the titles unless a snapshot brings them.
    dish_codes: IntArray | None = None
    idf: FloatArray = field(init=False)
    doc_freq: IntArray = field(init=False)
    core_count: IntArray = field(init=False)
    core_weight: FloatArray = field(init=False)
    column: dict[str, int] = field(init=False)
    by_column: sparse.csc_matrix = field(init=False)

    def __post_init__(self) -> None:
        # Column slices of a CSC copy touch only the fridge's ingredients, not the whole catalog.
        self.by_column = self.matrix.tocsc()
        n = len(self.recipe_ids)
        self.doc_freq = np.asarray(self.matrix.getnnz(axis=0), dtype=np.int64)
        self.idf = np.log((n + 1.0) / (self.doc_freq + 1.0)) + 1.0
        self.core_count = np.asarray(self.matrix.getnnz(axis=1), dtype=np.int64)
        self.core_weight = np.asarray(self.matrix @ self.idf, dtype=np.float64)
        self.column = {name: i for i, name in enumerate(self.ingredient_names)}
        if self.dish_codes is None:
            # Rows with the same dish key are one dish: a list shows the best-ranked of them only.
            codes: dict[str, int] = {}
            self.dish_codes = np.fromiter((codes.setdefault(dish_key(t), len(codes)) for t in self.titles),
                                          dtype=np.int64, count=len(self.titles))

    @property
    def dishes(self) -> IntArray:
        assert self.dish_codes is not None  # set by __post_init__
        return self.dish_codes

    @property
    def size(self) -> int:
        return len(self.recipe_ids)

    # -- querying ---------------------------------------------------------

    def columns_for(self, fridge: Iterable[str]) -> tuple[list[int], list[str], list[str]]:
        """Matrix columns of the fridge items, and which items were known/unknown."""
        cols: dict[int, None] = {}
        known: list[str] = []
        unknown: list[str] = []
        for item in fridge:
            name = canonical_name(item)
            col = self.column.get(self.aliases.get(name, name))
            if col is None or self.doc_freq[col] == 0:
                unknown.append(item)
            else:
                cols.setdefault(col, None)
                known.append(item)
        return list(cols), known, unknown

    def recommend(
        self,
        fridge: Iterable[str],
        *,
        limit: int = 20,
        max_missing: int | None = None,
        category: str | None = None,
    ) -> Recommendations:
        cols, known, unknown = self.columns_for(fridge)
        if not cols or limit <= 0 or self.size == 0:
            return Recommendations((), 0, tuple(known), tuple(unknown), self.size)
        fridge_mass = float(self.idf[cols].sum())
        weights = np.column_stack([np.ones(len(cols)), self.idf[cols]])
        both = np.asarray(self.by_column[:, cols] @ weights)
        matched = both[:, 0].round().astype(np.int64)
        covered = both[:, 1]
        mask = matched >= 1
        considered = int(np.count_nonzero(mask))
        missing = self.core_count - matched
        if max_missing is not None:
            mask &= missing <= max_missing
        if category is not None:
            code = self.category_names.index(category) if category in self.category_names else -1
            mask &= self.category_codes == code
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return Recommendations((), considered, tuple(known), tuple(unknown), self.size)
        found = matched[candidates]
        credit = np.minimum(covered[candidates] * (FRIDGE_WEIGHT / fridge_mass), found - 1.0)
        place: FloatArray = (self.core_count[candidates] - found) - credit
        picked = self._top_dishes(candidates, place, missing, matched, covered, limit)
        chosen = set(cols)
        items = []
        for row in picked.tolist():
            row_cols = self.matrix.indices[self.matrix.indptr[row]:self.matrix.indptr[row + 1]]
            # Rarest first: the ingredient that makes the recipe special leads the list.
            ranked = sorted((int(c) for c in row_cols), key=lambda c: (-self.idf[c], self.ingredient_names[c]))
            items.append(Recommendation(
                recipe_id=int(self.recipe_ids[row]),
                title=self.titles[row],
                category=self.category_names[self.category_codes[row]] or None,
                missing_count=int(missing[row]),
                matched_count=int(matched[row]),
                core_count=int(self.core_count[row]),
                score=round(float(covered[row] / self.core_weight[row]), 4),
                fridge_share=round(float(covered[row] / fridge_mass), 4),
                matched=tuple(self.ingredient_names[c] for c in ranked if c in chosen),
                missing=tuple(self.ingredient_names[c] for c in ranked if c not in chosen),
            ))
        return Recommendations(tuple(items), considered, tuple(known), tuple(unknown), self.size)

    def _top_dishes(
        self, candidates: IntArray, place: FloatArray, missing: IntArray, matched: IntArray, covered: FloatArray,
        limit: int,
    ) -> IntArray:
        """The best ``limit`` rows, one per dish, best first (``place`` is per candidate, the rest per row).

        Only the best few candidates are sorted; when copies of one dish fill
        that window it grows fourfold until enough distinct dishes are found.
        """
        window = limit
        while True:
            if candidates.size > window:
                kth = np.partition(place, window - 1)[window - 1]
                # Places equal to nine decimals tie: keep those a float bit above the last one too.
                keep = np.flatnonzero(place <= kth + TIE)
            else:
                keep = np.arange(candidates.size)
            rows = candidates[keep]
            # Rounded and divided only inside the window, so a query never does it for the whole catalog.
            score = np.round(covered[rows] / self.core_weight[rows], 9)
            order = np.lexsort((self.recipe_ids[rows], -matched[rows], -score, missing[rows],
                                np.round(place[keep], 9)))
            _, first = np.unique(self.dishes[rows[order]], return_index=True)
            picked = order[np.sort(first)[:limit]]
            if picked.size >= limit or keep.size == candidates.size:
                return rows[picked]
            window *= 4

    # -- snapshot ---------------------------------------------------------

    def to_bytes(self) -> bytes:
        meta = _Meta(
            format=SNAPSHOT_FORMAT,
            stamp=self.stamp,
            titles=self.titles,
            categories=self.category_names,
            ingredient_names=self.ingredient_names,
            ingredient_categories=self.ingredient_categories,
            ingredient_staple=self.ingredient_staple,
            aliases=self.aliases,
        )
        arrays = io.BytesIO()
        np.savez(
            arrays,
            recipe_ids=self.recipe_ids,
            category_codes=self.category_codes,
            dish_codes=self.dishes,
            indptr=self.matrix.indptr.astype(np.int64),
            indices=self.matrix.indices.astype(np.int32),
            shape=np.asarray(self.matrix.shape, dtype=np.int64),
        )
        head = msgspec.json.encode(meta)
        return SNAPSHOT_MAGIC + len(head).to_bytes(8, "big") + head + arrays.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> RecipeIndex:
        if not blob.startswith(SNAPSHOT_MAGIC) or len(blob) < len(SNAPSHOT_MAGIC) + 8:
            raise SnapshotError("not a recipe index snapshot")
        start = len(SNAPSHOT_MAGIC) + 8
        size = int.from_bytes(blob[len(SNAPSHOT_MAGIC):start], "big")
        try:
            meta = msgspec.json.decode(blob[start:start + size], type=_Meta)
            if meta.format != SNAPSHOT_FORMAT:
                raise SnapshotError(f"snapshot format {meta.format}, this build reads {SNAPSHOT_FORMAT}")
            with np.load(io.BytesIO(blob[start + size:]), allow_pickle=False) as npz:
                shape = tuple(int(x) for x in npz["shape"])
                indptr, indices = npz["indptr"], npz["indices"]
                matrix = sparse.csr_matrix(
                    (np.ones(len(indices), dtype=np.float64), indices, indptr), shape=shape
                )
                recipe_ids = npz["recipe_ids"].astype(np.int64)
                codes = npz["category_codes"].astype(np.int32)
                dishes = npz["dish_codes"].astype(np.int64)
        except (msgspec.DecodeError, ValueError, KeyError, OSError) as exc:
            raise SnapshotError(f"corrupt recipe index snapshot: {exc}") from None
        if len(meta.titles) != shape[0] or len(meta.ingredient_names) != shape[1] or len(dishes) != shape[0]:
            raise SnapshotError("corrupt recipe index snapshot: sizes do not agree")
        return cls(
            stamp=meta.stamp, recipe_ids=recipe_ids, titles=meta.titles, category_names=meta.categories,
            category_codes=codes, ingredient_names=meta.ingredient_names,
            ingredient_categories=meta.ingredient_categories, ingredient_staple=meta.ingredient_staple,
            aliases=meta.aliases, matrix=matrix, dish_codes=dishes,
        )


@dataclass(frozen=True, slots=True)
class IngredientRow:
    name: str
    category: str
    is_staple: bool


def build_index(
    *,
    stamp: str,
    recipes: Sequence[tuple[int, str, str | None]],
    core_pairs: Sequence[tuple[int, str]],
    ingredients: Sequence[IngredientRow],
    aliases: dict[str, str] | None = None,
) -> RecipeIndex:
    """An index from catalog rows: (id, title, category), (recipe id, core ingredient name), all ingredients."""
    order = sorted(range(len(recipes)), key=lambda i: recipes[i][0])
    recipe_ids = np.fromiter((recipes[i][0] for i in order), dtype=np.int64, count=len(order))
    titles = [recipes[i][1] for i in order]
    category_names = ["", *sorted({c for _, _, c in recipes if c})]
    category_code = {c: i for i, c in enumerate(category_names)}
    codes = np.fromiter((category_code[recipes[i][2] or ""] for i in order), dtype=np.int32, count=len(order))
    names = [i.name for i in ingredients]
    column = {n: i for i, n in enumerate(names)}
    extra = sorted({n for _, n in core_pairs if n not in column})
    for n in extra:  # a pair naming an ingredient missing from the list still counts
        column[n] = len(names)
        names.append(n)
    pair_recipes = np.fromiter((r for r, _ in core_pairs), dtype=np.int64, count=len(core_pairs))
    rows = np.searchsorted(recipe_ids, pair_recipes)
    unknown = np.max(rows, initial=0) >= len(recipe_ids) or not np.array_equal(recipe_ids[rows], pair_recipes)
    if len(core_pairs) and unknown:
        raise ValueError("a core ingredient row refers to an unknown recipe")
    cols = np.fromiter((column[n] for _, n in core_pairs), dtype=np.int64, count=len(core_pairs))
    matrix = sparse.csr_matrix(
        (np.ones(len(cols), dtype=np.float64), (rows, cols)), shape=(len(recipe_ids), len(names))
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # the same ingredient listed twice is still one ingredient
    return RecipeIndex(
        stamp=stamp,
        recipe_ids=recipe_ids,
        titles=titles,
        category_names=category_names,
        category_codes=codes,
        ingredient_names=names,
        ingredient_categories=[i.category for i in ingredients] + ["other"] * len(extra),
        ingredient_staple=[i.is_staple for i in ingredients] + [False] * len(extra),
        aliases=dict(aliases or {}),
        matrix=matrix,
    )


class ReferenceScanner:
    """The original app's way: score every recipe in a Python loop. For checks and benchmarks only.

    The per-recipe ingredient lists are prepared once, as the original app held
    them in memory, so timing a query measures only the scan itself.
    """

    def __init__(self, index: RecipeIndex) -> None:
        self._index = index
        idf = index.idf.tolist()
        names = index.ingredient_names
        self._idf = {names[c]: idf[c] for c in range(len(names))}
        indptr = index.matrix.indptr.tolist()
        indices = index.matrix.indices.tolist()
        ids = index.recipe_ids.tolist()
        self._recipes = [(ids[r], [names[c] for c in indices[indptr[r]:indptr[r + 1]]]) for r in range(index.size)]

    def recommend(self, fridge: Iterable[str], *, limit: int = 20, max_missing: int | None = None) -> list[int]:
        """Recipe ids in rank order (every row: the scan does not fold dishes)."""
        aliases = self._index.aliases
        column = self._index.column
        have = {aliases.get(n, n) for n in (canonical_name(item) for item in fridge)}
        have = {n for n in have if n in column and self._index.doc_freq[column[n]] > 0}
        idf = self._idf
        fridge_mass = math.fsum(idf[n] for n in have)
        scored: list[tuple[float, int, float, int, int]] = []
        for recipe_id, core in self._recipes:
            matched = [name for name in core if name in have]
            if not matched:
                continue
            missing = len(core) - len(matched)
            if max_missing is not None and missing > max_missing:
                continue
            mass = math.fsum(idf[n] for n in matched)
            place = round(missing - min(FRIDGE_WEIGHT * mass / fridge_mass, len(matched) - 1), 9)
            score = round(mass / math.fsum(idf[n] for n in core), 9)
            scored.append((place, missing, -score, -len(matched), recipe_id))
        scored.sort()
        return [recipe_id for *_, recipe_id in scored[:limit]]
