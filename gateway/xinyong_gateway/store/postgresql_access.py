"""The PostgreSQL store's sources and API keys: :class:`PostgresAccess`, the store methods of ``Store``'s "sources"
and "API keys" parts (``PostgresStore`` inherits them; each runs in a transaction or a read of ``PostgresStore``'s)."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, cast

import asyncpg

from xinyong_gateway.errors import ApiKeyNotFoundError, SourceNotFoundError
from xinyong_gateway.store.records import ApiKeyRecord, Micros, NewSourceKey, SourceRecord
from xinyong_gateway.store.rows import (
    API_KEY_COLUMNS,
    SOURCE_COLUMNS,
    SOURCE_KEY_COLUMNS,
    api_key_record,
    source_record,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["PostgresAccess", "PostgresCore"]

T = TypeVar("T")
_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
_SELECT_SOURCE = f"SELECT {SOURCE_COLUMNS} FROM sources WHERE source_id = $1"
_SELECT_SOURCE_KEYS = f"SELECT {SOURCE_KEY_COLUMNS} FROM source_keys WHERE source_id = $1 ORDER BY key_id"
_SELECT_API_KEYS = f"SELECT {API_KEY_COLUMNS} FROM api_keys"


class PostgresCore(ABC):
    """What the mixins of ``PostgresStore`` (this module's, ``postgresql_outbox``'s) run their statements through,
    defined by ``PostgresStore``."""

    @abstractmethod
    def _transaction(self) -> contextlib.AbstractAsyncContextManager[_Connection]:
        """A pooled connection in a transaction, store errors translated."""

    @abstractmethod
    async def _read(self, fn: Callable[[_Connection], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection, store errors translated."""


class PostgresAccess(PostgresCore):
    """The source and API-key methods of the PostgreSQL store (mixed into ``PostgresStore``)."""

    # -- sources -----------------------------------------------------------------------------------
    @staticmethod
    async def _load_source(conn: _Connection, source_id: str) -> SourceRecord | None:
        row = await conn.fetchrow(_SELECT_SOURCE, source_id)
        if row is None:
            return None
        return source_record(tuple(row), [tuple(key) for key in await conn.fetch(_SELECT_SOURCE_KEYS, source_id)])

    async def create_source(
        self,
        *,
        source_id: str,
        kind: Literal["marketplace", "courier", "regulator", "intermediary"],
        name: str,
        uscc: str | None,
        rate_limit: float | None,
        key: NewSourceKey,
        now: Micros,
    ) -> SourceRecord:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO sources (source_id, kind, name, uscc, rate_limit, status, created_at)"
                " VALUES ($1, $2, $3, $4, $5, 'active', $6)",
                source_id,
                kind,
                name,
                uscc,
                rate_limit,
                now,
            )
            await conn.execute(
                "INSERT INTO source_keys (source_id, scheme, material, fingerprint, created_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                source_id,
                key.scheme,
                key.material,
                key.fingerprint,
                now,
            )
            return cast(SourceRecord, await self._load_source(conn, source_id))

    async def list_sources(self) -> list[SourceRecord]:
        async def list_all(conn: _Connection) -> list[SourceRecord]:
            rows = await conn.fetch(f"SELECT {SOURCE_COLUMNS} FROM sources ORDER BY created_at, source_id")
            keys: dict[str, list[tuple[Any, ...]]] = {}
            for key_row in await conn.fetch(f"SELECT source_id, {SOURCE_KEY_COLUMNS} FROM source_keys ORDER BY key_id"):
                keys.setdefault(key_row[0], []).append(tuple(key_row)[1:])
            return [source_record(tuple(row), keys.get(row[0], [])) for row in rows]

        return await self._read(list_all)

    async def get_source(self, source_id: str) -> SourceRecord | None:
        return await self._read(lambda conn: self._load_source(conn, source_id))

    async def disable_source(self, source_id: str, *, now: Micros) -> SourceRecord:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE sources SET status = 'disabled', disabled_at = coalesce(disabled_at, $1) WHERE source_id = $2",
                now,
                source_id,
            )
            record = await self._load_source(conn, source_id)
        if record is None:
            raise SourceNotFoundError(f"No source with id {source_id!r}.")
        return record

    async def rotate_source_key(
        self, source_id: str, key: NewSourceKey, *, now: Micros, grace_until: Micros
    ) -> SourceRecord:
        async with self._transaction() as conn:
            # Lock the source's row: two rotations of one source take turns instead of interleaving their keys.
            if await conn.fetchval("SELECT 1 FROM sources WHERE source_id = $1 FOR UPDATE", source_id) is None:
                raise SourceNotFoundError(f"No source with id {source_id!r}.")
            await conn.execute(
                "UPDATE source_keys SET expires_at = least(coalesce(expires_at, $1), $1) WHERE source_id = $2",
                grace_until,
                source_id,
            )
            await conn.execute(
                "INSERT INTO source_keys (source_id, scheme, material, fingerprint, created_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                source_id,
                key.scheme,
                key.material,
                key.fingerprint,
                now,
            )
            return cast(SourceRecord, await self._load_source(conn, source_id))

    # -- API keys ----------------------------------------------------------------------------------------
    async def create_api_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO api_keys (key_id, name, scopes, rate_limit, secret_digest, sealed_lookup_secret,"
                f" created_at, sources) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {API_KEY_COLUMNS}",
                record.key_id,
                record.name,
                ",".join(record.scopes),
                record.rate_limit,
                record.secret_digest,
                record.sealed_lookup_secret,
                record.created_at,
                ",".join(record.sources),
            )
        return api_key_record(tuple(cast(asyncpg.Record, row)))

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        async def list_all(conn: _Connection) -> list[ApiKeyRecord]:
            rows = await conn.fetch(_SELECT_API_KEYS + " ORDER BY created_at, key_id")
            return [api_key_record(tuple(row)) for row in rows]

        return await self._read(list_all)

    async def revoke_api_key(self, key_id: str, *, now: Micros) -> ApiKeyRecord:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE key_id = $2"
                f" RETURNING {API_KEY_COLUMNS}",
                now,
                key_id,
            )
        if row is None:
            raise ApiKeyNotFoundError(f"No API key with id {key_id!r}.")
        return api_key_record(tuple(row))
