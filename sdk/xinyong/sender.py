"""``EventSender``: sign and post events to the gateway, with safe retries.

Every attempt is signed afresh (new ``webhook-timestamp``, new signature) under the same ``webhook-id``,
which is the idempotency key: the gateway stores a webhook once and answers a re-sent copy with
``duplicate``, so a retry can never count an event twice.

One retry predicate for the whole SDK: transport errors, 429 (honouring ``Retry-After``) and 5xx are
retried with capped exponential back-off and full jitter (tenacity); any other 4xx is final and raised as
a typed :class:`~xinyong.errors.ApiError` carrying the problem document.

    async with EventSender("http://127.0.0.1:8080", source_id, "whsec_…") as sender:
        ack = await sender.send(event)                      # WebhookAck(status="accepted", ...)
        results = await sender.send_many(events, concurrency=16)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp
from pydantic import BaseModel

from xinyong import problems
from xinyong._session import GatewaySession
from xinyong.errors import ApiError, XinyongError, api_error_for
from xinyong.events import type_suggestion
from xinyong.responses import WebhookAck
from xinyong.retries import is_retryable
from xinyong.webhooks import SigningKey, SigningSecret, signature_headers

__all__ = ["EventSender", "OutgoingEvent", "is_retryable", "new_webhook_id"]

OutgoingEvent = BaseModel | Mapping[str, Any] | bytes
"""A wire model (``xinyong.events``), a JSON-able mapping, or raw JSON bytes sent as they are."""


def new_webhook_id() -> str:
    """A fresh random webhook id (``msg_`` + 32 hex digits). Keep it if you may resend the event."""
    return "msg_" + uuid.uuid4().hex


def _encode(event: OutgoingEvent) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, BaseModel):
        return event.model_dump_json(exclude_none=True).encode()
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


class EventSender(GatewaySession):
    """Posts signed events for one source. Use it with ``async with``; it is not reusable after close.

    ``key`` is the source's ``whsec_`` secret (scheme v1) or ``whsk_`` Ed25519 signing key (scheme v1a).
    Pass ``session`` to share an ``aiohttp.ClientSession`` you own (it is then never closed here).
    ``clock`` (signing timestamps) and ``sleep`` (back-off waits) can be injected for tests.
    """

    _closed_message = "This EventSender is closed; create a new one."
    _logger_name = "xinyong.sender"

    def __init__(
        self,
        base_url: str,
        source_id: str,
        key: SigningSecret | SigningKey | str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_initial: float = 0.25,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        concurrency: int = 16,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if isinstance(key, str):
            key = SigningKey.parse(key) if key.strip().startswith("whsk_") else SigningSecret.parse(key)
        super().__init__(
            base_url, session, timeout, max_attempts, backoff_initial, backoff_max, retry_after_max, concurrency, sleep
        )
        self._url = f"{self._base_url}/v1/webhooks/{source_id}"
        self.source_id = source_id
        self._key = key
        self._clock = clock

    async def send(self, event: OutgoingEvent, *, webhook_id: str | None = None) -> WebhookAck:
        """Sign and post one event; retries transport errors, 429 and 5xx; raises on any other answer.

        Returns the gateway's acknowledgement: ``accepted`` (stored now) or ``duplicate`` (stored before).
        """
        body = _encode(event)
        msg_id = webhook_id or new_webhook_id()
        return await self._retried(
            self._post_once, msg_id, body, log_event="xinyong.send.retry", source_id=self.source_id
        )

    async def send_many(
        self,
        events: Iterable[OutgoingEvent | tuple[str, OutgoingEvent]],
        *,
        concurrency: int | None = None,
    ) -> list[WebhookAck | XinyongError]:
        """Send many events with bounded concurrency; results in input order.

        Items are events or ``(webhook_id, event)`` pairs. A failed event does not stop the others: its
        slot holds the error (an :class:`ApiError` with the problem, or a :class:`TransportError`).
        """
        limit = asyncio.Semaphore(concurrency or self._concurrency)

        async def one(item: OutgoingEvent | tuple[str, OutgoingEvent]) -> WebhookAck | XinyongError:
            webhook_id, event = item if isinstance(item, tuple) else (None, item)
            async with limit:
                try:
                    return await self.send(event, webhook_id=webhook_id)
                except XinyongError as exc:
                    return exc

        return list(await asyncio.gather(*(one(item) for item in events)))

    async def _post_once(self, msg_id: str, body: bytes) -> WebhookAck:
        headers = signature_headers(self._key, msg_id, body, clock=self._clock)
        headers["Content-Type"] = "application/json"
        status, payload, answer_headers = await self._exchange("POST", self._url, data=body, headers=headers)
        if 200 <= status < 300:
            try:
                return WebhookAck.model_validate_json(payload)
            except ValueError as exc:
                raise self._unexpected(status, answer_headers, "a webhook acknowledgement") from exc
        raise _with_type_suggestion(self._answer_error(status, payload, answer_headers), body)


def _with_type_suggestion(error: ApiError, body: bytes) -> ApiError:
    """A 422 ``unknown-event-type`` with ``Did you mean 'delivery.recorded'?`` added to its detail when the body's
    type is close to one of the catalogue (the gateway's answer never repeats the type sent)."""
    if error.type != problems.UNKNOWN_EVENT_TYPE or "Did you mean" in (error.detail or ""):
        return error
    try:
        sent = json.loads(body).get("type")
    except (ValueError, AttributeError):
        return error
    suggestion = type_suggestion(sent)
    if suggestion is None:
        return error
    detail = f"{(error.detail or error.title).rstrip()} {suggestion}"
    return api_error_for(error.status, {**error.problem, "detail": detail}, request_id=error.request_id)
