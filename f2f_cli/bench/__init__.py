"""Measuring code: each benchmark returns a result object and prints nothing."""
