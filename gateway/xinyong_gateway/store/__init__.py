"""Storage: one interface (:class:`Store`), a backend per database, chosen by URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xinyong_gateway.errors import ConfigError
from xinyong_gateway.store.base import (
    ALL_PARTITIONS,
    API_SCOPES,
    PARTITIONS,
    AllPartitions,
    ApiKeyRecord,
    ApiScope,
    AppendResult,
    AppendStatus,
    InboxEntry,
    NewSourceKey,
    PartitionClaims,
    PartitionState,
    ProjectionCommit,
    SchemaStatus,
    SourceKey,
    SourceRecord,
    StatusChange,
    Store,
    StoredEvent,
    SubjectRow,
    from_micros,
)
from xinyong_gateway.store.sqlite import SqliteStore, sqlite_path_from_url

if TYPE_CHECKING:
    from xinyong_gateway.store.postgresql import PostgresStore

__all__ = [
    "ALL_PARTITIONS",
    "API_SCOPES",
    "PARTITIONS",
    "AllPartitions",
    "ApiKeyRecord",
    "ApiScope",
    "AppendResult",
    "AppendStatus",
    "InboxEntry",
    "NewSourceKey",
    "PartitionClaims",
    "PartitionState",
    "PostgresStore",
    "ProjectionCommit",
    "SchemaStatus",
    "SourceKey",
    "SourceRecord",
    "SqliteStore",
    "StatusChange",
    "Store",
    "StoredEvent",
    "SubjectRow",
    "from_micros",
    "open_store",
    "sqlite_path_from_url",
]


def open_store(url: str) -> Store:
    """The backend for a database URL (not yet opened: use ``async with``)."""
    if url.startswith("sqlite:"):
        return SqliteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from xinyong_gateway.store.postgresql import PostgresStore

        return PostgresStore(url)
    raise ConfigError(
        f"Unsupported database URL scheme in {url.split(':', 1)[0]!r}:"
        " use sqlite:///path/to/file.db or postgresql://user@host:port/db."
    )


def __getattr__(name: str) -> Any:
    # asyncpg is imported only when a PostgreSQL database is used (it costs every SQLite command otherwise).
    if name == "PostgresStore":
        from xinyong_gateway.store.postgresql import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
