"""Reading a request's body: within a size limit and a time limit, and whether it is declared JSON in UTF-8.

Ingest, screening and attestations read their bodies here, each with its own limit (and the query side validates a
JSON body against its model with :func:`validated_json`); the answers are problems
(``web.problems``): 413 past the limit (declared or received), 408 when the body does not arrive in time, 400 when
its Content-Encoding does not decode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pydantic_core
from aiohttp import StreamReader, web
from pydantic import BaseModel, ValidationError

from xinyong import problems
from xinyong_gateway.web.problems import ProblemError, body_timeout_problem

__all__ = ["is_json_utf8", "read_body", "validated_json"]


async def read_body(request: web.BaseRequest, *, limit: int, seconds: float, too_large: str) -> bytes:
    """The request's body, of at most ``limit`` bytes (a 413 problem with the detail ``too_large`` past it, declared or
    received); 408 (:func:`body_timeout_problem`) when it does not arrive within ``seconds``; 400 when its
    Content-Encoding does not decode. A body that has fully arrived already (the usual case) is taken as it is, without
    a timer or a wait. A client that hangs up mid-body raises ``ConnectionResetError`` (the middleware's
    ``client_disconnected``)."""
    length = request.content_length
    if length is not None and length > limit:
        raise ProblemError(problems.BODY_TOO_LARGE, too_large)
    content = request.content
    try:
        if content.is_eof():
            body = content.read_nowait()
        else:
            async with asyncio.timeout(seconds):
                body = await _read_up_to(content, limit, too_large)
    except TimeoutError as exc:
        raise body_timeout_problem(seconds) from exc
    except web.RequestPayloadError as exc:
        raise ProblemError(problems.BODY_NOT_JSON, "The body could not be decoded with its Content-Encoding.") from exc
    if len(body) > limit:
        raise ProblemError(problems.BODY_TOO_LARGE, too_large)
    return body


async def _read_up_to(content: StreamReader, limit: int, too_large: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise ProblemError(problems.BODY_TOO_LARGE, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


_PLAIN_JSON = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
"""``Content-Type`` values that senders use for JSON, recognised without parsing the header."""


def is_json_utf8(request: web.BaseRequest) -> bool:
    """Whether the body is declared ``application/json`` in UTF-8 (no charset means UTF-8, RFC 8259). The usual
    spellings are recognised as they are; any other goes through aiohttp's parser of the header."""
    if request.headers.get("Content-Type") in _PLAIN_JSON:
        return True
    return request.content_type == "application/json" and (request.charset or "utf-8").lower() == "utf-8"


M = TypeVar("M", bound=BaseModel)


def validated_json(
    model: type[M], body: bytes, context: dict[str, Any], invalid: Callable[[ValidationError, Any], ProblemError]
) -> M:
    """``body`` as ``model``, validated in one pass from the bytes; a body that fails is parsed and validated again
    the long way, which answers in the contract's order: 400 ``body-not-json``, then ``invalid(error, document)``
    (422 with pointers). Nothing of the body is echoed."""
    try:
        return model.model_validate_json(body, context=context)
    except ValidationError:
        pass
    try:
        document = pydantic_core.from_json(body)
    except ValueError as exc:
        raise ProblemError(problems.BODY_NOT_JSON, "The body is not valid UTF-8 JSON.") from exc
    try:
        return model.model_validate(document, context=context)
    except ValidationError as exc:
        raise invalid(exc, document) from None
