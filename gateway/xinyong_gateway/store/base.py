"""The one storage interface every backend implements, and the rules both backends share.

Everything above the store talks only to :class:`Store` (through ``xinyong_gateway.store``), in the records of
``records.py``. A backend translates its driver's exceptions into the gateway's error tree (``StoreUnavailableError``,
``SchemaNotReadyError``, ...) at this boundary. Webhook bodies and source secrets arrive here already sealed: a backend
stores opaque bytes and never sees a plaintext body, a secret or a personal identifier.

The rules the two SQL dialects share live here, so each backend only says how to run them (the columns of each table
and how a row becomes a record are in ``rows.py``): the checks of a projection commit
(:func:`check_partitions`, :func:`check_policy_version`), the schema's state (:func:`schema_status_of`), the
results of a bulk append (:func:`classify_appends`) and the place of a new audit entry (:func:`next_audit_entry`).
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from types import TracebackType
from typing import Literal, Protocol, Self

from xinyong_gateway.errors import PolicyVersionError, ProjectionConflictError, SchemaNotReadyError, StoreError
from xinyong_gateway.store.group_commit import CommitObserver, GroupCommit
from xinyong_gateway.store.lifecycle import Lifecycle
from xinyong_gateway.store.records import (
    ALL_PARTITIONS,
    AUDIT_GENESIS,
    ApiKeyRecord,
    AppendResult,
    AppendStatus,
    AuditDraft,
    AuditEntry,
    AuditHead,
    CaseRef,
    Commitment,
    Delivery,
    DeliveryOutcome,
    InboxEntry,
    ListedSubject,
    Micros,
    Migration,
    NameMatch,
    NewSourceKey,
    OperationsState,
    OrganisationStanding,
    OutboxState,
    PartitionState,
    PolicyAdoption,
    PolicyText,
    PoolUsage,
    ProjectionCommit,
    PublicSubject,
    SchemaStatus,
    SigningKeyRecord,
    SourceRecord,
    Standing,
    StatusChange,
    StoredEvent,
    SubjectRow,
    SubscriptionRecord,
    SubscriptionRoutes,
)

__all__ = [
    "LAST_EVENTS_WINDOW",
    "AllPartitions",
    "AuditChain",
    "PartitionClaims",
    "Store",
    "check_partitions",
    "check_policy_version",
    "classify_appends",
    "migrations_in",
    "next_audit_entry",
    "oldest_unapplied",
    "packaged_migrations",
    "positions_behind",
    "schema_status_of",
]


def packaged_migrations(backend: str) -> list[Migration]:
    """A backend's numbered migrations (``migrations/<backend>/NNNN_name.sql``), in order (:func:`migrations_in`)."""
    return migrations_in(resources.files("xinyong_gateway.store") / "migrations" / backend)


def migrations_in(folder: Traversable) -> list[Migration]:
    """The numbered migrations (``NNNN_name.sql``) of ``folder``, in order. Two with one version (branches merged
    with the same number, say) raise ``StoreError``: the one found second would never be applied."""
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    ordered = sorted(found, key=lambda migration: (migration.version, migration.name))
    for before, after in itertools.pairwise(ordered):
        if before.version == after.version:
            raise StoreError(
                f"The migrations {before.name} and {after.name} have the same version {before.version};"
                " renumber one of them."
            )
    return ordered


def schema_status_of(applied: Iterable[int], migrations: Sequence[Migration]) -> SchemaStatus:
    """Where a schema stands, from the versions applied to it and the backend's packaged migrations."""
    done = set(applied)
    return SchemaStatus(
        current=max(done, default=0),
        latest=migrations[-1].version if migrations else 0,
        pending=tuple(migration.name for migration in migrations if migration.version not in done),
    )


def positions_behind(positions: Mapping[int, int], head: int) -> list[int]:
    """The distinct projection positions short of the inbox's ``head``, for the operational read
    (``Store.operations_state``): each needs one lookup of the first row past it."""
    return sorted({position for position in positions.values() if position < head})


def oldest_unapplied(positions: Mapping[int, int], received: Mapping[int, Micros | None]) -> dict[int, Micros]:
    """Each partition's oldest unapplied row's receive time, from ``received`` (position → the receive time of the
    first row past it); partitions caught up have none."""
    return {
        partition: moment for partition, position in positions.items() if (moment := received.get(position)) is not None
    }


def check_partitions(commit: ProjectionCommit, states: Mapping[int, PartitionState]) -> None:
    """Raise ``ProjectionConflictError`` unless every partition ``commit`` writes for is still in the state its step
    read (``states``: the partitions' states now, read in the commit's transaction; a partition never written is
    ``PartitionState()``). This is what makes an event apply once, whoever believes they hold its partition."""
    for advance in commit.partitions:
        if states.get(advance.partition, PartitionState()) != advance.expected:
            raise ProjectionConflictError(
                f"Projection partition {advance.partition} was written by another projector meanwhile."
            )


def check_policy_version(policy: PolicyText, recorded_text: str | None) -> None:
    """Raise ``PolicyVersionError`` when ``policy``'s version is on record (``recorded_text``) with another text: a
    version names one text for ever."""
    if recorded_text is not None and recorded_text != policy.text:
        raise PolicyVersionError(
            f"Policy version {policy.version!r} is already on record with another text;"
            " give the new policy a version of its own."
        )


def classify_appends(
    entries: Sequence[InboxEntry],
    stored: Mapping[tuple[str, str], tuple[int, bytes]],
    inserted_now: Callable[[int], bool],
) -> list[AppendResult]:
    """The results of a bulk append, as ``append`` called for each entry in order would answer.

    ``stored`` maps every entry's ``(source_id, webhook_id)`` to the ``(seq, body_digest)`` of its row after
    the insert; ``inserted_now(seq)`` tells a row this transaction stored. Such a row is the first entry's
    with that id (accepted); every other entry is a duplicate (same digest) or a conflict of the stored row."""
    results: list[AppendResult] = []
    claimed: set[tuple[str, str]] = set()
    for e in entries:
        key = (e.source_id, e.webhook_id)
        seq, digest = stored[key]
        if key not in claimed and inserted_now(seq):
            claimed.add(key)
            results.append(AppendResult(AppendStatus.ACCEPTED, seq))
        else:
            status = AppendStatus.DUPLICATE if digest == e.body_digest else AppendStatus.CONFLICT
            results.append(AppendResult(status, seq))
    return results


class AuditChain(Protocol):
    """How an audit entry is chained: the keyed hashes a store writes with each entry it appends (the gateway's is
    ``xinyong_gateway.audit.KeyedChain``). The store computes nothing itself; it only gives the entry its place."""

    def entry_hash(self, entry_id: int, prev_hash: str, draft: AuditDraft) -> str:
        """The hash of entry ``entry_id`` holding ``draft``, chained to ``prev_hash``."""
        ...

    def head_mac(self, entry_id: int, entry_hash: str) -> str:
        """The MAC of the head record that names entry ``entry_id`` and its hash."""
        ...


def next_audit_entry(
    head: AuditHead | None, last: tuple[int, str] | None, draft: AuditDraft, chain: AuditChain
) -> tuple[AuditEntry, AuditHead]:
    """The entry a store appends for ``draft``, and the head record it writes with it, from the head record and the
    ``(entry_id, hash)`` of the log's last row as they are now (read under the append's lock).

    The head record, not the last row, is what the entry chains to: entries deleted from the end of the log stay a
    gap before the new entry, which ``audit verify`` reports, instead of being papered over. The id is one past both
    (a row beyond the head, which no append of the gateway writes, is left for ``audit verify`` to report too).
    Without a head record the entry follows the last row (or is the first, after :data:`AUDIT_GENESIS`)."""
    last_id, last_hash = last if last is not None else (0, AUDIT_GENESIS)
    if head is not None:
        entry_id, prev_hash = max(head.entry_id, last_id) + 1, head.hash
    else:
        entry_id, prev_hash = last_id + 1, last_hash
    entry_hash = chain.entry_hash(entry_id, prev_hash, draft)
    entry = AuditEntry(
        entry_id, draft.at, draft.actor, draft.action, draft.target, draft.details, prev_hash, entry_hash
    )
    return entry, AuditHead(entry_id, entry_hash, chain.head_mac(entry_id, entry_hash))


class PartitionClaims(ABC):
    """The projection partitions one projector may work on, shared with other processes' projectors.

    A projector calls :meth:`acquire` between steps (never during one): it returns the mask of partitions held
    now, having taken free ones or let go of some so that every live projector holds a fair share. Claims
    are an efficiency device (projectors do not duplicate work); the guarantee that an event is applied once
    is the commit's check of each partition's state. A claim ends when :meth:`release` is called or the
    process dies."""

    @abstractmethod
    async def acquire(self) -> int: ...

    @abstractmethod
    async def release(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class AllPartitions(PartitionClaims):
    """Every partition, always: the one projector of an embedded (single-process) database."""

    async def acquire(self) -> int:
        return ALL_PARTITIONS

    async def release(self) -> None:
        return None


LAST_EVENTS_WINDOW = 1_000_000
"""Inbox rows, counted back from the last, that ``Store.last_events`` looks through."""


class Store(ABC):
    """Durable storage of the gateway. Open it with ``async with``; every method is safe to await
    concurrently from the event loop that opened it."""

    _group: GroupCommit
    """The group commit every backend's ``append`` goes through."""

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

    @abstractmethod
    def lifecycle(self) -> Lifecycle:
        """Backup, master-key rotation, verification and retention on this store (``store/lifecycle.py``)."""

    # -- inbox ------------------------------------------------------------------------------------
    @abstractmethod
    def append(
        self, entry: InboxEntry, into: asyncio.Future[AppendResult] | None = None
    ) -> asyncio.Future[AppendResult]:
        """Append durably; the future is settled only once the row would survive a power loss.

        Concurrent calls share commits. The same ``(source_id, webhook_id)`` is stored once, also when
        copies race. The future fails with ``StoreUnavailableError`` when the commit fails (nothing acknowledged).
        ``into``: a future of the running loop to settle (a request already awaiting it), instead of a new one."""

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
    async def read_inbox(
        self, after_seq: int = 0, limit: int = 1000, *, partitions: int = ALL_PARTITIONS
    ) -> list[StoredEvent]:
        """Inbox rows with ``seq > after_seq`` in log order; a row whose ``partitions`` mask has no bit of
        ``partitions`` comes without its body (``sealed_body`` None).

        A row is returned only once every row with a lower seq is committed: a reader that pages by seq never
        misses a row that commits later (commits may not come out of order)."""

    @abstractmethod
    async def inbox_count(self) -> int: ...

    # -- credit files (the projector) -----------------------------------------------------------------
    @abstractmethod
    async def partition_states(self) -> dict[int, PartitionState]:
        """Every projection partition's state (``PartitionState()`` for one never written)."""

    async def projector_position(self) -> int:
        """The seq up to which every inbox row is applied to every partition (0 before the first)."""
        return min(state.position for state in (await self.partition_states()).values())

    @abstractmethod
    def claim_partitions(self) -> PartitionClaims:
        """Claims on projection partitions for one projector, shared fairly with the projectors of other
        processes that hold claims on this database (see :class:`PartitionClaims`)."""

    @abstractmethod
    async def load_subjects(self, keys: Sequence[str]) -> dict[str, SubjectRow]:
        """The stored credit files of these subjects (absent keys are new subjects)."""

    @abstractmethod
    async def commit_projection(self, commit: ProjectionCommit) -> None:
        """Write a projector step atomically: subjects, feed entries and the new position, or nothing.

        Raises ``ProjectionConflictError`` when a partition is no longer in the state the commit expects, and
        ``PolicyVersionError`` when ``adopt_policy`` reuses a recorded version with another text."""

    @abstractmethod
    async def active_policy(self) -> PolicyText | None:
        """The adopted policy, or None while none was adopted."""

    @abstractmethod
    async def policy_history(self) -> list[PolicyAdoption]:
        """Every adopted policy, oldest first."""

    @abstractmethod
    async def due_subjects(self, now: Micros, limit: int, *, partitions: int = ALL_PARTITIONS) -> list[SubjectRow]:
        """Subjects of these partitions whose ``next_change_at`` is at or before ``now``, earliest first."""

    @abstractmethod
    async def read_changes(self, after: int = 0, limit: int = 100) -> list[StatusChange]:
        """Change-feed entries with ``change_id > after``, in order (one query, joined with the subjects' identity).
        As with the inbox, an entry is returned only once every entry with a lower ``change_id`` is committed, so
        a follower never misses one."""

    @abstractmethod
    async def subject_changes(self, subject_key: str) -> list[StatusChange]:
        """One subject's status history, in order."""

    @abstractmethod
    async def archived_records(self, subject_key: str) -> list[str]:
        """One subject's archived records (JSON), oldest first."""

    @abstractmethod
    async def case_refs(self, kind: str, case_id: str | None = None) -> list[CaseRef]:
        """The credit files holding the objection or repair ``case_id`` (every one of ``kind`` when None), in id
        order (the index the projector keeps with its commits)."""

    # -- the public site (store/public.py) ------------------------------------------------------------
    @abstractmethod
    async def search_names(self, text: str, limit: int) -> list[NameMatch]:
        """Organisations whose registered or shop name holds ``text`` (``store.public.search_form`` of each; at
        least ``public.MIN_QUERY`` characters), one match per subject, at most ``limit``. Persons are never
        indexed."""

    @abstractmethod
    async def listed_subjects(
        self, list_name: str, id_types: Sequence[str], offset: int, limit: int
    ) -> tuple[int, list[ListedSubject]]:
        """How many subjects of ``id_types`` the stored statuses put on ``list_name``, and one page of them, the
        most recently written first."""

    @abstractmethod
    async def listed_agencies(self, offset: int, limit: int) -> tuple[int, list[ListedSubject]]:
        """How many intermediary agencies (organisations whose stored status has an ``intermediary`` member of kind
        ``intermediary``) there are, and one page of them, the most recently written first. No index serves it (a
        scan of the subjects' statuses): the column is read rarely, and cached by its entity tag."""

    @abstractmethod
    async def public_subject(self, subject_key: str) -> PublicSubject | None:
        """A subject's public page as stored: its file and its published commitments (newest first), in one read;
        None for a subject the store does not hold."""

    @abstractmethod
    async def public_commitments(self, subject_key: str) -> tuple[Commitment, ...]:
        """A subject's published commitments, newest first, as :meth:`public_subject` has them (the page of an
        organisation answered from ``web.public.standings``, which keeps only whether it has any)."""

    @abstractmethod
    async def subject_standing(self, subject_key: str) -> Standing | None:
        """A subject's list and grade as its stored status has them, and its ``next_change_at`` (the badge), without
        reading its file; None for a subject the store does not hold."""

    def change_marker(self) -> object | None:
        """A value that compares equal to an earlier one only if nothing was committed to the store in between, by
        any connection or process; None when the backend cannot tell without a round trip (the default).

        Synchronous and cheap (no I/O beyond a shared-memory check): the public site asks it before it trusts an
        answer it kept past its ttl (``web.public.answers``). Read it *before* the reads it vouches for."""
        return None

    def standings_after(self, seq: int, limit: int) -> list[OrganisationStanding] | None:
        """The organisations' badge standings written after ``seq`` (at most ``limit``, in the order written, each
        organisation at most once: its latest), for a reader that keeps every standing in memory and follows the
        store (``web.public.standings``): read ``change_marker`` first, then these until fewer than ``limit`` come.

        None when the backend cannot list what was written in commit order (the default; PostgreSQL, whose
        sequences are handed out in the order transactions ask, not the order they commit): the badge then reads
        the store each time. Synchronous, on the event loop's reader, like ``change_marker``."""
        return None

    # -- sources ----------------------------------------------------------------------------------
    @abstractmethod
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
    ) -> SourceRecord: ...

    @abstractmethod
    async def list_sources(self) -> list[SourceRecord]: ...

    @abstractmethod
    async def get_source(self, source_id: str) -> SourceRecord | None: ...

    @abstractmethod
    async def disable_source(self, source_id: str, *, now: Micros) -> SourceRecord:
        """Mark a source disabled (its webhooks are refused from then on). Raises ``SourceNotFoundError``."""

    @abstractmethod
    async def rotate_source_key(
        self, source_id: str, key: NewSourceKey, *, now: Micros, grace_until: Micros
    ) -> SourceRecord:
        """Add ``key`` as the current key; every other key stays valid until ``grace_until`` (or its
        earlier expiry). Raises ``SourceNotFoundError``."""

    # -- API keys (the query side) ------------------------------------------------------------------------
    @abstractmethod
    async def create_api_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        """Store a new API key (its digest and sealed lookup secret; ``revoked_at`` is ignored)."""

    @abstractmethod
    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, revoked ones included, oldest first."""

    @abstractmethod
    async def revoke_api_key(self, key_id: str, *, now: Micros) -> ApiKeyRecord:
        """Mark a key revoked (a second revocation keeps the first time). Raises ``ApiKeyNotFoundError``."""

    # -- attestation signing keys ------------------------------------------------------------------------
    @abstractmethod
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        """Every signing key, retired ones included, oldest first."""

    @abstractmethod
    async def add_signing_key(self, record: SigningKeyRecord, *, first: bool = False) -> bool:
        """Make ``record`` the current signing key, retiring the current one at ``record.created_at``, in one
        transaction (rotations take turns: there is never more than one current key). With ``first``, only when
        there is no key at all (``migrate``'s first key): False, and nothing stored, when there is one."""

    # -- the audit log -----------------------------------------------------------------------------------
    @abstractmethod
    async def append_audit(self, draft: AuditDraft, chain: AuditChain) -> AuditEntry:
        """Append an operator action to the audit log, in one transaction with the head record it moves to it
        (:func:`next_audit_entry`). Appenders take turns, in every process on the database: concurrent writers keep
        one chain, without gaps."""

    @abstractmethod
    async def read_audit_log(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries with ``entry_id > after``, in entry order (rows as stored: ``audit verify`` checks them)."""

    @abstractmethod
    async def latest_audit_entries(self, limit: int, *, action: str | None = None) -> list[AuditEntry]:
        """The last ``limit`` audit entries (of ``action`` only, when given), oldest first."""

    @abstractmethod
    async def audit_head(self) -> AuditHead | None:
        """The audit log's head record (None before the first entry)."""

    # -- operations (store/sqlite_stats.py, store/postgresql_stats.py) ------------------------------------
    @abstractmethod
    async def operations_state(self) -> OperationsState:
        """What an operator watches (projector positions and lag, feed head, files per list, active sources), read
        without holding up appends."""

    @abstractmethod
    async def last_events(self, window: int = LAST_EVENTS_WINDOW) -> dict[str, Micros]:
        """When the last event from each kind of source was received, among the last ``window`` inbox rows."""

    @abstractmethod
    def pool_usage(self) -> PoolUsage:
        """This process's database connections now (no I/O)."""

    def observe_commits(self, observer: CommitObserver | None) -> None:
        """Tell ``observer`` the size and commit time of every group commit of ``append`` from now on."""
        self._group.observer = observer

    # -- subscriptions and the outbox (store/sqlite_outbox.py, store/postgresql_outbox.py) ----------------------
    @abstractmethod
    async def create_subscription(self, record: SubscriptionRecord) -> SubscriptionRecord:
        """Store a new subscription (and bump the subscriptions' generation)."""

    @abstractmethod
    async def list_subscriptions(self, key_id: str | None = None) -> list[SubscriptionRecord]:
        """Every subscription (of ``key_id`` only, when given), oldest first."""

    @abstractmethod
    async def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None: ...

    @abstractmethod
    async def delete_subscription(self, subscription_id: str) -> None:
        """Delete a subscription and its outbox messages. Raises ``SubscriptionNotFoundError``."""

    @abstractmethod
    async def set_subscription_status(
        self, subscription_id: str, *, active: bool, reason: str | None, now: Micros
    ) -> SubscriptionRecord:
        """Enable or disable (with ``reason``) a subscription. Enabling clears ``failing_since``, and its pending
        messages become due at once. Raises ``SubscriptionNotFoundError``."""

    @abstractmethod
    async def rotate_subscription_secret(
        self, subscription_id: str, sealed_secret: bytes, sealed_previous: bytes, *, grace_until: Micros
    ) -> SubscriptionRecord:
        """Make ``sealed_secret`` the signing secret; ``sealed_previous`` (the current one) signs too until
        ``grace_until``. Raises ``SubscriptionNotFoundError``."""

    @abstractmethod
    async def subscription_routes(self) -> SubscriptionRoutes:
        """The active subscriptions and the generation they were read at (one transaction)."""

    @abstractmethod
    async def changes_since(self, since: Micros, after: int, limit: int) -> list[StatusChange]:
        """Feed entries that took effect at or after ``since`` with ``change_id > after``, in order (replay)."""

    @abstractmethod
    async def enqueue_replay(self, subscription_id: str, change_ids: Sequence[int], *, now: Micros) -> int:
        """Queue these feed entries again for one subscription, each with its next sequence; return how many.
        Raises ``SubscriptionNotFoundError``."""

    @abstractmethod
    async def claim_deliveries(self, now: Micros, lease_until: Micros, limit: int) -> list[Delivery]:
        """Lease up to ``limit`` due messages of active subscriptions (due first) until ``lease_until``: no other
        dispatcher is given them until then (on PostgreSQL ``FOR UPDATE SKIP LOCKED``)."""

    @abstractmethod
    async def finish_deliveries(
        self, outcomes: Sequence[DeliveryOutcome], *, now: Micros, disable_failing_since: Micros
    ) -> list[tuple[str, str]]:
        """Record attempts in one transaction: delivered, due again at ``next_attempt_at``, or given up. A success
        clears the subscription's ``failing_since``, a failure sets it (if unset); a subscription failing since
        ``disable_failing_since`` or before, or whose outcome says ``disable``, is disabled. Returns the
        ``(subscription_id, reason)`` of each subscription disabled now."""

    @abstractmethod
    async def outbox_state(self, subscription_id: str) -> OutboxState: ...

    @abstractmethod
    async def outbox_sequences(self, subscription_id: str) -> list[tuple[int, int]]:
        """``(sequence, change_id)`` of every message of a subscription, in sequence order (tests, the crash bench)."""
