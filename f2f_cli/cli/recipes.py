"""``f2f recipes``: seed and import the catalog, browse it, ask for recommendations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from f2f_cli.cli.common import (
    DryRunOpt,
    JsonOpt,
    YesOpt,
    cli_errors,
    fail,
    load_settings,
    plural,
    print_json,
    stderr,
    stdout,
)
from f2f_cli.errors import EXIT_FAILURE, InvalidInput

if TYPE_CHECKING:  # the catalog, its index (numpy, scipy) and SQLAlchemy load when a command runs, not for --help
    from sqlalchemy.ext.asyncio import AsyncEngine

    from f2f_cli.recipes.catalog import DedupeReport, ImportReport
    from f2f_cli.recipes.formats import Format, ParsedFile

# f2f_cli.recipes.formats.SOURCE_SIMPLE, written out so the option's default needs no import
# (tests/cli/test_lazy_imports.py checks they agree).
SOURCE_SIMPLE = "simple"

T = TypeVar("T")

app = typer.Typer(
    help=(
        "The recipe catalog and recommendations.\n\n"
        "Examples:\n\n  f2f recipes seed\n\n  f2f recipes import COOKRCP01.json --format cookrcp01 --dry-run\n\n"
        "  f2f recipes recommend -i 두부,계란,대파\n\n  f2f recipes ingredients --search ㄷㅂ\n\n"
        "  f2f recipes dedupe --dry-run\n\n  f2f recipes vocab COOKRCP01.json"
    ),
    no_args_is_help=True,
    add_completion=False,
)


def _confirm(yes: bool, question: str) -> None:
    """Ask before a destructive step; no (or no terminal to answer) exits 1 with nothing changed.

    The same as ``sessions._confirm``; the CLI branch moves one copy into ``common`` (use it once merged).
    """
    if yes:
        return
    try:
        ok = typer.confirm(question, default=False, err=True)  # stderr: --json output stays clean
    except typer.Abort:
        ok = False
    if not ok:
        raise fail("aborted, nothing changed (use --yes to skip the question)", EXIT_FAILURE)


def _run(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from f2f_cli.backends import Backends

    settings = load_settings()

    async def main() -> T:
        async with Backends.open(settings) as backends:
            return await work(backends.engine)

    return asyncio.run(main())


def _import(parsed: ParsedFile, dry_run: bool, quiet: bool) -> ImportReport:
    from f2f_cli.recipes.catalog import import_parsed

    total = len(parsed.records)
    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr(), transient=True, disable=quiet or total < 500) as bar:
        task = bar.add_task("import", total=total)
        return _run(lambda engine: import_parsed(
            engine, parsed, dry_run=dry_run, progress=lambda done, _total: bar.update(task, completed=done)))


SHOWN_ROWS = 50


def _more(out: Console, total: int) -> None:
    if total > SHOWN_ROWS:
        out.print(f"… and {total - SHOWN_ROWS} more (use --json for all)")


def _render_report(report: ImportReport, what: str, json: bool) -> None:
    if json:
        print_json(report)
        return
    out = stdout()
    verb = "would change" if report.dry_run else "changed"
    out.print(Text(
        f"{what}: {plural(report.rows, 'row')}, {report.parsed} parsed — {report.inserted} new, {report.updated} "
        f"updated, {report.unchanged} unchanged, {len(report.skipped)} skipped, {len(report.merged)} merged into "
        f"recipes already in the catalog; "
        f"{plural(report.ingredients_changed, 'ingredient entry', 'ingredient entries')} {verb}; catalog version "
        f"{report.catalog_version}" + (" (dry run, nothing saved)" if report.dry_run else "")
    ))
    if report.merged:
        table = Table("id", "title", "recipe", "recognised by", title="merged rows (the same recipe, not added again)")
        for m in report.merged[:SHOWN_ROWS]:
            table.add_row(Text(f"{m.source}:{m.source_id}"), Text(m.title), str(m.recipe_id), m.by)
        out.print(table)
        _more(out, len(report.merged))
    if report.skipped:
        table = Table("row", "id", "reason", title="skipped rows")
        for s in report.skipped[:SHOWN_ROWS]:
            table.add_row(str(s.row), Text(s.source_id or "-"), Text(s.reason))
        out.print(table)
        _more(out, len(report.skipped))


@app.command("seed")
@cli_errors
def seed(dry_run: DryRunOpt = False, json: JsonOpt = False) -> None:
    """Load the built-in Korean catalog (987 recipes). Safe to run again: unchanged recipes are left alone.

    Recipes already imported from the public COOKRCP01 data are recognised and updated, not added twice.

    Examples:

      f2f recipes seed

      f2f recipes seed --dry-run --json
    """
    from f2f_cli.recipes.builtin import builtin_catalog

    _render_report(_import(builtin_catalog(), dry_run, json), "built-in catalog", json)


@app.command("import")
@cli_errors
def import_(
    file: Annotated[Path, typer.Argument(help="A COOKRCP01 API response or a simple JSON list.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="cookrcp01 or simple (default: detected from the file)."),
    ] = None,
    source: Annotated[str, typer.Option(help="Source name for simple-format rows without one.")] = SOURCE_SIMPLE,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
) -> None:
    """Import recipes; the same recipe is updated, never added twice. A malformed file changes nothing.

    A row is the same recipe when its (source, id) is in the catalog, or its title and ingredient set match one.

    So the public COOKRCP01 data updates the built-in catalog it came from; the report lists the rows merged.
    Rows that cannot be used are skipped and listed; when every row is skipped the command exits 1.

    The simple format's fields are described in the README.

    Examples:

      f2f recipes import recipes.json --dry-run

      f2f recipes import COOKRCP01.json --format cookrcp01 --source family --json
    """
    from f2f_cli.recipes.formats import FORMATS, SOURCE_LENGTH, parse_file

    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}")
    if not source.strip() or len(source.strip()) > SOURCE_LENGTH:
        raise InvalidInput(f"--source must be 1 to {SOURCE_LENGTH} characters")
    chosen: Format | None = "cookrcp01" if fmt == "cookrcp01" else "simple" if fmt == "simple" else None
    parsed = parse_file(file, chosen, source=source.strip())
    report = _import(parsed, dry_run, json)
    _render_report(report, str(file), json)
    if report.parsed == 0:
        raise fail(f"{file}: nothing to import, every row was skipped", EXIT_FAILURE)


@app.command("list")
@cli_errors
def list_(
    search: Annotated[str | None, typer.Option("--search", "-s", help="Title text or an ingredient name.")] = None,
    category: Annotated[str | None, typer.Option(help="Dish category, e.g. 반찬, 국&찌개, 일품, 밥, 후식.")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    size: Annotated[int, typer.Option(min=1, max=100)] = 20,
    json: JsonOpt = False,
) -> None:
    """List recipes, optionally searching by title or ingredient.

    Examples:

      f2f recipes list --search 두부

      f2f recipes list --category 반찬 --page 2 --json
    """
    from f2f_cli.recipes.queries import list_recipes

    result = _run(lambda engine: list_recipes(engine, search=search, category=category, page=page, size=size))
    if json:
        print_json(result)
        return
    table = Table("id", "title", "category", "method", "source id",
                  title=f"recipes {len(result.items)} of {result.total} (page {result.page})")
    for r in result.items:
        table.add_row(str(r.id), Text(r.title), Text(r.category or "-"), Text(r.method or "-"),
                      Text(f"{r.source}:{r.source_id}"))
    stdout().print(table)


@app.command("show")
@cli_errors
def show(recipe_id: Annotated[int, typer.Argument(help="Recipe id (from 'f2f recipes list').")],
         json: JsonOpt = False) -> None:
    """One recipe: ingredients with amounts and roles, and the steps.

    Example:

      f2f recipes show 17
    """
    from f2f_cli.recipes.queries import get_recipe

    recipe = _run(lambda engine: get_recipe(engine, recipe_id))
    if json:
        print_json(recipe)
        return
    out = stdout()
    heading = Text(recipe.title, style="bold")
    heading.append(f" (#{recipe.id}, {recipe.category or '-'}, {recipe.method or '-'}"
                   + (f", {recipe.kcal:g} kcal" if recipe.kcal is not None else "") + ")")
    out.print(heading)
    table = Table("ingredient", "amount", "role", "matches as")
    for i in recipe.ingredients:
        table.add_row(Text(i.name), Text(i.amount or "-"), i.role + (" (staple)" if i.is_staple else ""),
                      Text(i.ingredient))
    out.print(table)
    for n, step in enumerate(recipe.steps, start=1):
        out.print(Text(f"{n}. {step}" if not step[:1].isdigit() else step))


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@app.command("recommend")
@cli_errors
def recommend(
    ingredients: Annotated[
        list[str], typer.Option("--ingredients", "-i", help="Fridge contents, comma-separated or repeated.")
    ],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    max_missing: Annotated[int | None, typer.Option(min=0, help="Hide recipes missing more core ingredients.")] = None,
    category: Annotated[str | None, typer.Option(help="Only this dish category.")] = None,
    json: JsonOpt = False,
) -> None:
    """Rank recipes for a fridge: what they lack against how much of the fridge they use.

    An empty catalog (nothing seeded or imported yet) exits 1 and says what to run.

    "missing" groups them (ready, 1, 2, …); "covers" is the share of the recipe the fridge holds and
    "uses" the share of the fridge the recipe uses, both weighted by rarity. A recipe's place is
    missing − min(4 × uses, matched − 1): a big dish the fridge was bought for leads, small ready ones follow.

    Examples:

      f2f recipes recommend -i 두부,계란,대파 --max-missing 1

      f2f recipes recommend -i 김치 -i 돼지고기 --category 국&찌개 --json
    """
    from f2f_cli.recipes.recommender import Recommender

    fridge = _split(ingredients)
    if not fridge:
        raise InvalidInput("give at least one ingredient with -i")
    result = _run(lambda engine: Recommender(engine).recommend(
        fridge, limit=limit, max_missing=max_missing, category=category))
    if json:
        print_json(result)
    if result.hint is not None:
        # An empty catalog is a setup problem, not an answer: say what to run, exit 1 (scripts notice).
        raise fail(result.hint, EXIT_FAILURE)
    if json:
        return
    out = stdout()
    if result.unknown:
        out.print(Text("not used by any recipe: ", style="yellow") + Text(", ".join(result.unknown)))
    if not result.items:
        out.print("no recipe uses any of these ingredients")
        return
    table = Table("id", "title", "missing", "covers", "uses", "have", "need", title=f"top {len(result.items)} recipes")
    for r in result.items:
        group = "ready" if r.missing_count == 0 else str(r.missing_count)
        table.add_row(str(r.recipe_id), Text(r.title), group, f"{r.score:.0%}", f"{r.fridge_share:.0%}",
                      Text(", ".join(r.matched)), Text(", ".join(r.missing) or "-"))
    out.print(table)


@app.command("vocab")
@cli_errors
def vocab_(
    file: Annotated[
        Path | None, typer.Argument(help="A recipe file to check (default: the built-in catalog).")
    ] = None,
    min_recipes: Annotated[int, typer.Option("--min-recipes", min=1, help="Only names used this often.")] = 1,
    json: JsonOpt = False,
) -> None:
    """List the ingredient names the vocabulary does not fold: kept as written, each an ingredient of its own.

    Preparations, sizes, parts and known spellings fold into a listed ingredient (다진 마늘, 두부작은것,
    표고버섯 밑동, 브로컬리). What is left here needs a synonym or a parent in f2f_cli/recipes/vocab.py, or is
    an ingredient of its own. "near" shows listed names one letter away, a hint only (마늘종 is not 마늘).

    Examples:

      f2f recipes vocab

      f2f recipes vocab COOKRCP01.json --min-recipes 2 --json
    """
    from f2f_cli.recipes.builtin import builtin_catalog
    from f2f_cli.recipes.formats import parse_file
    from f2f_cli.recipes.unfolded import unfolded

    parsed = builtin_catalog() if file is None else parse_file(file)
    found = [u for u in unfolded(parsed.records) if u.recipes >= min_recipes]
    if json:
        print_json(found)
        return
    out = stdout()
    table = Table("name", "recipes", "category", "written as", "near",
                  title=f"{plural(len(found), 'name')} not folded by the vocabulary")
    for u in found[:SHOWN_ROWS]:
        table.add_row(Text(u.name), str(u.recipes), u.category, Text(", ".join(u.written)),
                      Text(", ".join(u.near) or "-"))
    out.print(table)
    _more(out, len(found))


@app.command("ingredients")
@cli_errors
def ingredients_(
    search: Annotated[str | None, typer.Option("--search", "-s", help="Prefix or initial consonants (ㄷㅂ).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 30,
    json: JsonOpt = False,
) -> None:
    """Canonical ingredients with how many recipes use them; autocomplete with --search.

    Examples:

      f2f recipes ingredients --search ㄷㅂ

      f2f recipes ingredients --limit 100 --json
    """
    from f2f_cli.recipes.recommender import Recommender

    found = _run(lambda engine: Recommender(engine).suggest(search or "", limit=limit))
    if json:
        print_json(found)
        return
    table = Table("ingredient", "category", "recipes", "matched", title="ingredients")
    for s in found:
        table.add_row(Text(s.name), s.category + (" (staple)" if s.is_staple else ""), str(s.recipes),
                      Text(s.matched if s.matched != s.name else ""))
    stdout().print(table)


@app.command("dedupe")
@cli_errors
def dedupe_(dry_run: DryRunOpt = False, yes: YesOpt = False, json: JsonOpt = False) -> None:
    """Remove copies of a recipe (same title and ingredient set) from a catalog that already holds them.

    The oldest row of each group stays; the ids of removed copies then name it, so importing them updates it.

    Shows the groups and asks first (--yes to skip). Example: f2f recipes dedupe --dry-run
    """
    from f2f_cli.recipes.catalog import dedupe

    preview = _run(lambda engine: dedupe(engine, dry_run=True))
    if dry_run or not preview.removed:
        if json:
            print_json(preview)
        elif not preview.removed:
            stdout().print(f"no copies among {preview.recipes} recipes; nothing to do")
        else:
            _render_dedupe(preview)
        return
    if not json:
        _render_dedupe(preview)
    _confirm(yes, f"Remove {preview.removed} copies from the recipe catalog?")
    result = _run(lambda engine: dedupe(engine))
    if json:
        print_json(result)
    else:
        _render_dedupe(result, summary_only=True)


def _render_dedupe(report: DedupeReport, *, summary_only: bool = False) -> None:
    out = stdout()
    if not summary_only:
        table = Table("kept", "title", "source id", "copies removed", title=f"{len(report.groups)} recipes with copies")
        for g in report.groups[:SHOWN_ROWS]:
            table.add_row(str(g.kept), Text(g.title), Text(f"{g.source}:{g.source_id}"),
                          Text(", ".join(f"#{c.id} {c.source}:{c.source_id}" for c in g.removed)))
        out.print(table)
        _more(out, len(report.groups))
    verb = "would remove" if report.dry_run else "removed"
    out.print(f"{report.recipes} recipes, {verb} {report.removed} copies in {len(report.groups)} groups; "
              f"catalog version {report.catalog_version}" + (" (dry run, nothing changed)" if report.dry_run else ""))
