"""JSON responses encoded by msgspec, and the request-body reader."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from f2f_cli.api.schemas import ErrorOut
from f2f_cli.errors import F2FError, InvalidInput

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(error=code, message=message), status_code=status, headers=headers)


class BodyTooLarge(F2FError):
    code = "body_too_large"
    http_status = 413


class InvalidBody(InvalidInput):
    code = "invalid_body"
    http_status = 422


class UnsupportedMediaType(F2FError):
    code = "unsupported_media_type"
    http_status = 415


def is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


async def read_json(request: Request, type_: type[T], limit: int) -> T:
    """The body decoded into ``type_``; 415 unless it is declared JSON, 413 past ``limit`` bytes,
    422 for bad JSON or shape.

    Requiring the JSON media type also keeps cross-site forms out: a browser sends ``application/json``
    across origins only after a CORS preflight.
    """
    if not is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType("the request body must be JSON, sent with Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body is limited to {limit} bytes")
        chunks.append(chunk)
    try:
        return msgspec.json.decode(b"".join(chunks), type=type_)
    except msgspec.ValidationError as exc:
        raise InvalidBody(f"request body does not match the schema: {exc}") from None
    except msgspec.DecodeError:
        raise InvalidBody("request body is not valid JSON") from None
