"""Exception handlers: every failure is ``{"error": CODE, "message": ...}`` with the right status."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from f2f_cli.api.responses import error_response
from f2f_cli.errors import F2FError

log = logging.getLogger("f2f.api")

_HTTP_CODES = {
    404: ("not_found", "no such endpoint"),
    405: ("method_not_allowed", "method not allowed on this endpoint"),
}


async def f2f_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, F2FError)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None and exc.http_status == 503:
        retry_after = 1
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error_response(exc.http_status, exc.code, exc.message, headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # The trace goes to the log for operators; the client gets no internals.
    # The route template, not the path: paths carry session ids.
    route = request.scope.get("route")
    log.error("unhandled error on %s %s", request.method, getattr(route, "path", "?"), exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


HANDLERS = {F2FError: f2f_error, HTTPException: http_error, Exception: unexpected_error}
