"""Map an ingredient name as written to its canonical ingredient.

Matching is by whole names: preparation words are removed as separate words
or as known glued prefixes/suffixes ("양파채친것" → 양파, "양파즙" → 양파), then
the name is looked up in the alias and parent tables. A name still unknown is
read as glued text whose *end* is a known ingredient — a section name in front
("두부강된장참기름" → 참기름, "버섯볶음새송이버섯" → 새송이버섯) or a part
behind a known ingredient ("돼지고기등심" → 돼지고기). Only names the
vocabulary lists count as known, and a known name is never cut further, so
마늘종 (listed itself) never becomes 마늘, and no one-letter name (파, 무, 김)
is ever found inside another.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from f2f_cli.recipes import vocab

_PARENS = re.compile(r"\([^()]*\)|\[[^\]]*\]")
_SPACES = re.compile(r"\s+")
_JUNK = re.compile(r"[^\w가-힣]+")
_UNCLOSED = re.compile(r"[(\[].*$")

ROLE_MAIN = "main"
ROLE_SUB = "sub"
ROLE_SEASONING = "seasoning"
ROLE_GARNISH = "garnish"
ROLES = (ROLE_MAIN, ROLE_SUB, ROLE_SEASONING, ROLE_GARNISH)
CORE_ROLES = (ROLE_MAIN, ROLE_SUB)


@dataclass(frozen=True, slots=True)
class IngredientInfo:
    """A canonical ingredient and how it takes part in ranking."""

    name: str
    category: str
    is_staple: bool

    @property
    def is_seasoning(self) -> bool:
        return self.category == "seasoning"

    @property
    def blocks(self) -> bool:
        """Whether a fridge without it is missing something."""
        return not self.is_staple and not self.is_seasoning


def _invert(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {variant: canonical for canonical, variants in table.items() for variant in variants}


@lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    # Parents first so an alias of the same key (none today) would win.
    out = _invert(vocab.all_parents())
    out.update(_invert(vocab.all_aliases()))
    return out


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    """Every canonical name the vocabulary lists itself."""
    names = set(vocab.all_aliases()) | set(vocab.all_parents()) | vocab.STAPLES | vocab.SEASONINGS
    for words in vocab.CATEGORY_WORDS.values():
        names.update(words)
    return frozenset(names)


def is_known(canonical: str) -> bool:
    """Whether the vocabulary lists ``canonical`` itself (a name it folded to, not one it kept as written)."""
    return canonical in _known()


def known_names() -> frozenset[str]:
    return _known()


@lru_cache(maxsize=1)
def _categories() -> dict[str, str]:
    return {name: category for category, names in vocab.CATEGORY_WORDS.items() for name in names}


def alias_table() -> list[tuple[str, str, str]]:
    """Every (alias, canonical, kind) pair the vocabulary defines."""
    rows = [(v, c, "parent") for c, vs in vocab.all_parents().items() for v in vs]
    rows += [(v, c, "alias") for c, vs in vocab.all_aliases().items() for v in vs]
    return rows


def _strip_prep(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in vocab.PREP_PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                key, changed = key[len(prefix):], True
        for suffix in vocab.PREP_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key, changed = key[: -len(suffix)], True
    return key


def _resolve(key: str) -> str | None:
    """The canonical name when ``key`` is an alias or a listed name, else None."""
    table = _lookup()
    if key in table:
        return table[key]
    return key if key in _known() else None


def _glued(key: str) -> str | None:
    """A known ingredient at the end of glued text, or in front of a part word; None if there is none."""
    for part in vocab.PART_SUFFIXES:
        if key.endswith(part) and len(key) - len(part) >= 2:
            whole = _resolve(key[: -len(part)])
            if whole is not None:
                return whole
    # The longest known tail of at least two letters: "김치주머니소새우" → 새우.
    for start in range(1, len(key) - 1):
        found = _resolve(key[start:])
        if found is not None:
            return found
    return None


@lru_cache(maxsize=65536)
def canonical_name(name: str) -> str:
    """The canonical ingredient for a written name ("" when nothing usable is left)."""
    text = unicodedata.normalize("NFC", name).lower()
    text = _PARENS.sub(" ", text)
    # An unclosed "(" or "[" opens a note or an amount cut off in the list ("소고기(살치살"): it ends the name.
    text = _UNCLOSED.sub("", text)
    words = [w for w in _SPACES.split(_JUNK.sub(" ", text)) if w]
    kept = [w for w in words if w not in vocab.PREP_WORDS] or words
    key = "".join(kept)
    if all(w in vocab.COLOUR_WORDS for w in kept) or key in vocab.LABEL_WORDS:
        return ""
    stripped = _strip_prep(key)
    found = _resolve(key) or _resolve(stripped)
    if found is None and len(kept) > 1:
        # Words in front of a known last word name a section or a kind ("두부강된장 참기름", "김치주머니 소 새우").
        last = kept[-1]
        found = _resolve(last) or _resolve(_strip_prep(last))
    return found or _glued(stripped) or stripped


def info(canonical: str) -> IngredientInfo:
    """Category and staple flag of a canonical ingredient."""
    is_staple = canonical in vocab.STAPLES
    if is_staple:
        category = "staple"
    elif canonical in vocab.SEASONINGS or canonical.endswith(vocab.SEASONING_SUFFIXES):
        category = "seasoning"
    else:
        category = _categories().get(canonical) or next(
            (cat for suffix, cat in vocab.CATEGORY_SUFFIXES if canonical.endswith(suffix)), "other"
        )
    return IngredientInfo(canonical, category, is_staple)


_CORE_SECTION = re.compile(r"주재료|필수")
_SUB_SECTION = re.compile(r"부재료|추가|선택")
_GARNISH_SECTION = re.compile(r"고명|장식|곁들|가니쉬|토핑")


def role_for(section: str, ingredient: IngredientInfo) -> str:
    """main/sub/seasoning/garnish from the section an item sits in and what it is."""
    if not ingredient.blocks:
        return ROLE_SEASONING
    if _GARNISH_SECTION.search(section):
        return ROLE_GARNISH
    if _CORE_SECTION.search(section):
        return ROLE_MAIN
    if _SUB_SECTION.search(section):
        return ROLE_SUB
    return ROLE_MAIN
