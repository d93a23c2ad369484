"""``application/problem+json`` answers (RFC 9457): one exception carries a problem to the middleware.

Each problem ``type`` URI (``xinyong.problems``) has one status and one title here; ``detail`` says what
was wrong with this request, never echoing a secret or a personal identifier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from xinyong import problems

__all__ = ["PROBLEM_CONTENT_TYPE", "ProblemError", "body_timeout_problem", "problem_for_status"]

PROBLEM_CONTENT_TYPE = "application/problem+json"

_CATALOGUE: dict[str, tuple[int, str]] = {
    problems.SOURCE_NOT_FOUND: (404, "Unknown source"),
    problems.NOT_FOUND: (404, "Not found"),
    problems.BODY_TOO_LARGE: (413, "Body too large"),
    problems.UNSUPPORTED_MEDIA_TYPE: (415, "Body must be JSON"),
    problems.MALFORMED_HEADERS: (400, "Missing or malformed webhook headers"),
    problems.SIGNATURE_INVALID: (401, "No valid signature"),
    problems.TIMESTAMP_OUT_OF_TOLERANCE: (401, "Timestamp outside the tolerance window"),
    problems.BODY_NOT_JSON: (400, "Body is not JSON"),
    problems.UNKNOWN_EVENT_TYPE: (422, "Unknown event type"),
    problems.EVENT_NOT_ALLOWED: (403, "Event type not allowed for this source"),
    problems.SCHEMA_INVALID: (422, "Event does not match its schema"),
    problems.SUBJECT_NOT_OWN: (403, "Event about another subject than the source"),
    problems.RATE_LIMITED: (429, "Rate limit exceeded"),
    problems.STORE_UNAVAILABLE: (503, "Store cannot commit"),
    problems.DUPLICATE_CONFLICT: (409, "Webhook id already used with another body"),
    problems.INTERNAL: (500, "Internal error"),
    problems.API_KEY_INVALID: (401, "Missing or invalid API key"),
    problems.SCOPE_MISSING: (403, "API key lacks the scope"),
    problems.REQUEST_INVALID: (422, "Request does not match its schema"),
    problems.QUERY_INVALID: (400, "Invalid query parameter"),
    problems.SIGNING_KEY_MISSING: (503, "No signing key"),
    problems.SUBSCRIPTION_NOT_FOUND: (404, "No such subscription"),
    problems.SUBSCRIPTION_URL_REFUSED: (422, "Subscription URL refused"),
}

_GENERIC_TITLES = {405: "Method not allowed", 400: "Bad request", 413: "Body too large"}


class ProblemError(Exception):
    """Raise to answer with a problem document; the middleware renders it and logs the request."""

    def __init__(
        self,
        type_uri: str,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
        title: str | None = None,
    ) -> None:
        known_status, known_title = _CATALOGUE.get(type_uri, (status or 500, title or "Error"))
        self.type = type_uri
        self.status = status or known_status
        self.title = title or known_title
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        super().__init__(f"{self.status} {self.title}")

    def response(self, request_id: str, instance: str | None = None) -> web.Response:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        body["request_id"] = request_id
        return web.Response(
            body=json.dumps(body, ensure_ascii=False).encode(),
            status=self.status,
            headers=self.headers,
            content_type=PROBLEM_CONTENT_TYPE,
        )


def body_timeout_problem(timeout: float) -> ProblemError:
    """The answer to a request whose body did not arrive in full within ``timeout`` seconds."""
    return ProblemError(
        "about:blank",
        f"The body did not arrive within {timeout:g} s.",
        status=408,
        title="Request timeout",
        headers={"Connection": "close"},
    )


def problem_for_status(status: int, detail: str | None = None) -> ProblemError:
    """A problem for an HTTP error aiohttp raised itself (no route, wrong method, ...)."""
    if status == 404:
        return ProblemError(problems.NOT_FOUND, detail or "No such resource.")
    if status == 413:
        return ProblemError(problems.BODY_TOO_LARGE, detail)
    return ProblemError("about:blank", detail, status=status, title=_GENERIC_TITLES.get(status, "HTTP error"))
