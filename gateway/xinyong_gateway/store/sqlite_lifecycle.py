"""The lifecycle operations (``store/lifecycle.py``) on SQLite: every write is a job of the store's writer thread, in
a ``BEGIN IMMEDIATE`` transaction (so it excludes the writers of every other process too); the backup reads through
a connection of its own (``VACUUM INTO``: one read transaction, a consistent snapshot while the writer goes on)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from xinyong_gateway.errors import StoreError, StoreUnavailableError
from xinyong_gateway.store.lifecycle import Lifecycle, SealedPlace, SealedRow, checked_place, sealed_row, sealed_select

__all__ = ["SqliteLifecycle", "restore_sqlite"]

T = TypeVar("T")
Submit = Callable[..., "asyncio.Future[Any]"]


class SqliteLifecycle(Lifecycle):
    def __init__(self, path: Path, submit: Submit) -> None:
        self._path = path
        self._submit = submit

    async def _job(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        result: T = await self._submit(fn, write=write)
        return result

    async def read_meta(self, names: Sequence[str]) -> dict[str, bytes]:
        def read(conn: sqlite3.Connection) -> dict[str, bytes]:
            rows = conn.execute(
                f"SELECT name, value FROM meta WHERE name IN ({', '.join('?' * len(names))})",  # noqa: S608 -- marks
                tuple(names),
            )
            return {name: bytes(value) for name, value in rows}

        return await self._job(read)

    async def insert_meta(self, name: str, value: bytes) -> bytes:
        def insert(conn: sqlite3.Connection) -> bytes:
            conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, value))
            return bytes(conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0])

        return await self._job(insert, write=True)

    async def write_meta(self, values: Mapping[str, bytes | None]) -> None:
        await self._job(lambda conn: _write_meta(conn, values), write=True)

    async def read_sealed(self, place: SealedPlace, after: Any, limit: int) -> list[SealedRow]:
        sql = sealed_select(place, first=after is None, placeholders=("?", "?"))
        params = (limit,) if after is None else (after, limit)
        return await self._job(lambda conn: [sealed_row(place, row) for row in conn.execute(sql, params)])

    async def reseal(self, place: SealedPlace, changes: Sequence[tuple[Any, bytes, bytes]]) -> int:
        checked_place(place)
        sql = f"UPDATE {place.table} SET {place.column} = ? WHERE {place.key} = ? AND {place.column} = ?"  # noqa: S608

        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(sql, [(new, key, old) for key, old, new in changes])
            return conn.total_changes - before

        return await self._job(write, write=True)

    async def check_sealed_locked(
        self,
        places: Sequence[SealedPlace],
        opens: Callable[[SealedPlace, SealedRow], bool],
        then: Mapping[str, bytes | None],
    ) -> int:
        def check(conn: sqlite3.Connection) -> int:  # BEGIN IMMEDIATE: no other writer until the commit
            refused = 0
            for place in places:
                for row in conn.execute(sealed_select(place, first=True, placeholders=("", "-1"))):
                    refused += not opens(place, sealed_row(place, row))
            if not refused:
                _write_meta(conn, then)
            return refused

        return await self._job(check, write=True)

    async def backup(self, destination: Path) -> None:
        def copy() -> None:
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # VACUUM INTO takes an empty file
            os.close(fd)
            try:
                source = sqlite3.connect(_read_only(self._path), uri=True, isolation_level=None)
                try:
                    source.execute("PRAGMA busy_timeout = 5000")
                    source.execute("VACUUM INTO ?", (str(destination),))
                finally:
                    source.close()
                _fsync(destination)
            except BaseException:
                destination.unlink(missing_ok=True)
                raise

        try:
            await asyncio.to_thread(copy)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"The backup to {destination} failed: {exc}.") from exc

    async def subject_states(self, after: str, limit: int) -> list[tuple[str, str]]:
        sql = "SELECT subject_key, state FROM subjects WHERE subject_key > ? ORDER BY subject_key LIMIT ?"
        return await self._job(lambda conn: [(key, state) for key, state in conn.execute(sql, (after, limit))])

    async def erase_bodies(self, seqs: Sequence[int], erased: Callable[[int, str, str], bytes], now: int) -> int:
        def write(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT seq, source_id, webhook_id FROM inbox WHERE erased_at IS NULL"
                " AND seq IN (SELECT value FROM json_each(?))",
                (f"[{','.join(str(int(seq)) for seq in seqs)}]",),
            ).fetchall()
            conn.executemany(
                "UPDATE inbox SET body = ?, erased_at = ? WHERE seq = ?",
                [(erased(seq, source_id, webhook_id), now, seq) for seq, source_id, webhook_id in rows],
            )
            return len(rows)

        return await self._job(write, write=True)

    async def erase_identities(self, subject_keys: Sequence[str], now: int) -> int:
        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(
                "UPDATE subjects SET sealed_id = x'', sealed_name = NULL,"
                " identity_erased_at = coalesce(identity_erased_at, ?) WHERE subject_key = ?"
                " AND (identity_erased_at IS NULL OR sealed_name IS NOT NULL)",
                [(now, key) for key in subject_keys],
            )
            return conn.total_changes - before

        return await self._job(write, write=True)


def _write_meta(conn: sqlite3.Connection, values: Mapping[str, bytes | None]) -> None:
    for name, value in values.items():
        if value is None:
            conn.execute("DELETE FROM meta WHERE name = ?", (name,))
        else:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )


def _read_only(path: Path) -> str:
    return f"file:{urllib.parse.quote(str(path))}?mode=ro"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore_sqlite(source: Path, destination: Path) -> None:
    """Copy the SQLite backup ``source`` to ``destination``, a database that must not exist yet (through SQLite's
    backup API into a temporary file beside it, then renamed into place: a crash leaves no half database)."""
    if destination.exists():
        raise StoreError(f"{destination} exists: restore only onto an empty place (move the old database away first).")
    try:
        with sqlite3.connect(_read_only(source), uri=True) as check:
            tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise StoreError(f"{source} is not a SQLite database: {exc}.") from exc
    if "schema_migrations" not in tables or "inbox" not in tables:
        raise StoreError(f"{source} is not a gateway database (no schema_migrations or inbox table).")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".restoring")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        src = sqlite3.connect(_read_only(source), uri=True)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        _fsync(partial)
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
