"""The lifecycle operations (``store/lifecycle.py``) on PostgreSQL, through the store's pooled connections and its
translation of driver errors. A backup is ``pg_dump``'s work, not the gateway's (README, "Backup and restore")."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from xinyong_gateway.errors import StoreError
from xinyong_gateway.store.lifecycle import (
    POSTGRES_BACKUP_ADVICE,
    Lifecycle,
    SealedPlace,
    SealedRow,
    checked_place,
    sealed_row,
    sealed_select,
)

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

__all__ = ["PostgresLifecycle"]

T = TypeVar("T")


class PostgresLifecycle(Lifecycle):
    def __init__(
        self,
        transaction: Callable[[], contextlib.AbstractAsyncContextManager[Connection]],
        read: Callable[[Callable[[Connection], Awaitable[Any]]], Awaitable[Any]],
    ) -> None:
        self._transaction = transaction
        self._read = read

    async def read_meta(self, names: Sequence[str]) -> dict[str, bytes]:
        async def read(conn: Connection) -> dict[str, bytes]:
            rows = await conn.fetch("SELECT name, value FROM meta WHERE name = ANY($1::text[])", list(names))
            return {row[0]: bytes(row[1]) for row in rows}

        result: dict[str, bytes] = await self._read(read)
        return result

    async def insert_meta(self, name: str, value: bytes) -> bytes:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, value
            )
            return bytes(await conn.fetchval("SELECT value FROM meta WHERE name = $1", name))

    async def write_meta(self, values: Mapping[str, bytes | None]) -> None:
        async with self._transaction() as conn:
            await _write_meta(conn, values)

    async def read_sealed(self, place: SealedPlace, after: Any, limit: int) -> list[SealedRow]:
        sql = sealed_select(place, first=after is None, placeholders=("$1", "$1" if after is None else "$2"))
        params = (limit,) if after is None else (after, limit)

        async def read(conn: Connection) -> list[SealedRow]:
            return [sealed_row(place, row) for row in await conn.fetch(sql, *params)]

        result: list[SealedRow] = await self._read(read)
        return result

    async def reseal(self, place: SealedPlace, changes: Sequence[tuple[Any, bytes, bytes]]) -> int:
        checked_place(place)
        sql = (
            f"UPDATE {place.table} SET {place.column} = $1"  # noqa: S608 -- names checked by checked_place
            f" WHERE {place.key} = $2 AND {place.column} = $3 RETURNING 1"
        )
        done = 0
        async with self._transaction() as conn:
            for key, old, new in changes:
                done += await conn.fetchval(sql, new, key, old) or 0
        return done

    async def check_sealed_locked(
        self,
        places: Sequence[SealedPlace],
        opens: Callable[[SealedPlace, SealedRow], bool],
        then: Mapping[str, bytes | None],
    ) -> int:
        refused = 0
        async with self._transaction() as conn:
            for table in dict.fromkeys(checked_place(place).table for place in places):
                # Readers go on; writers of these tables wait until the commit (or the end of the transaction).
                await conn.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            for place in places:
                async for row in conn.cursor(sealed_select(place, first=True, placeholders=("", "ALL"))):
                    refused += not opens(place, sealed_row(place, row))
            if not refused:
                await _write_meta(conn, then)
        return refused

    async def backup(self, destination: Path) -> None:
        raise StoreError(f"`backup` copies SQLite databases only: {POSTGRES_BACKUP_ADVICE}.")

    async def subject_states(self, after: str, limit: int) -> list[tuple[str, str]]:
        async def read(conn: Connection) -> list[tuple[str, str]]:
            rows = await conn.fetch(
                "SELECT subject_key, state FROM subjects WHERE subject_key > $1 ORDER BY subject_key LIMIT $2",
                after,
                limit,
            )
            return [(row[0], row[1]) for row in rows]

        result: list[tuple[str, str]] = await self._read(read)
        return result

    async def erase_bodies(self, seqs: Sequence[int], erased: Callable[[int, str, str], bytes], now: int) -> int:
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "SELECT seq, source_id, webhook_id FROM inbox WHERE erased_at IS NULL AND seq = ANY($1::bigint[])"
                " FOR UPDATE",
                list(seqs),
            )
            await conn.executemany(
                "UPDATE inbox SET body = $1, erased_at = $2 WHERE seq = $3",
                [(erased(row[0], row[1], row[2]), now, row[0]) for row in rows],
            )
            return len(rows)

    async def erase_identities(self, subject_keys: Sequence[str], now: int) -> int:
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "UPDATE subjects SET sealed_id = ''::bytea, sealed_name = NULL,"
                " identity_erased_at = coalesce(identity_erased_at, $1) WHERE subject_key = ANY($2::text[])"
                " AND (identity_erased_at IS NULL OR sealed_name IS NOT NULL) RETURNING 1",
                now,
                list(subject_keys),
            )
            return len(rows)


async def _write_meta(conn: Connection, values: Mapping[str, bytes | None]) -> None:
    for name, value in values.items():
        if value is None:
            await conn.execute("DELETE FROM meta WHERE name = $1", name)
        else:
            await conn.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                name,
                value,
            )
