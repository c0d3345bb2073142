"""COOKRCP01 and simple readers, and the built-in catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from f2f_cli.errors import InvalidInput
from f2f_cli.recipes.builtin import builtin_catalog
from f2f_cli.recipes.formats import parse_data, parse_file
from f2f_cli.recipes.normalize import CORE_ROLES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_simple_file() -> None:
    parsed = parse_file(FIXTURES / "cookrcp01_simple.json")
    assert parsed.format == "simple"
    assert parsed.rows == len(parsed.records) == 12
    first = parsed.records[0]
    assert (first.source, first.source_id, first.title) == ("simple", "28", "새우 두부 계란찜")
    assert [i.ingredient for i in first.items][:3] == ["연두부", "새우", "달걀"]
    assert first.items[1].amount == "20g(5마리)" and first.items[1].name == "칵테일새우"
    assert first.steps[0].endswith("건진다.")  # the stray ".a" image marker is gone
    assert first.category and first.method


def test_official_response_shape() -> None:
    parsed = parse_file(FIXTURES / "cookrcp01_api.json", "cookrcp01")
    assert parsed.format == "cookrcp01"
    assert len(parsed.records) == 4
    assert [(s.row, s.source_id, s.reason) for s in parsed.skipped] == [(5, "9999", "missing title")]
    rec = parsed.records[0]
    assert (rec.source, rec.source_id, rec.category, rec.method, rec.kcal) == ("cookrcp01", "28", "반찬", "찌기", 220.0)
    assert rec.items[0].name == "연두부"  # the title line of RCP_PARTS_DTLS is not an ingredient
    assert rec.image_url and rec.image_url.startswith("http")


def test_format_is_detected() -> None:
    assert parse_file(FIXTURES / "cookrcp01_api.json").format == "cookrcp01"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"COOKRCP01": {"RESULT": {"CODE": "INFO-200", "MSG": "해당하는 데이터가 없습니다."}}}', "INFO-200"),
        ('{"something": 1}', "the file is an object with keys something; expected"),
        ('"recipes"', "the file is a string; expected"),
    ],
)
def test_malformed_files_are_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        parse_file(path)
    assert message in info.value.message and "\n" not in info.value.message
    if "expected" in message:  # a file of no known shape: all three are named
        for shape in ('{"COOKRCP01": {"row": [...]}}', '[{"id", "title", "ingredients", "steps", "image"}, ...]',
                      '{"recipes": [that list]}'):
            assert shape in info.value.message


def test_cookrcp01_flag_on_a_simple_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"the file is a list \(--format cookrcp01\); expected a COOKRCP01 response"):
        parse_file(FIXTURES / "cookrcp01_simple.json", "cookrcp01")


def test_bad_rows_are_skipped_with_reasons() -> None:
    parsed = parse_data([
        {"id": 1, "title": "두부조림", "ingredients": ["두부 300g", "간장 2큰술"]},
        {"id": 1, "title": "또 두부조림", "ingredients": ["두부 300g"]},
        {"id": 2, "title": "", "ingredients": ["두부"]},
        {"id": 3, "title": "빈 요리", "ingredients": []},
        {"id": 4, "title": "이상한 요리", "ingredients": "두부"},
        "not an object",
        {"title": "번호 없음", "ingredients": ["두부"]},
    ])
    assert len(parsed.records) == 1
    assert [s.reason for s in parsed.skipped] == [
        "duplicate id in this file (first one kept)", "missing title", "no ingredients could be read",
        "'ingredients' must be a list of strings", "row is not an object", "missing id",
    ]


def test_builtin_catalog_has_500_usable_recipes() -> None:
    parsed = builtin_catalog()
    assert len(parsed.records) >= 500 and not parsed.skipped
    assert all(r.source == "cookrcp01" for r in parsed.records)
    assert all(len({i.ingredient for i in r.items if i.role in CORE_ROLES}) >= 2 for r in parsed.records)
    assert {r.category for r in parsed.records} >= {"반찬", "국&찌개", "밥", "일품", "후식"}


def test_content_hash_is_stable() -> None:
    data = json.loads((FIXTURES / "cookrcp01_simple.json").read_text(encoding="utf-8"))
    a = parse_data(data).records[0].content_hash()
    b = parse_data(data).records[0].content_hash()
    data[0]["title"] = "다른 이름"
    assert a == b != parse_data(data).records[0].content_hash()
