"""Group commit on the event loop, shared by every backend's ``Store.append``.

Appends gather while the previous batch is committing; when it is done, everything that gathered goes to the
backend as one batch, written in one transaction, so one durable commit (one fsync) acknowledges many
webhooks and durability costs little throughput. One batch is in flight at a time per process: the next
batch forms while the current one syncs. ``append`` is not a coroutine, so the hot path hands its entry over
and awaits the future directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xinyong_gateway.errors import StoreError
from xinyong_gateway.store.records import (
    AppendResult,
    InboxEntry,
)

__all__ = ["MAX_BATCH", "CommitObserver", "GroupCommit", "Outcome", "PendingAppend", "settle", "settle_all"]

MAX_BATCH = 1024
"""Most appends in one transaction."""

Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]
"""A future to settle, with its value or its error."""
CommitObserver = Callable[[int, float], None]
"""Told of each group commit once it is settled: ``(appends in the batch, seconds from hand-off to settled)``."""


@dataclass(slots=True)
class PendingAppend:
    entry: InboxEntry
    future: asyncio.Future[AppendResult]


class GroupCommit:
    """Gathers appends and hands them to ``send`` a batch at a time.

    ``send(batch)`` starts the commit of ``batch`` (on a writer thread, or as a task) and must lead to exactly
    one call of :meth:`done` on the event loop, with an outcome for every append of the batch, whether the
    commit succeeded or failed."""

    def __init__(self, send: Callable[[list[PendingAppend]], None]) -> None:
        self._send = send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[PendingAppend] = []
        self._in_flight = False
        self._flush_scheduled = False
        self._sent_at = 0.0
        self._sent = 0
        self.observer: CommitObserver | None = None
        """Told of each batch's size and commit time (``/metrics``); None: nobody asks, nothing is measured."""

    @property
    def in_flight(self) -> bool:
        """A batch is committing now."""
        return self._in_flight

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def stop(self) -> None:
        self._loop = None

    def append(
        self, entry: InboxEntry, into: asyncio.Future[AppendResult] | None = None
    ) -> asyncio.Future[AppendResult]:
        if self._loop is None:
            raise StoreError("The store is not open.")
        future = self._loop.create_future() if into is None else into
        self._pending.append(PendingAppend(entry, future))
        if not self._in_flight and not self._flush_scheduled:
            # Send at the end of this turn of the loop, so that appends made in the same turn travel together.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Hand the pending appends to the backend as one batch, unless a batch is in flight."""
        self._flush_scheduled = False
        if self._in_flight or not self._pending:
            return
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._in_flight = True
        if self.observer is not None:
            self._sent, self._sent_at = len(batch), time.perf_counter()
        self._send(batch)

    def done(self, outcomes: list[Outcome]) -> None:
        """(Event loop) Settle a committed batch and send what queued up meanwhile: the next group commit."""
        self._in_flight = False
        settle_all(outcomes)
        if self.observer is not None and self._sent:
            self.observer(self._sent, time.perf_counter() - self._sent_at)
            self._sent = 0
        if self._pending:
            self._flush()


def settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting request was cancelled (client went away); the result is moot
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def settle_all(outcomes: list[Outcome]) -> None:
    for future, value, error in outcomes:
        settle(future, value, error)


async def concatenated(jobs: list[asyncio.Future[list[AppendResult]]]) -> list[AppendResult]:
    """The results of queued chunk jobs, in order; the first failure is raised once every job has settled."""
    if jobs:
        await asyncio.wait(jobs)
    errors = [error for error in (job.exception() for job in jobs) if error is not None]
    if errors:
        raise errors[0]
    return [result for job in jobs for result in job.result()]
