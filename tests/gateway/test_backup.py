"""``backup``, ``restore`` and ``verify``: a consistent copy of a live SQLite gateway holds every event acknowledged
before it began; a restore goes only onto an empty place; ``verify`` finds a body, an audit entry or a credit file
that does not hold (both backends); PostgreSQL's backup is ``pg_dump``'s, and the commands say so."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.factories import event, person
from tests.gateway.conftest import TEST_MASTER_KEY, is_sqlite
from xinyong.webhooks import SigningSecret, signature_headers
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import sqlite_path_from_url
from xinyong_gateway.web.app import create_app


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)

    async def run(url: str, *argv: str) -> tuple[int, Any, str]:
        capsys.readouterr()
        status = await asyncio.to_thread(cli_main, ["--db", url, "--json", *argv])
        captured = capsys.readouterr()
        lines = [line for line in captured.out.splitlines() if line.startswith(("{", "["))]
        return status, json.loads(lines[-1]) if lines else None, captured.err

    return run


async def execute(url: str, sql: str) -> None:
    """Change the database behind the gateway's back (tampering, for the checks to find)."""
    if is_sqlite(url):
        with contextlib.closing(sqlite3.connect(sqlite_path_from_url(url), isolation_level=None)) as conn:
            conn.execute(sql)
        return
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def test_a_backup_taken_under_load_holds_every_event_acknowledged_before_it_began(
    tmp_path: Path, cli: Any, aiohttp_client: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    assert (await cli(url, "migrate"))[0] == 0
    _, source, _ = await cli(url, "sources", "add", "--kind", "marketplace", "--name", "商城")
    secret = SigningSecret.parse(source["secret"])
    client = await aiohttp_client(create_app(GatewaySettings(database_url=url, master_key=TEST_MASTER_KEY)))
    rng = random.Random(31)
    people = [person(rng) for _ in range(30)]
    acknowledged: list[str] = []
    stop, under_way = asyncio.Event(), asyncio.Event()

    async def sender(lane: int) -> None:
        n = 0
        while not stop.is_set():
            webhook_id, n = f"msg_{lane}_{n}", n + 1
            raw = json.dumps(event("complaint.filed", rng, merchant=rng.choice(people)), ensure_ascii=False).encode()
            headers = signature_headers(secret, webhook_id, raw, timestamp=int(time.time()))
            headers["Content-Type"] = "application/json"
            response = await client.post(f"/v1/webhooks/{source['source_id']}", data=raw, headers=headers)
            assert response.status == 202, await response.text()
            acknowledged.append(webhook_id)
            if len(acknowledged) >= 200:
                under_way.set()

    senders = [asyncio.create_task(sender(lane)) for lane in range(4)]
    await under_way.wait()
    before = set(acknowledged)  # every one of these was answered 202 before the backup command started
    status, backed_up, err = await cli(url, "backup", str(tmp_path / "copy.db"))
    during = len(acknowledged)
    stop.set()
    await asyncio.gather(*senders)
    assert status == 0, err
    assert backed_up["events_at_start"] >= len(before)
    assert during > len(before)  # the gateway kept acknowledging events while the copy was taken

    restored = f"sqlite:///{tmp_path / 'restored' / 'gateway.db'}"
    status, _, err = await cli(restored, "restore", str(tmp_path / "copy.db"))
    assert status == 0, err
    with contextlib.closing(sqlite3.connect(sqlite_path_from_url(restored))) as conn:
        stored = {row[0] for row in conn.execute("SELECT webhook_id FROM inbox")}
    assert before <= stored
    assert (await cli(restored, "project", "--once"))[0] == 0
    status, verified, err = await cli(restored, "verify")
    assert status == 0, verified
    assert verified["bodies"] == len(stored) and verified["audit_intact"] and verified["files_compared"]
    _, entries, _ = await cli(restored, "audit", "list", "--action", "database.restore")
    assert [entry["details"]["from"] for entry in entries] == [str(tmp_path / "copy.db")]


async def test_backup_and_restore_refuse_what_they_cannot_do_safely(tmp_path: Path, cli: Any) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'gateway.db'}"
    assert (await cli(url, "migrate"))[0] == 0
    (tmp_path / "taken.db").write_bytes(b"")
    status, _, err = await cli(url, "backup", str(tmp_path / "taken.db"))
    assert status == 2 and "exists" in err
    status, _, err = await cli(url, "backup", str(tmp_path / "nowhere" / "x.db"))
    assert status == 2 and "not a directory" in err
    status, _, err = await cli(url, "backup", str(tmp_path / "x.db"), "--with-key-file")
    assert status == 2 and "XINYONG_MASTER_KEY" in err  # the key comes from the environment here
    assert (await cli(url, "backup", str(tmp_path / "good.db")))[0] == 0
    status, _, err = await cli(url, "restore", str(tmp_path / "good.db"))
    assert status == 2 and "exists" in err  # never over a database
    (tmp_path / "junk.db").write_bytes(b"not a database at all, not even close to one.....")
    status, _, err = await cli(f"sqlite:///{tmp_path / 'fresh.db'}", "restore", str(tmp_path / "junk.db"))
    assert status == 1 and "not a SQLite database" in err
    assert not (tmp_path / "fresh.db").exists()


def test_a_key_file_is_copied_only_into_a_private_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'gateway.db'}"
    monkeypatch.delenv("XINYONG_MASTER_KEY", raising=False)
    assert cli_main(["--db", url, "migrate"]) == 0
    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.mkdir(mode=0o755)
    private.mkdir(mode=0o700)
    shared.chmod(0o755)
    assert cli_main(["--db", url, "backup", str(shared / "b.db"), "--with-key-file"]) == 2
    assert "other users" in capsys.readouterr().err and not (shared / "b.db").exists()
    assert cli_main(["--db", url, "backup", str(private / "b.db"), "--with-key-file"]) == 0
    assert (private / "b.db.key").stat().st_mode & 0o777 == 0o600
    assert (private / "b.db.key").read_bytes() == (tmp_path / "db" / "gateway.db.key").read_bytes()
    restored = f"sqlite:///{tmp_path / 'again' / 'gateway.db'}"
    assert cli_main(["--db", restored, "restore", str(private / "b.db")]) == 0  # with its key file
    assert cli_main(["--db", restored, "audit", "verify"]) == 0


async def test_postgresql_backups_are_pg_dumps(postgres_url: str, cli: Any) -> None:
    assert (await cli(postgres_url, "migrate"))[0] == 0
    status, _, err = await cli(postgres_url, "backup", "/tmp/never.db")  # noqa: S108 -- refused before any file
    assert status == 2 and "pg_dump" in err
    status, _, err = await cli(postgres_url, "restore", "/tmp/never.db")  # noqa: S108
    assert status == 2 and "pg_restore" in err


async def test_verify_finds_what_does_not_hold(database_url: str, cli: Any, tmp_path: Path) -> None:
    assert (await cli(database_url, "migrate"))[0] == 0
    _, source, _ = await cli(database_url, "sources", "add", "--kind", "marketplace", "--name", "商城")
    rng = random.Random(41)
    lines = "".join(json.dumps(event("listing.violation", rng, merchant=person(rng))) + "\n" for _ in range(20))
    events = tmp_path / "events.ndjson"
    events.write_text(lines, encoding="utf-8")
    assert (await cli(database_url, "import", str(events), "--source", source["source_id"]))[0] == 0
    status, verified, _ = await cli(database_url, "verify")
    assert status == 2 and verified["files_compared"] is False  # the projector has not run yet
    assert (await cli(database_url, "project", "--once"))[0] == 0
    status, verified, _ = await cli(database_url, "verify")
    assert (status, verified["bodies"], verified["files"]) == (0, 20, 20)

    await execute(database_url, "UPDATE subjects SET state = replace(state, '\"black\"', '\"watch\"')")
    status, verified, _ = await cli(database_url, "verify")
    assert (status, verified["differing_files"]) == (1, 20)
    blob = "x'00'" if is_sqlite(database_url) else "'\\x00'::bytea"
    tamper = f"UPDATE inbox SET body = {blob} WHERE seq = (SELECT min(seq) FROM inbox)"  # noqa: S608 -- constants
    await execute(database_url, tamper)
    status, verified, _ = await cli(database_url, "verify")
    assert (status, verified["broken_bodies"]) == (1, 1)


async def test_a_restore_under_the_wrong_key_leaves_no_database_behind(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'gateway.db'}"
    assert (await cli(url, "migrate"))[0] == 0
    assert (await cli(url, "backup", str(tmp_path / "copy.db")))[0] == 0
    monkeypatch.setenv("XINYONG_MASTER_KEY", base64.b64encode(bytes(32)).decode())
    target = tmp_path / "restored" / "gateway.db"
    args = ["--db", f"sqlite:///{target}", "restore", str(tmp_path / "copy.db")]
    status = await asyncio.to_thread(cli_main, args)
    assert status == 1
    assert not target.exists() and target.with_name("gateway.db.wrong-key").exists()
