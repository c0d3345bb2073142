"""What the vocabulary does not fold yet: the names a recipe file uses that it keeps as written.

The normaliser folds preparations, sizes, parts and known spellings into a
listed ingredient; a name it cannot place is kept as written and becomes an
ingredient of its own, which a fridge then has to spell the same way. This
lists those names with how often and how they were written, and, as a hint
for a missing spelling, the listed names one letter away ("브로컬리" →
브로콜리). The hint is never applied by itself: 마늘종 is one letter from 마늘.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

import msgspec

from f2f_cli.recipes.formats import RecipeRecord
from f2f_cli.recipes.normalize import info, is_known, known_names


class Unfolded(msgspec.Struct, frozen=True):
    name: str  # the name kept as written (after preparation words were removed)
    recipes: int  # recipes of the file that use it
    category: str  # from its ending when it has one ("…버섯" → mushroom), else "other"
    written: tuple[str, ...]  # how the file wrote it
    near: tuple[str, ...]  # listed names one letter away: a missing spelling, perhaps


def _one_letter_apart(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def near_names(name: str, names: Iterable[str]) -> tuple[str, ...]:
    """Listed names one letter from ``name``; names of three letters or more only (short ones are near everything)."""
    if len(name) < 3:
        return ()
    return tuple(sorted(n for n in names if len(n) >= 3 and _one_letter_apart(name, n)))


def unfolded(records: Iterable[RecipeRecord]) -> list[Unfolded]:
    """Every canonical name the records use that the vocabulary does not list, most used first."""
    uses: Counter[str] = Counter()
    written: dict[str, set[str]] = defaultdict(set)
    for record in records:
        names = {item.ingredient for item in record.items if not is_known(item.ingredient)}
        uses.update(names)
        for item in record.items:
            if item.ingredient in names:
                written[item.ingredient].add(item.name)
    known = known_names()
    return [
        Unfolded(name, count, info(name).category, tuple(sorted(written[name])), near_names(name, known))
        for name, count in sorted(uses.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
