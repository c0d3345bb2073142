"""The F2FError family.

Every error a user can cause or meet carries a stable machine code, an HTTP
status for the API and an exit code for the CLI, so each front end can render
it without knowing the details.
"""

from __future__ import annotations

# CLI exit codes: the README's table ("Exit codes") is the contract; every command follows it.
EXIT_OK = 0
EXIT_FAILURE = 1  # failed: not found, precondition not met, differences found, nothing usable in the input
EXIT_USAGE = 2  # bad flags or arguments, invalid or missing configuration (e.g. F2F_REDIS_URL unset)
EXIT_START = 3  # f2f serve could not start its server (e.g. the port is in use): uvicorn's own startup code
EXIT_INTERRUPTED = 130  # Ctrl-C


class F2FError(Exception):
    """Base class: a clean, one-line message for people and a code for machines."""

    code: str = "error"
    http_status: int = 500
    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(F2FError):
    """An F2F_* setting is missing or invalid."""

    code = "invalid_config"
    exit_code = EXIT_USAGE


class RedisNotConfigured(ConfigError):
    """The command needs Redis and F2F_REDIS_URL is unset: the same exit code (2) from every command."""

    code = "redis_not_configured"

    def __init__(self, why: str) -> None:
        super().__init__(f"F2F_REDIS_URL is not set: {why}")


class InvalidSessionId(F2FError):
    code = "invalid_session_id"
    http_status = 400
    exit_code = EXIT_USAGE


class SessionNotFound(F2FError):
    code = "session_not_found"
    http_status = 404


class InvalidIngredient(F2FError):
    code = "invalid_ingredient"
    http_status = 422
    exit_code = EXIT_USAGE


class TooManyIngredients(F2FError):
    code = "too_many_ingredients"
    http_status = 422


class StoreUnavailable(F2FError):
    """A backing store (SQL database or Redis) cannot be reached."""

    code = "store_unavailable"
    http_status = 503


class SchemaNotReady(F2FError):
    """The SQL schema is behind the code's migrations."""

    code = "schema_not_ready"
    http_status = 503


class WritesHeld(F2FError):
    """Writes are held during a cut-over and the hold outlasted its deadline."""

    code = "writes_held"
    http_status = 503


class NotAvailable(F2FError):
    """A command group or feature that this build does not provide yet."""

    code = "not_available"
    exit_code = EXIT_USAGE


class PreconditionFailed(F2FError):
    code = "precondition_failed"
    http_status = 409


class InvalidInput(F2FError):
    """A file, flag value or request body that cannot be used."""

    code = "invalid_input"
    http_status = 422
    exit_code = EXIT_USAGE
