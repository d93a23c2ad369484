"""Bulk import: historical events from an NDJSON file into the inbox (``xinyong-gateway import``).

Each line is one event envelope, checked exactly as ingest checks a webhook body once its signature holds
(``validation.check_event``: JSON → type → the source's kind → schema, no fact more than 5 minutes after the
import's "now"), within the body limit of ingest. There are no signatures: the operator vouches for the file.

**Webhook ids.** One scheme with ``xinyong send``, from the SDK (:mod:`xinyong.ndjson`): a line's top-level
``"id"`` member if it has one (the rule of the ``webhook-id`` header), taken out before validation, the stored body
being the rest of the object as compact JSON (exactly ``json.dumps(…, separators=(",", ":"), ensure_ascii=False)``);
else ``line-`` and 32 hex digits of a SHA-256 of the line with any person's id and name left out
(:func:`xinyong.ndjson.line_webhook_id`, whose docstring says why it is not keyed), the line stored byte for byte.
So importing the same file again, or a file ``xinyong send`` sent, answers duplicate for every line and stores
nothing; an id already stored with another body is rejected as a conflict (``webhook-id-conflict``, ingest's 409).

Imports before this scheme stored a line without ``"id"`` under ``import-`` and 32 hex digits of its keyed body
digest. Such a line, imported again, keeps that id: when a file has lines without ``"id"``, the importer first reads
the ids of the source's earlier imports (headers only, no body) and stores a line under its old id when one was
stored for the same body, so it answers duplicate instead of being stored a second time.

A file whose first line is not a JSON object is refused before anything is stored
(:func:`xinyong.ndjson.check_first_line`), as ``xinyong send`` refuses it before anything is sent.

**Pipeline.** Lines are read in chunks of 5,000; a chunk is checked (in this process, or in ``jobs`` worker
processes that never see a key), then digested and sealed here, and queued to the store's bulk path
(``Store.append_many``: one transaction, durable before it is counted). While one chunk commits on the store's
writer thread the next ones are checked, so memory stays bounded by a few chunks whatever the file's size.
Rejected lines are reported with their number, problem type, a detail and JSON Pointers, never with their
content (it may be personal data).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import pydantic_core

from xinyong import problems
from xinyong.errors import MalformedHeadersError
from xinyong.events import SourceKind
from xinyong.ndjson import NotNdjsonError, check_first_line, line_webhook_id, numbered_lines
from xinyong.webhooks import check_webhook_id
from xinyong_gateway.credit.engine import subjects_of
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import EventRejectedError, GatewayError
from xinyong_gateway.store import AppendResult, AppendStatus, InboxEntry, SourceRecord, Store, partition_mask
from xinyong_gateway.validation import check_event, parse_body

__all__ = ["IMPORT_SIGNATURE", "LEGACY_ID_PREFIX", "ImportProgress", "Importer", "Rejection", "check_lines"]

IMPORT_SIGNATURE = "import"
"""What imported rows keep in the inbox's signature column: they were not signed (no ``v1,`` prefix)."""

CHUNK_LINES = 5000
LEGACY_ID_PREFIX = "import-"
"""Of the ids earlier imports derived from a line's keyed body digest (``import-`` and 32 hex digits)."""
_LEGACY_SCAN_PAGE = 10_000
_CONFLICT_DETAIL = "This webhook id was already stored with a different body; use a new id for a new event."


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that was not stored, and why (never what it said)."""

    line: int
    problem: str
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "problem": self.problem, "detail": self.detail, "errors": self.errors}


@dataclass(frozen=True, slots=True)
class _Checked:
    """A line that passed the checks: what the inbox row needs besides digest and seal."""

    webhook_id: str
    """The line's ``"id"``, or the id derived from the line (:func:`xinyong.ndjson.line_webhook_id`)."""
    derived: bool
    """Whether ``webhook_id`` was derived (an earlier import may have stored the line under its legacy id)."""
    body: bytes | None
    """The body to store; None when it is the line itself."""
    event_type: str
    webhook_timestamp: int
    subjects: tuple[tuple[str, str], ...]
    """``(id_type, id)`` of the subjects the event is about: the parent derives their partitions (under the
    master key, which workers never see)."""


def check_lines(
    lines: list[tuple[int, bytes]], kind: SourceKind, body_limit: int, now: float, uscc: str | None = None
) -> list[Any]:
    """Check numbered lines (runs in worker processes): a ``_Checked`` or a :class:`Rejection` for each.
    ``uscc``: the source's own code (an ``intermediary`` source imports events about itself only)."""
    moment = datetime.fromtimestamp(now, UTC)
    return [_check_line(number, line, kind, body_limit, moment, uscc) for number, line in lines]


def _check_line(
    number: int, line: bytes, kind: SourceKind, body_limit: int, now: datetime, uscc: str | None
) -> _Checked | Rejection:
    try:
        if len(line) > body_limit:
            raise EventRejectedError(problems.BODY_TOO_LARGE, f"The body limit is {body_limit} bytes.")
        document = parse_body(line)
        webhook_id: str | None = None
        if isinstance(document, dict) and "id" in document:
            webhook_id = _checked_webhook_id(document.pop("id"))
        event = check_event(document, kind, now=now, uscc=uscc)
    except EventRejectedError as exc:
        return Rejection(number, exc.problem_type, exc.detail, exc.errors or [])
    subjects = tuple((subject.id_type, subject.id) for subject in subjects_of(event).values())
    if webhook_id is None:
        return _Checked(line_webhook_id(line), True, None, event.type, int(event.timestamp.timestamp()), subjects)
    # pydantic_core.to_json writes what json.dumps(document, separators=(",", ":"), ensure_ascii=False) does for
    # every document that passed (events hold no fractional numbers, where they differ; tests hold both), faster.
    body = pydantic_core.to_json(document)
    return _Checked(webhook_id, False, body, event.type, int(event.timestamp.timestamp()), subjects)


def _checked_webhook_id(value: Any) -> str:
    """The rule of the ``webhook-id`` header (the SDK's), for a line's ``"id"``."""
    try:
        if not isinstance(value, str):
            raise MalformedHeadersError("The webhook id must be a non-empty string")
        return check_webhook_id(value, what="The webhook id")
    except MalformedHeadersError as exc:
        raise EventRejectedError(
            problems.SCHEMA_INVALID,
            "The line's webhook id is not valid.",
            errors=[{"pointer": "/id", "detail": str(exc)}],
        ) from None


@dataclass(slots=True)
class ImportProgress:
    """Counts so far; ``bytes_read`` of ``total_bytes`` of the input have been read and settled."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    bytes_read: int = 0
    total_bytes: int = 0

    @property
    def lines(self) -> int:
        """Lines settled (empty lines are skipped and not counted)."""
        return self.accepted + self.duplicate + self.rejected


@dataclass(slots=True)
class _Batch:
    lines: list[tuple[int, bytes]]
    """(line number, line without its end of line) of the non-empty lines."""
    end_offset: int
    now: float
    """The import's "now" for this batch (the future-date rule; the rows' receive time)."""


@dataclass(slots=True)
class _Chunk:
    entries: list[InboxEntry]
    line_numbers: list[int]
    """The line of each entry."""
    rejections: list[Rejection]
    end_offset: int


class Importer:
    """Imports NDJSON event files for one active source.

    ``jobs`` above 1 checks lines in that many worker processes (started with ``spawn``: this process runs the
    store's writer thread); they receive lines and return verdicts, and never see a key: digests and seals are
    made here.
    """

    def __init__(
        self,
        store: Store,
        master: MasterKey,
        source: SourceRecord,
        *,
        body_limit: int,
        jobs: int = 1,
        chunk_lines: int = CHUNK_LINES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._master = master
        self._source = source
        self._body_limit = body_limit
        self._jobs = jobs
        self._chunk_lines = chunk_lines
        self._clock = clock

    async def run(
        self,
        stream: BinaryIO,
        *,
        total_bytes: int = 0,
        on_rejections: Callable[[list[Rejection]], None],
        on_progress: Callable[[ImportProgress], None] | None = None,
    ) -> ImportProgress:
        """Import every line of ``stream``; report rejections (in line order) and progress after each chunk.

        Raises ``StoreUnavailableError`` when a commit fails; the chunks committed before it stay stored.
        """
        progress = ImportProgress(total_bytes=total_bytes)
        in_flight: tuple[_Chunk, Awaitable[list[AppendResult]]] | None = None
        legacy: set[bytes] | None = None
        try:
            async with contextlib.aclosing(self._checked(stream)) as checked:
                async for batch, verdicts in checked:
                    if legacy is None and any(isinstance(v, _Checked) and v.derived for v in verdicts):
                        legacy = await self._legacy_digests()
                    chunk = self._chunk(batch, verdicts, legacy or set())
                    # Queue this chunk, then settle the previous one: one commits while the next is checked.
                    previous, in_flight = in_flight, (chunk, self._store.append_many(chunk.entries))
                    if previous is not None:
                        self._settle(previous[0], await previous[1], progress, on_rejections, on_progress)
            if in_flight is not None:
                (last, results), in_flight = in_flight, None
                self._settle(last, await results, progress, on_rejections, on_progress)
        finally:
            if in_flight is not None:  # an earlier commit failed: let the queued chunk settle, its error unraised
                with contextlib.suppress(Exception):
                    await in_flight[1]
        return progress

    async def _legacy_digests(self) -> set[bytes]:
        """The digest prefixes in the ids earlier imports gave this source's lines without ``"id"``
        (``import-`` and 32 hex digits), read from the inbox's headers (no body is read)."""
        found: set[bytes] = set()
        source_id, after = self._source.source_id, 0
        while rows := await self._store.read_inbox(after, _LEGACY_SCAN_PAGE, partitions=0):
            for row in rows:
                webhook_id = row.webhook_id
                if (
                    webhook_id.startswith(LEGACY_ID_PREFIX)
                    and row.source_id == source_id
                    and row.signature == IMPORT_SIGNATURE
                    and len(webhook_id) == len(LEGACY_ID_PREFIX) + 32
                ):
                    with contextlib.suppress(ValueError):
                        found.add(bytes.fromhex(webhook_id[len(LEGACY_ID_PREFIX) :]))
            after = rows[-1].seq
        return found

    def _batches(self, stream: BinaryIO) -> Iterator[_Batch]:
        """The non-empty lines, ``chunk_lines`` at a time, numbered as in the file; a file whose first line is not a
        JSON object is refused (``GatewayError``) before any line is checked."""
        lines: list[tuple[int, bytes]] = []
        first = True
        for number, line, offset in numbered_lines(stream):
            if first:
                first = False
                try:
                    check_first_line(number, line, getattr(stream, "name", "the file"))
                except NotNdjsonError as exc:
                    raise GatewayError(str(exc)) from None
            lines.append((number, line))
            if len(lines) >= self._chunk_lines:
                yield _Batch(lines, offset, self._clock())
                lines = []
        if lines:
            yield _Batch(lines, offset, self._clock())

    async def _checked(self, stream: BinaryIO) -> AsyncGenerator[tuple[_Batch, list[Any]], None]:
        """Each batch with the verdicts on its lines, in file order."""
        kind, limit, uscc = self._source.kind, self._body_limit, self._source.uscc
        if self._jobs <= 1:
            for batch in self._batches(stream):
                yield batch, check_lines(batch.lines, kind, limit, batch.now, uscc)
            return
        context = multiprocessing.get_context("spawn")  # never fork a process that runs a writer thread
        with ProcessPoolExecutor(self._jobs, mp_context=context, initializer=_ignore_interrupts) as pool:
            queued: deque[tuple[_Batch, asyncio.Future[list[Any]]]] = deque()
            try:
                for batch in self._batches(stream):
                    future = pool.submit(check_lines, batch.lines, kind, limit, batch.now, uscc)
                    queued.append((batch, asyncio.wrap_future(future)))
                    if len(queued) > self._jobs:  # keep every worker busy, and no more batches than that in memory
                        done, verdicts = queued.popleft()
                        yield done, await verdicts
                while queued:
                    done, verdicts = queued.popleft()
                    yield done, await verdicts
            except BrokenProcessPool as exc:
                raise GatewayError(
                    "A process checking lines stopped unexpectedly; run the import again (--jobs 1 checks lines in"
                    " the importing process)."
                ) from exc
            finally:
                for _, verdicts in queued:
                    verdicts.cancel()

    def _chunk(self, batch: _Batch, verdicts: list[Any], legacy: set[bytes]) -> _Chunk:
        """Digest and seal the lines that passed; collect the others' rejections. A line with a derived id that an
        earlier import stored under its legacy id (its digest prefix in ``legacy``) keeps that id."""
        chunk = _Chunk([], [], [], batch.end_offset)
        source_id = self._source.source_id
        received_at = int(batch.now * 1_000_000)
        master = self._master
        for (number, line), verdict in zip(batch.lines, verdicts, strict=True):
            if isinstance(verdict, Rejection):
                chunk.rejections.append(verdict)
                continue
            body = line if verdict.body is None else verdict.body
            digest = master.body_digest(body)
            webhook_id = verdict.webhook_id
            if verdict.derived and legacy and digest[:16] in legacy:
                webhook_id = LEGACY_ID_PREFIX + digest[:16].hex()
            chunk.entries.append(
                InboxEntry(
                    source_id=source_id,
                    webhook_id=webhook_id,
                    body_digest=digest,
                    event_type=verdict.event_type,
                    webhook_timestamp=verdict.webhook_timestamp,
                    signature=IMPORT_SIGNATURE,
                    received_at=received_at,
                    sealed_body=master.seal_body(source_id, webhook_id, body),
                    partitions=partition_mask(master.subject_key(*subject) for subject in verdict.subjects),
                )
            )
            chunk.line_numbers.append(number)
        return chunk

    @staticmethod
    def _settle(
        chunk: _Chunk,
        results: list[AppendResult],
        progress: ImportProgress,
        on_rejections: Callable[[list[Rejection]], None],
        on_progress: Callable[[ImportProgress], None] | None,
    ) -> None:
        rejections = chunk.rejections
        for line, result in zip(chunk.line_numbers, results, strict=True):
            if result.status is AppendStatus.ACCEPTED:
                progress.accepted += 1
            elif result.status is AppendStatus.DUPLICATE:
                progress.duplicate += 1
            else:
                rejections.append(Rejection(line, problems.DUPLICATE_CONFLICT, _CONFLICT_DETAIL))
        if rejections:
            rejections.sort(key=lambda r: r.line)
            progress.rejected += len(rejections)
            on_rejections(rejections)
        progress.bytes_read = chunk.end_offset
        if on_progress is not None:
            on_progress(progress)


def _ignore_interrupts() -> None:
    """(Worker processes) Ctrl-C is the importing process's to handle; workers stop when it shuts the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
