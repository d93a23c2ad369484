"""How every SDK client talks to the gateway: one retry policy, and one translation of answers into errors.

- :func:`is_retryable`, the SDK's one retry predicate: transport errors, 429 and 5xx.
- :class:`RetryWait`: ``Retry-After`` when the gateway gave one (capped), else capped exponential back-off with
  full jitter.
- :func:`retrying`: the tenacity loop both :class:`~xinyong.EventSender` and :class:`~xinyong.Client` run their
  attempts in.
- :func:`error_for_answer`: a non-2xx answer as the most specific :class:`~xinyong.errors.ApiError`, carrying the
  problem document, the request id and ``Retry-After``; an answer that is not the gateway's (an HTML error page)
  as one sentence naming its status and content type. :func:`unexpected_answer`: a 2xx answer that is not what
  the contract says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from xinyong.errors import ApiError, RateLimitError, ServerError, TransportError, api_error_for

__all__ = ["RetryWait", "error_for_answer", "is_retryable", "retry_after_seconds", "retrying", "unexpected_answer"]


def is_retryable(exc: BaseException) -> bool:
    """The SDK's one retry predicate: transport errors, 429 and 5xx."""
    return isinstance(exc, TransportError | RateLimitError | ServerError)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class RetryWait:
    """Back-off for tenacity: ``Retry-After`` when the gateway gave one, else capped jittered exponential."""

    def __init__(self, initial: float, maximum: float, retry_after_cap: float) -> None:
        self._exponential = wait_random_exponential(multiplier=initial, max=maximum)
        self._retry_after_cap = retry_after_cap

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return min(exc.retry_after, self._retry_after_cap)
        return float(self._exponential(state))


def retrying(
    *,
    max_attempts: int,
    wait: RetryWait,
    sleep: Callable[[float], Awaitable[None]],
    before_sleep: Callable[[RetryCallState], None],
) -> AsyncRetrying:
    """The retry loop of every SDK request: :func:`is_retryable` errors, up to ``max_attempts`` attempts, then
    the last error is raised as it is."""
    return AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(max_attempts),
        wait=wait,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )


def _content_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _problem(payload: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The problem document of an answer, or None when the answer is not JSON (an error page of something else)."""
    if "json" not in _content_type(headers):
        return None
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _phrase(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def error_for_answer(status: int, payload: bytes, headers: Mapping[str, str], *, where: str) -> ApiError:
    """The error for a non-2xx answer: the most specific :class:`ApiError` with the problem document.

    An answer that is not JSON is not the gateway's (every error of the gateway is ``application/problem+json``):
    a proxy's 502 page, another web server on that port. Its error says so in one sentence that names the status
    and the content type, never repeating the page."""
    request_id = headers.get("X-Request-Id")
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    problem = _problem(payload, headers)
    if problem is not None:
        return api_error_for(status, problem, request_id=request_id, retry_after=retry_after)
    question = "is the gateway behind it running?" if status >= 500 else f"is {where} the gateway's URL?"
    content = _content_type(headers) or "no content type"
    message = f"{where} answered {_phrase(status)} with {content}, not a problem document of the gateway — {question}"
    return api_error_for(
        status, {"title": _phrase(status)}, request_id=request_id, retry_after=retry_after, message=message
    )


def unexpected_answer(status: int, headers: Mapping[str, str], expected: str, *, where: str) -> ApiError:
    """The error for a 2xx answer that is not ``expected`` (e.g. "a webhook acknowledgement")."""
    content = _content_type(headers) or "no content type"
    message = (
        f"Unexpected answer from {where}: {_phrase(status)} with {content} that is not {expected} — is {where} the"
        " gateway's URL, and this SDK as new as the gateway?"
    )
    return ApiError(status, {"title": "Unexpected answer from the gateway"}, message=message)
