"""Recipe files: the official COOKRCP01 response and the simple JSON list.

Both readers turn rows into :class:`RecipeRecord` values with parsed
ingredients. A file that is not JSON or not in the expected shape raises one
:class:`~f2f_cli.errors.InvalidInput` line; a single bad row is skipped with
a reason instead, so one broken recipe never blocks a whole import.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from f2f_cli.db.schema import CANONICAL_NAME_LENGTH, INGREDIENT_NAME_LENGTH, RECIPE_TITLE_LENGTH
from f2f_cli.errors import InvalidInput
from f2f_cli.recipes import classify, identity
from f2f_cli.recipes.normalize import canonical_name, info, role_for
from f2f_cli.recipes.parse import nfc, parse_ingredient_lines

Format = Literal["cookrcp01", "simple"]
FORMATS: tuple[Format, ...] = ("cookrcp01", "simple")
SOURCE_ID_LENGTH = 64
SOURCE_LENGTH = 32
SOURCE_COOKRCP01 = "cookrcp01"
SOURCE_SIMPLE = "simple"

# The public data ends many steps with a stray image marker: "...건진다.a".
_STEP_MARKER = re.compile(r"(?<=[.!?。])\s*[a-z]$")
_STEP_NUMBER = re.compile(r"^\s*\d+\s*[.)]\s*")
_SPACES = re.compile(r"\s+")


class RecipeItem(msgspec.Struct, frozen=True):
    raw_text: str
    name: str
    ingredient: str
    amount: str
    role: str


class RecipeRecord(msgspec.Struct, frozen=True):
    source: str
    source_id: str
    title: str
    category: str | None
    method: str | None
    kcal: float | None
    image_url: str | None
    steps: tuple[str, ...]
    items: tuple[RecipeItem, ...]

    def content_hash(self) -> str:
        """What the recipe says, whoever published it: the same recipe under another (source, id) is unchanged."""
        anonymous = msgspec.structs.replace(self, source="", source_id="")
        return hashlib.sha256(msgspec.json.encode(anonymous)).hexdigest()

    def fingerprint(self) -> str:
        return identity.fingerprint(self.title, (item.ingredient for item in self.items))


class Skipped(msgspec.Struct, frozen=True):
    row: int
    source_id: str | None
    reason: str


class ParsedFile(msgspec.Struct, frozen=True):
    format: str
    rows: int
    records: tuple[RecipeRecord, ...]
    skipped: tuple[Skipped, ...]


class _RowError(Exception):
    pass


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _RowError(f"expected text, got {type(value).__name__}")
    return _SPACES.sub(" ", nfc(value)).strip()


def _clean_step(step: object) -> str:
    step = _STEP_MARKER.sub("", _text(step))
    return step.strip()


def _number(value: object) -> float | None:
    text = _text(value)
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def build_record(
    *,
    source: str,
    source_id: object,
    title: object,
    ingredient_lines: Sequence[object],
    steps: Sequence[object],
    image: object = None,
    category: object = None,
    method: object = None,
    kcal: object = None,
) -> RecipeRecord:
    """One recipe from raw fields, with ingredients parsed; raises ``_RowError`` with the reason."""
    if not source or len(source) > SOURCE_LENGTH:
        raise _RowError(f"source must be 1 to {SOURCE_LENGTH} characters")
    sid = _text(source_id)
    if not sid:
        raise _RowError("missing id")
    if len(sid) > SOURCE_ID_LENGTH:
        raise _RowError(f"id longer than {SOURCE_ID_LENGTH} characters")
    name = _text(title)
    if not name:
        raise _RowError("missing title")
    if len(name) > RECIPE_TITLE_LENGTH:
        raise _RowError(f"title longer than {RECIPE_TITLE_LENGTH} characters")
    lines = [_text(line) for line in ingredient_lines]
    items: list[RecipeItem] = []
    for parsed in parse_ingredient_lines([line for line in lines if line], name):
        canonical = canonical_name(parsed.name)[:CANONICAL_NAME_LENGTH]
        if not canonical:
            continue
        items.append(
            RecipeItem(
                raw_text=f"{parsed.name} {parsed.amount}".strip()[:INGREDIENT_NAME_LENGTH],
                name=parsed.name[:INGREDIENT_NAME_LENGTH],
                ingredient=canonical,
                amount=parsed.amount[:INGREDIENT_NAME_LENGTH],
                role=role_for(parsed.section, info(canonical)),
            )
        )
    if not items:
        raise _RowError("no ingredients could be read")
    image_url = _text(image) or None
    return RecipeRecord(
        source=source,
        source_id=sid,
        title=name,
        category=_text(category) or classify.category_for(name),
        method=_text(method) or classify.method_for(name),
        kcal=_number(kcal),
        image_url=image_url,
        steps=tuple(s for s in (_clean_step(step) for step in steps if step is not None) if s),
        items=tuple(items),
    )


def _cookrcp01_row(row: Mapping[str, Any]) -> RecipeRecord:
    parts = _text(row.get("RCP_PARTS_DTLS"))
    manuals = [row.get(f"MANUAL{n:02d}") for n in range(1, 21)]
    return build_record(
        source=SOURCE_COOKRCP01,
        source_id=row.get("RCP_SEQ"),
        title=row.get("RCP_NM"),
        ingredient_lines=nfc(str(row.get("RCP_PARTS_DTLS") or "")).splitlines() if parts else [],
        steps=[m for m in manuals if m],
        image=row.get("ATT_FILE_NO_MAIN"),
        category=row.get("RCP_PAT2"),
        method=row.get("RCP_WAY2"),
        kcal=row.get("INFO_ENG"),
    )


def _simple_row(row: Mapping[str, Any], source: str) -> RecipeRecord:
    ingredients = row.get("ingredients")
    if not isinstance(ingredients, list):
        raise _RowError("'ingredients' must be a list of strings")
    steps = row.get("steps") or []
    if not isinstance(steps, list):
        raise _RowError("'steps' must be a list of strings")
    return build_record(
        source=_text(row.get("source")) or source,
        source_id=row.get("id"),
        title=row.get("title"),
        ingredient_lines=ingredients,
        steps=steps,
        image=row.get("image"),
        category=row.get("category"),
        method=row.get("method"),
        kcal=row.get("kcal"),
    )


# Every top-level shape an import reads, named in full whenever a file has none of them.
SHAPES = ('a COOKRCP01 response {"COOKRCP01": {"row": [...]}}, '
          'a JSON list [{"id", "title", "ingredients", "steps", "image"}, ...], '
          'or {"recipes": [that list]}')


def _wrong_shape(found: object, fmt: Format | None = None) -> InvalidInput:
    kind = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(found), "a number")
    keys = f" with keys {', '.join(sorted(map(str, found))[:5])}" if isinstance(found, dict) and found else ""
    told = f" (--format {fmt})" if fmt else ""
    return InvalidInput(f"the file is {kind}{keys}{told}; expected {SHAPES}")


def _rows(data: object, fmt: Format) -> list[object]:
    if fmt == "cookrcp01":
        body = data.get("COOKRCP01") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            raise _wrong_shape(data, fmt)
        rows = body.get("row")
        if rows is None:
            result = body.get("RESULT")
            if isinstance(result, dict) and result.get("CODE") not in (None, "INFO-000"):
                raise InvalidInput(f"COOKRCP01 response has no rows: {result.get('CODE')} {result.get('MSG', '')}")
            raise InvalidInput('expected a "row" list inside "COOKRCP01"')
        if not isinstance(rows, list):
            raise InvalidInput('"COOKRCP01.row" must be a list')
        return rows
    if isinstance(data, dict) and isinstance(data.get("recipes"), list):
        return list(data["recipes"])
    if not isinstance(data, list):
        raise _wrong_shape(data)
    return data


def detect_format(data: object) -> Format:
    return "cookrcp01" if isinstance(data, dict) and "COOKRCP01" in data else "simple"


def parse_data(data: object, fmt: Format | None = None, *, source: str = SOURCE_SIMPLE) -> ParsedFile:
    """Records and skipped rows from already-decoded JSON."""
    fmt = fmt or detect_format(data)
    rows = _rows(data, fmt)
    records: list[RecipeRecord] = []
    skipped: list[Skipped] = []
    seen: set[tuple[str, str]] = set()
    for index, row in enumerate(rows, start=1):
        raw_id = row.get("RCP_SEQ" if fmt == "cookrcp01" else "id") if isinstance(row, dict) else None
        shown_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
        if not isinstance(row, dict):
            skipped.append(Skipped(index, None, "row is not an object"))
            continue
        try:
            record = _cookrcp01_row(row) if fmt == "cookrcp01" else _simple_row(row, source)
        except _RowError as exc:
            skipped.append(Skipped(index, shown_id, str(exc)))
            continue
        key = (record.source, record.source_id)
        if key in seen:
            skipped.append(Skipped(index, record.source_id, "duplicate id in this file (first one kept)"))
            continue
        seen.add(key)
        records.append(record)
    return ParsedFile(format=fmt, rows=len(rows), records=tuple(records), skipped=tuple(skipped))


def parse_file(path: Path, fmt: Format | None = None, *, source: str = SOURCE_SIMPLE) -> ParsedFile:
    """Read and parse a recipe file; any problem with the file as a whole is one InvalidInput line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
    try:
        return parse_data(data, fmt, source=source)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}") from None
