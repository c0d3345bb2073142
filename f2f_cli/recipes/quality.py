"""Recommendation quality: is a recipe found from a fridge made of its own ingredients?

Each case takes one recipe of the public COOKRCP01 sample, fills a fridge with
its core ingredients, writes about half of those that have a common synonym
the other way (계란 for 달걀, 파 for 대파, 칵테일새우 for 새우 ...), adds three
common fridge items the recipe does not use, and asks for the top 10. A case
is a hit at k when the recipe's dish (:func:`~f2f_cli.recipes.identity.dish_key`)
is among the first k results. Cases are seeded, so the figures are reproducible.

That check is written in the catalog's own vocabulary (the fridge holds the
names the normaliser produced), so it grades the normaliser by itself.
:func:`build_raw_cases` is the check that does not: its fridges are taken
from the raw ingredient lines of the sample, as a person would copy them (the
text before the amount, section labels and the dish name in front removed),
with about half of the names written as a common synonym and three unrelated
items added. Nothing of the normaliser, the parser or the vocabulary is used
to build them.

The same cases are measured on two catalog states: the built-in catalog only,
and the built-in catalog after an import of the very sample it came from (the
state in which copies used to fill half of every list).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Mapping, Sequence

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.recipes.builtin import builtin_catalog
from f2f_cli.recipes.catalog import import_parsed, recipe_count
from f2f_cli.recipes.formats import ParsedFile, RecipeRecord
from f2f_cli.recipes.identity import dish_key
from f2f_cli.recipes.normalize import CORE_ROLES, canonical_name
from f2f_cli.recipes.recommender import Recommender

DEFAULT_SEED = 17
KS = (1, 3, 10)

# How people write what is in their fridge, for ingredients recipes name otherwise.
COMMON_SYNONYMS: dict[str, tuple[str, ...]] = {
    "달걀": ("계란",),
    "대파": ("파",),
    "소고기": ("쇠고기",),
    "닭고기": ("닭",),
    "쪽파": ("실파",),
    "김치": ("배추김치", "묵은지"),
    "새우": ("칵테일새우", "생새우", "냉동새우"),
    "양송이버섯": ("양송이",),
    "표고버섯": ("표고",),
    "팽이버섯": ("팽이",),
    "요거트": ("요구르트",),
    "모짜렐라치즈": ("피자치즈",),
    "파마산치즈": ("파르메산치즈",),
    "밥": ("흰밥", "쌀밥"),
    "참치": ("참치캔",),
    "셀러리": ("샐러리",),
    "돼지고기": ("삼겹살", "목살"),
    "고추": ("풋고추", "홍고추"),
    "어린잎채소": ("새싹채소",),
}
# Common fridge items; three the recipe does not use are added to each fridge.
NOISE_POOL: tuple[str, ...] = (
    "양파", "당근", "감자", "우유", "버터", "사과", "오이", "김치", "두부", "달걀", "대파", "마늘", "양배추",
    "애호박", "햄", "치즈", "토마토", "느타리버섯", "콩나물", "시금치", "고구마", "무", "돼지고기", "닭고기",
)


# Written either way on a shopping list; the raw cases swap a name (or its last word) for the other.
RAW_SYNONYMS: tuple[tuple[str, str], ...] = (
    ("달걀", "계란"), ("대파", "파"), ("소고기", "쇠고기"), ("닭고기", "닭"), ("쪽파", "실파"),
    ("김치", "배추김치"), ("새우", "칵테일새우"), ("양송이버섯", "양송이"), ("표고버섯", "표고"),
    ("팽이버섯", "팽이"), ("요거트", "요구르트"), ("모짜렐라치즈", "피자치즈"), ("파마산치즈", "파르메산치즈"),
    ("밥", "흰밥"), ("참치", "참치캔"), ("셀러리", "샐러리"), ("어린잎채소", "새싹채소"), ("후춧가루", "후추"),
    ("녹말가루", "전분"), ("올리브유", "올리브오일"), ("물엿", "올리고당"), ("청주", "맛술"), ("다시마육수", "육수"),
    ("고춧가루", "고추가루"), ("머스터드", "겨자"), ("케첩", "케찹"), ("햄", "슬라이스햄"), ("우유", "흰우유"),
)
_SWAP = {a: b for pair in RAW_SYNONYMS for a, b in (pair, pair[::-1])}
# What ends a name on a raw line: an amount ("20g", "(150g)", "½개") or an amount word.
_RAW_AMOUNT = re.compile(
    r"\(?\s*(?:(?<![가-힣])약\s*)?[0-9½⅓⅔¼¾⅕⅛]|약간|적당량|적당히|조금|소량|한\s?줌|한\s?꼬집|취향껏"
)
_RAW_BRACKET = re.compile(r"^\s*[\[<【(][^\]>】)]*[\]>】)]\s*")
_RAW_BULLET = re.compile(r"^[\s●•○◆◇■□▶►★☆※·\-*]+")
_RAW_LABEL = re.compile(r"^(?:(?:필수\s?|주|부)?재료\s*|(?:양념장|양념|소스|고명|장식|곁들임|육수|반죽)\s+)")


def raw_fridge_names(title: str, lines: Sequence[object]) -> list[str]:
    """The name each raw line starts with, as a person copying the list would write it.

    Per line: the text before the first amount, with bracketed labels ("[1인분]"), bullets, a
    "section :" label, words in parentheses and the dish name glued in front ("새우두부계란찜연두부")
    removed. Items glued
    behind an amount on the same line are not read (a person copying the list skims them too).
    """
    words = unicodedata.normalize("NFC", title).split()
    # The whole title, or its last words when they are at least three letters ("사과 새우 북엇국" → 북엇국).
    titles = ["".join(words)] + [t for k in range(1, len(words)) if len(t := "".join(words[k:])) >= 3]
    names: list[str] = []
    for raw in lines:
        if not isinstance(raw, str):
            continue
        text = unicodedata.normalize("NFC", raw).replace("<br>", "\n").split("\n")[0]
        while True:
            stripped = _RAW_BULLET.sub("", _RAW_BRACKET.sub("", text))
            if stripped == text:
                break
            text = stripped
        cut = _RAW_AMOUNT.search(text)
        name = text[: cut.start()] if cut else text
        if ":" in name or "：" in name:
            name = re.split(r"[:：]", name)[-1]
        name = _RAW_LABEL.sub("", re.sub(r"\([^()]*\)", "", name).strip(" ,.·-"))
        compact = re.sub(r"\s+", "", name)
        for glued in titles:
            if compact.startswith(glued) and len(compact) > len(glued):
                name = compact[len(glued):]
                break
        name = name.strip(" ,.·-()")
        if any("가" <= ch <= "힣" for ch in name) and name not in names:
            names.append(name)
    return names


def _swapped(name: str) -> str | None:
    """``name`` with its whole text or its last word written as the common synonym, if it has one."""
    if name in _SWAP:
        return _SWAP[name]
    head, _, last = name.rpartition(" ")
    if head and last in _SWAP:
        return f"{head} {_SWAP[last]}"
    return None


def build_raw_cases(
    rows: Sequence[Mapping[str, object]], *, seed: int = DEFAULT_SEED, limit: int | None = None, min_names: int = 2,
) -> list[RecallCase]:
    """One case per recipe of a simple-format sample with at least ``min_names`` names on its raw lines."""
    rng = random.Random(seed)
    eligible: list[tuple[str, str, list[str], str]] = []
    for row in rows:
        title, lines = row.get("title"), row.get("ingredients")
        if not isinstance(title, str) or not isinstance(lines, list):
            continue
        names = raw_fridge_names(title, lines)
        if len(names) >= min_names:
            text = re.sub(r"\s+", "", " ".join(str(line) for line in lines))
            eligible.append((str(row.get("id", "")), title, names, text))
    if limit is not None and limit < len(eligible):
        eligible = rng.sample(eligible, limit)
    cases = []
    for source_id, title, names, text in eligible:
        fridge = [(_swapped(n) or n) if rng.random() < 0.5 else n for n in names]
        # Unrelated means not written anywhere on the recipe's lines, under either spelling.
        unrelated = [n for n in NOISE_POOL if n not in text and _SWAP.get(n, n) not in text]
        fridge += rng.sample(unrelated, 3)
        rng.shuffle(fridge)
        cases.append(RecallCase(source_id, title, tuple(fridge)))
    return cases


class RecallCase(msgspec.Struct, frozen=True):
    source_id: str
    title: str
    fridge: tuple[str, ...]


class Miss(msgspec.Struct, frozen=True):
    """A case whose dish is not in the top 10, and why."""

    title: str
    rank: int | None  # the dish's place in a longer list (1-based), None when not even there
    missing: tuple[str, ...]  # what the recipe still lacks with this fridge (core ingredients)
    unknown: tuple[str, ...]  # fridge items the catalog does not know
    ahead: tuple[str, ...]  # the first dishes ranked above it


class RecallFigures(msgspec.Struct):
    state: str
    recipes: int  # rows in the catalog
    cases: int
    hits: dict[str, int]  # "k" → cases whose dish is in the top k
    recall: dict[str, float]  # "k" → hits / cases
    lists_with_copies: int  # top-10 lists that show one dish twice
    misses: list[Miss]  # every case missed at the largest k, with why
    case_set: str = "self"  # "self": fridges in the catalog's vocabulary; "raw": copied from the raw lines


def core_ingredients(record: RecipeRecord) -> list[str]:
    return sorted({i.ingredient for i in record.items if i.role in CORE_ROLES})


def build_cases(
    records: Sequence[RecipeRecord], *, seed: int = DEFAULT_SEED, limit: int | None = None, min_core: int = 2,
    drop: int = 0,
) -> list[RecallCase]:
    """One case per recipe with at least ``min_core`` core ingredients (a seeded sample of ``limit`` if given).

    ``drop`` leaves that many of the recipe's core ingredients out of the fridge (only recipes with at
    least ``drop + 2`` take part), so the recipe must be found among those missing something: the
    harder test of coverage and IDF weighting.
    """
    rng = random.Random(seed)
    eligible = [r for r in records if len(core_ingredients(r)) >= max(min_core, drop + 2)]
    if limit is not None and limit < len(eligible):
        eligible = rng.sample(eligible, limit)
    # Only spellings this build really resolves to the ingredient, so a case never tests a typo.
    spelled = {c: [s for s in ss if canonical_name(s) == c] for c, ss in COMMON_SYNONYMS.items()}
    cases = []
    for record in eligible:
        core = core_ingredients(record)
        if drop:
            core = sorted(rng.sample(core, len(core) - drop))
        fridge = [rng.choice(spelled[c]) if spelled.get(c) and rng.random() < 0.5 else c for c in core]
        used = {i.ingredient for i in record.items}
        fridge += rng.sample([n for n in NOISE_POOL if canonical_name(n) not in used], 3)
        rng.shuffle(fridge)
        cases.append(RecallCase(record.source_id, record.title, tuple(fridge)))
    return cases


DIAGNOSE_DEPTH = 200  # how far down a missed dish is looked for


async def measure(
    recommender: Recommender, cases: Sequence[RecallCase], *, state: str, recipes: int = 0, ks: Sequence[int] = KS,
    case_set: str = "self",
) -> RecallFigures:
    top = max(ks)
    hits = dict.fromkeys(ks, 0)
    copies = 0
    misses: list[Miss] = []
    for case in cases:
        result = await recommender.recommend(case.fridge, limit=top)
        keys = [dish_key(item.title) for item in result.items]
        copies += len(set(keys)) != len(keys)
        want = dish_key(case.title)
        for k in ks:
            hits[k] += want in keys[:k]
        if want not in keys:
            misses.append(await _diagnose(recommender, case, want))
    n = max(len(cases), 1)
    return RecallFigures(
        state=state, recipes=recipes, cases=len(cases), hits={str(k): v for k, v in hits.items()},
        recall={str(k): round(v / n, 4) for k, v in hits.items()}, lists_with_copies=copies, misses=misses,
        case_set=case_set,
    )


async def _diagnose(recommender: Recommender, case: RecallCase, want: str) -> Miss:
    deep = await recommender.recommend(case.fridge, limit=DIAGNOSE_DEPTH)
    keys = [dish_key(item.title) for item in deep.items]
    rank = keys.index(want) + 1 if want in keys else None
    found = deep.items[rank - 1] if rank is not None else None
    return Miss(
        title=case.title, rank=rank, missing=found.missing if found is not None else (),
        unknown=deep.unknown, ahead=tuple(item.title for item in deep.items[:3]),
    )


async def measure_catalog_states(
    engine: AsyncEngine, sample: ParsedFile, case_sets: Mapping[str, Sequence[RecallCase]]
) -> list[RecallFigures]:
    """Seed an empty catalog and measure each set of cases; import ``sample`` on top and measure again."""
    figures = []
    await import_parsed(engine, builtin_catalog())
    recipes = await recipe_count(engine)
    for name, cases in case_sets.items():
        figures.append(await measure(Recommender(engine, check_interval=0), cases, state="seed", recipes=recipes,
                                     case_set=name))
    await import_parsed(engine, sample)
    recipes = await recipe_count(engine)
    for name, cases in case_sets.items():
        figures.append(await measure(Recommender(engine, check_interval=0), cases, state="seed+import",
                                     recipes=recipes, case_set=name))
    return figures
