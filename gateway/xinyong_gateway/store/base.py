"""The one storage interface every backend implements, and the records that cross it.

The web layer and the command line talk only to :class:`Store`. A backend translates its driver's
exceptions into the gateway's error tree (``StoreUnavailableError``, ``SchemaNotReadyError``, ...) at this boundary.
Webhook bodies and source secrets arrive here already sealed: a backend stores opaque bytes and never
sees a plaintext body, a secret or a personal identifier.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, Self

from xinyong_gateway.errors import SchemaNotReadyError

__all__ = [
    "AppendResult",
    "AppendStatus",
    "InboxEntry",
    "NewSourceKey",
    "ProjectionCommit",
    "SchemaStatus",
    "SourceKey",
    "SourceRecord",
    "StatusChange",
    "Store",
    "StoredEvent",
    "SubjectRow",
    "from_micros",
    "to_micros",
]

KeyScheme = Literal["v1", "v1a"]


def to_micros(moment: datetime) -> int:
    """Unix time in microseconds (how instants are stored)."""
    return int(moment.timestamp() * 1_000_000)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


class AppendStatus(enum.Enum):
    ACCEPTED = "accepted"
    """Stored now, durably."""
    DUPLICATE = "duplicate"
    """The same source already stored this webhook-id with the same body."""
    CONFLICT = "conflict"
    """The same source already stored this webhook-id with a different body; nothing was written."""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One verified, validated webhook, ready to append to the inbox (the raw event log)."""

    source_id: str
    webhook_id: str
    body_digest: bytes
    event_type: str
    webhook_timestamp: int
    signature: str
    received_at: int
    """Unix microseconds."""
    sealed_body: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    status: AppendStatus
    seq: int | None
    """Position in the inbox of the stored row (the existing one for a duplicate)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A row of the inbox, in log order."""

    seq: int
    source_id: str
    webhook_id: str
    event_type: str
    webhook_timestamp: int
    signature: str
    received_at: int
    body_digest: bytes
    sealed_body: bytes


@dataclass(frozen=True, slots=True)
class NewSourceKey:
    scheme: KeyScheme
    material: bytes
    """v1: the secret sealed under the master key; v1a: the raw 32-byte Ed25519 public key."""
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SourceKey:
    key_id: int
    scheme: KeyScheme
    material: bytes
    fingerprint: str
    created_at: datetime
    expires_at: datetime | None
    """None for a current key; the end of its grace period for a rotated-out key."""

    def valid_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at


@dataclass(frozen=True, slots=True)
class SourceRecord:
    source_id: str
    kind: Literal["marketplace", "courier", "regulator"]
    name: str
    uscc: str | None
    rate_limit: float | None
    status: Literal["active", "disabled"]
    created_at: datetime
    disabled_at: datetime | None
    keys: tuple[SourceKey, ...]


@dataclass(frozen=True, slots=True)
class SubjectRow:
    """A subject's credit file as stored: identity (sealed and displayable), state, status."""

    subject_key: str
    id_type: Literal["uscc", "ric"]
    display_id: str
    display_name: str | None
    sealed_id: bytes
    sealed_name: bytes | None
    state: str
    status: str
    next_change_at: int | None
    """Unix microseconds, or None when time alone cannot change the status."""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An entry of the change feed: a full status snapshot and the instant it took effect."""

    change_id: int
    subject_key: str
    snapshot: str
    effective_at: int
    recorded_at: int


@dataclass(frozen=True, slots=True)
class ProjectionCommit:
    """What one projector step writes, in one transaction: its effects and its new position together."""

    name: str
    expected_position: int
    """The position the step started from; the commit fails if another projector moved it meanwhile."""
    position: int
    subjects: tuple[SubjectRow, ...]
    changes: tuple[tuple[str, str, int], ...]
    """``(subject_key, snapshot, effective_at)`` to append to the change feed, in order."""
    recorded_at: int
    archived: tuple[tuple[str, str], ...] = ()
    """``(subject_key, record JSON)`` of records leaving their credit file for the archive."""
    replace_archive: bool = False
    """Empty the archive first (a re-projection rebuilds it)."""
    adopt_policy: tuple[str, str] | None = None
    """``(version, TOML text)``: record this policy as the active one, in the same transaction."""


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int
    pending: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.pending


class Store(ABC):
    """Durable storage of the gateway. Open it with ``async with``; every method is safe to await
    concurrently from the event loop that opened it."""

    @property
    @abstractmethod
    def display_url(self) -> str:
        """The database location, without credentials, for messages."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- schema -----------------------------------------------------------------------------------
    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the names applied (empty when up to date)."""

    @abstractmethod
    async def schema_status(self) -> SchemaStatus: ...

    async def require_schema(self) -> None:
        """Raise ``SchemaNotReadyError`` unless every migration is applied."""
        status = await self.schema_status()
        if not status.ready:
            raise SchemaNotReadyError(
                f"The database {self.display_url} needs migrations ({', '.join(status.pending)}); "
                "run `xinyong-gateway migrate` first."
            )

    @abstractmethod
    async def check_master_key(self, check_value: bytes) -> None:
        """Record the master key's check value on first use; afterwards raise ``MasterKeyError`` when
        it differs (the database was sealed under another key)."""

    # -- inbox ------------------------------------------------------------------------------------
    @abstractmethod
    def append(self, entry: InboxEntry) -> Awaitable[AppendResult]:
        """Append durably; return only once the row would survive a power loss.

        Concurrent calls share commits. The same ``(source_id, webhook_id)`` is stored once, also when
        copies race. Raises ``StoreUnavailableError`` when the commit fails (nothing acknowledged)."""

    @abstractmethod
    def append_many(self, entries: Sequence[InboxEntry]) -> Awaitable[list[AppendResult]]:
        """Append many entries (bulk import); one result per entry, in order, once all are durable.

        The semantics of :meth:`append` called for each entry in order: a ``(source_id, webhook_id)``
        already stored, or earlier in ``entries``, is a duplicate (same body digest) or a conflict (another
        digest, nothing written). The entries are queued when this is called, so a caller can prepare its
        next entries while these commit; bulk calls are stored in the order they are made. Backends write
        large chunks per transaction. Raises ``StoreUnavailableError`` when a commit fails: chunks committed
        before it stay stored (appending the same entries again answers duplicate for them)."""

    @abstractmethod
    async def read_inbox(self, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Inbox rows with ``seq > after_seq`` in log order."""

    @abstractmethod
    async def inbox_count(self) -> int: ...

    # -- credit files (the projector) -----------------------------------------------------------------
    @abstractmethod
    async def projector_position(self, name: str = "main") -> int:
        """The seq of the last inbox row the named projector applied (0 before the first)."""

    @abstractmethod
    async def load_subjects(self, keys: Sequence[str]) -> dict[str, SubjectRow]:
        """The stored credit files of these subjects (absent keys are new subjects)."""

    @abstractmethod
    async def commit_projection(self, commit: ProjectionCommit) -> None:
        """Write a projector step atomically: subjects, feed entries and the new position, or nothing.

        Raises ``ProjectionConflictError`` when the position is no longer ``expected_position``, and
        ``PolicyVersionError`` when ``adopt_policy`` reuses a recorded version with another text."""

    @abstractmethod
    async def active_policy(self) -> tuple[str, str] | None:
        """The adopted policy as ``(version, TOML text)``, or None while none was adopted."""

    @abstractmethod
    async def policy_history(self) -> list[tuple[str, int, bool]]:
        """Every adopted policy: ``(version, adopted_at unix microseconds, active)``, oldest first."""

    @abstractmethod
    async def due_subjects(self, now: int, limit: int) -> list[SubjectRow]:
        """Subjects whose ``next_change_at`` is at or before ``now`` (unix microseconds), earliest first."""

    @abstractmethod
    async def read_changes(self, after: int = 0, limit: int = 100) -> list[StatusChange]:
        """Change-feed entries with ``change_id > after``, in order."""

    @abstractmethod
    async def subject_changes(self, subject_key: str) -> list[StatusChange]:
        """One subject's status history, in order."""

    @abstractmethod
    async def archived_records(self, subject_key: str) -> list[str]:
        """One subject's archived records (JSON), oldest first."""

    # -- sources ----------------------------------------------------------------------------------
    @abstractmethod
    async def create_source(
        self,
        *,
        source_id: str,
        kind: Literal["marketplace", "courier", "regulator"],
        name: str,
        uscc: str | None,
        rate_limit: float | None,
        key: NewSourceKey,
        now: datetime,
    ) -> SourceRecord: ...

    @abstractmethod
    async def list_sources(self) -> list[SourceRecord]: ...

    @abstractmethod
    async def get_source(self, source_id: str) -> SourceRecord | None: ...

    @abstractmethod
    async def disable_source(self, source_id: str, *, now: datetime) -> SourceRecord:
        """Mark a source disabled (its webhooks are refused from then on). Raises ``SourceNotFoundError``."""

    @abstractmethod
    async def rotate_source_key(
        self, source_id: str, key: NewSourceKey, *, now: datetime, grace_until: datetime
    ) -> SourceRecord:
        """Add ``key`` as the current key; every other key stays valid until ``grace_until`` (or its
        earlier expiry). Raises ``SourceNotFoundError``."""
