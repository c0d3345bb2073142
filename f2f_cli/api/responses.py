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


def check_json_head(content_type: str | None, declared_length: str | None, limit: int) -> None:
    """415 unless the body is declared JSON, 413 when its declared length is past ``limit`` bytes.

    Requiring the JSON media type also keeps cross-site forms out: a browser sends ``application/json``
    across origins only after a CORS preflight.
    """
    if not is_json(content_type):
        raise UnsupportedMediaType("the request body must be JSON, sent with Content-Type: application/json")
    for parameter in (content_type or "").partition(";")[2].split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("a JSON body is UTF-8 (RFC 8259): no other charset is read")
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > limit:
        raise body_too_large(limit)


def body_too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body is limited to {limit} bytes")


def decode_json(raw: bytes, type_: type[T]) -> T:
    """``raw`` decoded into ``type_``; 422 for bad JSON or shape."""
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise InvalidBody(f"request body does not match the schema: {exc}") from None
    except msgspec.DecodeError:
        raise InvalidBody("request body is not valid JSON") from None


async def read_json(request: Request, type_: type[T], limit: int) -> T:
    """The body decoded into ``type_``: ``check_json_head``, 413 past ``limit`` bytes, ``decode_json``."""
    check_json_head(request.headers.get("content-type"), request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return decode_json(b"".join(chunks), type_)
