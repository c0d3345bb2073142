"""When two rows are one recipe (fingerprint) and when two titles are one dish (dish key)."""

from __future__ import annotations

import msgspec

from f2f_cli.recipes.formats import parse_data
from f2f_cli.recipes.identity import dish_key, fingerprint


def test_dish_key_ignores_spacing_case_and_punctuation() -> None:
    assert dish_key("토마토소스 달걀볶음") == dish_key("토마토소스달걀볶음") == dish_key(" 토마토소스-달걀볶음! ")
    assert dish_key("Caesar Salad") == dish_key("caesar salad")
    assert dish_key("가지볶음") != dish_key("가지구이")


def test_fingerprint_is_title_and_ingredient_set() -> None:
    base = fingerprint("가지 볶음", ["가지", "생강", "고추장"])
    assert fingerprint("가지볶음", ["고추장", "가지", "생강", "가지"]) == base  # order and repeats do not count
    assert fingerprint("가지볶음", ["가지", "생강"]) != base  # one ingredient less: another recipe
    assert fingerprint("가지구이", ["가지", "생강", "고추장"]) != base


def test_record_identity_ignores_who_published_it() -> None:
    row = {"id": "727", "title": "토마토소스 달걀볶음", "ingredients": ["토마토 100g", "달걀 2개", "대파 10g"],
           "steps": ["1. 볶는다."]}
    official = parse_data([row], "simple", source="cookrcp01").records[0]
    imported = parse_data([{**row, "id": "x-1"}], "simple").records[0]
    assert (official.source, imported.source) == ("cookrcp01", "simple")
    assert official.fingerprint() == imported.fingerprint()
    assert official.content_hash() == imported.content_hash()  # the same content is "unchanged" on merge
    changed = msgspec.structs.replace(imported, steps=("1. 굽는다.",))
    assert changed.content_hash() != imported.content_hash() and changed.fingerprint() == imported.fingerprint()
