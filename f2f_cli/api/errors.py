"""Exception handlers: every failure is ``{"error": CODE, "message": ...}`` with the right status."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from f2f_cli.api.responses import JSONResponse, error_response
from f2f_cli.api.schemas import ErrorOut
from f2f_cli.errors import F2FError

log = logging.getLogger("f2f.api")

_HTTP_CODES = {
    404: ("not_found", "no such endpoint"),
    405: ("method_not_allowed", "method not allowed on this endpoint"),
}


# What a client is told when a store fails: the reason (driver text, store names, addresses) is for
# the operator's log, not for whoever sent the request.
UNAVAILABLE_MESSAGE = "the service cannot reach its storage right now; retry shortly"


def describe_f2f_error(exc: F2FError, method: str, route: str) -> tuple[int, ErrorOut, dict[str, str] | None]:
    """Status, body and extra headers of an ``F2FError`` answer, whichever way the request was served."""
    retry_after = getattr(exc, "retry_after", None)
    message = exc.message
    if exc.http_status == 503:
        if retry_after is None:
            retry_after = 1
        log.warning("%s on %s %s: %s", exc.code, method, route, exc.message)
        message = UNAVAILABLE_MESSAGE
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return exc.http_status, ErrorOut(error=exc.code, message=message), headers


def log_unexpected(method: str, route: str, exc: BaseException) -> ErrorOut:
    """Log an unhandled error for operators and return the body the client gets (no internals).
    The route template, not the path: paths carry session ids."""
    log.error("unhandled error on %s %s", method, route, exc_info=exc)
    return ErrorOut(error="internal_error", message="internal server error")


async def f2f_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, F2FError)
    route = request.scope.get("route")
    status, body, headers = describe_f2f_error(exc, request.method, getattr(route, "path", "?"))
    return JSONResponse(body, status_code=status, headers=headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    route = request.scope.get("route")
    return JSONResponse(log_unexpected(request.method, getattr(route, "path", "?"), exc), status_code=500)


HANDLERS = {F2FError: f2f_error, HTTPException: http_error, Exception: unexpected_error}
