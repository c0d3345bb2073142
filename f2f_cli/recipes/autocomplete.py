"""Ingredient autocomplete by prefix and by Korean initial consonants (ㄷㅂ → 두부)."""

from __future__ import annotations

import unicodedata

import msgspec

from f2f_cli.recipes.index import RecipeIndex

_CHOSEONG = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_CHOSEONG_SET = frozenset(_CHOSEONG)
_SYLLABLE_FIRST, _SYLLABLE_LAST = 0xAC00, 0xD7A3
_PER_CHOSEONG = 21 * 28


class Suggestion(msgspec.Struct, frozen=True):
    name: str
    category: str
    is_staple: bool
    recipes: int  # recipes that use it as a core ingredient
    matched: str  # the name or alias the query matched


def choseong(text: str) -> str:
    """Initial consonants of the Hangul syllables in ``text``; other characters unchanged."""
    out = []
    for ch in text:
        code = ord(ch)
        if _SYLLABLE_FIRST <= code <= _SYLLABLE_LAST:
            out.append(_CHOSEONG[(code - _SYLLABLE_FIRST) // _PER_CHOSEONG])
        else:
            out.append(ch)
    return "".join(out)


def matches(name: str, query: str) -> bool:
    """Prefix match where a bare initial consonant in the query stands for any syllable starting with it."""
    if len(query) > len(name):
        return False
    for q, n in zip(query, name, strict=False):
        if q == n:
            continue
        if q in _CHOSEONG_SET and choseong(n) == q:
            continue
        return False
    return True


def _normalize_query(query: str) -> str:
    return "".join(unicodedata.normalize("NFC", query).lower().split())


def suggest(index: RecipeIndex, query: str, *, limit: int = 20) -> list[Suggestion]:
    """Ingredients whose name or alias starts with ``query``: exact first, names before aliases, most used first."""
    q = _normalize_query(query)
    found: dict[int, tuple[tuple[int, int, int, int, str], str]] = {}
    candidates = [(name, col, 0) for col, name in enumerate(index.ingredient_names)]
    candidates += [(alias, index.column[target], 1) for alias, target in index.aliases.items()
                   if target in index.column]
    for text, col, via_alias in candidates:
        if not q or matches(text, q):
            # A name typed in full wins; then real names before aliases, then the most used.
            rank = (0 if text == q else 1, via_alias, -int(index.doc_freq[col]), len(text), text)
            if col not in found or rank < found[col][0]:
                found[col] = (rank, text)
    ordered = sorted(found.items(), key=lambda kv: kv[1][0])[:limit]
    return [
        Suggestion(
            name=index.ingredient_names[col],
            category=index.ingredient_categories[col],
            is_staple=index.ingredient_staple[col],
            recipes=int(index.doc_freq[col]),
            matched=text,
        )
        for col, (_, text) in ordered
    ]
