"""The session model shared by every store, and ingredient-name rules."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime

import msgspec

from f2f_cli.clock import utcnow
from f2f_cli.errors import InvalidIngredient

_SPACES = re.compile(r"\s+")
# The default of F2F_MAX_INGREDIENT_LENGTH, for stores built without settings.
DEFAULT_MAX_INGREDIENT_LENGTH = 50


class Ingredient(msgspec.Struct, frozen=True):
    name: str
    added_at: datetime


class Session(msgspec.Struct, frozen=True):
    """A fridge as one store holds it at one version.

    ``deleted`` is only ever true on a tombstone copy moving between stores;
    stores never hand a deleted session to the API.
    """

    session_id: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    version: int
    ingredients: tuple[Ingredient, ...] = ()
    deleted: bool = False

    @property
    def names(self) -> frozenset[str]:
        return frozenset(i.name for i in self.ingredients)

    def ttl_seconds(self, now: datetime | None = None) -> float:
        return (self.expires_at - (now or utcnow())).total_seconds()


class Mutation(msgspec.Struct, frozen=True):
    """The state after a write and the names the write actually changed."""

    session: Session
    changed: tuple[str, ...]


def sort_ingredients(items: Iterable[Ingredient]) -> tuple[Ingredient, ...]:
    """The one order every store returns: oldest first, then by name."""
    return tuple(sorted(items, key=lambda i: (i.added_at, i.name)))


# Invisible characters that are not format characters (those are refused outright): Unicode's
# default-ignorable code points of other categories (the combining grapheme joiner, the Hangul fillers,
# the Khmer inherent vowels, the Mongolian and the general variation selectors). They are removed, so
# "두부" with U+FE0F, U+E0100 or U+034F appended is the same ingredient as "두부".
_IGNORABLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f"
                        "\uffa0\U000e0100-\U000e01ef]")
# The zero-width joiner and non-joiner (format characters): they shape what is around them (emoji
# sequences such as 👩‍🍳, Indic and Persian spellings), so one between two visible characters is kept; one
# anywhere else joins nothing and is removed like the ignorables above.
JOINERS = "\u200c\u200d"
# Blank symbols that render as a space without being whitespace: treated as whitespace.
_BLANKS = re.compile("[\u2800]")
_VISIBLE = ("L", "N", "P", "S")


def _shows(ch: str) -> bool:
    return bool(ch) and unicodedata.category(ch)[0] in "LNPSM"


def keep_inner_joiners(text: str) -> str:
    """``text`` with every ZWJ/ZWNJ removed that does not stand between two visible characters."""
    if "\u200c" not in text and "\u200d" not in text:
        return text
    out = []
    for i, ch in enumerate(text):
        if ch in JOINERS and not (i > 0 and _shows(text[i - 1]) and _shows(text[i + 1:i + 2])):
            continue
        out.append(ch)
    return "".join(out)


def is_dropped_before_checks(ch: str) -> bool:
    """Whether ``normalize_ingredient`` removes ``ch`` or treats it as whitespace (so it never leads a name)."""
    return bool(_IGNORABLE.match(ch) or _BLANKS.match(ch))


def normalize_ingredient(raw: object, max_length: int) -> str:
    """NFC, invisible characters removed (a ZWJ/ZWNJ only when it joins nothing), trimmed, inner whitespace
    collapsed; reject empty, control, invisible-only or over-long names."""
    if not isinstance(raw, str):
        raise InvalidIngredient("each ingredient must be a string")
    text = unicodedata.normalize("NFC", raw)
    if not text.isascii():
        text = keep_inner_joiners(_BLANKS.sub(" ", _IGNORABLE.sub("", text)))
    name = _SPACES.sub(" ", text).strip()
    if not name:
        raise InvalidIngredient("ingredient names must not be empty")
    if len(name) > max_length:
        raise InvalidIngredient(f"ingredient names are limited to {max_length} characters")
    if not name.isascii():
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") and c not in JOINERS for c in name):
            raise InvalidIngredient("ingredient names must not contain control or unassigned characters")
        if unicodedata.category(name[0])[0] == "M" or not any(
            unicodedata.category(c)[0] in _VISIBLE for c in name
        ):
            raise InvalidIngredient("ingredient names need a visible character, and may not start with a "
                                    "combining mark")
    elif not name.isprintable():
        raise InvalidIngredient("ingredient names must not contain control or unassigned characters")
    return name


def normalize_ingredients(raw: Iterable[object], max_length: int) -> tuple[str, ...]:
    """Normalised names, first occurrence kept, order preserved."""
    seen: dict[str, None] = {}
    for item in raw:
        seen.setdefault(normalize_ingredient(item, max_length), None)
    return tuple(seen)
