"""The ingredient parser and normaliser on real COOKRCP01 strings."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from f2f_cli.recipes.normalize import canonical_name, info, role_for
from f2f_cli.recipes.parse import ParsedItem, parse_ingredient_lines


def names(lines: list[str], title: str = "") -> list[tuple[str, str]]:
    return [(i.name, i.amount) for i in parse_ingredient_lines(lines, title)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("칵테일새우 20g(5마리)", [("칵테일새우", "20g(5마리)")]),
        ("물 300ml(1½컵)", [("물", "300ml(1½컵)")]),
        ("소금 약간", [("소금", "약간")]),
        ("소금적당량", [("소금", "적당량")]),
        ("연어(150g)", [("연어", "150g")]),
        ("실곤약 약 440g", [("실곤약", "약 440g")]),
        ("파프리카(50g),당근(30g)", [("파프리카", "50g"), ("당근", "30g")]),
        ("무염버터 5g(1작은술)고명시금치 10g(3줄기)", [("무염버터", "5g(1작은술)"), ("시금치", "10g(3줄기)")]),
        ("레몬즙 15g소스 : 칠리소스 30g", [("레몬즙", "15g"), ("칠리소스", "30g")]),
        ("●주재료 : 마늘종 60g(10개)", [("마늘종", "60g(10개)")]),
        ("2인분 기준<br>• [가정 간편식 재료] 배추(200g)", [("배추", "200g")]),
        (
            "날콩가루 7g(1⅓작은술)·양념장 : 저염간장 3g(2/3작은술)",
            [("날콩가루", "7g(1⅓작은술)"), ("저염간장", "3g(2/3작은술)")],
        ),
        ("다진 마늘 2g(1/2쪽)", [("다진 마늘", "2g(1/2쪽)")]),
        ("250g)", []),
        ("마늘", [("마늘", "")]),
    ],
)
def test_real_strings(line: str, expected: list[tuple[str, str]]) -> None:
    assert names([line]) == expected


def test_dish_name_glued_to_first_item_is_dropped() -> None:
    lines = ["새우두부계란찜연두부 75g(3/4모)", "칵테일새우 20g(5마리)"]
    assert names(lines, "새우 두부 계란찜")[0] == ("연두부", "75g(3/4모)")
    assert names(["북엇국북어채 25g(15개)"], "사과 새우 북엇국") == [("북어채", "25g(15개)")]
    # A short title word is never cut from a longer ingredient name.
    assert names(["마늘종 50g"], "감자 마늘") == [("마늘종", "50g")]


def test_title_on_its_own_line_as_in_the_official_api() -> None:
    assert names(["새우두부계란찜", "연두부 75g(3/4모), 칵테일새우 20g(5마리)"], "새우 두부 계란찜") == [
        ("연두부", "75g(3/4모)"), ("칵테일새우", "20g(5마리)"),
    ]


def test_sections_follow_headers() -> None:
    items = parse_ingredient_lines(["●주재료 : 마늘종 60g", "연어 200g●소스 : 검정깨 5g", "●장식 : 대추 5g(1개)"])
    assert [(i.section, i.name) for i in items] == [("주재료", "마늘종"), ("주재료", "연어"), ("소스", "검정깨"),
                                                   ("장식", "대추")]


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("계란", "달걀"), ("달걀물", "달걀"), ("파", "대파"), ("대파", "대파"), ("칵테일새우", "새우"),
        ("다진 마늘", "마늘"), ("다진마늘", "마늘"), ("마늘다진것", "마늘"), ("저염간장", "간장"),
        ("쇠고기", "소고기"), ("소고기(치맛살)", "소고기"), ("후춧가루", "후추"), ("빨강 파프리카", "파프리카"),
        ("마늘종", "마늘종"), ("양파즙", "양파"), ("두부", "두부"), ("연두부", "연두부"),
    ],
)
def test_canonical_names_are_whole_name_lookups(written: str, canonical: str) -> None:
    assert canonical_name(written) == canonical


def test_staples_and_seasonings_never_block() -> None:
    for name in ("소금", "물", "설탕", "간장", "식용유"):
        assert info(name).is_staple and not info(name).blocks
    for name in ("고춧가루", "굴소스", "허니머스터드소스"):
        assert info(name).is_seasoning and not info(name).blocks
    assert info("두부").blocks and info("마늘종").blocks


def test_roles_from_sections() -> None:
    assert role_for("", info("두부")) == "main"
    assert role_for("부재료", info("당근")) == "sub"
    assert role_for("고명", info("시금치")) == "garnish"
    assert role_for("양념장", info("고춧가루")) == "seasoning"
    assert role_for("주재료", info("소금")) == "seasoning"


@given(st.lists(st.text(max_size=80), max_size=6), st.text(max_size=20))
def test_parser_never_crashes_and_keeps_nfc(lines: list[str], title: str) -> None:
    items = parse_ingredient_lines(lines, title)
    for item in items:
        assert isinstance(item, ParsedItem)
        assert item.name
        assert unicodedata.is_normalized("NFC", item.name)
        assert unicodedata.is_normalized("NFC", item.amount)
        canonical_name(item.name)  # never raises either


KOREANISH = st.text(alphabet=st.sampled_from(list("가나다마늘두부계란소금약간적당량 0123456789g()[]:●•,·-/½컵개ㄱㅎ")),
                    max_size=60)


@given(st.lists(KOREANISH, max_size=8), KOREANISH)
def test_parser_on_korean_looking_noise(lines: list[str], title: str) -> None:
    for item in parse_ingredient_lines(lines, title):
        assert item.name.strip() == item.name and item.name
        assert unicodedata.is_normalized("NFC", item.name)


def test_decomposed_input_comes_out_composed() -> None:
    nfd = unicodedata.normalize("NFD", "두부 300g")
    assert names([nfd]) == [("두부", "300g")]
