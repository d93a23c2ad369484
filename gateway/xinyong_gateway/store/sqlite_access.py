"""The SQLite store's sources and API keys: :class:`SqliteAccess`, the store methods of ``Store``'s "sources" and "API
keys" parts (``SqliteStore`` inherits them; every statement runs on the writer thread, as ``SqliteStore._submit`` runs
it)."""

from __future__ import annotations

import asyncio
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from xinyong_gateway.errors import ApiKeyNotFoundError, SourceNotFoundError
from xinyong_gateway.store.records import ApiKeyRecord, Micros, NewSourceKey, SourceRecord
from xinyong_gateway.store.rows import (
    API_KEY_COLUMNS,
    SOURCE_COLUMNS,
    SOURCE_KEY_COLUMNS,
    api_key_record,
    source_record,
)

__all__ = ["SqliteAccess", "SqliteCore"]

T = TypeVar("T")
_SELECT_API_KEYS = f"SELECT {API_KEY_COLUMNS} FROM api_keys"
_SELECT_SOURCES = f"SELECT {SOURCE_COLUMNS} FROM sources"


class SqliteCore(ABC):
    """What the mixins of ``SqliteStore`` (this module's, ``sqlite_outbox``'s) run their statements through: the
    store's writer thread, defined by ``SqliteStore``."""

    @abstractmethod
    def _submit(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> asyncio.Future[T]:
        """Run ``fn`` on the writer thread (``write``: in a write transaction)."""


class SqliteAccess(SqliteCore):
    """The source and API-key methods of the SQLite store (mixed into ``SqliteStore``)."""

    # -- sources -----------------------------------------------------------------------------------
    @staticmethod
    def _load_source(conn: sqlite3.Connection, source_id: str) -> SourceRecord | None:
        row = conn.execute(_SELECT_SOURCES + " WHERE source_id = ?", (source_id,)).fetchone()
        if row is None:
            return None
        keys = conn.execute(
            f"SELECT {SOURCE_KEY_COLUMNS} FROM source_keys WHERE source_id = ? ORDER BY key_id", (source_id,)
        ).fetchall()
        return source_record(row, keys)

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
        def create(conn: sqlite3.Connection) -> SourceRecord:
            conn.execute(
                "INSERT INTO sources (source_id, kind, name, uscc, rate_limit, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'active', ?)",
                (source_id, kind, name, uscc, rate_limit, now),
            )
            conn.execute(
                "INSERT INTO source_keys (source_id, scheme, material, fingerprint, created_at) VALUES (?, ?, ?, ?, ?)",
                (source_id, key.scheme, key.material, key.fingerprint, now),
            )
            return cast(SourceRecord, self._load_source(conn, source_id))

        return await self._submit(create, write=True)

    async def list_sources(self) -> list[SourceRecord]:
        def list_all(conn: sqlite3.Connection) -> list[SourceRecord]:
            rows = conn.execute(_SELECT_SOURCES + " ORDER BY created_at, source_id").fetchall()
            keys: dict[str, list[tuple[Any, ...]]] = {}
            for key_row in conn.execute(f"SELECT source_id, {SOURCE_KEY_COLUMNS} FROM source_keys ORDER BY key_id"):
                keys.setdefault(key_row[0], []).append(key_row[1:])
            return [source_record(row, keys.get(row[0], [])) for row in rows]

        return await self._submit(list_all)

    async def get_source(self, source_id: str) -> SourceRecord | None:
        return await self._submit(lambda conn: self._load_source(conn, source_id))

    async def disable_source(self, source_id: str, *, now: Micros) -> SourceRecord:
        def disable(conn: sqlite3.Connection) -> SourceRecord:
            conn.execute(
                "UPDATE sources SET status = 'disabled', disabled_at = coalesce(disabled_at, ?) WHERE source_id = ?",
                (now, source_id),
            )
            record = self._load_source(conn, source_id)
            if record is None:
                raise SourceNotFoundError(f"No source with id {source_id!r}.")
            return record

        return await self._submit(disable, write=True)

    async def rotate_source_key(
        self, source_id: str, key: NewSourceKey, *, now: Micros, grace_until: Micros
    ) -> SourceRecord:
        def rotate(conn: sqlite3.Connection) -> SourceRecord:
            if self._load_source(conn, source_id) is None:
                raise SourceNotFoundError(f"No source with id {source_id!r}.")
            conn.execute(
                "UPDATE source_keys SET expires_at = min(coalesce(expires_at, ?), ?) WHERE source_id = ?",
                (grace_until, grace_until, source_id),
            )
            conn.execute(
                "INSERT INTO source_keys (source_id, scheme, material, fingerprint, created_at) VALUES (?, ?, ?, ?, ?)",
                (source_id, key.scheme, key.material, key.fingerprint, now),
            )
            return cast(SourceRecord, self._load_source(conn, source_id))

        return await self._submit(rotate, write=True)

    # -- API keys ----------------------------------------------------------------------------------------
    async def create_api_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        def create(conn: sqlite3.Connection) -> ApiKeyRecord:
            conn.execute(
                "INSERT INTO api_keys (key_id, name, scopes, rate_limit, secret_digest, sealed_lookup_secret,"
                " created_at, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.key_id, record.name, ",".join(record.scopes), record.rate_limit, record.secret_digest,
                    record.sealed_lookup_secret, record.created_at, ",".join(record.sources),
                ),
            )  # fmt: skip
            row = conn.execute(_SELECT_API_KEYS + " WHERE key_id = ?", (record.key_id,)).fetchone()
            return api_key_record(row)

        return await self._submit(create, write=True)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        def list_all(conn: sqlite3.Connection) -> list[ApiKeyRecord]:
            return [api_key_record(row) for row in conn.execute(_SELECT_API_KEYS + " ORDER BY created_at, key_id")]

        return await self._submit(list_all)

    async def revoke_api_key(self, key_id: str, *, now: Micros) -> ApiKeyRecord:
        def revoke(conn: sqlite3.Connection) -> ApiKeyRecord:
            conn.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?", (now, key_id))
            row = conn.execute(_SELECT_API_KEYS + " WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                raise ApiKeyNotFoundError(f"No API key with id {key_id!r}.")
            return api_key_record(row)

        return await self._submit(revoke, write=True)
