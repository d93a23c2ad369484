"""``ListMirror``: the lists in a local SQLite file, following the change feed, answering when the gateway cannot.

    mirror = ListMirror("lists.db", "https://credit.example.gov.cn", "xyls_…", api_key="xyk_…")
    await mirror.sync()                       # pull the change feed up to its head (resumes from the saved cursor)
    task = asyncio.create_task(mirror.run())  # or keep syncing every few seconds in the background
    decision = mirror.check_onboarding({"id_type": "uscc", "id": "91320706MA1Y2N6Q47"})   # no network: microseconds

**What it keeps.** The latest status of every subject the feed has named (one row per subject, with the cursor of its
entry, replaced by each newer feed entry), the feed cursor, the time of the last sync that reached the head of the
feed, and the newest policy version seen, in two tables of one SQLite file created with mode 0600. A business is
kept by its USCC; a natural person only by the pseudonym the feed names them by (HMAC-SHA256 of the number under the
API key's lookup secret, :func:`~xinyong.ric_pseudonym`): a lookup computes the pseudonym of the RIC it is given, and
the mirror never holds a resident id or a person's name. A file is tied to the lookup secret it was made with (a
fingerprint, not the secret, is stored); opening it with another raises :class:`~xinyong.errors.MirrorError`, since
its persons' pseudonyms would silently stop matching.

**Sync.** Each page of the feed is applied in one SQLite transaction that also stores the page's cursor, and only
if the stored cursor is still the one the page was asked from: a crash (or a kill) between or inside pages never
skips an entry and never applies one twice, and two processes syncing one file cannot write an older status over a
newer one. The sync time is stored with the page that reaches the head, and is the moment that page was *asked
for*, so the mirror never claims to be fresher than it is.

**Pushed changes.** :meth:`ListMirror.apply` takes a change a notification carried (:mod:`xinyong.notifications`)
and applies it as a sync would, at once. Each subject's row keeps the entry latest in the feed, by cursor (the wire
contract promises decimal cursors increasing in feed order), so pushes and syncs may come in any order and any number
of times: an entry already held, or older than the one held, changes nothing. A push moves neither the feed cursor
(the next sync still reads every entry after it, which fills any gap in the notifications) nor the sync time.

**Lookups** (:meth:`ListMirror.status`, :meth:`ListMirror.check_onboarding`) are synchronous: one indexed read on a
plain ``sqlite3`` connection, no event loop, safe from any thread and from other processes reading the same file
while one syncs (WAL). A subject the feed never named has list ``none`` and no grade, as a never-reported subject
has at the gateway. Decisions are :meth:`OnboardingDecision.from_status <xinyong.OnboardingDecision.from_status>`'s,
with one addition: a mirror whose last sync is older than ``max_age`` answers ``review`` where the status says
``allow``, with a note saying the mirror is stale. A mirror that has never completed a sync raises
:class:`~xinyong.errors.MirrorError` instead of answering. Statuses carry ``as_of`` = the last sync: a status that
time alone changed at the gateway since then (a record expired) is not seen until the next sync, and such changes
only ever relax a status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from xinyong._logs import get_logger
from xinyong._session import ClosesOnExit
from xinyong.client import Client, OnboardingDecision, SubjectLike, check_subject
from xinyong.errors import MirrorError
from xinyong.notifications import ListChangedNotification
from xinyong.queries import (
    CURSOR_PATTERN,
    MAX_CHANGES_PAGE,
    ListChange,
    ListChangesPage,
    SubjectStatus,
    parse_lookup_secret,
)
from xinyong.retries import is_retryable
from xinyong.subjects import Subject, mask_id

__all__ = ["DEFAULT_MAX_AGE", "ListMirror", "MirrorFreshness"]

_log = get_logger("xinyong.mirror")

DEFAULT_MAX_AGE: Final = timedelta(hours=1)
"""How old the last sync may be before ``check_onboarding`` stops answering ``allow``."""

_FORMAT: Final = "xinyong-list-mirror/1"
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS mirror_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # subject: 'uscc:' and the code, or 'ric:' and the pseudonym (never a resident id); name: a business's name as
    # the feed gave it, NULL for persons; standing: list, grade, score, measures, reasons, disputed, policy_version
    # as JSON; effective_at: when that status took effect (ISO 8601); cursor: the feed cursor of the entry held (NULL
    # in files of SDKs before pushed changes: such an entry is at or below the stored feed cursor).
    "CREATE TABLE IF NOT EXISTS mirror_entries (subject TEXT PRIMARY KEY, name TEXT, standing TEXT NOT NULL,"
    " effective_at TEXT NOT NULL, cursor INTEGER)",
)
_ADD_CURSOR: Final = "ALTER TABLE mirror_entries ADD COLUMN cursor INTEGER"
_LOOKUP: Final = (
    "SELECT synced.value, policy.value, entry.name, entry.standing FROM mirror_meta AS synced"
    " LEFT JOIN mirror_meta AS policy ON policy.name = 'policy_version'"
    " LEFT JOIN mirror_entries AS entry ON entry.subject = ?"
    " WHERE synced.name = 'synced_at'"
)
# An entry replaces the one held only when it is later in the feed: pushed and polled entries may arrive in any order.
_UPSERT: Final = (
    "INSERT INTO mirror_entries (subject, name, standing, effective_at, cursor) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (subject) DO UPDATE SET name = excluded.name, standing = excluded.standing,"
    " effective_at = excluded.effective_at, cursor = excluded.cursor"
    " WHERE mirror_entries.cursor IS NULL OR mirror_entries.cursor < excluded.cursor"
)
_SET_META: Final = (
    "INSERT INTO mirror_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
_CURSOR: Final = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))
_STANDING_FIELDS: Final = {"list", "grade", "score", "measures", "reasons", "disputed", "policy_version"}
_NEVER_REPORTED: Final = '"list":"none","grade":null,"score":null,"measures":[],"reasons":[],"disputed":false'


@dataclass(frozen=True, slots=True)
class MirrorFreshness:
    """How fresh a mirror is, at the moment it was asked."""

    synced_at: datetime | None
    """When the last complete sync asked for the page that reached the head of the feed (None: never)."""
    cursor: str | None
    """The feed cursor the next sync continues after (None: nothing read yet)."""
    entries: int
    """Subjects held."""
    age: timedelta | None
    """Time since ``synced_at``."""
    max_age: timedelta
    stale: bool
    """Never synced, or older than ``max_age``: ``check_onboarding`` answers ``review`` instead of ``allow``."""


def _subject_key(subject: Subject, lookup_key: bytes) -> str:
    if subject.id_type == "uscc":
        return "uscc:" + subject.id
    # The pseudonym of the feed (xinyong.ric_pseudonym) on the already validated, normalised number.
    return "ric:" + hmac.new(lookup_key, subject.id.encode(), hashlib.sha256).hexdigest()


def _feed_position(cursor: str) -> int:
    """Where a cursor lies in the feed. The gateway's cursors are decimal numbers increasing in feed order (the wire
    contract promises it to mirrors), which is what lets pushed and polled entries meet in any order."""
    if not _CURSOR.fullmatch(cursor):
        raise MirrorError(
            "The change feed gave a cursor that is not a decimal number; this SDK cannot order it: upgrade the SDK."
        )
    return int(cursor)


def _feed_row(change: ListChange) -> tuple[str, str | None, str, str, int]:
    subject = change.subject
    if subject.id_type == "uscc":
        key, name = "uscc:" + subject.id, subject.name
    else:
        key, name = "ric:" + subject.pseudonym, None
    standing = change.model_dump_json(include=_STANDING_FIELDS)
    return key, name, standing, change.effective_at.isoformat(), _feed_position(change.cursor)


def _create_private(path: Path) -> None:
    """Create the file with mode 0600 (SQLite gives its -wal and -shm files the database file's mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 10000")
    return connection


class ListMirror(ClosesOnExit):
    """A local copy of the lists for one API key, in the SQLite file ``path`` (created, mode 0600, if missing).

    ``client`` is what :meth:`sync` reads the change feed with: a :class:`~xinyong.Client` you own (it is never
    closed here), or the gateway's base URL with ``api_key`` (a client is then opened for each :meth:`sync` and for
    the whole of :meth:`run`), or None for a mirror that only answers lookups while another process syncs the
    file. The key needs the scope ``changes``. ``lookup_secret`` is the key's ``xyls_…`` secret, printed with it
    by ``xinyong-gateway keys add``. ``clock`` (unix seconds) and ``sleep`` can be injected for tests.

    Use it with ``with`` or ``async with``, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        client: Client | str | None,
        lookup_secret: str | bytes,
        *,
        api_key: str | None = None,
        max_age: timedelta = DEFAULT_MAX_AGE,
        page_size: int = MAX_CHANGES_PAGE,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if isinstance(client, str) and not api_key:
            raise ValueError("give api_key with a base URL (or pass a Client)")
        if not 1 <= page_size <= MAX_CHANGES_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_CHANGES_PAGE}")
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self._lookup_key = lookup_secret if isinstance(lookup_secret, bytes) else parse_lookup_secret(lookup_secret)
        if len(self._lookup_key) != 32:
            raise ValueError("a lookup secret has 32 key bytes")
        self.path = Path(path)
        self._client = client
        self._api_key = api_key
        self.max_age = max_age
        self._page_size = page_size
        self._clock = clock
        self._sleep = sleep
        self._sync_lock = asyncio.Lock()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()  # the writer connection: a sync's page and a pushed change, one at a time
        self._closed = False
        with contextlib.ExitStack() as opened:
            try:
                _create_private(self.path)
                self._writer = opened.enter_context(contextlib.closing(_connect(self.path)))
                self._reader = opened.enter_context(contextlib.closing(_connect(self.path)))
            except (OSError, sqlite3.Error) as exc:
                raise MirrorError(f"Cannot open the list mirror {self.path}: {exc}.") from exc
            self._prepare()
            opened.pop_all()  # the connections stay open: close() closes them

    def _prepare(self) -> None:
        """Create the tables on first use; check that the file is a mirror made with this lookup secret."""
        fingerprint = hmac.new(self._lookup_key, b"xinyong list mirror", hashlib.sha256).hexdigest()[:32]
        writer = self._writer
        try:
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute("PRAGMA synchronous = NORMAL")  # WAL: a power cut may lose the last pages, never tear one
            writer.execute("PRAGMA cache_size = -65536")
            writer.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:  # not executescript(): it would commit the transaction first
                    writer.execute(statement)
                columns = {row[1] for row in writer.execute("PRAGMA table_info(mirror_entries)")}
                if "cursor" not in columns:  # a file of an SDK before pushed changes: the column is added, empty
                    writer.execute(_ADD_CURSOR)
                meta = dict(writer.execute("SELECT name, value FROM mirror_meta").fetchall())
                if not meta:
                    writer.executemany(_SET_META, [("format", _FORMAT), ("key_fingerprint", fingerprint)])
                writer.execute("COMMIT")
            except BaseException:
                writer.execute("ROLLBACK")
                raise
            self._reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise MirrorError(f"{self.path} cannot be used as a list mirror: {exc}.") from exc
        if meta and meta.get("format") != _FORMAT:
            raise MirrorError(f"{self.path} is not a list mirror of this SDK version.")
        if meta and meta.get("key_fingerprint") != fingerprint:
            raise MirrorError(
                f"{self.path} was made with another API key's lookup secret, so its persons' pseudonyms would not"
                " match: use that key's lookup secret, or a new file."
            )

    def __repr__(self) -> str:
        return f"ListMirror({str(self.path)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file. Idempotent; the mirror cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        with self._read_lock:
            self._reader.close()
        with self._write_lock:
            self._writer.close()

    # -- lookups (synchronous, no network) ------------------------------------------------------------------
    def status(self, subject: SubjectLike) -> SubjectStatus:
        """The subject's status as of the last sync (``as_of``), from the file alone.

        Raises :class:`~xinyong.errors.InvalidIdentifierError` for an invalid subject, and
        :class:`~xinyong.errors.MirrorError` when the mirror has never completed a sync."""
        return self._status(check_subject(subject))[0]

    def check_onboarding(self, subject: SubjectLike) -> OnboardingDecision:
        """``allow``, ``review`` or ``deny``, decided as :meth:`Client.check_onboarding <xinyong.Client>` decides,
        from the mirror; ``review`` instead of ``allow`` when the last sync is older than ``max_age``."""
        status, synced_at = self._status(check_subject(subject))
        decision = OnboardingDecision.from_status(status)
        age = self._now() - synced_at
        if age <= self.max_age:
            return decision
        note = (
            f"The list mirror is stale: its last sync was {_span(age)} ago ({synced_at:%Y-%m-%d %H:%M:%S} UTC),"
            f" over its limit of {_span(self.max_age)}; a listing since then would not show."
        )
        return replace(
            decision, decision="review" if decision.decision == "allow" else decision.decision, notes=(note,)
        )

    def _status(self, subject: Subject) -> tuple[SubjectStatus, datetime]:
        key = _subject_key(subject, self._lookup_key)
        try:
            with self._read_lock:
                if self._closed:
                    raise MirrorError("This ListMirror is closed; create a new one.")
                row = self._reader.execute(_LOOKUP, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise MirrorError(f"Cannot read the list mirror {self.path}: {exc}.") from exc
        if row is None:
            raise MirrorError(
                f"The list mirror {self.path} has never completed a sync with the gateway, so it cannot answer."
            )
        synced_at, policy_version, name, standing = row
        if subject.id_type == "uscc":
            shown = {"id_type": "uscc", "id": subject.id, "name": name}
        else:
            shown = {"id_type": "ric", "id": mask_id("ric", subject.id), "name": None}
        if standing is None:  # never named by the feed: as a never-reported subject at the gateway
            policy = json.dumps(policy_version or "", ensure_ascii=False)
            standing = f'{{{_NEVER_REPORTED},"policy_version":{policy}}}'
        document = (
            f'{{"subject":{json.dumps(shown, ensure_ascii=False)},"as_of":"{synced_at}",{standing.removeprefix("{")}'
        )
        return SubjectStatus.model_validate_json(document), datetime.fromisoformat(synced_at)

    @property
    def freshness(self) -> MirrorFreshness:
        """When the mirror last synced, its cursor, how many subjects it holds, and whether it is stale."""
        try:
            with self._read_lock:
                if self._closed:
                    raise MirrorError("This ListMirror is closed; create a new one.")
                self._reader.execute("BEGIN")
                try:
                    meta = dict(self._reader.execute("SELECT name, value FROM mirror_meta").fetchall())
                    (entries,) = self._reader.execute("SELECT count(*) FROM mirror_entries").fetchone()
                finally:
                    self._reader.execute("COMMIT")
        except sqlite3.Error as exc:
            raise MirrorError(f"Cannot read the list mirror {self.path}: {exc}.") from exc
        synced_at = datetime.fromisoformat(meta["synced_at"]) if "synced_at" in meta else None
        age = self._now() - synced_at if synced_at is not None else None
        stale = age is None or age > self.max_age
        return MirrorFreshness(synced_at, meta.get("cursor"), entries, age, self.max_age, stale)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # -- following the change feed ----------------------------------------------------------------------------
    async def sync(self) -> int:
        """Pull the change feed from the saved cursor up to its head; returns how many entries were applied.

        Each page is committed with its cursor; when the gateway fails midway, the pages before stay applied and
        the next sync resumes after them. Errors of the client (``TransportError``, ``ApiError`` …) are raised."""
        async with self._feed() as client:
            return await self._sync(client)

    async def run(self, *, interval: float = 5.0) -> None:
        """Sync, then again every ``interval`` seconds, until cancelled: the mirror's background task.

        A sync that fails for a reason that may pass (the gateway unreachable, 429, 5xx: the client's retry
        predicate) is logged and tried again at the next interval, while lookups go on answering from the file;
        any other error (a revoked key, a missing scope) ends the task with that error."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        async with self._feed() as client:
            while True:
                try:
                    applied = await self._sync(client)
                except Exception as exc:
                    if not is_retryable(exc):
                        raise
                    _log.warning("xinyong.mirror.sync_failed", path=str(self.path), reason=str(exc))
                else:
                    if applied:
                        _log.info("xinyong.mirror.synced", path=str(self.path), applied=applied)
                await self._sleep(interval)

    async def apply(self, change: ListChange | ListChangedNotification) -> bool:
        """Apply a change pushed by the gateway (a notification, or its ``data``) exactly as the feed would: returns
        whether the mirror changed.

        Idempotent, and the order of pushes and syncs does not matter: an entry replaces the one held for its subject
        only when it is later in the feed (its cursor is greater), so a pushed entry already read by a sync, or one
        read by a later sync, changes nothing, and an older one never overwrites a newer one. A push does not move
        the feed cursor (the next sync still reads every entry after it, so a gap in the notifications is filled by
        syncing) and does not make the mirror fresher: :attr:`freshness` and ``as_of`` are those of the last complete
        sync, since a push says nothing of the changes it did not carry. The notification must come from a
        subscription of the API key whose lookup secret the mirror was made with (persons are named by that key's
        pseudonyms)."""
        if isinstance(change, ListChangedNotification):
            change = change.data
        return await asyncio.to_thread(self._push, change)

    @contextlib.asynccontextmanager
    async def _feed(self) -> AsyncIterator[Client]:
        if self._closed:
            raise MirrorError("This ListMirror is closed; create a new one.")
        if self._client is None:
            raise MirrorError("This ListMirror was opened without a client: it answers lookups but cannot sync.")
        if isinstance(self._client, Client):
            yield self._client
            return
        assert self._api_key is not None  # noqa: S101 -- checked in __init__
        async with Client(self._client, self._api_key) as client:
            yield client

    async def _sync(self, client: Client) -> int:
        async with self._sync_lock:
            applied = 0
            cursor = await asyncio.to_thread(self._stored_cursor)
            while True:
                asked_at = self._now()
                page = await client.changes_page(cursor, limit=self._page_size)
                at_head = len(page.changes) < self._page_size
                committed = await asyncio.to_thread(self._apply, cursor, page, asked_at if at_head else None)
                if committed is None:  # another process moved the cursor meanwhile: continue from where it is
                    cursor = await asyncio.to_thread(self._stored_cursor)
                    continue
                applied += committed
                cursor = page.next
                if at_head:
                    return applied

    def _stored_cursor(self) -> str | None:
        try:
            row = self._writer.execute("SELECT value FROM mirror_meta WHERE name = 'cursor'").fetchone()
        except sqlite3.Error as exc:
            raise MirrorError(f"Cannot read the list mirror {self.path}: {exc}.") from exc
        return None if row is None else str(row[0])

    def _apply(self, expected_cursor: str | None, page: ListChangesPage, synced_at: datetime | None) -> int | None:
        """Apply one page and its cursor in one transaction, if the stored cursor is still ``expected_cursor``;
        returns the entries applied, or None when another writer moved the cursor (nothing is written)."""
        rows = [_feed_row(change) for change in page.changes]
        _feed_position(page.next)
        meta = [("cursor", page.next)]
        if page.changes:
            meta.append(("policy_version", page.changes[-1].policy_version))
        if synced_at is not None:
            meta.append(("synced_at", synced_at.isoformat()))
        with self._writing() as writer:
            row = writer.execute("SELECT value FROM mirror_meta WHERE name = 'cursor'").fetchone()
            if (None if row is None else row[0]) != expected_cursor:
                return None
            writer.executemany(_UPSERT, rows)
            writer.executemany(_SET_META, meta)
        return len(rows)

    def _push(self, change: ListChange) -> bool:
        """Apply one pushed entry unless the feed was synced past it or a later entry of its subject is held."""
        row = _feed_row(change)
        with self._writing() as writer:
            stored = writer.execute("SELECT value FROM mirror_meta WHERE name = 'cursor'").fetchone()
            if stored is not None and row[-1] <= _feed_position(str(stored[0])):
                return False  # synced past it: the entry held for its subject is this one or a later one
            return writer.execute(_UPSERT, row).rowcount > 0

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection (BEGIN IMMEDIATE), committed when the block ends, rolled
        back when it raises; one at a time in this process, and SQLite's lock against other processes."""
        writer = self._writer
        try:
            with self._write_lock:
                if self._closed:
                    raise MirrorError("This ListMirror is closed; create a new one.")
                writer.execute("BEGIN IMMEDIATE")
                try:
                    yield writer
                    writer.execute("COMMIT")
                except BaseException:
                    if writer.in_transaction:
                        writer.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise MirrorError(f"Cannot write the list mirror {self.path}: {exc}.") from exc


def _span(delta: timedelta) -> str:
    """``3 h 12 min``, ``45 min``, ``20 s``: a duration for a person."""
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
