"""The one request middleware: request ids, problem answers for every error, one log line per request.

Every request gets an id: the client's ``X-Request-Id`` when it is sane (1 to 128 characters of letters, digits and
``. _ : -``, starting with a letter or digit, and no run of 15 or more digits, which could be a resident identity
number), else one of ours (``<process prefix>-<counter in hex>``). The id is answered in ``X-Request-Id``, written on
the request's log line and put in every problem document (``request_id``), so a sender's support ticket finds its line.

It wraps every route's handler (:func:`answered`, applied in ``web.app``) rather than being registered with the
application.

Handlers raise :class:`ProblemError` (or a domain error) and put the facts worth logging on the request
(``request[LOG_FACTS]``: source, webhook id, event type); this middleware turns any failure into
``application/problem+json`` and writes the canonical line. Nothing a client sends can produce a
traceback in a response; an unexpected error is a logged 500 with a request id to quote. A client that hangs up
mid-request is not an error of ours: its line says ``outcome: client_disconnected``.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from xinyong import problems
from xinyong_gateway.errors import StoreUnavailableError
from xinyong_gateway.logs import info_lines
from xinyong_gateway.web.problems import ProblemError, problem_for_status
from xinyong_gateway.web.turn_batch import TurnBatch

__all__ = ["LOG_FACTS", "Measure", "answered", "request_id_of", "request_middleware"]

LOG_FACTS = web.RequestKey("log_facts", dict[str, Any])
"""Facts a handler adds to the request's canonical log line (source, webhook id, event type, outcome)."""

_log = structlog.get_logger("xinyong_gateway.access")
_prefix = os.urandom(4).hex()
_counter = itertools.count(1)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_DIGIT_RUN = re.compile(r"[0-9]{15}")


def request_id_of(request: web.Request) -> str:
    """The client's ``X-Request-Id`` when sane (see the module's docstring), else a new id of ours."""
    given = request.headers.get("X-Request-Id")
    if given is not None and _SANE_REQUEST_ID.fullmatch(given) and not _DIGIT_RUN.search(given):
        return given
    return f"{_prefix}-{next(_counter):x}"


Measure = Callable[[web.Request, float, dict[str, Any]], None]
"""Told of each answered request: the request, its latency in seconds and its log line's facts (``web.metrics``)."""


def answered(handler: Handler, measure: Measure | None = None) -> Handler:
    """``handler`` behind :func:`request_middleware`, for a route of its own.

    The gateway wraps every route's handler (``web.app``) instead of registering the middleware with the
    application: every request reaches a route (unknown paths and methods have routes of their own), so the effect
    is the same, and aiohttp skips its per-request middleware machinery (a context manager and a chain built per
    route; what that saves: bench/README.md, "Where an event's CPU goes").

    ``measure``: told of each request once it is answered (the route's metrics, when they are on)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _answer(request, handler, measure)

    return handle


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await _answer(request, handler, None)


async def _answer(request: web.Request, handler: Handler, measure: Measure | None) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request_id_of(request)
    facts: dict[str, Any] = {}
    request[LOG_FACTS] = facts
    problem: ProblemError | None = None
    try:
        response = await handler(request)
    except ProblemError as exc:
        problem = exc
    except web.HTTPException as exc:  # raised by aiohttp itself: unknown route, wrong method, body too large
        problem = problem_for_status(exc.status, exc.reason)
        problem.headers.update({k: v for k, v in exc.headers.items() if k.lower() == "allow"})
    except ConnectionResetError:
        # The client went away before its request was complete (a body cut short): nobody reads an answer, and it
        # is no fault of ours, so it is an ordinary line (status 400, outcome "client_disconnected"), not an error.
        problem = ProblemError(
            "about:blank",
            "The connection closed before the request was complete.",
            status=400,
            title="Request incomplete",
        )
        facts["outcome"] = "client_disconnected"
    except StoreUnavailableError as exc:
        _log.warning("store.unavailable", request_id=request_id, error=str(exc))
        problem = ProblemError(
            problems.STORE_UNAVAILABLE,
            "The store cannot commit right now; retry shortly.",
            headers={"Retry-After": "1"},
        )
    except Exception:
        _log.exception("request.unhandled_error", request_id=request_id, path=request.path)
        problem = ProblemError(problems.INTERNAL, "An unexpected error occurred; quote the request id.")
    if problem is not None:
        response = problem.response(request_id)
        facts["problem"] = problem.type.rsplit(":", 1)[-1]
    response.headers["X-Request-Id"] = request_id
    elapsed = time.perf_counter() - started
    if measure is not None:
        measure(request, elapsed, facts)
    _access_lines.add(
        {
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "ms": round(elapsed * 1000, 2),
            **facts,
        }
    )
    return response


def _write_access_lines(lines: list[dict[str, Any]]) -> None:
    info_lines(_log, "request", lines)


_access_lines: TurnBatch[dict[str, Any]] = TurnBatch(_write_access_lines)
"""The turn's canonical lines, written together at the end of the turn (``web.turn_batch`` says why)."""
