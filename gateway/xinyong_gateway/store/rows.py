"""The tables' columns and how a row becomes a record (and a record a row), shared by both backends: the columns each
record is read from (``*_COLUMNS``) and written with (:func:`subject_values`, :func:`inbox_values`,
:func:`outcome_values`), how a row becomes a record (:func:`source_record`, :func:`api_key_record`,
:func:`subscription_record`, :func:`delivery_record`), and the statements both dialects share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xinyong_gateway.store.records import (
    ApiKeyRecord,
    Delivery,
    DeliveryOutcome,
    InboxEntry,
    Micros,
    SourceKey,
    SourceRecord,
    StatusChange,
    SubjectRow,
    SubscriptionRecord,
    partition_of,
)

__all__ = [
    "API_KEY_COLUMNS",
    "AUDIT_COLUMNS",
    "CASE_REF_UPSERT",
    "DELIVERY_COLUMNS",
    "INBOX_COLUMNS",
    "OUTBOX_PENDING",
    "SIGNING_KEY_COLUMNS",
    "SOURCE_COLUMNS",
    "SOURCE_KEY_COLUMNS",
    "STATUS_CHANGE_COLUMNS",
    "SUBJECT_COLUMNS",
    "SUBSCRIPTION_COLUMNS",
    "api_key_record",
    "delivery_record",
    "inbox_values",
    "outcome_values",
    "source_record",
    "subject_values",
    "subscription_record",
]

# -- what both backends read and write ---------------------------------------------------------------------------
SUBJECT_COLUMNS = (
    "subject_key, id_type, display_id, display_name, sealed_id, sealed_name, state, status, next_change_at"
)
"""A :class:`SubjectRow`'s columns of ``subjects``, in its field order (written with ``updated_at, partition`` after
them: :func:`subject_values`)."""
STATUS_CHANGE_COLUMNS = (
    "c.change_id, c.subject_key, c.snapshot, c.effective_at, c.recorded_at, s.id_type, s.sealed_id"
    " FROM status_changes c JOIN subjects s ON s.subject_key = c.subject_key"
)
"""A :class:`StatusChange` read: the feed's entry joined with its subject's identity (``SELECT`` this ``WHERE``…)."""
INBOX_COLUMNS = (
    "source_id, webhook_id, body_digest, event_type, webhook_timestamp, signature, received_at, body, partitions"
)
"""The inbox columns an append writes (:func:`inbox_values`)."""
SOURCE_COLUMNS = "source_id, kind, name, uscc, rate_limit, status, created_at, disabled_at"
SOURCE_KEY_COLUMNS = "key_id, scheme, material, fingerprint, created_at, expires_at"
API_KEY_COLUMNS = (
    "key_id, name, scopes, rate_limit, secret_digest, sealed_lookup_secret, created_at, revoked_at, sources"
)
OUTBOX_PENDING = (
    "SELECT s.status, count(*), min(o.created_at) FROM outbox o JOIN subscriptions s USING (subscription_id)"
    " WHERE o.state = 'pending' GROUP BY s.status"
)
"""Undelivered notifications by subscription status, with the oldest one's creation time (the operational read)."""
CASE_REF_UPSERT = (
    "INSERT INTO due_process_cases (kind, case_id, subject_key, published_at) VALUES ({}, {}, {}, {})"
    " ON CONFLICT (kind, case_id, subject_key)"
    " DO UPDATE SET published_at = coalesce(due_process_cases.published_at, excluded.published_at)"
)
"""A :class:`CaseRef`'s row, with its four placeholders to fill: a case's first publication time is kept."""
SIGNING_KEY_COLUMNS = "kid, algorithm, public_key, sealed_private_key, created_at, retired_at"
"""A :class:`SigningKeyRecord`'s columns of ``signing_keys``, in its field order."""
AUDIT_COLUMNS = "entry_id, at, actor, action, target, details, prev_hash, hash"
SUBSCRIPTION_COLUMNS = (
    "subscription_id, key_id, url, lists, subjects, sealed_secret, sealed_previous_secret, previous_expires_at,"
    " status, disabled_reason, last_sequence, failing_since, created_at, disabled_at"
)
"""A :class:`SubscriptionRecord`'s columns of ``subscriptions``, in its field order (lists comma-separated)."""
"""An :class:`AuditEntry`'s columns of ``audit_log``, in its field order."""


def subject_values(row: SubjectRow, updated_at: Micros) -> tuple[Any, ...]:
    """The values of a ``subjects`` upsert: :data:`SUBJECT_COLUMNS`, then ``updated_at`` and ``partition``."""
    return (*row, updated_at, partition_of(row.subject_key))


def inbox_values(entry: InboxEntry) -> tuple[Any, ...]:
    """The values of an inbox insert, in the order of :data:`INBOX_COLUMNS`."""
    return (
        entry.source_id, entry.webhook_id, entry.body_digest, entry.event_type, entry.webhook_timestamp,
        entry.signature, entry.received_at, entry.sealed_body, entry.partitions,
    )  # fmt: skip


def subscription_record(row: Sequence[Any]) -> SubscriptionRecord:
    """A ``subscriptions`` row (:data:`SUBSCRIPTION_COLUMNS`), as every backend reads it."""
    values = list(row)
    values[3] = tuple(item for item in values[3].split(",") if item)
    values[5] = bytes(values[5])
    values[6] = bytes(values[6]) if values[6] is not None else None
    return SubscriptionRecord(*values)


DELIVERY_COLUMNS = (
    "o.message_id, o.subscription_id, o.sequence, o.attempts, o.created_at, s.url, s.key_id, s.sealed_secret,"
    " s.sealed_previous_secret, s.previous_expires_at, k.sealed_lookup_secret, k.revoked_at IS NOT NULL,"
    " c.change_id, c.subject_key, c.snapshot, c.effective_at, c.recorded_at, j.id_type, j.sealed_id"
    " FROM outbox o JOIN subscriptions s ON s.subscription_id = o.subscription_id"
    " JOIN api_keys k ON k.key_id = s.key_id JOIN status_changes c ON c.change_id = o.change_id"
    " JOIN subjects j ON j.subject_key = c.subject_key"
)


def delivery_record(row: Sequence[Any]) -> Delivery:
    """A :class:`Delivery` from a row of ``DELIVERY_COLUMNS`` (both backends select the same columns)."""
    (message_id, subscription_id, sequence, attempts, created_at, url, key_id, sealed, previous, expires, lookup,
     revoked, change_id, subject_key, snapshot, effective_at, recorded_at, id_type, sealed_id) = row  # fmt: skip
    return Delivery(
        message_id=int(message_id),
        subscription_id=str(subscription_id),
        sequence=int(sequence),
        attempts=int(attempts),
        created_at=int(created_at),
        url=str(url),
        key_id=str(key_id),
        sealed_secret=bytes(sealed),
        sealed_previous_secret=bytes(previous) if previous is not None else None,
        previous_expires_at=expires,
        sealed_lookup_secret=bytes(lookup),
        key_revoked=bool(revoked),
        change=StatusChange(
            int(change_id), subject_key, snapshot, int(effective_at), int(recorded_at), id_type, bytes(sealed_id)
        ),
    )


def outcome_values(outcome: DeliveryOutcome, now: Micros) -> tuple[Any, ...]:
    """The values of an outbox row's update for a delivery attempt: ``state, next_attempt_at, last_status, last_error,
    delivered_at, message_id`` (pending again when a next attempt is due, failed when none is)."""
    if outcome.delivered:
        state = "delivered"
    else:
        state = "pending" if outcome.next_attempt_at is not None else "failed"
    delivered_at = now if outcome.delivered else None
    return (state, outcome.next_attempt_at, outcome.status, outcome.error, delivered_at, outcome.message_id)


def api_key_record(row: Sequence[Any]) -> ApiKeyRecord:
    """An ``api_keys`` row (:data:`API_KEY_COLUMNS`; scopes and sources comma-separated), as every backend reads
    it."""
    key_id, name, scopes, rate_limit, digest, sealed, created_at, revoked_at, sources = row
    return ApiKeyRecord(
        key_id=key_id,
        name=name,
        scopes=tuple(scope for scope in scopes.split(",") if scope),
        rate_limit=rate_limit,
        secret_digest=bytes(digest),
        sealed_lookup_secret=bytes(sealed),
        created_at=created_at,
        revoked_at=revoked_at,
        sources=tuple(source for source in sources.split(",") if source),
    )


def source_record(row: Sequence[Any], keys: Sequence[Sequence[Any]]) -> SourceRecord:
    """A ``sources`` row (:data:`SOURCE_COLUMNS`) and its ``source_keys`` rows (:data:`SOURCE_KEY_COLUMNS`), as every
    backend reads them."""
    source_id, kind, name, uscc, rate_limit, status, created_at, disabled_at = row
    return SourceRecord(
        source_id=source_id,
        kind=kind,
        name=name,
        uscc=uscc,
        rate_limit=rate_limit,
        status=status,
        created_at=created_at,
        disabled_at=disabled_at,
        keys=tuple(
            SourceKey(key_id, scheme, bytes(material), fingerprint, key_created, expires)
            for key_id, scheme, material, fingerprint, key_created, expires in keys
        ),
    )
