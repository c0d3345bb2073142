"""The built-in catalog that ships inside the package (``f2f recipes seed``)."""

from __future__ import annotations

from importlib import resources

import msgspec

from f2f_cli.errors import InvalidInput
from f2f_cli.recipes.formats import SOURCE_COOKRCP01, ParsedFile, parse_data

CATALOG_FILE = "catalog.json"


def builtin_bytes() -> bytes:
    return resources.files("f2f_cli.recipes").joinpath("data", CATALOG_FILE).read_bytes()


def builtin_catalog() -> ParsedFile:
    """The shipped recipes, parsed exactly as ``f2f recipes import`` would parse them."""
    try:
        data = msgspec.json.decode(builtin_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise InvalidInput(f"the built-in recipe catalog is unreadable: {exc}") from None
    # Derived from the public COOKRCP01 sample, so an official import updates the same rows.
    return parse_data(data, "simple", source=SOURCE_COOKRCP01)
