"""PostgreSQL and CPU accounting for ``bench/ingest.py --db postgresql://…``.

- ``scratch_database``: a new database ``xinyong_bench_<hex>`` on the given server (the URL's own database is
  only used to create and, at the end, drop it with ``DROP DATABASE … WITH (FORCE)``).
- ``CpuSnapshot``: user + system CPU seconds of processes from ``/proc/<pid>/stat`` (all threads of each), for
  the gateway's process tree (supervisor, workers) and for every process whose ``comm`` is ``postgres``
  (server, backends, WAL writer, checkpointer ...). A difference of two snapshots counts processes present in
  both, plus the whole CPU of processes that appeared in between (a process that ended in between is lost,
  which is why the bench takes its snapshots while the gateway is still connected).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

__all__ = [
    "CpuSnapshot",
    "database_sessions",
    "inbox_rows",
    "is_postgres",
    "postgres_pids",
    "process_tree",
    "scratch_database",
    "server_facts",
    "with_database",
]

_TICK = os.sysconf("SC_CLK_TCK")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead of its own (query parameters kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url, timeout=30)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(server_url: str, *, keep: bool = False) -> Iterator[tuple[str, str]]:
    """A new, empty database on the server of ``server_url``: ``(its URL, its name)``; dropped at the end
    unless ``keep``."""
    name = f"xinyong_bench_{secrets.token_hex(4)}"
    _run(_execute(server_url, f"CREATE DATABASE {name}"))
    try:
        yield with_database(server_url, name), name
    finally:
        if not keep:
            _run(_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def server_facts(url: str) -> dict[str, str]:
    """Version and the settings that decide what a commit costs."""

    async def read() -> dict[str, str]:
        connection = await asyncpg.connect(url, timeout=30)
        try:
            facts = {"version": str(await connection.fetchval("SHOW server_version"))}
            for setting in (
                "synchronous_commit",
                "fsync",
                "wal_sync_method",
                "commit_delay",
                "shared_buffers",
                "max_connections",
                "data_directory",
            ):
                try:
                    facts[setting] = str(await connection.fetchval(f"SHOW {setting}"))
                except asyncpg.PostgresError:  # data_directory needs a privileged role
                    facts[setting] = "?"
            return facts
        finally:
            await connection.close()

    result: dict[str, str] = _run(read())
    return result


def inbox_rows(url: str) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(url, timeout=30)
        try:
            return int(await connection.fetchval("SELECT count(*) FROM inbox"))
        finally:
            await connection.close()

    result: int = _run(count())
    return result


# -- CPU from /proc -------------------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, float] | None:
    """(comm, user + system CPU seconds) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, (int(fields[11]) + int(fields[12])) / _TICK


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it."""
    found = {root}
    pending = [root]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                children = {int(child) for child in (task / "children").read_text().split()}
                pending.extend(children - found)
                found |= children
    return found


def postgres_pids() -> set[int]:
    """Every process on this machine whose ``comm`` is ``postgres``."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == "postgres":
                pids.add(int(entry.name))
    return pids


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds per pid at one moment."""

    seconds: dict[int, float]

    @classmethod
    def of(cls, pids: set[int]) -> CpuSnapshot:
        seconds = {}
        for pid in pids:
            stat = _stat(pid)
            if stat is not None:
                seconds[pid] = stat[1]
        return cls(seconds)

    def used_since(self, before: CpuSnapshot) -> float:
        """CPU seconds used between ``before`` and this snapshot (new processes count in full)."""
        return sum(now - before.seconds.get(pid, 0.0) for pid, now in self.seconds.items())


def database_sessions(url: str, database: str) -> set[int]:
    """Server pids of the sessions connected to ``database`` (this query's own session excluded)."""

    async def read() -> set[int]:
        connection = await asyncpg.connect(url, timeout=30)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
            return {int(row["pid"]) for row in rows}
        finally:
            await connection.close()

    result: set[int] = _run(read())
    return result
