"""Operator tools over the session stores (``f2f sessions``): no typer, no rich here."""
