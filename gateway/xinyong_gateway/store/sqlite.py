"""The embedded SQLite backend: one file, WAL, ``synchronous=FULL``, group commit.

One writer thread owns the connection and does all database work, in order. Appends gather on the event
loop while the previous commit is syncing; when it returns, everything that gathered goes to the writer as
one batch and is written in one transaction, so one fsync acknowledges many webhooks (group commit) and
durability costs little throughput. Each batch crosses between the threads twice (one queue hand-off, one
``call_soon_threadsafe`` back), however many webhooks it holds. sqlite3 releases the GIL while it syncs, so
the event loop keeps serving requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import queue
import sqlite3
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from xinyong_gateway.errors import (
    ConfigError,
    DatabaseNotFoundError,
    MasterKeyError,
    StoreError,
    StoreUnavailableError,
)
from xinyong_gateway.store import (
    sqlite_access,
    sqlite_audit,
    sqlite_outbox,
    sqlite_public,
    sqlite_signing_keys,
    sqlite_stats,
)
from xinyong_gateway.store.base import (
    LAST_EVENTS_WINDOW,
    AllPartitions,
    AuditChain,
    PartitionClaims,
    Store,
    check_partitions,
    check_policy_version,
    classify_appends,
    packaged_migrations,
    schema_status_of,
)
from xinyong_gateway.store.group_commit import GroupCommit, Outcome, PendingAppend, concatenated, settle
from xinyong_gateway.store.lifecycle import Lifecycle
from xinyong_gateway.store.records import (
    ALL_PARTITIONS,
    PARTITIONS,
    AppendResult,
    AppendStatus,
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
    OrganisationStanding,
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
from xinyong_gateway.store.sqlite_lifecycle import SqliteLifecycle

__all__ = ["SqliteStore", "sqlite_path_from_url"]

T = TypeVar("T")

_SELECT_SUBJECTS_BY_KEYS = (
    f"SELECT {SUBJECT_COLUMNS} FROM subjects WHERE subject_key IN (SELECT value FROM json_each(?))"
)
_SELECT_SUBJECT_BY_KEY = f"SELECT {SUBJECT_COLUMNS} FROM subjects WHERE subject_key = ?"
"""One key (a public page, a badge): the primary-key lookup, without the JSON array and its table function."""
_SELECT_DUE_SUBJECTS = (
    f"SELECT {SUBJECT_COLUMNS} FROM subjects WHERE next_change_at IS NOT NULL AND next_change_at <= ?"
    " AND (? >> partition) & 1 ORDER BY next_change_at LIMIT ?"
)
_UPSERT_SUBJECT = (
    f"INSERT INTO subjects ({SUBJECT_COLUMNS}, updated_at, partition) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (subject_key) DO UPDATE SET display_name = excluded.display_name,"
    " sealed_name = excluded.sealed_name, state = excluded.state, status = excluded.status,"
    " next_change_at = excluded.next_change_at, updated_at = excluded.updated_at"
)
_SELECT_CHANGES = f"SELECT {STATUS_CHANGE_COLUMNS}"
_READER_CACHE_KIB = 64 * 1024
"""Page cache of the event loop's read-only connection, in KiB."""
_BUSY_TIMEOUT_MS = 5000
_BULK_CHUNK = 5000
"""Rows per transaction on the bulk path (``append_many``)."""
_INSERT_INBOX_UNLESS_STORED = (
    f"INSERT INTO inbox ({INBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source_id, webhook_id)"
    " DO NOTHING"
)
_LAST_SEQ = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0)"
"""The last inbox seq AUTOINCREMENT handed out (never reused, even if that row were gone)."""
_SELECT_STORED_IDS = (
    "SELECT webhook_id, seq, body_digest FROM inbox"
    " WHERE source_id = ? AND webhook_id IN (SELECT value FROM json_each(?))"
)


def sqlite_path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` → ``relative.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        rest = url.removeprefix("sqlite:")
        meant = rest[2:] if rest.startswith("//") else rest  # sqlite://var/x.db, sqlite:var/x.db, sqlite:/srv/x.db
        if not meant.strip("/") or meant.startswith(":memory:"):
            raise ConfigError(f"{url} names no file: write sqlite:///path/to/file.db.")
        raise ConfigError(
            f"{url} is not a SQLite database URL: write sqlite:///{meant} (three slashes, then the file's path)."
        )
    path = url[len(prefix) :]
    if path == ":memory:" or "?" in path:
        raise ConfigError("The SQLite store needs a file path; in-memory databases and URL options are not supported.")
    return Path(path)


def _missing_database(path: Path) -> DatabaseNotFoundError:
    where = f"{path} in {Path.cwd()}" if not path.is_absolute() else str(path)
    return DatabaseNotFoundError(
        f"No database at {where} — run `xinyong-gateway migrate` first (or check --db / XINYONG_DATABASE_URL)."
    )


def _statements(script: str) -> list[str]:
    """Split a migration into complete statements (``sqlite3.complete_statement`` knows about triggers)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    leftover = [line for line in buffer.splitlines() if line.strip() and not line.strip().startswith("--")]
    if leftover:
        raise StoreError("A migration ends with an incomplete SQL statement.")
    return statements


@dataclass(slots=True)
class _AppendBatch:
    appends: list[PendingAppend]


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    write: bool = field(default=False)


_STOP = object()


class SqliteStore(sqlite_access.SqliteAccess, sqlite_outbox.SqliteOutbox, Store):
    """SQLite in WAL mode with full durability; a single writer thread does all database work.

    Only a store made with ``create=True`` (``xinyong-gateway migrate``) creates the file and its directory;
    otherwise opening a path where no database is raises :class:`DatabaseNotFoundError` and creates nothing."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        self._path = sqlite_path_from_url(url)
        self._create = create
        self._queue: queue.SimpleQueue[_AppendBatch | _Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._group = GroupCommit(lambda batch: self._queue.put(_AppendBatch(batch)))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def display_url(self) -> str:
        return f"sqlite:///{self._path}"

    # -- lifecycle ---------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._thread is not None:
            raise StoreError("This store is already open.")
        if not self._create and not self._path.is_file():
            if self._path.exists():
                raise StoreUnavailableError(f"{self._path} is not a database file (it is a directory).")
            raise _missing_database(self._path)
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="xinyong-sqlite-writer", daemon=True)
        self._thread.start()
        try:
            await ready
        except BaseException:
            self._thread.join()
            self._thread = None
            raise
        self._group.start(self._loop)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._group.stop()
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)

    # -- the writer thread -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            if self._create:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
            else:  # mode=rw: a file removed since open() looked is an error, never a new empty database
                uri = f"file:{urllib.parse.quote(str(self._path))}?mode=rw"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=True)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailableError(f"Cannot switch {self._path} to WAL mode (got {mode}).")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as exc:
            reason = (exc.strerror or str(exc)).lower() if isinstance(exc, OSError) else str(exc)
            raise StoreUnavailableError(f"Cannot open the SQLite database {self._path}: {reason}.") from exc
        return conn

    def _run(self, ready: asyncio.Future[None]) -> None:
        loop = cast(asyncio.AbstractEventLoop, self._loop)
        try:
            self._conn = self._connect()
        except StoreError as exc:
            loop.call_soon_threadsafe(settle, ready, None, exc)
            return
        loop.call_soon_threadsafe(settle, ready, None, None)
        conn = self._conn
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                try:
                    if isinstance(item, _AppendBatch):
                        self._commit_appends(conn, loop, item.appends)
                    elif isinstance(item, _Job):
                        self._run_job(conn, loop, item)
                except Exception as exc:  # never leave a request waiting on a future nobody will settle
                    error = StoreUnavailableError(f"The SQLite writer failed: {exc}.")
                    if isinstance(item, _AppendBatch):
                        failed: list[Outcome] = [(a.future, None, error) for a in item.appends]
                        loop.call_soon_threadsafe(self._group.done, failed)
                    elif isinstance(item, _Job):
                        loop.call_soon_threadsafe(settle, item.future, None, error)
        finally:
            conn.close()
            self._conn = None

    def _commit_appends(
        self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop, appends: list[PendingAppend]
    ) -> None:
        outcomes: list[Outcome]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                results = _insert_chunk(conn, [item.entry for item in appends])
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            outcomes = [(item.future, result, None) for item, result in zip(appends, results, strict=True)]
        except sqlite3.Error as exc:
            error = StoreUnavailableError(f"The inbox could not commit: {exc}.")
            outcomes = [(item.future, None, error) for item in appends]
        loop.call_soon_threadsafe(self._group.done, outcomes)

    def _run_job(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        try:
            if job.write:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    value = job.fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            else:
                value = job.fn(conn)
        except sqlite3.Error as exc:
            loop.call_soon_threadsafe(settle, job.future, None, StoreUnavailableError(f"SQLite error: {exc}."))
        except Exception as exc:  # a domain error raised by the job itself travels back unchanged
            loop.call_soon_threadsafe(settle, job.future, None, exc)
        else:
            loop.call_soon_threadsafe(settle, job.future, value, None)

    def _submit(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> asyncio.Future[T]:
        if self._thread is None or self._loop is None:
            raise StoreError("The store is not open.")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(fn, future, write))
        return future

    # -- schema ------------------------------------------------------------------------------------
    @staticmethod
    def _applied_versions(conn: sqlite3.Connection) -> set[int]:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}

    async def migrate(self) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            applied: list[str] = []
            done = self._applied_versions(conn)
            for migration in packaged_migrations("sqlite"):
                if migration.version in done:
                    continue
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                if "writable_schema" in migration.sql:  # a definition edited in place: every connection re-reads it
                    version = conn.execute("PRAGMA schema_version").fetchone()[0]
                    conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, to_micros(datetime.now(UTC))),
                )
                applied.append(migration.name)
            return applied

        return await self._submit(apply, write=True)

    async def schema_status(self) -> SchemaStatus:
        def status(conn: sqlite3.Connection) -> SchemaStatus:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            done = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")] if exists else []
            return schema_status_of(done, packaged_migrations("sqlite"))

        return await self._submit(status)

    async def check_master_key(self, check_value: bytes) -> None:
        def check(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT value FROM meta WHERE name = 'master_key_check'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (name, value) VALUES ('master_key_check', ?)", (check_value,))
            elif bytes(row[0]) != check_value:
                raise MasterKeyError(f"The master key does not match the one {self.display_url} was created with.")

        await self.require_schema()
        await self._submit(check, write=True)

    def lifecycle(self) -> Lifecycle:
        return SqliteLifecycle(self._path, self._submit)

    # -- inbox -------------------------------------------------------------------------------------
    def append(
        self, entry: InboxEntry, into: asyncio.Future[AppendResult] | None = None
    ) -> asyncio.Future[AppendResult]:
        # Not a coroutine: the hot path hands the entry over and awaits the future directly.
        return self._group.append(entry, into)

    def append_many(self, entries: Sequence[InboxEntry]) -> Awaitable[list[AppendResult]]:
        # The bulk path (import): a writer job and a transaction per chunk (``_insert_chunk``, as group commits), so
        # an fsync stores thousands of rows; queued now, in order, while the caller prepares its next entries.
        jobs = [
            self._submit(functools.partial(_insert_chunk, chunk=entries[start : start + _BULK_CHUNK]), write=True)
            for start in range(0, len(entries), _BULK_CHUNK)
        ]
        return concatenated(jobs)

    async def read_inbox(
        self, after_seq: int = 0, limit: int = 1000, *, partitions: int = ALL_PARTITIONS
    ) -> list[StoredEvent]:
        # One writer commits in seq order, so every row below a visible one is visible: no row is missed.
        def read(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                "SELECT seq, source_id, webhook_id, event_type, webhook_timestamp, signature, received_at,"
                " body_digest, CASE WHEN partitions & ? THEN body END, partitions"
                " FROM inbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (partitions, after_seq, limit),
            ).fetchall()
            return [StoredEvent(*row) for row in rows]

        return await self._submit(read)

    async def inbox_count(self) -> int:
        return await self._submit(lambda conn: int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0]))

    # -- credit files (the projector) ----------------------------------------------------------------
    async def partition_states(self) -> dict[int, PartitionState]:
        return await self._submit(_partition_states)

    def claim_partitions(self) -> PartitionClaims:
        # One process serves an embedded database: its projector holds every partition. (A second projector,
        # say ``project`` run beside ``serve``, is kept safe by the commit's check of each partition's state.)
        return AllPartitions()

    async def load_subjects(self, keys: Sequence[str]) -> dict[str, SubjectRow]:
        # Read on the event loop's own read-only connection, not through the writer thread: one indexed lookup per
        # key (microseconds; sqlite3 lets go of the GIL while it steps, so the writer keeps committing), and no
        # hand-off to and from the writer thread, which a screening would otherwise pay on every request. WAL lets
        # this connection read the last committed state while the writer writes.
        if len(keys) == 1:
            rows = self._on_reader(lambda reader: reader.execute(_SELECT_SUBJECT_BY_KEY, (keys[0],)).fetchall())
        else:
            wanted = json.dumps(list(dict.fromkeys(keys)))
            rows = self._on_reader(lambda reader: reader.execute(_SELECT_SUBJECTS_BY_KEYS, (wanted,)).fetchall())
        make = SubjectRow._make
        return {row[0]: make(row) for row in rows}

    def _open_reader(self) -> sqlite3.Connection:
        if self._thread is None:
            raise StoreError("The store is not open.")
        try:
            reader = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
            reader.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            reader.execute("PRAGMA query_only = ON")
            # Screenings look subjects up at random: SQLite's default 2 MiB page cache holds little more than the
            # index's upper levels, and every other page costs a read() system call. 64 MiB keeps the index and the
            # hot rows in memory (bench/README.md, screening).
            reader.execute(f"PRAGMA cache_size = -{_READER_CACHE_KIB}")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"Cannot open the SQLite database {self._path}: {exc}.") from exc
        self._reader = reader
        return reader

    async def commit_projection(self, commit: ProjectionCommit) -> None:
        def write(conn: sqlite3.Connection) -> None:
            check_partitions(commit, _partition_states(conn))
            sqlite_outbox.check_routes(conn, commit)
            conn.executemany(_UPSERT_SUBJECT, [subject_values(row, commit.recorded_at) for row in commit.subjects])
            sqlite_outbox.write_outbox(conn, commit, sqlite_outbox.insert_changes(conn, commit))
            if commit.adopt_policy is not None:
                policy = commit.adopt_policy
                known = conn.execute("SELECT text FROM policies WHERE version = ?", (policy.version,)).fetchone()
                check_policy_version(policy, known[0] if known is not None else None)
                conn.execute("UPDATE policies SET active = 0 WHERE active = 1")
                conn.execute(
                    "INSERT INTO policies (version, text, adopted_at, active) VALUES (?, ?, ?, 1)"
                    " ON CONFLICT (version) DO UPDATE SET active = 1, adopted_at = excluded.adopted_at",
                    (policy.version, policy.text, commit.recorded_at),
                )
            if commit.replace_archive:
                conn.execute("DELETE FROM archived_records")
            conn.executemany(
                "INSERT INTO archived_records (subject_key, record, archived_at) VALUES (?, ?, ?)",
                [(*archived, commit.recorded_at) for archived in commit.archived],
            )
            conn.executemany(
                CASE_REF_UPSERT.format("?", "?", "?", "?"),
                [(ref.kind, ref.case_id, ref.subject_key, ref.published_at) for ref in commit.cases],
            )
            sqlite_public.write(conn, commit)
            conn.executemany(
                "INSERT INTO projection_partitions (partition, position, version) VALUES (?, ?, 1)"
                " ON CONFLICT (partition) DO UPDATE SET position = excluded.position, version = version + 1",
                [(advance.partition, advance.position) for advance in commit.partitions],
            )

        await self._submit(write, write=True)

    async def due_subjects(self, now: Micros, limit: int, *, partitions: int = ALL_PARTITIONS) -> list[SubjectRow]:
        def read(conn: sqlite3.Connection) -> list[SubjectRow]:
            rows = conn.execute(_SELECT_DUE_SUBJECTS, (now, partitions, limit)).fetchall()
            return [SubjectRow(*row) for row in rows]

        return await self._submit(read)

    async def read_changes(self, after: int = 0, limit: int = 100) -> list[StatusChange]:
        def read(conn: sqlite3.Connection) -> list[StatusChange]:
            rows = conn.execute(_SELECT_CHANGES + " WHERE c.change_id > ? ORDER BY c.change_id LIMIT ?", (after, limit))
            return [StatusChange(*row) for row in rows]

        return await self._submit(read)

    async def subject_changes(self, subject_key: str) -> list[StatusChange]:
        def read(conn: sqlite3.Connection) -> list[StatusChange]:
            rows = conn.execute(_SELECT_CHANGES + " WHERE c.subject_key = ? ORDER BY c.change_id", (subject_key,))
            return [StatusChange(*row) for row in rows]

        return await self._submit(read)

    async def active_policy(self) -> PolicyText | None:
        def read(conn: sqlite3.Connection) -> PolicyText | None:
            row = conn.execute("SELECT version, text FROM policies WHERE active = 1").fetchone()
            return PolicyText(row[0], row[1]) if row else None

        return await self._submit(read)

    async def policy_history(self) -> list[PolicyAdoption]:
        def read(conn: sqlite3.Connection) -> list[PolicyAdoption]:
            rows = conn.execute("SELECT version, adopted_at, active FROM policies ORDER BY adopted_at, version")
            return [PolicyAdoption(row[0], int(row[1]), bool(row[2])) for row in rows]

        return await self._submit(read)

    async def archived_records(self, subject_key: str) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT record FROM archived_records WHERE subject_key = ? ORDER BY archive_id", (subject_key,)
            )
            return [row[0] for row in rows]

        return await self._submit(read)

    async def case_refs(self, kind: str, case_id: str | None = None) -> list[CaseRef]:
        def read(conn: sqlite3.Connection) -> list[CaseRef]:
            sql = "SELECT kind, case_id, subject_key, published_at FROM due_process_cases WHERE kind = ?"
            rows = conn.execute(
                sql + " AND case_id = ? ORDER BY subject_key" if case_id is not None else sql + " ORDER BY case_id",
                (kind, case_id) if case_id is not None else (kind,),
            )
            return [CaseRef(*row) for row in rows]

        return await self._submit(read)

    # -- attestation signing keys (store/sqlite_signing_keys.py) ----------------------------------------
    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        return await self._submit(sqlite_signing_keys.list_all)

    async def add_signing_key(self, record: SigningKeyRecord, *, first: bool = False) -> bool:
        return await self._submit(lambda conn: sqlite_signing_keys.add(conn, record, first), write=True)

    # -- the public site (store/sqlite_public.py; a subject's page and standing on the loop's reader) -----------
    async def search_names(self, text: str, limit: int) -> list[NameMatch]:
        return await self._submit(lambda conn: sqlite_public.search(conn, text, limit))

    async def listed_subjects(
        self, list_name: str, id_types: Sequence[str], offset: int, limit: int
    ) -> tuple[int, list[ListedSubject]]:
        return await self._submit(lambda conn: sqlite_public.listed(conn, list_name, id_types, offset, limit))

    async def listed_agencies(self, offset: int, limit: int) -> tuple[int, list[ListedSubject]]:
        return await self._submit(lambda conn: sqlite_public.agencies(conn, offset, limit))

    async def public_subject(self, subject_key: str) -> PublicSubject | None:
        return self._on_reader(lambda reader: sqlite_public.public_subject(reader, subject_key))

    async def public_commitments(self, subject_key: str) -> tuple[Commitment, ...]:
        return self._on_reader(lambda reader: sqlite_public.public_commitments(reader, subject_key))

    async def subject_standing(self, subject_key: str) -> Standing | None:
        return self._on_reader(lambda reader: sqlite_public.standing(reader, subject_key))

    def change_marker(self) -> object | None:
        """The loop's read-only connection and its ``PRAGMA data_version``, which changes whenever another connection
        (this process's writer included) committed since it was last read. The connection is part of the marker: a
        connection opened anew counts from its own start. None when the store cannot say (closed, or SQLite failed)."""
        try:
            return self._on_reader(lambda reader: (reader, reader.execute("PRAGMA data_version").fetchone()[0]))
        except StoreError:  # not open, or StoreUnavailableError from the read
            return None

    def standings_after(self, seq: int, limit: int) -> list[OrganisationStanding] | None:
        # One writer commits at a time, and each standing written takes the next seq (migration 0017): the rows past
        # ``seq`` are all that was committed since a reader saw ``seq``.
        return self._on_reader(lambda reader: sqlite_public.standings_after(reader, seq, limit))

    def _on_reader(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read`` on the event loop's read-only connection, as ``load_subjects`` reads: one indexed statement, no
        hand-off to the writer thread."""
        try:
            return read(self._reader or self._open_reader())
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite error: {exc}.") from exc

    # -- the audit log (store/sqlite_audit.py) ----------------------------------------------------------
    async def append_audit(self, draft: AuditDraft, chain: AuditChain) -> AuditEntry:
        # A write job: BEGIN IMMEDIATE takes the database's write lock first, so appenders of every process take
        # turns from their read of the head to their commit.
        return await self._submit(lambda conn: sqlite_audit.append(conn, draft, chain), write=True)

    async def read_audit_log(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        return await self._submit(lambda conn: sqlite_audit.read(conn, after, limit))

    async def latest_audit_entries(self, limit: int, *, action: str | None = None) -> list[AuditEntry]:
        return await self._submit(lambda conn: sqlite_audit.latest(conn, limit, action))

    async def audit_head(self) -> AuditHead | None:
        return await self._submit(sqlite_audit.head)

    # -- operations (store/sqlite_stats.py: a read-only connection and a thread of its own) --------------------
    async def operations_state(self) -> OperationsState:
        return await sqlite_stats.operations_state(self._path)

    async def last_events(self, window: int = LAST_EVENTS_WINDOW) -> dict[str, Micros]:
        return await sqlite_stats.last_events(self._path, window)

    def pool_usage(self) -> PoolUsage:
        busy = int(self._group.in_flight or not self._queue.empty())  # the writer thread's one connection
        return PoolUsage(in_use=busy, idle=1 - busy, max_size=1)


def _insert_chunk(conn: sqlite3.Connection, chunk: Sequence[InboxEntry]) -> list[AppendResult]:
    """(Writer thread, inside ``BEGIN IMMEDIATE``) ``append``'s insert for every entry, in order, as one statement.

    When every row went in (a fresh import), their seqs follow from the count. Otherwise one indexed lookup
    of the chunk's ids classifies them: a row whose seq lies past the last seq the log had handed out before
    this transaction was stored by it, for the first entry with that id; every other entry is a duplicate or a
    conflict of the row stored under its id, as ``append`` answers."""
    before = conn.execute(_LAST_SEQ).fetchone()[0]
    changes = conn.total_changes
    conn.executemany(_INSERT_INBOX_UNLESS_STORED, [inbox_values(e) for e in chunk])
    if conn.total_changes - changes == len(chunk):
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        if last - before == len(chunk):
            # AUTOINCREMENT hands out the last seq + 1 for each insert (under the write lock, nobody else
            # inserts), so the n rows took exactly ``before + 1 … before + n``, in order.
            return [AppendResult(AppendStatus.ACCEPTED, seq) for seq in range(before + 1, last + 1)]
    by_source: dict[str, list[str]] = {}
    for e in chunk:
        by_source.setdefault(e.source_id, []).append(e.webhook_id)
    stored: dict[tuple[str, str], tuple[int, bytes]] = {}
    for source_id, webhook_ids in by_source.items():
        for webhook_id, seq, digest in conn.execute(_SELECT_STORED_IDS, (source_id, json.dumps(webhook_ids))):
            stored[(source_id, webhook_id)] = (seq, bytes(digest))
    return classify_appends(chunk, stored, lambda seq: seq > before)


def _partition_states(conn: sqlite3.Connection) -> dict[int, PartitionState]:
    states = dict.fromkeys(range(PARTITIONS), PartitionState())
    for partition, position, version in conn.execute("SELECT partition, position, version FROM projection_partitions"):
        states[partition] = PartitionState(position, version)
    return states
