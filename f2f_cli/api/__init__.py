"""The HTTP API: ``create_app(settings)`` builds a Starlette app; nothing runs at import."""
