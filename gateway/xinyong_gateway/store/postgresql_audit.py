"""The PostgreSQL store's audit-log statements (``PostgresStore.append_audit`` runs :func:`append` inside its
transaction, under the audit lock; the readers run the others on a pooled connection).

The chain itself (ids, hashes, the head record's MAC) is worked out by ``store.base.next_audit_entry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from xinyong_gateway.store.base import AuditChain, next_audit_entry
from xinyong_gateway.store.records import AuditDraft, AuditEntry, AuditHead
from xinyong_gateway.store.rows import AUDIT_COLUMNS

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["append", "head", "latest", "read"]

_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
_SELECT_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM audit_log"


async def append(conn: _Connection, draft: AuditDraft, chain: AuditChain) -> AuditEntry:
    """The next entry and the new head record, in the caller's transaction (which holds the audit lock)."""
    row = await conn.fetchrow("SELECT entry_id, hash, mac FROM audit_head WHERE id = 1")
    last = await conn.fetchrow("SELECT entry_id, hash FROM audit_log ORDER BY entry_id DESC LIMIT 1")
    entry, new_head = next_audit_entry(
        AuditHead(*row) if row else None, (last[0], last[1]) if last else None, draft, chain
    )
    values: tuple[Any, ...] = (
        entry.entry_id, entry.at, entry.actor, entry.action, entry.target, entry.details, entry.prev_hash, entry.hash,
    )  # fmt: skip
    await conn.execute(f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", *values)
    await conn.execute(
        "INSERT INTO audit_head (id, entry_id, hash, mac) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE"
        " SET entry_id = excluded.entry_id, hash = excluded.hash, mac = excluded.mac",
        new_head.entry_id,
        new_head.hash,
        new_head.mac,
    )
    return entry


async def read(conn: _Connection, after: int, limit: int) -> list[AuditEntry]:
    rows = await conn.fetch(_SELECT_AUDIT + " WHERE entry_id > $1 ORDER BY entry_id LIMIT $2", after, limit)
    return [AuditEntry(*row) for row in rows]


async def latest(conn: _Connection, limit: int, action: str | None) -> list[AuditEntry]:
    rows = await conn.fetch(
        _SELECT_AUDIT + " WHERE $1::text IS NULL OR action = $1 ORDER BY entry_id DESC LIMIT $2", action, limit
    )
    return [AuditEntry(*row) for row in reversed(rows)]


async def head(conn: _Connection) -> AuditHead | None:
    row = await conn.fetchrow("SELECT entry_id, hash, mac FROM audit_head WHERE id = 1")
    return AuditHead(*row) if row else None
