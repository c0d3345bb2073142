"""When two catalog rows are the same recipe, and when two titles are the same dish.

The built-in catalog and an import of the public COOKRCP01 data describe the
same recipes under different (source, id) pairs, and the public data itself
lists a few recipes twice under different ids. Two keys tell them apart:

* :func:`dish_key` — the title with case, spacing and punctuation removed.
  A recommendation list shows each dish once ("토마토소스 달걀볶음" and
  "토마토소스달걀볶음" are one dish).
* :func:`fingerprint` — the dish key plus the set of canonical ingredients.
  Import merges a row into an existing recipe with the same fingerprint, and
  ``f2f recipes dedupe`` removes copies that share one. Amounts, steps and
  images are left out on purpose: the official response and the simple list
  word them differently for the same recipe.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

_NOT_WORD = re.compile(r"[\W_]+")


def dish_key(title: str) -> str:
    """The title reduced to letters and digits, NFC, lower case."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFC", title).lower())


def fingerprint(title: str, ingredients: Iterable[str]) -> str:
    """A stable hash of the dish key and the set of canonical ingredient names."""
    names = sorted({name for name in ingredients if name})
    text = dish_key(title) + "\x1f" + "\x1e".join(names)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
