"""The PostgreSQL store's statements for attestation signing keys (``PostgresStore.add_signing_key`` runs :func:`add`
inside its transaction; ``list_signing_keys`` runs :func:`list_all` on a pooled connection)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from xinyong_gateway.store.records import SigningKeyRecord
from xinyong_gateway.store.rows import SIGNING_KEY_COLUMNS

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["add", "list_all"]

_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


async def list_all(conn: _Connection) -> list[SigningKeyRecord]:
    rows = await conn.fetch(f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid")
    return [SigningKeyRecord(r[0], r[1], bytes(r[2]), bytes(r[3]), r[4], r[5]) for r in rows]


async def add(conn: _Connection, record: SigningKeyRecord, first: bool) -> bool:
    """Retire the current key and add ``record``, in the caller's transaction. The table lock (which readers do not
    wait for) makes rotations of every process take turns: a second rotation sees the first one's key as current."""
    await conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
    if first and await conn.fetchval("SELECT 1 FROM signing_keys LIMIT 1") is not None:
        return False
    await conn.execute("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL", record.created_at)
    await conn.execute(
        f"INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)",
        record.kid,
        record.algorithm,
        record.public_key,
        record.sealed_private_key,
        record.created_at,
    )
    return True
