"""``POST /v1/webhooks/{source_id}``: where evidence enters the public credit system.

Checks run in the order of the wire contract (DESIGN.md "Inbound events"), each with its own problem:
404 unknown source → 413 body too large (408 when it does not arrive in full within the body timeout) → 415 not
JSON → 400 webhook headers (missing, malformed or repeated) → 401 signature, then timestamp → 400 body not JSON →
422 unknown event type → 403 type not allowed for the source's kind → 422 schema → 429 rate limit → 503 store →
202 accepted | 200 duplicate | 409 webhook-id conflict.

The body checks (JSON → type → kind → schema) are ``validation.check_event``, shared with bulk import.
The answer is 2xx only after the inbox commit that stores the (sealed) raw body is durable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from xinyong import problems
from xinyong.errors import MalformedHeadersError, SignatureMismatchError, TimestampOutOfToleranceError
from xinyong_gateway.credit.projector import event_partitions
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import EventRejectedError
from xinyong_gateway.sources import SourceRegistry
from xinyong_gateway.store import AppendStatus, InboxEntry, Store
from xinyong_gateway.validation import check_event, parse_body
from xinyong_gateway.web_middlewares import LOG_FACTS
from xinyong_gateway.web_problems import ProblemError, body_timeout_problem

__all__ = ["IngestHandler"]

_JSON = "application/json"
_WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_ACK = {status: b'{"status": "' + status.value.encode() + b'", "webhook_id": ' for status in AppendStatus}


class IngestHandler:
    """The ingest endpoint, bound to its store, master key and source registry."""

    _store: Store
    _master: MasterKey
    _registry: SourceRegistry

    def __init__(self, *, body_limit: int, body_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self._body_limit = body_limit
        self._body_timeout = body_timeout
        self._clock = clock

    def attach(self, store: Store, master: MasterKey, registry: SourceRegistry) -> None:
        """Bind the resources opened at start-up (routes must exist before the app starts)."""
        self._store = store
        self._master = master
        self._registry = registry

    async def handle(self, request: web.Request) -> web.Response:
        facts = request[LOG_FACTS]
        source_id = request.match_info["source_id"]
        facts["source_id"] = source_id

        source = self._registry.get(source_id) or await self._registry.lookup(source_id)
        if source is None:
            raise ProblemError(problems.SOURCE_NOT_FOUND, "No active source has this id.")

        length = request.content_length
        if length is not None and length > self._body_limit:
            raise ProblemError(problems.BODY_TOO_LARGE, f"The body limit is {self._body_limit} bytes.")
        try:
            async with asyncio.timeout(self._body_timeout):
                body = await request.read()
        except TimeoutError as exc:
            raise body_timeout_problem(self._body_timeout) from exc
        except web.HTTPRequestEntityTooLarge as exc:
            raise ProblemError(problems.BODY_TOO_LARGE, f"The body limit is {self._body_limit} bytes.") from exc
        except web.RequestPayloadError as exc:
            raise ProblemError(
                problems.BODY_NOT_JSON, "The body could not be decoded with its Content-Encoding."
            ) from exc

        if request.content_type != _JSON or (request.charset or "utf-8").lower() != "utf-8":
            raise ProblemError(
                problems.UNSUPPORTED_MEDIA_TYPE, "Send the event with Content-Type: application/json (UTF-8)."
            )

        for name in _WEBHOOK_HEADERS:
            if len(request.headers.getall(name, ())) > 1:
                # Which copy would count? Another hop might read the other one: refuse the ambiguity.
                raise ProblemError(problems.MALFORMED_HEADERS, f"The {name} header appears more than once.")
        try:
            try:
                headers = source.verifier.verify(request.headers, body)
            except SignatureMismatchError:
                # The sender may already hold a key rotated in after our last reload: reload once, retry.
                fresher = await self._registry.reload(source_id)
                if fresher is None or fresher is source:
                    raise
                source = fresher
                headers = source.verifier.verify(request.headers, body)
        except MalformedHeadersError as exc:
            raise ProblemError(problems.MALFORMED_HEADERS, str(exc)) from exc
        except SignatureMismatchError as exc:
            raise ProblemError(problems.SIGNATURE_INVALID, str(exc)) from exc
        except TimestampOutOfToleranceError as exc:
            raise ProblemError(problems.TIMESTAMP_OUT_OF_TOLERANCE, str(exc)) from exc
        facts["webhook_id"] = headers.id

        now = self._clock()
        try:
            event = check_event(parse_body(body), source.kind, now=datetime.fromtimestamp(now, UTC))
        except EventRejectedError as exc:
            if exc.event_type is not None:
                facts["type"] = exc.event_type
            raise ProblemError(exc.problem_type, exc.detail, errors=exc.errors) from exc
        event_type = event.type
        facts["type"] = event_type

        wait = source.bucket.take(time.monotonic())
        if wait:
            raise ProblemError(
                problems.RATE_LIMITED,
                "This source is sending faster than its limit.",
                headers={"Retry-After": source.bucket.retry_after_header(wait)},
            )

        result = await self._store.append(
            InboxEntry(
                source_id=source_id,
                webhook_id=headers.id,
                body_digest=self._master.body_digest(body),
                event_type=event_type,
                webhook_timestamp=headers.timestamp,
                signature=headers.signature,
                received_at=int(now * 1_000_000),
                sealed_body=self._master.seal_body(source_id, headers.id, body),
                partitions=event_partitions(event, self._master),
            )
        )
        if result.status is AppendStatus.CONFLICT:
            raise ProblemError(
                problems.DUPLICATE_CONFLICT,
                "This webhook-id was already stored with a different body; use a new id for a new event.",
            )
        accepted = result.status is AppendStatus.ACCEPTED
        facts["outcome"] = result.status.value
        return web.Response(
            body=_ACK[result.status] + json.dumps(headers.id).encode() + b"}",
            status=202 if accepted else 200,
            content_type=_JSON,
        )
