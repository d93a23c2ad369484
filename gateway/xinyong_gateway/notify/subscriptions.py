"""Subscriptions: creating one (URL checked by the SSRF guard, a ``whsec_`` secret sealed under the master key),
showing one as its API key sees it, rotating its secret with a grace period, and replaying changes since a time.

Used by the HTTP API (``web.subscriptions``, for the API key's own subscriptions) and the operator's command line
(``subscriptions list|show|disable|enable``).
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from typing import Any

from xinyong.subscriptions import SubscriptionRequest
from xinyong.webhooks import SigningSecret
from xinyong_gateway.credit.subscribers import route_changes, routes_of
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.notify.ssrf import OutboundGuard
from xinyong_gateway.store import FeedEntry, Store, SubscriptionRecord, from_micros, to_micros

__all__ = ["MAX_REPLAY", "replay", "rotate_secret", "subscribe", "subscription_document"]

_ID_PREFIX = "sub_"
MAX_REPLAY = 100_000
"""Notifications one replay may queue at most (ask again with a later ``since`` for more)."""
_PAGE = 1000


async def subscribe(
    store: Store, master: MasterKey, guard: OutboundGuard, key_id: str, request: SubscriptionRequest, now: datetime
) -> tuple[SubscriptionRecord, str]:
    """Store a subscription for the API key ``key_id``; return it and its secret (``whsec_…``, shown once).
    Raises ``OutboundRefusedError`` for a URL the guard refuses (nothing is stored)."""
    await guard.check_url(request.url)
    subscription_id = _ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode().lower()
    secret = SigningSecret.generate()
    subjects = (
        json.dumps([subject.model_dump() for subject in request.subjects], ensure_ascii=False)
        if request.subjects is not None
        else None
    )
    record = await store.create_subscription(
        SubscriptionRecord(
            subscription_id=subscription_id,
            key_id=key_id,
            url=request.url,
            lists=tuple(dict.fromkeys(request.lists)),
            subjects=subjects,
            sealed_secret=master.seal_subscription_secret(subscription_id, secret.key),
            sealed_previous_secret=None,
            previous_expires_at=None,
            status="active",
            disabled_reason=None,
            last_sequence=0,
            failing_since=None,
            created_at=to_micros(now),
            disabled_at=None,
        )
    )
    return record, str(secret)


def subscription_document(record: SubscriptionRecord, now: datetime) -> dict[str, Any]:
    """A subscription as ``GET /v1/subscriptions/{id}`` shows it (never a secret)."""
    grace = record.previous_expires_at
    return {
        "subscription_id": record.subscription_id,
        "url": record.url,
        "lists": list(record.lists),
        "subjects": json.loads(record.subjects) if record.subjects is not None else None,
        "status": record.status,
        "disabled_reason": record.disabled_reason,
        "last_sequence": record.last_sequence,
        "created_at": from_micros(record.created_at).isoformat(),
        "previous_secret_until": (
            from_micros(grace).isoformat() if grace is not None and grace > to_micros(now) else None
        ),
    }


async def rotate_secret(
    store: Store, master: MasterKey, record: SubscriptionRecord, *, grace_seconds: int, now: datetime
) -> tuple[SubscriptionRecord, str]:
    """Give a subscription a new secret; the current one keeps signing beside it for ``grace_seconds`` (Standard
    Webhooks allows several signatures in one header). Returns the subscription and the new secret (shown once)."""
    secret = SigningSecret.generate()
    current = master.open_subscription_secret(record.subscription_id, record.sealed_secret)
    rotated = await store.rotate_subscription_secret(
        record.subscription_id,
        master.seal_subscription_secret(record.subscription_id, secret.key),
        master.seal_subscription_secret(record.subscription_id, current),
        grace_until=to_micros(now) + grace_seconds * 1_000_000,
    )
    return rotated, str(secret)


async def replay(store: Store, master: MasterKey, record: SubscriptionRecord, since: datetime, now: datetime) -> int:
    """Queue again every change that took effect at ``since`` or later and concerns ``record`` (as routing decided
    it when it was committed: the list before and after the change), each with a new sequence; return how many
    (at most :data:`MAX_REPLAY`)."""
    secrets_by_key: dict[str, bytes] = {}
    if record.subjects is not None:
        keys = {key.key_id: key for key in await store.list_api_keys()}
        if record.key_id in keys:
            secrets_by_key[record.key_id] = keys[record.key_id].sealed_lookup_secret
    routes = routes_of([record], secrets_by_key, master)
    lists_before: dict[str, str] = {}
    queued = 0
    after = 0
    while queued < MAX_REPLAY:
        rows = await store.changes_since(to_micros(since), after, _PAGE)
        if not rows:
            break
        after = rows[-1].change_id
        for row in rows:
            if row.subject_key not in lists_before:
                history = await store.subject_changes(row.subject_key)
                earlier = [entry for entry in history if entry.change_id < row.change_id]
                lists_before[row.subject_key] = json.loads(earlier[-1].snapshot)["list"] if earlier else "none"
        identities = {row.subject_key: row for row in rows}

        def person(subject_key: str, identities: dict[str, Any] = identities) -> str | None:
            row = identities[subject_key]
            return master.open_identity(subject_key, row.sealed_id) if row.id_type == "ric" else None

        changes = [FeedEntry(row.subject_key, row.snapshot, row.effective_at) for row in rows]
        entries = route_changes(routes, changes, lists_before, person)
        for row in rows:
            lists_before[row.subject_key] = json.loads(row.snapshot)["list"]
        change_ids = [rows[entry.change].change_id for entry in entries][: MAX_REPLAY - queued]
        if change_ids:
            queued += await store.enqueue_replay(record.subscription_id, change_ids, now=to_micros(now))
    return queued
