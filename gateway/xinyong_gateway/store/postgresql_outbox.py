"""The PostgreSQL store's subscriptions and outbox: the statements a projection commit runs to write its notifications,
and :class:`PostgresOutbox`, the store methods of ``Store``'s "subscriptions and the outbox" part (``PostgresStore``
inherits them).

**Locks.** A projection commit reads the subscriptions' generation ``FOR SHARE`` (commits do not wait for each other,
but a change of the subscriptions waits for them, and they for it), then, after the feed's lock, moves each
subscription's ``last_sequence`` in subscription order: two commits that notify one subscription take turns, so its
sequences have no gap and no repeat. Whatever changes the set of subscriptions takes the generation's row first and
the subscription's row after, in the order commits take them, so the two never wait on each other in a circle.
Dispatchers lease due messages with ``FOR UPDATE SKIP LOCKED``: several share the work and none is given a message
another holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from xinyong_gateway.errors import SubscriptionNotFoundError, SubscriptionsChangedError
from xinyong_gateway.store.postgresql_access import PostgresCore
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

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["PostgresOutbox", "check_routes", "insert_changes", "write_outbox"]

T = TypeVar("T")
_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_SELECT_SUBSCRIPTIONS = f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"
_BUMP_GENERATION = "UPDATE subscription_generation SET generation = generation + 1 WHERE id = 1"
_INSERT_CHANGES = (
    "INSERT INTO status_changes (subject_key, snapshot, effective_at, recorded_at)"
    " SELECT k, s, e, $4 FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS t (k, s, e, n)"
    " ORDER BY n RETURNING change_id"
)


# -- inside a projection commit (its transaction) ----------------------------------------------------------------
async def check_routes(conn: _Connection, commit: ProjectionCommit) -> None:
    """Raise ``SubscriptionsChangedError`` when the commit's changes were routed under another generation of the
    subscriptions (or not routed while some subscription is active). The generation stays locked (``FOR SHARE``)
    until the commit ends, so it cannot change under the commit."""
    if not commit.changes:
        return
    generation = await conn.fetchval("SELECT generation FROM subscription_generation WHERE id = 1 FOR SHARE")
    if commit.routes_generation == generation:
        return
    if commit.routes_generation is None and not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE status = 'active')"
    ):
        return
    raise SubscriptionsChangedError("Subscriptions changed since this commit's changes were routed.")


async def insert_changes(conn: _Connection, commit: ProjectionCommit) -> list[int]:
    """Append the commit's feed entries in one statement; their ``change_id`` in order (drawn in the entries' order)."""
    rows = await conn.fetch(
        _INSERT_CHANGES,
        [entry.subject_key for entry in commit.changes],
        [entry.snapshot for entry in commit.changes],
        [entry.effective_at for entry in commit.changes],
        commit.recorded_at,
    )
    return sorted(int(row[0]) for row in rows)


async def write_outbox(conn: _Connection, commit: ProjectionCommit, change_ids: Sequence[int]) -> None:
    """Write the commit's notifications, each with the next sequence of its subscription (in commit order)."""
    if not commit.outbox:
        return
    counts: dict[str, int] = {}
    for entry in commit.outbox:
        counts[entry.subscription_id] = counts.get(entry.subscription_id, 0) + 1
    next_sequence: dict[str, int] = {}
    for subscription_id, count in sorted(counts.items()):
        last = await conn.fetchval(
            "UPDATE subscriptions SET last_sequence = last_sequence + $1 WHERE subscription_id = $2"
            " RETURNING last_sequence",
            count,
            subscription_id,
        )
        if last is None:  # cannot happen under a matching generation; never write a message without its sequence
            raise SubscriptionsChangedError("A subscription routed to is gone.")
        next_sequence[subscription_id] = int(last) - count + 1
    ids, sequences, changes = [], [], []
    for entry in commit.outbox:
        ids.append(entry.subscription_id)
        sequences.append(next_sequence[entry.subscription_id])
        next_sequence[entry.subscription_id] += 1
        changes.append(change_ids[entry.change])
    await conn.execute(
        "INSERT INTO outbox (subscription_id, sequence, change_id, created_at, next_attempt_at)"
        " SELECT i, q, c, $4, $4 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS t (i, q, c)",
        ids,
        sequences,
        changes,
        commit.recorded_at,
    )


async def _require(conn: _Connection, subscription_id: str) -> SubscriptionRecord:
    row = await conn.fetchrow(_SELECT_SUBSCRIPTIONS + " WHERE subscription_id = $1", subscription_id)
    if row is None:
        raise SubscriptionNotFoundError(f"No subscription {subscription_id}.")
    return subscription_record(tuple(row))


class PostgresOutbox(PostgresCore):
    """The subscription and outbox methods of the PostgreSQL store (mixed into ``PostgresStore``)."""

    async def create_subscription(self, record: SubscriptionRecord) -> SubscriptionRecord:
        async with self._transaction() as conn:
            await conn.execute(_BUMP_GENERATION)
            await conn.execute(
                f"INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, 'active', NULL, 0, NULL, $7, NULL)",
                record.subscription_id,
                record.key_id,
                record.url,
                ",".join(record.lists),
                record.subjects,
                record.sealed_secret,
                record.created_at,
            )
            return await _require(conn, record.subscription_id)

    async def list_subscriptions(self, key_id: str | None = None) -> list[SubscriptionRecord]:
        async def read(conn: _Connection) -> list[SubscriptionRecord]:
            if key_id is None:
                rows = await conn.fetch(_SELECT_SUBSCRIPTIONS + " ORDER BY created_at, subscription_id")
            else:
                rows = await conn.fetch(
                    _SELECT_SUBSCRIPTIONS + " WHERE key_id = $1 ORDER BY created_at, subscription_id", key_id
                )
            return [subscription_record(tuple(row)) for row in rows]

        return await self._read(read)

    async def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        async def read(conn: _Connection) -> SubscriptionRecord | None:
            row = await conn.fetchrow(_SELECT_SUBSCRIPTIONS + " WHERE subscription_id = $1", subscription_id)
            return subscription_record(tuple(row)) if row else None

        return await self._read(read)

    async def delete_subscription(self, subscription_id: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(_BUMP_GENERATION)
            await _require(conn, subscription_id)
            await conn.execute("DELETE FROM outbox WHERE subscription_id = $1", subscription_id)
            await conn.execute("DELETE FROM subscriptions WHERE subscription_id = $1", subscription_id)

    async def set_subscription_status(
        self, subscription_id: str, *, active: bool, reason: str | None, now: Micros
    ) -> SubscriptionRecord:
        async with self._transaction() as conn:
            await conn.execute(_BUMP_GENERATION)
            await _require(conn, subscription_id)
            if active:
                await conn.execute(
                    "UPDATE subscriptions SET status = 'active', disabled_reason = NULL, disabled_at = NULL,"
                    " failing_since = NULL WHERE subscription_id = $1",
                    subscription_id,
                )
                await conn.execute(
                    "UPDATE outbox SET next_attempt_at = $1, leased_until = NULL"
                    " WHERE subscription_id = $2 AND state = 'pending'",
                    now,
                    subscription_id,
                )
            else:
                await conn.execute(
                    "UPDATE subscriptions SET status = 'disabled', disabled_reason = $1, disabled_at = $2"
                    " WHERE subscription_id = $3",
                    reason,
                    now,
                    subscription_id,
                )
            return await _require(conn, subscription_id)

    async def rotate_subscription_secret(
        self, subscription_id: str, sealed_secret: bytes, sealed_previous: bytes, *, grace_until: Micros
    ) -> SubscriptionRecord:
        async with self._transaction() as conn:
            await _require(conn, subscription_id)
            await conn.execute(
                "UPDATE subscriptions SET sealed_secret = $1, sealed_previous_secret = $2, previous_expires_at = $3"
                " WHERE subscription_id = $4",
                sealed_secret,
                sealed_previous,
                grace_until,
                subscription_id,
            )
            return await _require(conn, subscription_id)

    async def subscription_routes(self) -> SubscriptionRoutes:
        async with self._transaction() as conn:
            generation = await conn.fetchval("SELECT generation FROM subscription_generation WHERE id = 1 FOR SHARE")
            rows = await conn.fetch(_SELECT_SUBSCRIPTIONS + " WHERE status = 'active' ORDER BY subscription_id")
            subscriptions = tuple(subscription_record(tuple(row)) for row in rows)
            keys = await conn.fetch(
                "SELECT key_id, sealed_lookup_secret FROM api_keys WHERE key_id = ANY($1::text[])",
                sorted({s.key_id for s in subscriptions if s.subjects}),
            )
            return SubscriptionRoutes(int(generation), subscriptions, {row[0]: bytes(row[1]) for row in keys})

    async def changes_since(self, since: Micros, after: int, limit: int) -> list[StatusChange]:
        async def read(conn: _Connection) -> list[StatusChange]:
            rows = await conn.fetch(
                f"SELECT {STATUS_CHANGE_COLUMNS} WHERE c.effective_at >= $1 AND c.change_id > $2"
                " ORDER BY c.change_id LIMIT $3",
                since,
                after,
                limit,
            )
            return [StatusChange(*row) for row in rows]

        return await self._read(read)

    async def enqueue_replay(self, subscription_id: str, change_ids: Sequence[int], *, now: Micros) -> int:
        async with self._transaction() as conn:
            last = await conn.fetchval(
                "UPDATE subscriptions SET last_sequence = last_sequence + $1 WHERE subscription_id = $2"
                " RETURNING last_sequence",
                len(change_ids),
                subscription_id,
            )
            if last is None:
                raise SubscriptionNotFoundError(f"No subscription {subscription_id}.")
            first = int(last) - len(change_ids) + 1
            await conn.execute(
                "INSERT INTO outbox (subscription_id, sequence, change_id, created_at, next_attempt_at)"
                " SELECT $1, $2 + n - 1, c, $4, $4 FROM unnest($3::bigint[]) WITH ORDINALITY AS t (c, n)",
                subscription_id,
                first,
                list(change_ids),
                now,
            )
            return len(change_ids)

    async def claim_deliveries(self, now: Micros, lease_until: Micros, limit: int) -> list[Delivery]:
        async with self._transaction() as conn:
            claimed = await conn.fetch(
                "UPDATE outbox SET leased_until = $1 WHERE message_id IN (SELECT o.message_id FROM outbox o"
                " JOIN subscriptions s ON s.subscription_id = o.subscription_id WHERE o.state = 'pending'"
                " AND o.next_attempt_at <= $2 AND (o.leased_until IS NULL OR o.leased_until <= $2)"
                " AND s.status = 'active' ORDER BY o.next_attempt_at, o.message_id LIMIT $3"
                " FOR UPDATE OF o SKIP LOCKED) RETURNING message_id",
                lease_until,
                now,
                limit,
            )
            if not claimed:
                return []
            rows = await conn.fetch(
                f"SELECT {DELIVERY_COLUMNS} WHERE o.message_id = ANY($1::bigint[]) ORDER BY o.message_id",
                [row[0] for row in claimed],
            )
            return [delivery_record(tuple(row)) for row in rows]

    async def finish_deliveries(
        self, outcomes: Sequence[DeliveryOutcome], *, now: Micros, disable_failing_since: Micros
    ) -> list[tuple[str, str]]:
        last_outcome = {outcome.subscription_id: outcome for outcome in outcomes}  # the last one of each counts
        async with self._transaction() as conn:
            await conn.executemany(
                "UPDATE outbox SET state = $1, attempts = attempts + 1,"
                " next_attempt_at = coalesce($2, next_attempt_at), leased_until = NULL, last_status = $3,"
                " last_error = $4, delivered_at = $5 WHERE message_id = $6",
                [outcome_values(outcome, now) for outcome in outcomes],
            )
            for subscription_id, outcome in sorted(last_outcome.items()):  # one order: no two finishes deadlock
                await conn.execute(
                    "UPDATE subscriptions SET failing_since = CASE WHEN $1 THEN NULL ELSE coalesce(failing_since, $2)"
                    " END WHERE subscription_id = $3",
                    outcome.delivered,
                    now,
                    subscription_id,
                )
        disable = {o.subscription_id: o.disable for o in outcomes if o.disable is not None}
        failing = sorted(sid for sid, outcome in last_outcome.items() if not outcome.delivered)
        if not disable and not failing:
            return []
        async with self._transaction() as conn:  # the generation first, then the subscriptions (the module's order)
            rows = await conn.fetch(
                "SELECT subscription_id FROM subscriptions WHERE subscription_id = ANY($1::text[])"
                " AND status = 'active' AND failing_since <= $2",
                failing,
                disable_failing_since,
            )
            for row in rows:
                disable.setdefault(row[0], "failing")
            if not disable:
                return []
            await conn.execute(_BUMP_GENERATION)
            disabled = []
            for subscription_id, reason in sorted(disable.items()):
                done = await conn.fetchval(
                    "UPDATE subscriptions SET status = 'disabled', disabled_reason = $1, disabled_at = $2"
                    " WHERE subscription_id = $3 AND status = 'active' RETURNING 1",
                    reason,
                    now,
                    subscription_id,
                )
                if done:
                    disabled.append((subscription_id, reason))
            return disabled

    async def outbox_state(self, subscription_id: str) -> OutboxState:
        async def read(conn: _Connection) -> OutboxState:
            counts = {
                row[0]: int(row[1])
                for row in await conn.fetch(
                    "SELECT state, count(*) FROM outbox WHERE subscription_id = $1 GROUP BY state", subscription_id
                )
            }
            error = await conn.fetchval(
                "SELECT last_error FROM outbox WHERE subscription_id = $1 AND last_error IS NOT NULL"
                " ORDER BY message_id DESC LIMIT 1",
                subscription_id,
            )
            return OutboxState(counts.get("pending", 0), counts.get("delivered", 0), counts.get("failed", 0), error)

        return await self._read(read)

    async def outbox_sequences(self, subscription_id: str) -> list[tuple[int, int]]:
        async def read(conn: _Connection) -> list[tuple[int, int]]:
            rows = await conn.fetch(
                "SELECT sequence, change_id FROM outbox WHERE subscription_id = $1 ORDER BY sequence", subscription_id
            )
            return [(int(row[0]), int(row[1])) for row in rows]

        return await self._read(read)
