"""The SQLite store's subscriptions and outbox: the statements a projection commit runs to write its notifications,
and :class:`SqliteOutbox`, the store methods of ``Store``'s "subscriptions and the outbox" part (``SqliteStore``
inherits them; every statement runs on the writer thread, as ``SqliteStore._submit`` runs it).

A commit's notifications are written in its own transaction (:func:`insert_changes`, :func:`write_outbox`): each
feed entry gets its ``change_id``, each notification of it the next sequence of its subscription, so a notification
exists exactly when its change does, and sequences count 1, 2, 3 ... with no gap whatever crashes.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

from xinyong_gateway.errors import SubscriptionNotFoundError, SubscriptionsChangedError
from xinyong_gateway.store.records import (
    Delivery,
    DeliveryOutcome,
    Micros,
    OutboxState,
    ProjectionCommit,
    StatusChange,
    SubscriptionRecord,
    SubscriptionRoutes,
)
from xinyong_gateway.store.rows import (
    DELIVERY_COLUMNS,
    STATUS_CHANGE_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    delivery_record,
    outcome_values,
    subscription_record,
)
from xinyong_gateway.store.sqlite_access import SqliteCore

__all__ = ["SqliteOutbox", "check_routes", "insert_changes", "write_outbox"]

T = TypeVar("T")

_SELECT_SUBSCRIPTIONS = f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"
_INSERT_CHANGE = "INSERT INTO status_changes (subject_key, snapshot, effective_at, recorded_at) VALUES (?, ?, ?, ?)"
_BUMP_GENERATION = "UPDATE subscription_generation SET generation = generation + 1 WHERE id = 1"


# -- inside a projection commit (the writer thread, in the commit's transaction) ---------------------------------
def check_routes(conn: sqlite3.Connection, commit: ProjectionCommit) -> None:
    """Raise ``SubscriptionsChangedError`` when the commit's changes were routed under another generation of the
    subscriptions (or not routed at all while some subscription is active)."""
    if not commit.changes:
        return
    generation = conn.execute("SELECT generation FROM subscription_generation WHERE id = 1").fetchone()[0]
    if commit.routes_generation == generation:
        return
    if (
        commit.routes_generation is None
        and not conn.execute("SELECT 1 FROM subscriptions WHERE status = 'active' LIMIT 1").fetchone()
    ):
        return
    raise SubscriptionsChangedError("Subscriptions changed since this commit's changes were routed.")


def insert_changes(conn: sqlite3.Connection, commit: ProjectionCommit) -> list[int]:
    """Append the commit's feed entries; their ``change_id`` in order when the outbox needs them."""
    rows = [(entry.subject_key, entry.snapshot, entry.effective_at, commit.recorded_at) for entry in commit.changes]
    if not commit.outbox:
        conn.executemany(_INSERT_CHANGE, rows)
        return []
    ids = []
    for row in rows:
        cursor = conn.execute(_INSERT_CHANGE, row)
        ids.append(int(cursor.lastrowid or 0))
    return ids


def write_outbox(conn: sqlite3.Connection, commit: ProjectionCommit, change_ids: Sequence[int]) -> None:
    """Write the commit's notifications, each with the next sequence of its subscription (in commit order)."""
    if not commit.outbox:
        return
    counts = Counter(entry.subscription_id for entry in commit.outbox)
    next_sequence: dict[str, int] = {}
    for subscription_id, count in sorted(counts.items()):
        last = conn.execute(
            "UPDATE subscriptions SET last_sequence = last_sequence + ? WHERE subscription_id = ?"
            " RETURNING last_sequence",
            (count, subscription_id),
        ).fetchone()
        if last is None:  # cannot happen under a matching generation; never write a message without its sequence
            raise SubscriptionsChangedError("A subscription routed to is gone.")
        next_sequence[subscription_id] = int(last[0]) - count + 1
    rows = []
    for entry in commit.outbox:
        sequence = next_sequence[entry.subscription_id]
        next_sequence[entry.subscription_id] = sequence + 1
        rows.append((entry.subscription_id, sequence, change_ids[entry.change], commit.recorded_at, commit.recorded_at))
    conn.executemany(
        "INSERT INTO outbox (subscription_id, sequence, change_id, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
        rows,
    )


def _require(conn: sqlite3.Connection, subscription_id: str) -> SubscriptionRecord:
    row = conn.execute(_SELECT_SUBSCRIPTIONS + " WHERE subscription_id = ?", (subscription_id,)).fetchone()
    if row is None:
        raise SubscriptionNotFoundError(f"No subscription {subscription_id}.")
    return subscription_record(row)


class SqliteOutbox(SqliteCore):
    """The subscription and outbox methods of the SQLite store (mixed into ``SqliteStore``)."""

    async def create_subscription(self, record: SubscriptionRecord) -> SubscriptionRecord:
        def create(conn: sqlite3.Connection) -> SubscriptionRecord:
            values = (
                record.subscription_id, record.key_id, record.url, ",".join(record.lists), record.subjects,
                record.sealed_secret, None, None, "active", None, 0, None, record.created_at, None,
            )  # fmt: skip
            conn.execute(f"INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ({', '.join('?' * 14)})", values)
            conn.execute(_BUMP_GENERATION)
            return _require(conn, record.subscription_id)

        return await self._submit(create, write=True)

    async def list_subscriptions(self, key_id: str | None = None) -> list[SubscriptionRecord]:
        def read(conn: sqlite3.Connection) -> list[SubscriptionRecord]:
            if key_id is None:
                rows = conn.execute(_SELECT_SUBSCRIPTIONS + " ORDER BY created_at, subscription_id")
            else:
                rows = conn.execute(
                    _SELECT_SUBSCRIPTIONS + " WHERE key_id = ? ORDER BY created_at, subscription_id", (key_id,)
                )
            return [subscription_record(row) for row in rows]

        return await self._submit(read)

    async def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        def read(conn: sqlite3.Connection) -> SubscriptionRecord | None:
            row = conn.execute(_SELECT_SUBSCRIPTIONS + " WHERE subscription_id = ?", (subscription_id,)).fetchone()
            return subscription_record(row) if row else None

        return await self._submit(read)

    async def delete_subscription(self, subscription_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            _require(conn, subscription_id)
            conn.execute("DELETE FROM outbox WHERE subscription_id = ?", (subscription_id,))
            conn.execute("DELETE FROM subscriptions WHERE subscription_id = ?", (subscription_id,))
            conn.execute(_BUMP_GENERATION)

        await self._submit(delete, write=True)

    async def set_subscription_status(
        self, subscription_id: str, *, active: bool, reason: str | None, now: Micros
    ) -> SubscriptionRecord:
        def change(conn: sqlite3.Connection) -> SubscriptionRecord:
            _require(conn, subscription_id)
            if active:
                conn.execute(
                    "UPDATE subscriptions SET status = 'active', disabled_reason = NULL, disabled_at = NULL,"
                    " failing_since = NULL WHERE subscription_id = ?",
                    (subscription_id,),
                )
                conn.execute(
                    "UPDATE outbox SET next_attempt_at = ?, leased_until = NULL"
                    " WHERE subscription_id = ? AND state = 'pending'",
                    (now, subscription_id),
                )
            else:
                conn.execute(
                    "UPDATE subscriptions SET status = 'disabled', disabled_reason = ?, disabled_at = ?"
                    " WHERE subscription_id = ?",
                    (reason, now, subscription_id),
                )
            conn.execute(_BUMP_GENERATION)
            return _require(conn, subscription_id)

        return await self._submit(change, write=True)

    async def rotate_subscription_secret(
        self, subscription_id: str, sealed_secret: bytes, sealed_previous: bytes, *, grace_until: Micros
    ) -> SubscriptionRecord:
        def rotate(conn: sqlite3.Connection) -> SubscriptionRecord:
            _require(conn, subscription_id)
            conn.execute(
                "UPDATE subscriptions SET sealed_secret = ?, sealed_previous_secret = ?, previous_expires_at = ?"
                " WHERE subscription_id = ?",
                (sealed_secret, sealed_previous, grace_until, subscription_id),
            )
            return _require(conn, subscription_id)

        return await self._submit(rotate, write=True)

    async def subscription_routes(self) -> SubscriptionRoutes:
        def read(conn: sqlite3.Connection) -> SubscriptionRoutes:
            conn.execute("BEGIN")
            try:
                generation = conn.execute("SELECT generation FROM subscription_generation WHERE id = 1").fetchone()[0]
                rows = conn.execute(_SELECT_SUBSCRIPTIONS + " WHERE status = 'active' ORDER BY subscription_id")
                subscriptions = tuple(subscription_record(row) for row in rows)
                keys = conn.execute(
                    "SELECT key_id, sealed_lookup_secret FROM api_keys WHERE key_id IN"
                    " (SELECT value FROM json_each(?))",
                    (json.dumps(sorted({s.key_id for s in subscriptions if s.subjects})),),
                )
                secrets = {key_id: bytes(sealed) for key_id, sealed in keys}
            finally:
                conn.execute("COMMIT")
            return SubscriptionRoutes(int(generation), subscriptions, secrets)

        return await self._submit(read)

    async def changes_since(self, since: Micros, after: int, limit: int) -> list[StatusChange]:
        def read(conn: sqlite3.Connection) -> list[StatusChange]:
            rows = conn.execute(
                f"SELECT {STATUS_CHANGE_COLUMNS} WHERE c.effective_at >= ? AND c.change_id > ?"
                " ORDER BY c.change_id LIMIT ?",
                (since, after, limit),
            )
            return [StatusChange(*row) for row in rows]

        return await self._submit(read)

    async def enqueue_replay(self, subscription_id: str, change_ids: Sequence[int], *, now: Micros) -> int:
        def enqueue(conn: sqlite3.Connection) -> int:
            record = _require(conn, subscription_id)
            first = record.last_sequence + 1
            conn.execute(
                "UPDATE subscriptions SET last_sequence = last_sequence + ? WHERE subscription_id = ?",
                (len(change_ids), subscription_id),
            )
            conn.executemany(
                "INSERT INTO outbox (subscription_id, sequence, change_id, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(subscription_id, first + i, change_id, now, now) for i, change_id in enumerate(change_ids)],
            )
            return len(change_ids)

        return await self._submit(enqueue, write=True)

    async def claim_deliveries(self, now: Micros, lease_until: Micros, limit: int) -> list[Delivery]:
        def claim(conn: sqlite3.Connection) -> list[Delivery]:
            claimed = conn.execute(
                "UPDATE outbox SET leased_until = ? WHERE message_id IN (SELECT o.message_id FROM outbox o"
                " JOIN subscriptions s ON s.subscription_id = o.subscription_id WHERE o.state = 'pending'"
                " AND o.next_attempt_at <= ? AND (o.leased_until IS NULL OR o.leased_until <= ?)"
                " AND s.status = 'active' ORDER BY o.next_attempt_at, o.message_id LIMIT ?) RETURNING message_id",
                (lease_until, now, now, limit),
            ).fetchall()
            if not claimed:
                return []
            rows = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} WHERE o.message_id IN (SELECT value FROM json_each(?))"
                " ORDER BY o.message_id",
                (json.dumps([row[0] for row in claimed]),),
            )
            return [delivery_record(row) for row in rows]

        return await self._submit(claim, write=True)

    async def finish_deliveries(
        self, outcomes: Sequence[DeliveryOutcome], *, now: Micros, disable_failing_since: Micros
    ) -> list[tuple[str, str]]:
        def finish(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            conn.executemany(
                "UPDATE outbox SET state = ?, attempts = attempts + 1,"
                " next_attempt_at = coalesce(?, next_attempt_at), leased_until = NULL, last_status = ?,"
                " last_error = ?, delivered_at = ? WHERE message_id = ?",
                [outcome_values(outcome, now) for outcome in outcomes],
            )
            last_outcome = {outcome.subscription_id: outcome for outcome in outcomes}  # the last one of each counts
            conn.executemany(
                "UPDATE subscriptions SET failing_since = CASE WHEN ? THEN NULL ELSE coalesce(failing_since, ?) END"
                " WHERE subscription_id = ?",
                [(outcome.delivered, now, subscription_id) for subscription_id, outcome in last_outcome.items()],
            )
            disable = {o.subscription_id: o.disable for o in outcomes if o.disable is not None}
            for subscription_id in {o.subscription_id for o in outcomes if not o.delivered}:
                row = conn.execute(
                    "SELECT failing_since FROM subscriptions WHERE subscription_id = ? AND status = 'active'",
                    (subscription_id,),
                ).fetchone()
                if row and row[0] is not None and row[0] <= disable_failing_since:
                    disable.setdefault(subscription_id, "failing")
            disabled = []
            for subscription_id, reason in sorted(disable.items()):
                cursor = conn.execute(
                    "UPDATE subscriptions SET status = 'disabled', disabled_reason = ?, disabled_at = ?"
                    " WHERE subscription_id = ? AND status = 'active'",
                    (reason, now, subscription_id),
                )
                if cursor.rowcount:
                    disabled.append((subscription_id, reason))
            if disabled:
                conn.execute(_BUMP_GENERATION)
            return disabled

        return await self._submit(finish, write=True)

    async def outbox_state(self, subscription_id: str) -> OutboxState:
        def read(conn: sqlite3.Connection) -> OutboxState:
            counts = dict(
                conn.execute(
                    "SELECT state, count(*) FROM outbox WHERE subscription_id = ? GROUP BY state", (subscription_id,)
                ).fetchall()
            )
            error = conn.execute(
                "SELECT last_error FROM outbox WHERE subscription_id = ? AND last_error IS NOT NULL"
                " ORDER BY message_id DESC LIMIT 1",
                (subscription_id,),
            ).fetchone()
            return OutboxState(
                counts.get("pending", 0),
                counts.get("delivered", 0),
                counts.get("failed", 0),
                error[0] if error else None,
            )

        return await self._submit(read)

    async def outbox_sequences(self, subscription_id: str) -> list[tuple[int, int]]:
        def read(conn: sqlite3.Connection) -> list[tuple[int, int]]:
            rows = conn.execute(
                "SELECT sequence, change_id FROM outbox WHERE subscription_id = ? ORDER BY sequence", (subscription_id,)
            )
            return [(int(a), int(b)) for a, b in rows]

        return await self._submit(read)
