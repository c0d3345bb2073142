"""The phase move postgres → dual → redis and back: preflight, backfill, verify, cut-over (no CLI code)."""
