"""The mechanics shared by the gateway's in-memory views of a store table (sources, API keys).

A :class:`Registry` keeps the active entries of a table in memory, built from its records, and reloads the table
every ``refresh_interval`` seconds (:meth:`Registry.run`), and at once (coalesced, at most every 0.2 s) when a
request names an id it does not know (:meth:`Registry.lookup`, :meth:`Registry.reload`). An entry whose record did
not change between two reloads is kept as it is (with its rate bucket). :func:`refresh_every` is the loop
:meth:`Registry.run` runs, for other state re-read periodically from the store.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from xinyong_gateway.errors import StoreError

__all__ = ["MISS_RELOAD_INTERVAL", "Registry", "refresh_every"]

MISS_RELOAD_INTERVAL = 0.2
"""Unknown ids reload the table at most this often (seconds)."""

RecordT = TypeVar("RecordT")
ActiveT = TypeVar("ActiveT")


async def refresh_every(interval: float, refresh: Callable[[], Awaitable[object]], log: Any, event: str) -> None:
    """Call ``refresh`` every ``interval`` seconds until cancelled; store errors are logged as ``event`` and
    retried."""
    while True:
        await asyncio.sleep(interval)
        try:
            await refresh()
        except StoreError as exc:
            log.warning(event, error=str(exc))


class Registry(ABC, Generic[RecordT, ActiveT]):
    """The active entries of a store table by id, kept in memory and refreshed from the store.

    Subclasses say how the records are listed (:meth:`_list`), named (:meth:`_id`), which are active
    (:meth:`_is_active`) and how an entry is built from one (:meth:`_build`)."""

    _log: Any
    """The logger :meth:`run` reports failed reloads to."""
    _refresh_failed_event: str

    def __init__(self, *, refresh_interval: float) -> None:
        self._refresh_interval = refresh_interval
        self._records: dict[str, RecordT] = {}
        self._active: dict[str, ActiveT] = {}
        self._last_refresh = float("-inf")
        self._refresh_lock = asyncio.Lock()

    @abstractmethod
    async def _list(self) -> Sequence[RecordT]:
        """Every record of the table (one query)."""

    @abstractmethod
    def _id(self, record: RecordT) -> str: ...

    @abstractmethod
    def _is_active(self, record: RecordT) -> bool: ...

    @abstractmethod
    def _build(self, record: RecordT, previous: ActiveT | None) -> ActiveT | None:
        """The entry for an active record (``previous``: the entry it replaces, if any); None to leave it out."""

    async def refresh(self) -> None:
        """Reload every record from the store (one query)."""
        async with self._refresh_lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        started = time.monotonic()
        records = await self._list()
        active: dict[str, ActiveT] = {}
        for record in records:
            if not self._is_active(record):
                continue
            record_id = self._id(record)
            previous = self._active.get(record_id)
            if previous is not None and self._records.get(record_id) == record:
                active[record_id] = previous  # unchanged: keep it (and its bucket)
                continue
            built = self._build(record, previous)
            if built is not None:
                active[record_id] = built
        self._records = {self._id(record): record for record in records}
        self._active = active
        self._last_refresh = started

    @property
    def records(self) -> Mapping[str, RecordT]:
        """Every record by id, active or not, as last reloaded (no I/O): what a past record was reported by."""
        return self._records

    def get(self, record_id: str) -> ActiveT | None:
        """The active entry with this id, from memory (no I/O)."""
        return self._active.get(record_id)

    async def lookup(self, record_id: str) -> ActiveT | None:
        """Like :meth:`get`, but an unknown id reloads the table first (see :meth:`reload`)."""
        entry = self.get(record_id)
        if entry is not None:
            return entry
        return await self.reload(record_id)

    async def reload(self, record_id: str) -> ActiveT | None:
        """Reload the table, unless a reload started since this call, and return the entry afresh.

        Reloads are coalesced and run at most every 0.2 s, so a flood of unknown ids costs the database five small
        queries a second (and each such request waits for it).
        """
        asked_at = time.monotonic()
        async with self._refresh_lock:
            if self._last_refresh < asked_at:
                delay = self._last_refresh + MISS_RELOAD_INTERVAL - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._refresh_locked()
        return self.get(record_id)

    async def run(self) -> None:
        """Reload the table every ``refresh_interval`` seconds until cancelled; store errors are retried."""
        await refresh_every(self._refresh_interval, self.refresh, self._log, self._refresh_failed_event)
