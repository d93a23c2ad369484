"""The PostgreSQL store's operational read (``PostgresStore.operations_state`` and ``last_events``): what
``/metrics`` and ``xinyong-gateway status`` show, on one pooled connection in one read-only transaction.

Cost: as on SQLite (``sqlite_stats``), single index lookups except the count of credit files per list, which reads
every row of ``subjects``; ``/metrics`` reads this at most once per ``web.metrics.STATE_INTERVAL``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from xinyong_gateway.store.base import oldest_unapplied, positions_behind
from xinyong_gateway.store.records import PARTITIONS, Micros, OperationsState
from xinyong_gateway.store.rows import OUTBOX_PENDING

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["last_events", "operations_state"]

_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


async def operations_state(conn: _Connection) -> OperationsState:
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        head = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM inbox")
        positions = dict.fromkeys(range(PARTITIONS), 0)
        positions.update(
            {row[0]: row[1] for row in await conn.fetch("SELECT partition, position FROM projection_partitions")}
        )
        received: dict[int, Micros | None] = {
            position: await conn.fetchval("SELECT received_at FROM inbox WHERE seq > $1 ORDER BY seq LIMIT 1", position)
            for position in positions_behind(positions, head)
        }
        feed_head = await conn.fetchval("SELECT coalesce(max(change_id), 0) FROM status_changes")
        lists = await conn.fetch("SELECT status::jsonb ->> 'list', count(*) FROM subjects GROUP BY 1")
        sources = await conn.fetch("SELECT kind, count(*) FROM sources WHERE status = 'active' GROUP BY kind")
        outbox = await conn.fetch(OUTBOX_PENDING)
    return OperationsState(
        inbox_head=head,
        positions=positions,
        oldest_unapplied=oldest_unapplied(positions, received),
        change_feed_head=feed_head,
        subjects_by_list={str(row[0]): row[1] for row in lists},
        active_sources={row[0]: row[1] for row in sources},
        outbox_pending={row[0]: (row[1], row[2]) for row in outbox},
    )


async def last_events(conn: _Connection, window: int) -> dict[str, Micros]:
    rows = await conn.fetch(
        "SELECT s.kind, max(i.received_at) FROM inbox i JOIN sources s ON s.source_id = i.source_id"
        " WHERE i.seq > (SELECT coalesce(max(seq), 0) FROM inbox) - $1 GROUP BY s.kind",
        window,
    )
    return {row[0]: row[1] for row in rows}
