"""The PostgreSQL backend (asyncpg): any number of gateway processes, on any number of machines, share one database.

**Durability.** Every connection runs with ``synchronous_commit = on`` (set by the backend, whatever the URL
says), so a commit returns only once it is flushed to the write-ahead log. Appends use the shared
:class:`GroupCommit`: what gathers while one batch commits goes as the next batch, inserted by one statement
in one transaction on one pooled connection, so one WAL flush acknowledges many webhooks. The bulk path
(``append_many``) writes chunks of 5000 rows per transaction, one call after the other, in call order.

**Commit order is seq order.** A sequence hands out numbers when rows are inserted, not when they commit: left
alone, a transaction that drew seq 11 could commit before one that drew seq 10, and a reader paging by seq
("rows after 10") would skip row 10 for good when it commits a moment later. So every transaction that
inserts into the inbox first takes the inbox's transaction-scoped advisory lock and only then draws its seqs;
the lock is released after the commit is visible, so the next inserter's seqs are higher and become visible
later. The change feed (``status_changes.change_id``) is ordered the same way by its own lock, taken as late as
possible in a projector's commit. The lock makes writers take turns; group commit makes each turn carry a
whole batch.

The lock keys (one space per schema), the settings of every connection and the projection claims
(:class:`~xinyong_gateway.store.postgresql_claims.PostgresClaims`) are in ``postgresql_claims.py``. Claims only save
work: ``commit_projection`` checks every partition's state (``SELECT … FOR UPDATE``), so an event is applied once even
while two projectors believe they hold a partition.

asyncpg's exceptions are translated at this boundary: an unreachable server, refused credentials or an
unknown database are ``StoreUnavailableError``, a missing table is ``SchemaNotReadyError``. Messages name the
database by :attr:`PostgresStore.display_url`, which never shows a password.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import structlog

from xinyong_gateway.errors import (
    ConfigError,
    MasterKeyError,
    SchemaNotReadyError,
    StoreError,
    StoreUnavailableError,
)
from xinyong_gateway.store import (
    postgresql_access,
    postgresql_audit,
    postgresql_outbox,
    postgresql_public,
    postgresql_signing_keys,
    postgresql_stats,
)
from xinyong_gateway.store.base import (
    LAST_EVENTS_WINDOW,
    AuditChain,
    PartitionClaims,
    Store,
    check_partitions,
    check_policy_version,
    classify_appends,
    packaged_migrations,
    schema_status_of,
)
from xinyong_gateway.store.group_commit import GroupCommit, Outcome, PendingAppend
from xinyong_gateway.store.lifecycle import Lifecycle
from xinyong_gateway.store.postgresql_claims import (
    CONNECT_TIMEOUT,
    DRIVER_ERRORS,
    LOCK,
    LOCK_AUDIT,
    LOCK_FEED,
    LOCK_INBOX,
    LOCK_MIGRATIONS,
    REBALANCE_INTERVAL,
    SCHEMA_OID,
    SERVER_SETTINGS,
    UNLOCK,
    XACT_LOCK,
    PostgresClaims,
    lock_space,
    reason,
    without_password,
)
from xinyong_gateway.store.postgresql_lifecycle import PostgresLifecycle
from xinyong_gateway.store.records import (
    ALL_PARTITIONS,
    PARTITIONS,
    AppendResult,
    AuditDraft,
    AuditEntry,
    AuditHead,
    CaseRef,
    Commitment,
    InboxEntry,
    ListedSubject,
    Micros,
    NameMatch,
    OperationsState,
    PartitionState,
    PolicyAdoption,
    PolicyText,
    PoolUsage,
    ProjectionCommit,
    PublicSubject,
    SchemaStatus,
    SigningKeyRecord,
    Standing,
    StatusChange,
    StoredEvent,
    SubjectRow,
    partitions_in,
    to_micros,
)
from xinyong_gateway.store.rows import (
    CASE_REF_UPSERT,
    INBOX_COLUMNS,
    STATUS_CHANGE_COLUMNS,
    SUBJECT_COLUMNS,
    inbox_values,
    subject_values,
)

__all__ = ["PostgresStore"]

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

T = TypeVar("T")
_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_log = structlog.get_logger("xinyong_gateway.store")

_POOL_SIZE = 10
_BULK_CHUNK = 5000
"""Rows per transaction on the bulk path (``append_many``)."""

_INSERT_INBOX_UNLESS_STORED = (
    f"INSERT INTO inbox ({INBOX_COLUMNS}) SELECT {INBOX_COLUMNS}"
    " FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],"
    f" $8::bytea[], $9::integer[]) WITH ORDINALITY AS e ({INBOX_COLUMNS}, n)"
    " ORDER BY n ON CONFLICT (source_id, webhook_id) DO NOTHING RETURNING source_id, webhook_id, seq"
)
"""Every entry of a batch in one statement; seqs are drawn in the entries' order."""
_SELECT_STORED_IDS = (
    "SELECT inbox.source_id, inbox.webhook_id, inbox.seq, inbox.body_digest FROM inbox"
    " JOIN unnest($1::text[], $2::text[]) AS k (source_id, webhook_id)"
    " ON inbox.source_id = k.source_id AND inbox.webhook_id = k.webhook_id"
)
_SELECT_SUBJECTS_BY_KEYS = f"SELECT {SUBJECT_COLUMNS} FROM subjects WHERE subject_key = ANY($1::text[])"
_SELECT_DUE_SUBJECTS = (
    f"SELECT {SUBJECT_COLUMNS} FROM subjects WHERE partition = ANY($1::integer[]) AND next_change_at IS NOT NULL"
    " AND next_change_at <= $2 ORDER BY next_change_at LIMIT $3"
)
_UPSERT_SUBJECT = (
    f"INSERT INTO subjects ({SUBJECT_COLUMNS}, updated_at, partition)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    " ON CONFLICT (subject_key) DO UPDATE SET display_name = excluded.display_name,"
    " sealed_name = excluded.sealed_name, state = excluded.state, status = excluded.status,"
    " next_change_at = excluded.next_change_at, updated_at = excluded.updated_at"
)
_SELECT_CHANGES = f"SELECT {STATUS_CHANGE_COLUMNS}"


class PostgresStore(postgresql_access.PostgresAccess, postgresql_outbox.PostgresOutbox, Store):
    """PostgreSQL through an asyncpg pool; appends are group-committed, claims are advisory locks."""

    def __init__(self, url: str, *, rebalance_interval: float = REBALANCE_INTERVAL) -> None:
        """``rebalance_interval``: seconds between two rebalances of each projector's claims."""
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"Not a PostgreSQL database URL (expected postgresql://user@host:port/db): {url!r}.")
        self._url = url
        self._display_url = without_password(url)
        self._rebalance_interval = rebalance_interval
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._space = 0
        self._group = GroupCommit(self._send)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bulk_tail: asyncio.Task[list[AppendResult]] | None = None

    @property
    def display_url(self) -> str:
        return self._display_url

    # -- lifecycle ---------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            raise StoreError("This store is already open.")
        try:
            pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=_POOL_SIZE,
                timeout=CONNECT_TIMEOUT,
                server_settings=SERVER_SETTINGS,
            )
        except ValueError as exc:  # asyncpg's ClientConfigurationError, or a part of the URL that is no number
            raise ConfigError(f"The database URL {self.display_url} cannot be used: {reason(exc)}.") from exc
        except DRIVER_ERRORS as exc:
            raise StoreUnavailableError(
                f"Cannot connect to the PostgreSQL database {self.display_url}: {reason(exc)}."
            ) from exc
        try:
            async with self._translated():
                schema_oid = await pool.fetchval(SCHEMA_OID)
            if schema_oid is None:
                raise StoreUnavailableError(
                    f"No schema of the search path of {self.display_url} exists; create the schema first."
                )
        except BaseException:
            pool.terminate()
            raise
        self._space = lock_space(schema_oid)
        self._pool = pool
        self._group.start(asyncio.get_running_loop())

    async def close(self) -> None:
        if self._pool is None:
            return
        self._group.stop()
        while self._tasks:  # commits in flight (and the batches they send on) settle every future first
            await asyncio.wait(set(self._tasks))
        pool, self._pool = self._pool, None
        if pool is None:  # closed meanwhile by a concurrent call
            return
        self._bulk_tail = None
        try:
            await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT)
        except DRIVER_ERRORS:
            pool.terminate()

    # -- connections and errors ------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        """Translate the driver's exceptions raised inside into the gateway's (domain errors pass unchanged)."""
        try:
            yield
        except asyncpg.UndefinedTableError as exc:
            raise SchemaNotReadyError(
                f"The database {self.display_url} has no gateway schema yet; run `xinyong-gateway migrate` first."
            ) from exc
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"The PostgreSQL database {self.display_url} cannot be reached: {reason(exc)}."
            ) from exc
        except (asyncpg.PostgresError, asyncpg.InternalClientError) as exc:
            raise StoreUnavailableError(
                f"The PostgreSQL database {self.display_url} refused an operation: {reason(exc)}."
            ) from exc

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        if self._pool is None:
            raise StoreError("The store is not open.")
        async with self._translated(), self._pool.acquire() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Connection]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _read(self, fn: Callable[[_Connection], Awaitable[T]]) -> T:
        async with self._connection() as conn:
            return await fn(conn)

    # -- schema ------------------------------------------------------------------------------------
    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self._connection() as conn:
            # One run at a time, from its first check to its last migration: a concurrent run waits, then finds every
            # migration applied. (Returning the connection to the pool would release the lock too.)
            await conn.execute(LOCK, self._space, LOCK_MIGRATIONS)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations"
                    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
                )
                for migration in packaged_migrations("postgresql"):
                    async with conn.transaction():  # one transaction per migration
                        if await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", migration.version):
                            continue
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            to_micros(datetime.now(UTC)),
                        )
                    applied.append(migration.name)
            finally:
                await conn.execute(UNLOCK, self._space, LOCK_MIGRATIONS)
        return applied

    async def schema_status(self) -> SchemaStatus:
        async def status(conn: _Connection) -> SchemaStatus:
            done: list[int] = []
            if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                done = [row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")]
            return schema_status_of(done, packaged_migrations("postgresql"))

        return await self._read(status)

    async def check_master_key(self, check_value: bytes) -> None:
        await self.require_schema()
        async with self._transaction() as conn:
            # Two processes may start on a fresh database at once: the first value stored wins, the other compares.
            await conn.execute(
                "INSERT INTO meta (name, value) VALUES ('master_key_check', $1) ON CONFLICT (name) DO NOTHING",
                check_value,
            )
            stored = await conn.fetchval("SELECT value FROM meta WHERE name = 'master_key_check'")
        if bytes(stored) != check_value:
            raise MasterKeyError(f"The master key does not match the one {self.display_url} was created with.")

    def lifecycle(self) -> Lifecycle:
        return PostgresLifecycle(self._transaction, self._read)

    # -- inbox -------------------------------------------------------------------------------------
    def append(
        self, entry: InboxEntry, into: asyncio.Future[AppendResult] | None = None
    ) -> asyncio.Future[AppendResult]:
        # Not a coroutine: the hot path hands the entry over and awaits the future directly.
        return self._group.append(entry, into)

    def _send(self, batch: list[PendingAppend]) -> None:
        self._track(asyncio.get_running_loop().create_task(self._commit_appends(batch), name="xinyong-pg-commit"))

    def _track(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        """Keep a reference to a background task until it ends (``close`` waits for them)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _commit_appends(self, batch: list[PendingAppend]) -> None:
        """Commit one group-commit batch and settle every append of it, whatever happens."""
        try:
            results = await self._append_chunk([item.entry for item in batch])
        except asyncio.CancelledError:
            error = StoreUnavailableError("The inbox commit was cancelled; nothing was acknowledged.")
            self._group.done([(item.future, None, error) for item in batch])
            raise
        except Exception as exc:  # never leave a request waiting on a future nobody will settle
            failure = _commit_failure(exc)
            self._group.done([(item.future, None, failure) for item in batch])
        else:
            outcomes: list[Outcome] = [(item.future, result, None) for item, result in zip(batch, results, strict=True)]
            self._group.done(outcomes)

    async def _append_chunk(self, entries: Sequence[InboxEntry]) -> list[AppendResult]:
        """``append`` for every entry, in order, in one transaction; results as ``classify_appends`` gives them.

        The inbox lock is taken before the insert draws seqs (commit order = seq order). The insert returns the
        rows it stored; one lookup finds the rows of the other ids (stored earlier, or earlier in ``entries``)."""
        async with self._transaction() as conn:
            await conn.execute(XACT_LOCK, self._space, LOCK_INBOX)
            columns = [list(column) for column in zip(*map(inbox_values, entries), strict=True)]
            inserted = await conn.fetch(_INSERT_INBOX_UNLESS_STORED, *columns)
            first_digest: dict[tuple[str, str], bytes] = {}
            for e in entries:
                first_digest.setdefault((e.source_id, e.webhook_id), e.body_digest)
            stored = {(row[0], row[1]): (row[2], first_digest[(row[0], row[1])]) for row in inserted}
            others = [key for key in first_digest if key not in stored]
            if others:
                rows = await conn.fetch(_SELECT_STORED_IDS, [key[0] for key in others], [key[1] for key in others])
                stored.update({(row[0], row[1]): (row[2], bytes(row[3])) for row in rows})
        seqs_now = {row[2] for row in inserted}
        return classify_appends(entries, stored, lambda seq: seq in seqs_now)

    def append_many(self, entries: Sequence[InboxEntry]) -> Awaitable[list[AppendResult]]:
        # The bulk path (import): one transaction per chunk of rows. Each call is queued now, behind the calls
        # made before it, so bulk calls commit in the order they are made (the caller may prepare its next
        # entries meanwhile); live appends' group commits interleave with the chunks.
        if self._pool is None:
            raise StoreError("The store is not open.")
        chunks = [entries[start : start + _BULK_CHUNK] for start in range(0, len(entries), _BULK_CHUNK)]
        task = asyncio.get_running_loop().create_task(self._append_chunks(chunks, after=self._bulk_tail))
        self._bulk_tail = self._track(task)
        return task

    async def _append_chunks(
        self, chunks: list[Sequence[InboxEntry]], *, after: asyncio.Task[list[AppendResult]] | None
    ) -> list[AppendResult]:
        """Commit ``chunks`` in order once the bulk call before this one is done (whatever its outcome); stop at
        the first failure: the chunks committed before it stay stored."""
        if after is not None:
            await asyncio.wait([after])
        results: list[AppendResult] = []
        for chunk in chunks:
            try:
                results += await self._append_chunk(chunk)
            except StoreUnavailableError:
                raise
            except Exception as exc:
                raise _commit_failure(exc) from exc
        return results

    async def read_inbox(
        self, after_seq: int = 0, limit: int = 1000, *, partitions: int = ALL_PARTITIONS
    ) -> list[StoredEvent]:
        # Inbox commits come out in seq order (the inbox lock), so every row below a visible one is visible.
        async def read(conn: _Connection) -> list[StoredEvent]:
            rows = await conn.fetch(
                "SELECT seq, source_id, webhook_id, event_type, webhook_timestamp, signature, received_at,"
                " body_digest, CASE WHEN partitions & $1 <> 0 THEN body END, partitions"
                " FROM inbox WHERE seq > $2 ORDER BY seq LIMIT $3",
                partitions,
                after_seq,
                limit,
            )
            return [StoredEvent(*row) for row in rows]

        return await self._read(read)

    async def inbox_count(self) -> int:
        async def count(conn: _Connection) -> int:
            return int(await conn.fetchval("SELECT count(*) FROM inbox"))

        return await self._read(count)

    # -- credit files (the projector) ----------------------------------------------------------------
    async def partition_states(self) -> dict[int, PartitionState]:
        async def read(conn: _Connection) -> dict[int, PartitionState]:
            states = dict.fromkeys(range(PARTITIONS), PartitionState())
            for partition, position, version in await conn.fetch(
                "SELECT partition, position, version FROM projection_partitions"
            ):
                states[partition] = PartitionState(position, version)
            return states

        return await self._read(read)

    def claim_partitions(self) -> PartitionClaims:
        return PostgresClaims(self._url, rebalance_interval=self._rebalance_interval)

    async def load_subjects(self, keys: Sequence[str]) -> dict[str, SubjectRow]:
        async def read(conn: _Connection) -> dict[str, SubjectRow]:
            rows = await conn.fetch(_SELECT_SUBJECTS_BY_KEYS, list(dict.fromkeys(keys)))
            return {row[0]: SubjectRow(*row) for row in rows}

        return await self._read(read)

    async def commit_projection(self, commit: ProjectionCommit) -> None:
        async with self._transaction() as conn:
            # Lock the partitions' rows (in one order, so two commits cannot deadlock) and check their states: a
            # commit that waited here for another one sees the version that one left, and fails.
            rows = await conn.fetch(
                "SELECT partition, position, version FROM projection_partitions"
                " WHERE partition = ANY($1::integer[]) ORDER BY partition FOR UPDATE",
                [advance.partition for advance in commit.partitions],
            )
            check_partitions(
                commit, {partition: PartitionState(position, version) for partition, position, version in rows}
            )
            await postgresql_outbox.check_routes(conn, commit)
            await conn.executemany(
                _UPSERT_SUBJECT, [subject_values(row, commit.recorded_at) for row in commit.subjects]
            )
            if commit.adopt_policy is not None:
                policy = commit.adopt_policy
                check_policy_version(
                    policy, await conn.fetchval("SELECT text FROM policies WHERE version = $1", policy.version)
                )
                await conn.execute("UPDATE policies SET active = false WHERE active")
                await conn.execute(
                    "INSERT INTO policies (version, text, adopted_at, active) VALUES ($1, $2, $3, true)"
                    " ON CONFLICT (version) DO UPDATE SET active = true, adopted_at = excluded.adopted_at",
                    policy.version,
                    policy.text,
                    commit.recorded_at,
                )
            if commit.replace_archive:
                await conn.execute("DELETE FROM archived_records")
            await conn.executemany(
                "INSERT INTO archived_records (subject_key, record, archived_at) VALUES ($1, $2, $3)",
                [(archived.subject_key, archived.record, commit.recorded_at) for archived in commit.archived],
            )
            await conn.executemany(
                CASE_REF_UPSERT.format("$1", "$2", "$3", "$4"),
                [(ref.kind, ref.case_id, ref.subject_key, ref.published_at) for ref in commit.cases],
            )
            await postgresql_public.write(conn, commit)
            if commit.changes:
                # Last, so the feed lock is held only for these inserts and the commit (see the module docstring).
                await conn.execute(XACT_LOCK, self._space, LOCK_FEED)
                change_ids = await postgresql_outbox.insert_changes(conn, commit)
                await postgresql_outbox.write_outbox(conn, commit, change_ids)
            await conn.executemany(
                "INSERT INTO projection_partitions (partition, position, version) VALUES ($1, $2, 1)"
                " ON CONFLICT (partition) DO UPDATE SET position = excluded.position,"
                " version = projection_partitions.version + 1",
                [(advance.partition, advance.position) for advance in commit.partitions],
            )

    async def due_subjects(self, now: Micros, limit: int, *, partitions: int = ALL_PARTITIONS) -> list[SubjectRow]:
        async def read(conn: _Connection) -> list[SubjectRow]:
            rows = await conn.fetch(_SELECT_DUE_SUBJECTS, partitions_in(partitions), now, limit)
            return [SubjectRow(*row) for row in rows]

        return await self._read(read)

    async def read_changes(self, after: int = 0, limit: int = 100) -> list[StatusChange]:
        # Feed inserts commit in change_id order (the feed lock), so no entry appears behind a visible one.
        async def read(conn: _Connection) -> list[StatusChange]:
            query = _SELECT_CHANGES + " WHERE c.change_id > $1 ORDER BY c.change_id LIMIT $2"
            rows = await conn.fetch(query, after, limit)
            return [StatusChange(*row) for row in rows]

        return await self._read(read)

    async def subject_changes(self, subject_key: str) -> list[StatusChange]:
        async def read(conn: _Connection) -> list[StatusChange]:
            rows = await conn.fetch(_SELECT_CHANGES + " WHERE c.subject_key = $1 ORDER BY c.change_id", subject_key)
            return [StatusChange(*row) for row in rows]

        return await self._read(read)

    async def active_policy(self) -> PolicyText | None:
        async def read(conn: _Connection) -> PolicyText | None:
            row = await conn.fetchrow("SELECT version, text FROM policies WHERE active")
            return PolicyText(row[0], row[1]) if row else None

        return await self._read(read)

    async def policy_history(self) -> list[PolicyAdoption]:
        async def read(conn: _Connection) -> list[PolicyAdoption]:
            rows = await conn.fetch("SELECT version, adopted_at, active FROM policies ORDER BY adopted_at, version")
            return [PolicyAdoption(row[0], int(row[1]), bool(row[2])) for row in rows]

        return await self._read(read)

    async def archived_records(self, subject_key: str) -> list[str]:
        async def read(conn: _Connection) -> list[str]:
            rows = await conn.fetch(
                "SELECT record FROM archived_records WHERE subject_key = $1 ORDER BY archive_id", subject_key
            )
            return [row[0] for row in rows]

        return await self._read(read)

    async def case_refs(self, kind: str, case_id: str | None = None) -> list[CaseRef]:
        async def read(conn: _Connection) -> list[CaseRef]:
            sql = "SELECT kind, case_id, subject_key, published_at FROM due_process_cases WHERE kind = $1"
            if case_id is None:
                rows = await conn.fetch(sql + " ORDER BY case_id", kind)
            else:
                rows = await conn.fetch(sql + " AND case_id = $2 ORDER BY subject_key", kind, case_id)
            return [CaseRef(row[0], row[1], row[2], row[3]) for row in rows]

        return await self._read(read)

    # -- attestation signing keys (store/postgresql_signing_keys.py) ------------------------------------
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        return await self._read(postgresql_signing_keys.list_all)

    async def add_signing_key(self, record: SigningKeyRecord, *, first: bool = False) -> bool:
        async with self._transaction() as conn:
            return await postgresql_signing_keys.add(conn, record, first)

    # -- the public site (store/postgresql_public.py) -------------------------------------------------------
    async def search_names(self, text: str, limit: int) -> list[NameMatch]:
        return await self._read(lambda conn: postgresql_public.search(conn, text, limit))

    async def listed_subjects(
        self, list_name: str, id_types: Sequence[str], offset: int, limit: int
    ) -> tuple[int, list[ListedSubject]]:
        return await self._read(lambda conn: postgresql_public.listed(conn, list_name, id_types, offset, limit))

    async def listed_agencies(self, offset: int, limit: int) -> tuple[int, list[ListedSubject]]:
        return await self._read(lambda conn: postgresql_public.agencies(conn, offset, limit))

    async def public_subject(self, subject_key: str) -> PublicSubject | None:
        return await self._read(lambda conn: postgresql_public.public_subject(conn, subject_key))

    async def public_commitments(self, subject_key: str) -> tuple[Commitment, ...]:
        return await self._read(lambda conn: postgresql_public.public_commitments(conn, subject_key))

    async def subject_standing(self, subject_key: str) -> Standing | None:
        return await self._read(lambda conn: postgresql_public.standing(conn, subject_key))

    # -- the audit log (store/postgresql_audit.py) ------------------------------------------------------
    async def append_audit(self, draft: AuditDraft, chain: AuditChain) -> AuditEntry:
        async with self._transaction() as conn:
            # Appenders of every process take turns from their read of the head to their commit: one chain, and the
            # ids given under the lock have no gaps (a sequence would leave one at every rollback).
            await conn.execute(XACT_LOCK, self._space, LOCK_AUDIT)
            return await postgresql_audit.append(conn, draft, chain)

    async def read_audit_log(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        return await self._read(lambda conn: postgresql_audit.read(conn, after, limit))

    async def latest_audit_entries(self, limit: int, *, action: str | None = None) -> list[AuditEntry]:
        return await self._read(lambda conn: postgresql_audit.latest(conn, limit, action))

    async def audit_head(self) -> AuditHead | None:
        return await self._read(postgresql_audit.head)

    # -- operations (store/postgresql_stats.py) ------------------------------------------------------------
    async def operations_state(self) -> OperationsState:
        return await self._read(postgresql_stats.operations_state)

    async def last_events(self, window: int = LAST_EVENTS_WINDOW) -> dict[str, Micros]:
        return await self._read(lambda conn: postgresql_stats.last_events(conn, window))

    def pool_usage(self) -> PoolUsage:
        idle, size = (self._pool.get_idle_size(), self._pool.get_size()) if self._pool else (0, 0)
        return PoolUsage(in_use=size - idle, idle=idle, max_size=self._pool.get_max_size() if self._pool else 0)


def _commit_failure(exc: Exception) -> StoreUnavailableError:
    """The error an inbox commit's callers get: always ``StoreUnavailableError`` (nothing was acknowledged)."""
    if isinstance(exc, StoreUnavailableError):
        return exc
    return StoreUnavailableError(f"The inbox could not commit: {reason(exc)}.")
