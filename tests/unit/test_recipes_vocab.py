"""The vocabulary checked against the public sample: preparations, glued names, parts, categories, spellings."""

from __future__ import annotations

import pytest

from f2f_cli.recipes.formats import parse_data
from f2f_cli.recipes.index import IngredientRow, build_index
from f2f_cli.recipes.normalize import CORE_ROLES, alias_table, canonical_name, info, known_names
from f2f_cli.recipes.parse import parse_ingredient_lines
from f2f_cli.recipes.quality import COMMON_SYNONYMS, NOISE_POOL
from f2f_cli.recipes.unfolded import near_names


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        # Preparations fold into their ingredient (they used to autocomplete as ingredients of their own).
        ("양파채친것", "양파"), ("당근갈은것", "당근"), ("양파즙", "양파"), ("대파채친것", "대파"),
        ("쇠고기갈은것", "소고기"), ("미역마른것", "미역"), ("실파송송썬것", "쪽파"), ("어슷 썬 풋고추", "고추"),
        # A section or sub-dish name glued in front of the item.
        ("두부강된장참기름", "참기름"), ("두부강된장 참기름", "참기름"), ("김치주머니 소 새우", "새우"),
        ("버섯볶음새송이버섯", "새송이버섯"), ("새알심 찹쌀가루", "찹쌀가루"), ("쇠고기양념장생강즙", "생강"),
        # A part of a known ingredient.
        ("돼지고기등심", "돼지고기"), ("표고버섯기둥", "표고버섯"), ("오징어몸통", "오징어"), ("바지락살", "바지락"),
        # Spellings from the sample.
        ("쭈꾸미", "주꾸미"), ("브러컬리", "브로콜리"), ("무우", "무"), ("우민찌", "소고기"), ("고추가루", "고춧가루"),
    ],
)
def test_sample_names(written: str, canonical: str) -> None:
    assert canonical_name(written) == canonical


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("마늘종", "마늘종"),  # a vegetable of its own, never 마늘
        ("고추냉이", "와사비"),  # not 냉이
        ("땅콩버터", "땅콩버터"),  # not 버터
        ("메밀가루", "메밀가루"), ("호밀가루", "호밀가루"),  # not 밀가루
        ("생강", "생강"), ("생크림", "생크림"),  # "생" is a prefix word only when what is left is an ingredient
        ("양파껍질", "양파껍질"),  # no known tail: kept as written
        ("새우젓", "새우젓"), ("고추장", "고추장"),
    ],
)
def test_no_substring_matching(written: str, canonical: str) -> None:
    assert canonical_name(written) == canonical


def test_common_vegetables_have_a_category() -> None:
    for name in ("양파", "마늘", "대파", "당근", "감자", "애호박", "오이", "무", "배추", "시금치", "부추", "깻잎"):
        assert info(name).category == "vegetable", name
    assert info("새송이버섯").category == "mushroom"
    assert info("참기름").is_staple and not info("참기름").blocks


def test_glued_header_item_is_read_as_the_ingredient() -> None:
    items = parse_ingredient_lines(["참깨 3g 두부강된장 참기름 10g"], "봄주먹밥")
    assert [(canonical_name(i.name), i.amount) for i in items] == [("참깨", "3g"), ("참기름", "10g")]


def test_vocabulary_tables_are_consistent() -> None:
    pairs = alias_table()
    aliases = [a for a, _, _ in pairs]
    assert len(aliases) == len(set(aliases)), "an alias names two ingredients"
    for alias, target, _kind in pairs:
        assert alias != target
        # The canonical name an alias points to is itself canonical: no chains.
        assert canonical_name(target) == target, (alias, target)
    # The recall cases only use spellings and noise this vocabulary reads as intended.
    for canonical, spellings in COMMON_SYNONYMS.items():
        assert any(canonical_name(s) == canonical for s in spellings), canonical
    assert all(canonical_name(n) == n for n in NOISE_POOL)


def test_list_fragments_are_not_ingredients() -> None:
    lines = ["파프리카(빨강, 노랑 각 10g)", "청홍고추 각각 15g노란 파프리카 30g", "흰색) 각 25g씩"]
    items = parse_ingredient_lines(lines)
    assert [(canonical_name(i.name), i.amount) for i in items] == [
        ("파프리카", ""), ("", "10g"), ("고추", "15g"), ("파프리카", "30g"), ("", "25g씩")]
    # An empty canonical name is how build_record knows to drop the item.
    assert canonical_name("노란색") == canonical_name("빨강") == ""
    assert canonical_name("재료") == canonical_name("주 재료") == ""  # a section label read as an item


# Names as people write them on a list (issue 29): preparations, sizes, parts and misspellings fold.
WRITTEN_ON_A_LIST = [
    ("두부작은것", "두부"), ("두부 작은 것", "두부"), ("당근다진것", "당근"), ("어슷 썬 풋고추", "고추"),
    ("데친 미나리", "미나리"), ("불린 당면", "당면"), ("삶은 달걀", "달걀"), ("채썬 양파", "양파"),
    ("양파 큰것", "양파"), ("표고버섯 밑동", "표고버섯"), ("저염진간장", "간장"), ("브로컬리", "브로콜리"),
    ("브로꼴리", "브로콜리"), ("청량고추", "청양고추"), ("소세지", "소시지"), ("굵은 면발 라면", "라면"),
    ("쇠고기살코기", "소고기"), ("다진소고기", "소고기"), ("소고기(살치살", "소고기"),
    ("무청시래기 불린 것", "무청시래기"),
    ("파프리카(빨강", "파프리카"), ("숙주나물", "숙주"), ("가다랑어포", "가쓰오부시"), ("날콩가루", "콩가루"),
    ("두릎", "두릅"), ("주먹밥데친꼬막살", "꼬막"), ("토마토페스트", "토마토페이스트"),
]


@pytest.mark.parametrize(("written", "canonical"), WRITTEN_ON_A_LIST)
def test_names_written_on_a_list_fold(written: str, canonical: str) -> None:
    assert canonical_name(written) == canonical


def test_the_importer_and_the_fridge_fold_alike() -> None:
    # The importer reads a recipe written one way; a fridge written the other way finds it, item for item.
    lines = [f"{written} 10g" for written, _ in WRITTEN_ON_A_LIST]
    record = parse_data([{"id": "1", "title": "모둠", "ingredients": lines}]).records[0]
    assert [i.ingredient for i in record.items] == [canonical for _, canonical in WRITTEN_ON_A_LIST]
    core = sorted({i.ingredient for i in record.items if i.role in CORE_ROLES})
    index = build_index(stamp="t", recipes=[(1, "모둠", None)], core_pairs=[(1, n) for n in core],
                        ingredients=[IngredientRow(n, "other", False) for n in core])
    fridge = [written for written, _ in WRITTEN_ON_A_LIST]
    result = index.recommend(fridge)
    assert result.items[0].missing == () and result.items[0].matched_count == len(core)
    assert set(result.unknown) == {"저염진간장"}  # a staple: never part of the match


def test_mashed_garlic_stem_is_still_not_garlic() -> None:
    assert canonical_name("다진 마늘종") == "마늘종" and canonical_name("마늘종 작은것") == "마늘종"
    assert canonical_name("다진 마늘") == "마늘"


def test_near_names_are_a_hint_for_long_names_only() -> None:
    assert "브로콜리" in near_names("브로컬리", known_names())
    assert near_names("마늘", known_names()) == ()  # short names are near everything
    assert near_names("아스파라거", ["아스파라거스"]) == ("아스파라거스",)
