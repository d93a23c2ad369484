"""Crash without loss, on each backend: SIGKILLs of the gateway and of the projector under load lose no acknowledged
event, store none twice, and leave credit files equal to a clean replay of the log.

The run is ``bench/crash.py`` in a bounded form (``EVENTS`` signed events from 12 concurrent senders that retry what
was not acknowledged with the same webhook-id; ``KILLS`` SIGKILLs of ``serve`` with its projector inside, then as many
of a separate ``project`` process, each at a random moment and followed by a restart) on the test's own database: a
SQLite file, or a fresh PostgreSQL schema. The bench checks its run and reports figures; this test then looks at the
database itself with its own code: every acknowledged (source, webhook-id) is in the inbox exactly once, nothing else
is, and each subject's stored credit file is the one a single replay of the stored log gives.

A SIGKILL proves what a process crash can do, not a power loss (SECURITY.md, "Crash and power loss"). What makes a
commit survive a power loss is the store's durable commit; the SQLite half of that is held here: the connection that
commits runs in WAL mode with ``synchronous = FULL`` (the PostgreSQL half, ``synchronous_commit = on`` on every
connection, is ``test_store_postgresql_specific.py``'s).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.gateway.conftest import TEST_MASTER_KEY, run_bench_json
from xinyong_gateway.credit.engine import project
from xinyong_gateway.credit.inbox import read_logged
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import SqliteStore, open_store

pytestmark = pytest.mark.slow

EVENTS = 400
KILLS = 3


async def test_sigkills_under_load_lose_nothing_store_nothing_twice_and_project_as_a_replay(
    database_url: str, tmp_path: Path
) -> None:
    acks_path = tmp_path / "acks.jsonl"
    figures = await run_bench_json(
        "crash.py",
        "--db",
        database_url,
        "--in-place",
        "--events",
        str(EVENTS),
        "--kills",
        str(KILLS),
        "--concurrency",
        "12",
        "--seed",
        "31",
        "--acks",
        str(acks_path),
        "--scratch-dir",
        str(tmp_path),
    )
    assert figures["ok"], figures
    assert (figures["sent"], figures["acknowledged"], figures["lost"], figures["duplicated"]) == (EVENTS, EVENTS, 0, 0)
    assert figures["kills"] == {"gateway": KILLS, "projector": KILLS}
    assert figures["unanswered"] > 0, "no kill landed while requests were in flight"
    assert figures["resent"] == {"duplicate": EVENTS}

    acknowledged = [json.loads(line) for line in acks_path.read_text().splitlines()]
    assert len(acknowledged) == EVENTS
    master = MasterKey.from_text(TEST_MASTER_KEY)
    async with open_store(database_url) as store:
        rows, after = [], 0
        while batch := await store.read_inbox(after, 1000):
            rows += batch
            after = batch[-1].seq
        per_id = Counter((row.source_id, row.webhook_id) for row in rows)
        assert all(per_id[(ack["source_id"], ack["webhook_id"])] == 1 for ack in acknowledged)
        assert len(rows) == len(per_id) == EVENTS

        files = project(
            [read_logged(row, master) for row in rows],
            default_policy(),
            lambda subject: master.subject_key(subject.id_type, subject.id),
        )
        stored = await store.load_subjects(list(files))
        assert {key: row.state for key, row in stored.items()} == {
            key: credit_file.to_json() for key, credit_file in files.items()
        }


async def test_the_sqlite_connection_that_commits_runs_in_wal_mode_with_synchronous_full(tmp_path: Path) -> None:
    """``synchronous = FULL`` in WAL mode: every commit syncs the write-ahead log before it returns (2 = FULL)."""
    async with SqliteStore(f"sqlite:///{tmp_path / 'durable.db'}", create=True) as store:
        settings = await store._submit(
            lambda conn: (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
            )
        )
    assert settings == ("wal", 2)
