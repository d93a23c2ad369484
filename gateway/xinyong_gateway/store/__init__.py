"""Storage: one interface (:class:`Store`), a backend per database, chosen by URL (:func:`open_store`).

    records.py        the records that cross the interface (instants as Micros), projection partitions
    base.py           the interface (Store, PartitionClaims) and the rules both backends share
    public.py         the public site's name index (bigrams) and list queries, shared by both backends' *_public.py
    group_commit.py   the group commit both backends' appends go through
    sqlite.py         the embedded backend: one file, a writer thread (sqlite_audit.py, sqlite_outbox.py: its audit log,
                      subscriptions and outbox statements)
    postgresql.py     any number of processes on one database; postgresql_claims.py: projectors share partitions
    lifecycle.py      backup, sealed columns re-sealed (rotation), retention's erasures: Store.lifecycle(), one
                      module per backend (sqlite_lifecycle.py, postgresql_lifecycle.py)
                      (postgresql_audit.py, postgresql_outbox.py: as for SQLite)

Everything outside this package imports from here, never from its modules (an import-linter contract says so);
the helpers of ``base`` that only the backends use (column lists, row readers, commit checks) stay there.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from xinyong_gateway.errors import ConfigError
from xinyong_gateway.store.base import (
    LAST_EVENTS_WINDOW,
    AllPartitions,
    AuditChain,
    PartitionClaims,
    Store,
)
from xinyong_gateway.store.lifecycle import POSTGRES_BACKUP_ADVICE, Lifecycle, SealedPlace, SealedRow
from xinyong_gateway.store.records import (
    ALL_PARTITIONS,
    API_SCOPES,
    AUDIT_GENESIS,
    PARTITIONS,
    ApiKeyRecord,
    ApiScope,
    AppendResult,
    AppendStatus,
    ArchivedRecord,
    AuditDraft,
    AuditEntry,
    AuditHead,
    CaseRef,
    Commitment,
    Delivery,
    DeliveryOutcome,
    FeedEntry,
    InboxEntry,
    KeyScheme,
    ListedSubject,
    Micros,
    NameMatch,
    NewSourceKey,
    OperationsState,
    OrganisationStanding,
    OutboxEntry,
    OutboxState,
    PartitionAdvance,
    PartitionState,
    PolicyAdoption,
    PolicyText,
    PoolUsage,
    ProjectionCommit,
    PublicSubject,
    SchemaStatus,
    SigningKeyRecord,
    SourceKey,
    SourceRecord,
    Standing,
    StatusChange,
    StoredEvent,
    SubjectName,
    SubjectRow,
    SubscriptionRecord,
    SubscriptionRoutes,
    from_micros,
    partition_mask,
    partition_of,
    partitions_in,
    to_micros,
)
from xinyong_gateway.store.sqlite import SqliteStore, sqlite_path_from_url
from xinyong_gateway.store.sqlite_lifecycle import restore_sqlite

if TYPE_CHECKING:
    from xinyong_gateway.store.postgresql import PostgresStore
    from xinyong_gateway.store.postgresql_claims import PostgresClaims

__all__ = [
    "ALL_PARTITIONS",
    "API_SCOPES",
    "AUDIT_GENESIS",
    "LAST_EVENTS_WINDOW",
    "PARTITIONS",
    "POSTGRES_BACKUP_ADVICE",
    "AllPartitions",
    "ApiKeyRecord",
    "ApiScope",
    "AppendResult",
    "AppendStatus",
    "ArchivedRecord",
    "AuditChain",
    "AuditDraft",
    "AuditEntry",
    "AuditHead",
    "CaseRef",
    "Commitment",
    "Delivery",
    "DeliveryOutcome",
    "FeedEntry",
    "InboxEntry",
    "KeyScheme",
    "Lifecycle",
    "ListedSubject",
    "Micros",
    "NameMatch",
    "NewSourceKey",
    "OperationsState",
    "OrganisationStanding",
    "OutboxEntry",
    "OutboxState",
    "PartitionAdvance",
    "PartitionClaims",
    "PartitionState",
    "PolicyAdoption",
    "PolicyText",
    "PoolUsage",
    "PostgresClaims",
    "PostgresStore",
    "ProjectionCommit",
    "PublicSubject",
    "SchemaStatus",
    "SealedPlace",
    "SealedRow",
    "SigningKeyRecord",
    "SourceKey",
    "SourceRecord",
    "SqliteStore",
    "Standing",
    "StatusChange",
    "Store",
    "StoredEvent",
    "SubjectName",
    "SubjectRow",
    "SubscriptionRecord",
    "SubscriptionRoutes",
    "check_database_url",
    "from_micros",
    "open_store",
    "partition_mask",
    "partition_of",
    "partitions_in",
    "restore_sqlite",
    "sqlite_path_from_url",
    "to_micros",
]


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_FORMS = "sqlite:///path/to/file.db or postgresql://user@host:port/db"


def check_database_url(url: str) -> str:
    """``url`` when it names a database this gateway can use; else a :class:`ConfigError` that says what to write
    instead (a bare path ``var/xinyong.db`` is meant as ``sqlite:///var/xinyong.db``). Nothing is opened."""
    if url.startswith("sqlite:"):
        sqlite_path_from_url(url)
        return url
    if url.startswith(("postgresql://", "postgres://")):
        return url
    if _SCHEME.match(url):
        raise ConfigError(f"Unsupported database URL scheme {url.split(':', 1)[0]!r}: use {_URL_FORMS}.")
    if "@" in url or ":" in url or not url.strip():  # perhaps an address with a password: never repeat it
        raise ConfigError(f"That is not a database URL: use {_URL_FORMS}.")
    raise ConfigError(
        f"{url} is not a database URL: write sqlite:///{url} (a SQLite file) or postgresql://user@host:port/db."
    )


def open_store(url: str, *, create: bool = False) -> Store:
    """The backend for a database URL (not yet opened: use ``async with``). ``create``: a SQLite file that does not
    exist yet is created (``migrate`` only); otherwise opening it raises ``DatabaseNotFoundError``. A PostgreSQL
    database is never created here (its administrator creates it; ``migrate`` creates the tables)."""
    check_database_url(url)
    if url.startswith("sqlite:"):
        return SqliteStore(url, create=create)
    from xinyong_gateway.store.postgresql import PostgresStore

    return PostgresStore(url)


def __getattr__(name: str) -> Any:
    # asyncpg is imported only when a PostgreSQL database is used (it costs every SQLite command otherwise).
    if name == "PostgresStore":
        from xinyong_gateway.store.postgresql import PostgresStore

        return PostgresStore
    if name == "PostgresClaims":
        from xinyong_gateway.store.postgresql_claims import PostgresClaims

        return PostgresClaims
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
