"""``f2f recipes`` and ``f2f bench recommend`` through the real CLI on a fixture database."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from f2f_cli.cli.main import app
from f2f_cli.db.engine import create_engine_for
from tests.conftest import make_settings
from tests.integration.test_recipes_identity import make_copies

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def run(sqlite_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("F2F_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("F2F_REDIS_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    return invoke


def test_seed_then_again(run) -> None:  # type: ignore[no-untyped-def]
    first = run("recipes", "seed", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["inserted"] >= 500
    second = run("recipes", "seed")
    assert second.exit_code == 0 and "0 new, 0 updated" in second.stdout


def test_import_dry_run_and_real(run) -> None:  # type: ignore[no-untyped-def]
    path = str(FIXTURES / "cookrcp01_api.json")
    dry = run("recipes", "import", path, "--format", "cookrcp01", "--dry-run", "--json")
    assert dry.exit_code == 0
    assert json.loads(dry.stdout)["inserted"] == 4
    assert json.loads(run("recipes", "list", "--json").stdout)["total"] == 0
    real = run("recipes", "import", path)
    assert real.exit_code == 0 and "4 new" in real.stdout and "missing title" in real.stdout
    assert json.loads(run("recipes", "list", "--json").stdout)["total"] == 4


def test_malformed_file_is_one_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text("{oops", encoding="utf-8")
    result = run("recipes", "import", str(bad))
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert run("recipes", "import", str(FIXTURES / "cookrcp01_simple.json"), "--format", "xml").exit_code == 2
    missing = run("recipes", "import", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_list_show_recommend_ingredients(run) -> None:  # type: ignore[no-untyped-def]
    assert run("recipes", "import", str(FIXTURES / "cookrcp01_simple.json")).exit_code == 0
    listed = json.loads(run("recipes", "list", "--search", "두부", "--json").stdout)
    assert listed["total"] >= 1
    recipe_id = next(i["id"] for i in listed["items"] if i["title"] == "새우 두부 계란찜")
    shown = run("recipes", "show", str(recipe_id))
    assert shown.exit_code == 0 and "칵테일새우" in shown.stdout
    detail = json.loads(run("recipes", "show", str(recipe_id), "--json").stdout)
    assert detail["ingredients"][1]["ingredient"] == "새우"
    assert run("recipes", "show", "999999").exit_code == 1

    rec = json.loads(run("recipes", "recommend", "-i", "연두부,계란,생크림,버터", "-i", "칵테일새우", "--json").stdout)
    assert rec["items"][0]["title"] == "새우 두부 계란찜" and rec["items"][0]["missing_count"] == 0
    assert 0 < rec["items"][0]["fridge_share"] <= 1 and rec["items"][0]["score"] == 1
    table = run("recipes", "recommend", "-i", "두부,계란,대파,우주먼지")
    assert table.exit_code == 0 and "우주먼지" in table.stdout and "uses" in table.stdout
    assert run("recipes", "recommend", "-i", " , ").exit_code == 2

    found = json.loads(run("recipes", "ingredients", "--search", "ㅅㅇ", "--json").stdout)
    assert found[0]["name"] == "새우"
    assert run("recipes", "ingredients").exit_code == 0


def test_recommend_on_an_empty_catalog_says_what_to_run(run) -> None:  # type: ignore[no-untyped-def]
    empty = run("recipes", "recommend", "-i", "두부,계란,대파")
    assert empty.exit_code == 1
    assert "catalog is empty" in empty.stderr and "f2f recipes seed" in empty.stderr
    as_json = run("recipes", "recommend", "-i", "두부", "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["catalog_size"] == 0
    assert run("recipes", "import", str(FIXTURES / "cookrcp01_simple.json")).exit_code == 0
    nothing = run("recipes", "recommend", "-i", "우주먼지")
    assert nothing.exit_code == 0 and "no recipe uses" in nothing.stdout and "seed" not in nothing.stderr


def test_import_reports_what_it_merged(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("recipes", "import", str(FIXTURES / "cookrcp01_simple.json")).exit_code == 0
    rows = json.loads((FIXTURES / "cookrcp01_simple.json").read_text(encoding="utf-8"))
    other = tmp_path / "other.json"  # the same recipes published under other ids
    other.write_text(json.dumps([{**r, "id": f"x{r['id']}"} for r in rows], ensure_ascii=False), encoding="utf-8")
    result = run("recipes", "import", str(other))
    assert result.exit_code == 0 and "0 new" in result.stdout and f"{len(rows)} merged" in result.stdout
    assert "simple:x28" in result.stdout and "fingerprint" in result.stdout
    report = json.loads(run("recipes", "import", str(other), "--json").stdout)
    assert report["inserted"] == 0 and {m["by"] for m in report["merged"]} == {"known id"}
    assert json.loads(run("recipes", "list", "--json").stdout)["total"] == len(rows)


def test_dedupe_dry_run_asks_and_json(run, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    assert run("recipes", "dedupe").stdout.startswith("no copies among 0 recipes")
    assert run("recipes", "import", str(FIXTURES / "cookrcp01_simple.json")).exit_code == 0

    async def copy() -> int:
        engine = create_engine_for(make_settings(F2F_DATABASE_URL=sqlite_url))
        try:
            return await make_copies(engine, "old")
        finally:
            await engine.dispose()

    copies = asyncio.run(copy())
    dry = run("recipes", "dedupe", "--dry-run")
    assert dry.exit_code == 0 and f"would remove {copies} copies" in dry.stdout and "old:28" in dry.stdout
    declined = CliRunner().invoke(app, ["recipes", "dedupe"], input="n\n")
    assert declined.exit_code == 1 and "nothing changed" in declined.stderr
    assert json.loads(run("recipes", "list", "--json").stdout)["total"] == 2 * copies
    done = json.loads(run("recipes", "dedupe", "--yes", "--json").stdout)
    assert done["removed"] == copies and not done["dry_run"]
    assert json.loads(run("recipes", "list", "--json").stdout)["total"] == copies
    assert json.loads(run("recipes", "dedupe", "--json").stdout)["removed"] == 0


def test_readme_simple_format_example_imports(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    example = re.findall(r"```json\n(.*?)```", readme.split("## Recipes", 1)[1], flags=re.S)[0]
    path = tmp_path / "example.json"
    path.write_text(example, encoding="utf-8")
    report = json.loads(run("recipes", "import", str(path), "--format", "simple", "--json").stdout)
    assert (report["inserted"], report["skipped"]) == (1, [])
    recipe_id = json.loads(run("recipes", "list", "--json").stdout)["items"][0]["id"]
    detail = json.loads(run("recipes", "show", str(recipe_id), "--json").stdout)
    assert [(i["ingredient"], i["role"]) for i in detail["ingredients"]] == [
        ("연두부", "main"), ("새우", "main"), ("달걀", "main"), ("시금치", "garnish")]
    assert detail["kcal"] == 220 and detail["category"] == "반찬" and len(detail["steps"]) == 2
    long_source = run("recipes", "import", str(path), "--source", "x" * 33)
    assert long_source.exit_code == 2 and "--source" in long_source.stderr


def test_recipe_text_is_printed_literally(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "markup.json"
    path.write_text(json.dumps([{"id": "m1", "title": "[bold red]두부[/] 조림", "ingredients": ["[red]두부[/] 300g"],
                                 "steps": ["[link=x]볶는다[/link]"]}], ensure_ascii=False), encoding="utf-8")
    assert run("recipes", "import", str(path)).exit_code == 0
    recipe_id = json.loads(run("recipes", "list", "--json").stdout)["items"][0]["id"]
    shown = run("recipes", "show", str(recipe_id))
    assert shown.exit_code == 0 and "[bold red]두부[/] 조림" in shown.stdout and "[link=x]볶는다[/link]" in shown.stdout
    listed = run("recipes", "list")
    assert "[bold red]두부[/]" in listed.stdout


def test_missing_schema_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("F2F_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(app, ["recipes", "list"])
    assert result.exit_code == 1 and "f2f migrate db upgrade" in result.stderr


def test_bench_recommend_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("F2F_REDIS_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "recommend", "--recipes", "2000", "--queries", "20",
                                 "--reference-queries", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recipes"] == 2000 and data["reference_agrees"] is True and data["speedup"] > 0
    table = runner.invoke(app, ["bench", "recommend", "--recipes", "1000", "--queries", "5"])
    assert table.exit_code == 0 and "query p99" in table.stdout


@pytest.mark.redis
def test_bench_recommend_through_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_prefix: str) -> None:
    monkeypatch.setenv("F2F_REDIS_URL", redis_url)
    monkeypatch.setenv("F2F_REDIS_KEY_PREFIX", redis_prefix)
    result = CliRunner().invoke(app, ["bench", "recommend", "--recipes", "1000", "--queries", "5", "--redis",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["snapshot_store"] == "redis"


def test_vocab_lists_what_does_not_fold(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = ["다진 마늘 5g", "두부작은것 1모", "브로컬리 50g", "오렌지 주스 30g", "오렌지주스 10g", "브로컬리잎 5g"]
    sample = tmp_path / "list.json"
    sample.write_text(json.dumps([{"id": "1", "title": "시험", "ingredients": lines},
                                  {"id": "2", "title": "시험 둘", "ingredients": ["오렌지주스 10g"]}]),
                      encoding="utf-8")
    listed = run("recipes", "vocab", str(sample), "--json")
    assert listed.exit_code == 0, listed.output
    found = {u["name"]: u for u in json.loads(listed.stdout)}
    # Folded names (마늘, 두부, 브로콜리) are not listed; the rest is, with how it was written.
    assert set(found) == {"오렌지주스", "브로컬리잎"}
    assert found["오렌지주스"]["recipes"] == 2 and found["오렌지주스"]["written"] == ["오렌지 주스", "오렌지주스"]
    often = json.loads(run("recipes", "vocab", str(sample), "--min-recipes", "2", "--json").stdout)
    assert [u["name"] for u in often] == ["오렌지주스"]
    table = run("recipes", "vocab", str(sample))
    assert table.exit_code == 0 and "2 names not folded" in table.stdout
    assert run("recipes", "vocab", str(tmp_path / "missing.json")).exit_code == 2
    assert run("recipes", "vocab", "--min-recipes", "0").exit_code == 2
