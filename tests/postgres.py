"""The PostgreSQL server the suite's PostgreSQL half runs on, and the admin statements the fixtures issue.

The server is found in this order (``postgres_server`` in ``tests/conftest.py``): the URL in
``XINYONG_TEST_POSTGRES_URL``; else a throwaway cluster started with ``initdb``/``pg_ctl`` from the PATH in a
temporary folder, listening only on a unix socket in that folder, stopped at the end of the session; else the
PostgreSQL tests are skipped with that reason (and fail under ``CI=true``). Each test gets a fresh schema on
that server (``postgres_url``), so tests and xdist workers never see each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

URL_VARIABLE = "XINYONG_TEST_POSTGRES_URL"

CONFIGURED_URL = os.environ.get(URL_VARIABLE) or None
"""Read once at import, before any test empties the ``XINYONG_*`` environment for the code under test."""

NO_SERVER = f"PostgreSQL tests need {URL_VARIABLE} or initdb/pg_ctl on the PATH"

ADMIN_TIMEOUT = 60.0
"""Seconds an admin statement may wait (for a lock held by a store a test left open, say) before it fails."""


class ClusterUnavailableError(Exception):
    """A throwaway cluster cannot be started here; the message says why (the tests are skipped with it)."""


def with_search_path(server_url: str, schema: str) -> str:
    """``server_url`` with ``search_path=schema`` added to its query (asyncpg sends it as a server setting)."""
    separator = "&" if urlsplit(server_url).query else "?"
    return f"{server_url}{separator}search_path={schema}"


def execute(url: str, *statements: str) -> None:
    """Run ``statements`` on one new connection, from a thread of its own.

    Fixtures are synchronous and may run while a test's event loop exists (but is not running); a loop of its
    own in another thread leaves that loop alone."""

    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=ADMIN_TIMEOUT, command_timeout=ADMIN_TIMEOUT)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # handed to the calling thread, which raises it
            failure.append(exc)

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A new PostgreSQL cluster in a temporary folder, reachable only through a unix socket there; its URL.

    ``initdb`` refuses to run as root: then the cluster belongs to the ``postgres`` account and both programs run
    as that account (``runuser``)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise ClusterUnavailableError(NO_SERVER)
    as_owner: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if owner is None or runuser is None:
            raise ClusterUnavailableError(
                f"{NO_SERVER}; running as root, initdb needs a 'postgres' account and runuser to run as it"
                f" (or set {URL_VARIABLE})"
            )
        as_owner = [runuser, "-u", owner.pw_name, "--"]
    # Not under pytest's tmp_path: that folder is private to root, and the socket path must stay short.
    folder = Path(tempfile.mkdtemp(prefix="xinyong-pg-"))
    data = folder / "data"
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        _run([*as_owner, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"])
        # No TCP listener (no port to clash with), no fsync (a throwaway cluster need not survive a crash).
        options = f"-c listen_addresses='' -c unix_socket_directories='{folder}' -c fsync=off"
        log = folder / "server.log"
        _run([*as_owner, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], log=log)
        try:
            yield f"postgresql://postgres@/postgres?host={folder}"
        finally:
            _run([*as_owner, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(argv: list[str], *, log: Path | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        server_log = log.read_text(errors="replace") if log is not None and log.exists() else ""
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}{done.stderr}{server_log}")
