"""The subscriptions API (API key scope ``subscribe``; docs/wire-contract.md, "Notifications").

- ``POST /v1/subscriptions`` ``{"url", "lists", "subjects"?}`` → 201 the subscription and its ``whsec_`` secret (shown
  once). The URL is checked by the SSRF guard (``notify.ssrf``): a refused one is a 422 ``subscription-url-refused``.
- ``GET /v1/subscriptions`` → the key's own subscriptions; ``GET`` / ``DELETE /v1/subscriptions/{id}``.
- ``POST /v1/subscriptions/{id}/rotate-secret`` ``{"grace_seconds"?}`` → a new secret; both sign until the grace ends.
- ``POST /v1/subscriptions/{id}/replay`` ``{"since"}`` → 202 ``{"queued": n}``.

A key sees and changes only its own subscriptions: another key's id answers 404 like an unknown one. Bodies are
checked as screenings are: 413 over 256 KiB, 415 not JSON, 400 not parseable, 422 schema (JSON Pointers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic_core
from aiohttp import web
from pydantic import BaseModel, ValidationError

from xinyong import problems
from xinyong.events import error_pointers
from xinyong.subscriptions import ReplayRequest, SecretRotation, SubscriptionRequest
from xinyong_gateway.access import ActiveApiKey, ApiKeyRegistry
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import OutboundRefusedError
from xinyong_gateway.notify import OutboundGuard, replay, rotate_secret, subscribe, subscription_document
from xinyong_gateway.store import Store, SubscriptionRecord
from xinyong_gateway.web.auth import authenticate
from xinyong_gateway.web.body import is_json_utf8, read_body
from xinyong_gateway.web.problems import ProblemError

__all__ = ["SUBSCRIPTION_BODY_LIMIT", "SubscriptionsHandler"]

SUBSCRIPTION_BODY_LIMIT = 256 * 1024
"""A subscription naming 1000 subjects fits."""
M = TypeVar("M", bound=BaseModel)


class SubscriptionsHandler:
    """The subscription endpoints, bound to the store, the master key, the API keys and the SSRF guard."""

    _store: Store
    _master: MasterKey
    _keys: ApiKeyRegistry
    _guard: OutboundGuard

    def __init__(self, *, body_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self._body_timeout = body_timeout
        self._clock = clock

    def attach(self, store: Store, master: MasterKey, keys: ApiKeyRegistry, guard: OutboundGuard) -> None:
        self._store = store
        self._master = master
        self._keys = keys
        self._guard = guard

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _body(self, request: web.Request, model: type[M], *, empty_ok: bool = False) -> M:
        if request.query_string and request.query:
            raise ProblemError(problems.QUERY_INVALID, "This endpoint takes no query parameters.")
        body = await read_body(
            request,
            limit=SUBSCRIPTION_BODY_LIMIT,
            seconds=self._body_timeout,
            too_large=f"The body limit here is {SUBSCRIPTION_BODY_LIMIT} bytes.",
        )
        if empty_ok and not body.strip():
            body = b"{}"
        elif not is_json_utf8(request):
            raise ProblemError(problems.UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json (UTF-8).")
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            try:
                pydantic_core.from_json(body)
            except ValueError:
                raise ProblemError(problems.BODY_NOT_JSON, "The body is not valid UTF-8 JSON.") from None
            raise ProblemError(
                problems.REQUEST_INVALID,
                "The body does not match its schema; nothing was changed.",
                errors=error_pointers(exc),
            ) from None

    async def _own(self, request: web.Request, key: ActiveApiKey) -> SubscriptionRecord:
        record = await self._store.get_subscription(request.match_info["subscription_id"])
        if record is None or record.key_id != key.key_id:
            raise ProblemError(problems.SUBSCRIPTION_NOT_FOUND, "No subscription with this id for this API key.")
        return record

    def _json(self, document: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(document, status=status, dumps=_dumps)

    # -- the endpoints --------------------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        key = await authenticate(request, self._keys, "subscribe")
        wanted = await self._body(request, SubscriptionRequest)
        try:
            record, secret = await subscribe(self._store, self._master, self._guard, key.key_id, wanted, self._now())
        except OutboundRefusedError as exc:
            refused = str(exc)
            raise ProblemError(
                problems.SUBSCRIPTION_URL_REFUSED, refused, errors=[{"pointer": "/url", "detail": refused}]
            ) from None
        document = subscription_document(record, self._now()) | {"secret": secret}
        response = self._json(document, status=201)
        response.headers["Location"] = f"/v1/subscriptions/{record.subscription_id}"
        return response

    async def list(self, request: web.Request) -> web.Response:
        key = await authenticate(request, self._keys, "subscribe")
        if request.query_string and request.query:
            raise ProblemError(problems.QUERY_INVALID, "This endpoint takes no query parameters.")
        now = self._now()
        records = await self._store.list_subscriptions(key.key_id)
        return self._json({"subscriptions": [subscription_document(record, now) for record in records]})

    async def show(self, request: web.Request) -> web.Response:
        key = await authenticate(request, self._keys, "subscribe")
        return self._json(subscription_document(await self._own(request, key), self._now()))

    async def delete(self, request: web.Request) -> web.Response:
        key = await authenticate(request, self._keys, "subscribe")
        record = await self._own(request, key)
        await self._store.delete_subscription(record.subscription_id)
        return web.Response(status=204)

    async def rotate(self, request: web.Request) -> web.Response:
        key = await authenticate(request, self._keys, "subscribe")
        wanted = await self._body(request, SecretRotation, empty_ok=True)
        record = await self._own(request, key)
        now = self._now()
        rotated, secret = await rotate_secret(
            self._store, self._master, record, grace_seconds=wanted.grace_seconds, now=now
        )
        until = subscription_document(rotated, now)["previous_secret_until"] or now.isoformat()
        return self._json(
            {"subscription_id": rotated.subscription_id, "secret": secret, "previous_secret_until": until}
        )

    async def replay(self, request: web.Request) -> web.Response:
        key = await authenticate(request, self._keys, "subscribe")
        wanted = await self._body(request, ReplayRequest)
        record = await self._own(request, key)
        if wanted.since.tzinfo is None:
            raise ProblemError(
                problems.REQUEST_INVALID,
                "'since' needs an offset (RFC 3339).",
                errors=[{"pointer": "/since", "detail": "needs an offset"}],
            )
        queued = await replay(self._store, self._master, record, wanted.since, self._now())
        return self._json({"queued": queued}, status=202)


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False)
