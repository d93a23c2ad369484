"""``POST /v1/webhooks/{source_id}``: where evidence enters the public credit system.

Checks run in the order of the wire contract (docs/wire-contract.md, "Answers, in the order they are checked"),
each with its own problem: 404 unknown source → 413 body too large (408 when it does not arrive in full within the
body timeout) → 415 not JSON → 400 webhook headers (missing, malformed or repeated) → 401 signature, then timestamp →
400 body not JSON → 422 unknown event type (with "Did you mean '…'?" for a near miss) → 403 type not allowed for the
source's kind → 422 schema → 429 rate limit → 503 store → 202 accepted | 200 duplicate | 409 webhook-id conflict.

The body checks (JSON → type → kind → schema) are ``validation.check_body``: ``check_event``, shared with bulk
import, behind a one-pass validation of the events that pass.
The answer is 2xx only after the inbox commit that stores the (sealed) raw body is durable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from xinyong import problems
from xinyong.errors import MalformedHeadersError, SignatureMismatchError, TimestampOutOfToleranceError
from xinyong.webhooks import WebhookHeaders
from xinyong_gateway.access import ActiveSource, SourceRegistry
from xinyong_gateway.credit.inbox import event_partitions
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import EventRejectedError
from xinyong_gateway.store import AppendResult, AppendStatus, InboxEntry, Store
from xinyong_gateway.validation import check_body
from xinyong_gateway.web.body import is_json_utf8, read_body
from xinyong_gateway.web.middleware import LOG_FACTS
from xinyong_gateway.web.problems import ProblemError
from xinyong_gateway.web.turn_batch import TurnBatch, fail_futures

__all__ = ["IngestHandler"]

_JSON = "application/json"
_WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_ACK = {status: b'{"status": "' + status.value.encode() + b'", "webhook_id": ' for status in AppendStatus}


@dataclass(slots=True)
class _Submitted:
    """One request's turn through the checks: what it sent, what the checks found so far (its verified headers
    and event type, for the log line), and the future it awaits. The checks fail the future with the request's
    error, or hand it to the store, which settles it once the event is durable."""

    source: ActiveSource
    headers: Mapping[str, str]
    body: bytes
    future: asyncio.Future[AppendResult]
    webhook_id: str | None = None
    event_type: str | None = None


def _verified(source: ActiveSource, headers: Mapping[str, str], body: bytes) -> WebhookHeaders:
    """The source's verifier on the request, with its errors as the contract's problems (a mismatch is kept as
    it is: the handler reloads the source's keys once and tries again)."""
    try:
        return source.verifier.verify(headers, body)
    except MalformedHeadersError as exc:
        raise ProblemError(problems.MALFORMED_HEADERS, str(exc)) from exc
    except TimestampOutOfToleranceError as exc:
        raise ProblemError(problems.TIMESTAMP_OUT_OF_TOLERANCE, str(exc)) from exc


class IngestHandler:
    """The ingest endpoint, bound to its store, master key and source registry."""

    _store: Store
    _master: MasterKey
    _registry: SourceRegistry

    def __init__(self, *, body_limit: int, body_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self._body_limit = body_limit
        self._body_timeout = body_timeout
        self._too_large = f"The body limit is {body_limit} bytes."
        self._clock = clock
        self._checks: TurnBatch[_Submitted] = TurnBatch(self._check_batch, fail_futures)

    def _check(self, source: ActiveSource, headers: Mapping[str, str], body: bytes) -> _Submitted:
        """Submit one request to this turn's checks (signature, body, rate limit, sealing) and, if they pass, to
        the store: ``.future`` answers once the event is durable, or fails with the request's problem."""
        submitted = _Submitted(source, headers, body, asyncio.get_running_loop().create_future())
        self._checks.add(submitted)
        return submitted

    def _check_batch(self, batch: list[_Submitted]) -> None:
        """(End of a loop turn) Check every request submitted during the turn, in order; each passed request's
        entry goes to the store with its future, each failed one's future gets its error."""
        now = self._clock()
        today = datetime.fromtimestamp(now, UTC)
        received_at = int(now * 1_000_000)
        tick = time.monotonic()
        master = self._master
        store = self._store
        for item in batch:
            future = item.future
            if future.done():  # the client went away and its request was cancelled
                continue
            try:
                source = item.source
                body = item.body
                headers = _verified(source, item.headers, body)
                webhook_id = item.webhook_id = headers.id
                try:
                    event = check_body(body, source.kind, now=today, uscc=source.uscc)
                except EventRejectedError as exc:
                    item.event_type = exc.event_type
                    raise ProblemError(exc.problem_type, exc.detail, errors=exc.errors) from exc
                event_type = item.event_type = event.type
                wait = source.bucket.take(tick)
                if wait:
                    raise ProblemError(
                        problems.RATE_LIMITED,
                        "This source is sending faster than its limit.",
                        headers={"Retry-After": source.bucket.retry_after_header(wait)},
                    )
                source_id = source.source_id
                entry = InboxEntry(
                    source_id=source_id,
                    webhook_id=webhook_id,
                    body_digest=master.body_digest(body),
                    event_type=event_type,
                    webhook_timestamp=headers.timestamp,
                    signature=headers.signature,
                    received_at=received_at,
                    sealed_body=master.seal_body(source_id, webhook_id, body),
                    partitions=event_partitions(event, master),
                )
                store.append(entry, future)
            except Exception as exc:  # this request's answer (a problem, or a logged 500), never the batch's
                future.set_exception(exc)

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

        body = await read_body(request, limit=self._body_limit, seconds=self._body_timeout, too_large=self._too_large)

        if not is_json_utf8(request):
            raise ProblemError(
                problems.UNSUPPORTED_MEDIA_TYPE, "Send the event with Content-Type: application/json (UTF-8)."
            )

        for name in _WEBHOOK_HEADERS:
            if len(request.headers.getall(name, ())) > 1:
                # Which copy would count? Another hop might read the other one: refuse the ambiguity.
                raise ProblemError(problems.MALFORMED_HEADERS, f"The {name} header appears more than once.")

        checked = self._check(source, request.headers, body)
        try:
            try:
                result = await checked.future
            except SignatureMismatchError:
                # The sender may already hold a key rotated in after our last reload: reload once, retry.
                fresher = await self._registry.reload(source_id)
                if fresher is None or fresher is source:
                    raise
                checked = self._check(fresher, request.headers, body)
                result = await checked.future
        except SignatureMismatchError as exc:
            raise ProblemError(problems.SIGNATURE_INVALID, str(exc)) from exc
        finally:
            if checked.webhook_id is not None:
                facts["webhook_id"] = checked.webhook_id
            if checked.event_type is not None:
                facts["type"] = checked.event_type

        if result.status is AppendStatus.CONFLICT:
            raise ProblemError(
                problems.DUPLICATE_CONFLICT,
                "This webhook-id was already stored with a different body; use a new id for a new event.",
            )
        accepted = result.status is AppendStatus.ACCEPTED
        facts["outcome"] = result.status.value
        return web.Response(
            body=_ACK[result.status] + json.dumps(checked.webhook_id).encode() + b"}",
            status=202 if accepted else 200,
            content_type=_JSON,
        )
