"""The SQLite store's operational read (``SqliteStore.operations_state`` and ``last_events``): what ``/metrics`` and
``xinyong-gateway status`` show, read on a read-only connection of its own in a worker thread, so that neither the
writer thread (group commits) nor the event loop waits for it.

Cost: the inbox head, the feed head and each partition's first unapplied row are single index lookups; the count of
credit files per list reads every row of ``subjects`` (the list is inside the stored status): about a second per
million subjects, which is why ``/metrics`` reads this at most once per ``web.metrics.STATE_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from xinyong_gateway.errors import StoreUnavailableError
from xinyong_gateway.store.base import oldest_unapplied, positions_behind
from xinyong_gateway.store.records import PARTITIONS, Micros, OperationsState
from xinyong_gateway.store.rows import OUTBOX_PENDING

__all__ = ["last_events", "operations_state"]

T = TypeVar("T")
_BUSY_TIMEOUT_MS = 5000
_FIRST_PAST = "SELECT received_at FROM inbox WHERE seq > ? ORDER BY seq LIMIT 1"


async def operations_state(path: Path) -> OperationsState:
    """The operational state of the database at ``path``, read in one transaction."""
    return await _in_thread(_operations_state, path)


async def last_events(path: Path, window: int) -> dict[str, Micros]:
    """When the last event of each kind of source was received, among the last ``window`` inbox rows (a bounded
    read of the log's tail: a kind silent for longer has no entry)."""
    return await _in_thread(_last_events, path, window)


async def _in_thread(fn: Callable[..., T], *args: object) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"SQLite error: {exc}.") from exc


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


def _operations_state(path: Path) -> OperationsState:
    with contextlib.closing(_connect(path)) as conn:
        conn.execute("BEGIN")
        head = conn.execute("SELECT coalesce(max(seq), 0) FROM inbox").fetchone()[0]
        positions = dict.fromkeys(range(PARTITIONS), 0)
        positions.update(conn.execute("SELECT partition, position FROM projection_partitions").fetchall())
        received: dict[int, Micros | None] = {}
        for position in positions_behind(positions, head):
            row = conn.execute(_FIRST_PAST, (position,)).fetchone()
            received[position] = row[0] if row else None
        feed_head = conn.execute("SELECT coalesce(max(change_id), 0) FROM status_changes").fetchone()[0]
        lists = conn.execute("SELECT json_extract(status, '$.list'), count(*) FROM subjects GROUP BY 1").fetchall()
        sources = conn.execute("SELECT kind, count(*) FROM sources WHERE status = 'active' GROUP BY kind").fetchall()
        outbox = conn.execute(OUTBOX_PENDING).fetchall()
        conn.execute("COMMIT")
    return OperationsState(
        inbox_head=head,
        positions=positions,
        oldest_unapplied=oldest_unapplied(positions, received),
        change_feed_head=feed_head,
        subjects_by_list={str(name): count for name, count in lists},
        active_sources=dict(sources),
        outbox_pending={status: (count, oldest) for status, count, oldest in outbox},
    )


def _last_events(path: Path, window: int) -> dict[str, Micros]:
    with contextlib.closing(_connect(path)) as conn:
        rows = conn.execute(
            "SELECT s.kind, max(i.received_at) FROM inbox i JOIN sources s ON s.source_id = i.source_id"
            " WHERE i.seq > (SELECT coalesce(max(seq), 0) FROM inbox) - ? GROUP BY s.kind",
            (window,),
        ).fetchall()
    return dict(rows)
