"""The audit log as operators meet it: every operator command records one entry (who, what, to what; never a secret,
a resident id or a person's name), a reveal is recorded before anything is shown, and ``audit list`` and ``audit
verify`` read it, on each backend (the commands in-process on the test gateway's database), and as the installed
script."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import (
    DEFAULT_POLICY_TEXT,
    GATEWAY_SCRIPT,
    TEST_MASTER_KEY,
    Gateway,
    database_rows,
    gateway_env,
    inbox_refuses_inserts,
    is_sqlite,
)
from xinyong_gateway.cli import main
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.store import sqlite_path_from_url

RUN_PROJECTOR = False
"""The gateway without its built-in projector: the reveal test projects itself."""

PERSON = "王小明"


@pytest.fixture(autouse=True)
def operator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read only the master key from the environment, and the OS user is ``osuser``."""
    for name in list(os.environ):
        if name.startswith("XINYONG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    monkeypatch.setenv("LOGNAME", "osuser")


async def run(capsys: pytest.CaptureFixture[str], gateway: Gateway, *argv: str) -> tuple[int, str, str]:
    """``xinyong-gateway --db URL ARGV`` in this process, beside the running gateway: (status, stdout, stderr)."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["--db", gateway.settings.database_url, *argv])
    out, err = capsys.readouterr()
    return status, out, err


async def ok(capsys: pytest.CaptureFixture[str], gateway: Gateway, *argv: str) -> Any:
    status, out, err = await run(capsys, gateway, "--json", *argv)
    assert status == 0, err
    return json.loads(out)


async def entries(capsys: pytest.CaptureFixture[str], gateway: Gateway, *options: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = await ok(capsys, gateway, "audit", "list", "--limit", "1000", *options)
    return listed


async def revealable_person(gateway: Gateway) -> str:
    """A person's credit file (a RIC, a name), projected; returns the RIC."""
    market = await gateway.add_source("marketplace")
    ric = make_ric()
    body = event("complaint.resolved", merchant={"id_type": "ric", "id": ric, "name": PERSON}, outcome="upheld")
    assert (await gateway.post(market, body)).status == 202
    await Projector(gateway.store, gateway.master_key, default_policy()).catch_up()
    return ric


async def audit_rows(database_url: str) -> list[str]:
    rows = await database_rows(database_url)
    return rows["audit_log"] + rows["audit_head"]


# -- what each command records -----------------------------------------------------------------------------------


async def test_each_operator_command_records_one_entry_with_its_actor_action_and_target(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    ric = await revealable_person(gateway)
    source = await ok(
        capsys, gateway, "--actor", "alice", "sources", "add", "--kind", "marketplace", "--name", "云购商城"
    )
    source_id = source["source_id"]
    rotated = await ok(capsys, gateway, "sources", "rotate", source_id, "--grace", "1h")
    key = await ok(capsys, gateway, "keys", "add", "--name", "云购 onboarding", "--scopes", "screen", "--rate", "5")
    await ok(capsys, gateway, "keys", "revoke", key["key_id"])
    policy = gateway.folder / "policy.toml"
    policy.write_text(DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', 'version = "audit-1"'), encoding="utf-8")
    applied = await ok(capsys, gateway, "policy", "apply", str(policy))
    lines = gateway.folder / "history.ndjson"
    lines.write_text(json.dumps(event("complaint.filed"), ensure_ascii=False) + "\n", encoding="utf-8")
    await ok(capsys, gateway, "import", str(lines), "--source", source_id)
    await ok(capsys, gateway, "sources", "disable", source_id)
    revealed = await ok(capsys, gateway, "--actor", "regulator 李", "subjects", "show", "ric", ric, "--reveal")
    assert revealed["subject"]["id"] == ric  # the reveal happened

    logged = await entries(capsys, gateway)
    assert [(e["entry_id"], e["actor"], e["action"], e["target"]) for e in logged] == [
        (1, "alice", "sources.add", source_id),
        (2, "osuser", "sources.rotate", source_id),
        (3, "osuser", "keys.add", key["key_id"]),
        (4, "osuser", "keys.revoke", key["key_id"]),
        (5, "osuser", "policy.apply", "audit-1"),
        (6, "osuser", "import", source_id),
        (7, "osuser", "sources.disable", source_id),
        (8, "regulator 李", "subjects.reveal", f"ric {ric[:6]}********{ric[-4:]}"),
    ]
    details = [e["details"] for e in logged]
    new_key = rotated["keys"][-1]
    assert details[0] == {
        "kind": "marketplace", "name": "云购商城", "uscc": None, "rate_limit": None,
        "key_scheme": "v1", "key_fingerprint": source["keys"][0]["fingerprint"],
    }  # fmt: skip
    assert details[1]["key_fingerprint"] == new_key["fingerprint"]
    assert details[1]["previous_keys_expire_at"] == rotated["previous_keys_expire_at"]
    assert details[2] == {"name": "云购 onboarding", "scopes": ["screen"], "sources": [], "rate_limit": 5.0}
    assert details[3] == details[6] == {}
    assert details[4] == {
        "previous_version": None,
        "text_sha256": hashlib.sha256(policy.read_bytes()).hexdigest(),
        "events": applied["events"],
        "subjects_changed": applied["subjects_changed"],
    }
    assert details[5] == {
        "file": "history.ndjson",
        "outcome": "completed",
        "accepted": 1,
        "duplicate": 0,
        "rejected": 0,
    }
    assert details[7] == {"subject_key": gateway.master_key.subject_key("ric", ric)}
    assert all(e["at"].endswith("Z") for e in logged)

    stored = await audit_rows(gateway.settings.database_url)
    secrets = [source["secret"], rotated["secret"], key["api_key"], key["lookup_secret"]]
    for needle in [ric, PERSON, *secrets]:
        assert not [row for row in stored if needle in row], needle
    verified = await ok(capsys, gateway, "audit", "verify")
    assert verified == {
        "intact": True, "entries": 8, "head": logged[-1]["hash"], "head_entry": 8, "broken_at": None, "problem": None,
    }  # fmt: skip


async def test_showing_a_subject_without_reveal_and_failed_commands_record_nothing(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    ric = await revealable_person(gateway)
    await ok(capsys, gateway, "subjects", "show", "ric", ric)
    assert (await run(capsys, gateway, "subjects", "show", "uscc", make_uscc(), "--reveal"))[0] == 2  # no such file
    assert (await run(capsys, gateway, "keys", "revoke", "key_unknown"))[0] == 1
    assert (await run(capsys, gateway, "sources", "disable", "src_unknown"))[0] == 1
    assert await ok(capsys, gateway, "keys", "list") == []
    assert await entries(capsys, gateway) == []


@contextlib.asynccontextmanager
async def audit_log_refuses_inserts(database_url: str) -> Any:
    """Make every insert into the audit log fail (a database that cannot record), from another connection."""
    if is_sqlite(database_url):
        with contextlib.closing(sqlite3.connect(sqlite_path_from_url(database_url), isolation_level=None)) as conn:
            conn.execute(
                "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk is full');"
                " END"
            )
            yield
        return
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'disk is full' USING ERRCODE = 'disk_full'; END $$;"
            " CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log"
            " FOR EACH STATEMENT EXECUTE FUNCTION test_refuse_audit()"
        )
        yield
    finally:
        await connection.close()


async def test_a_reveal_the_audit_log_cannot_record_shows_nothing(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    ric = await revealable_person(gateway)
    async with audit_log_refuses_inserts(gateway.settings.database_url):
        status, out, err = await run(capsys, gateway, "--json", "subjects", "show", "ric", ric, "--reveal")
    assert (status, out) == (1, "")
    assert err.startswith("xinyong-gateway: error: Nothing was revealed: the audit log could not record the request")
    assert ric not in err and PERSON not in err


async def test_an_action_the_audit_log_cannot_record_says_it_was_done(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await ok(capsys, gateway, "keys", "add", "--name", "k", "--scopes", "screen")
    async with audit_log_refuses_inserts(gateway.settings.database_url):
        status, _, err = await run(capsys, gateway, "keys", "revoke", key["key_id"])
    assert status == 1
    assert err.startswith(
        f"xinyong-gateway: error: The keys.revoke of {key['key_id']} was done, but the audit log could not record it"
    )
    assert [k["status"] for k in await ok(capsys, gateway, "keys", "list")] == ["revoked"]


async def test_an_import_that_stops_part_way_is_recorded_with_what_it_settled(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await ok(capsys, gateway, "sources", "add", "--kind", "marketplace", "--name", "m")
    lines = gateway.folder / "history.ndjson"
    lines.write_text(json.dumps(event("complaint.filed"), ensure_ascii=False) + "\n", encoding="utf-8")
    async with inbox_refuses_inserts(gateway.settings.database_url):
        status, _, err = await run(capsys, gateway, "import", str(lines), "--source", source["source_id"])
    assert status == 2 and "The import stopped" in err
    last = (await entries(capsys, gateway))[-1]
    assert (last["action"], last["target"]) == ("import", source["source_id"])
    assert last["details"] == {
        "file": "history.ndjson",
        "outcome": "stopped",
        "accepted": 0,
        "duplicate": 0,
        "rejected": 0,
    }


async def test_the_actor_is_the_flag_else_the_environment_else_the_os_user(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await ok(capsys, gateway, "keys", "add", "--name", "a", "--scopes", "screen")
    monkeypatch.setenv("XINYONG_ACTOR", "  carol  ")
    await ok(capsys, gateway, "keys", "add", "--name", "b", "--scopes", "screen")
    await ok(capsys, gateway, "--actor", "dave", "keys", "add", "--name", "c", "--scopes", "screen")
    assert [e["actor"] for e in await entries(capsys, gateway)] == ["osuser", "carol", "dave"]


@pytest.mark.parametrize("actor", ["", "   ", "eve\nkeys.revoke", "x" * 129])
async def test_an_unusable_actor_is_refused_before_anything_is_done(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], actor: str
) -> None:
    status, _, err = await run(capsys, gateway, "--actor", actor, "keys", "add", "--name", "k", "--scopes", "screen")
    assert status == 2 and "Invalid setting actor (XINYONG_ACTOR or --actor): " in err
    assert await ok(capsys, gateway, "keys", "list") == []


# -- audit list and audit verify ------------------------------------------------------------------------------------


async def test_audit_list_shows_the_latest_entries_oldest_first_filtered_by_action(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        key = await ok(capsys, gateway, "keys", "add", "--name", f"k{n}", "--scopes", "screen")
    await ok(capsys, gateway, "keys", "revoke", key["key_id"])
    assert [e["entry_id"] for e in await ok(capsys, gateway, "audit", "list", "--limit", "2")] == [3, 4]
    assert [e["entry_id"] for e in await entries(capsys, gateway, "--action", "keys.add")] == [1, 2, 3]
    assert await entries(capsys, gateway, "--action", "policy.apply") == []
    assert (await run(capsys, gateway, "audit", "list", "--limit", "0"))[0] == 2

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    status, out, _ = await run(capsys, gateway, "audit", "list", "--limit", "2")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 2
    first, second = (line.split() for line in lines)
    assert [first[0], *first[2:4], first[5]] == [
        "3",
        "osuser",
        "keys.add",
        '{"name":"k2","rate_limit":null,"scopes":["screen"],"sources":[]}',
    ]
    assert [second[0], *second[2:]] == ["4", "osuser", "keys.revoke", key["key_id"]]
    assert lines[0].index("keys.add") == lines[1].index("keys.revoke")  # columns line up


async def test_audit_verify_prints_one_sentence_on_a_terminal(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    status, out, _ = await run(capsys, gateway, "audit", "verify")
    assert (status, out) == (0, f"audit log intact: 0 entries, head {'0' * 64}\n")
    await ok(capsys, gateway, "keys", "add", "--name", "k", "--scopes", "screen")
    head = (await entries(capsys, gateway))[-1]["hash"]
    status, out, _ = await run(capsys, gateway, "audit", "verify", "--anchor", head)
    assert (status, out) == (0, f"audit log intact: 1 entries, head {head}\n")
    status, out, _ = await run(capsys, gateway, "audit", "verify", "--anchor", "0" * 63 + "1")
    assert status == 1
    assert out.startswith(f"audit log broken: the head noted earlier, {'0' * 63}1, is not in it")


# -- the installed script --------------------------------------------------------------------------------------------


def script(url: str, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY_SCRIPT), "--db", url, *argv],
        capture_output=True,
        text=True,
        env=gateway_env(**env),
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_audit_verify_exits_0_when_intact_and_1_naming_the_first_altered_entry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert script(url, "migrate").returncode == 0
    for name in ("a", "b", "c"):
        assert script(url, "keys", "add", "--name", name, "--scopes", "screen").returncode == 0
    intact = script(url, "audit", "verify")
    assert (intact.returncode, intact.stderr) == (0, "")
    document = json.loads(intact.stdout)  # migrate's first signing key, then the three API keys
    assert (document["intact"], document["entries"], document["head_entry"]) == (True, 4, 4)
    with contextlib.closing(sqlite3.connect(tmp_path / "x.db", isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("""UPDATE audit_log SET details = '{"name":"z","rate_limit":null,"scopes":["screen"]}'"""
                     " WHERE entry_id = 3")  # fmt: skip
    broken = script(url, "audit", "verify")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["broken_at"] == 3
    assert broken.stderr == (
        "xinyong-gateway: audit log broken at entry 3: its contents do not match its hash (altered, or written"
        " without the master key)\n"
    )
    listed = script(url, "audit", "list")
    names = [e["details"].get("name") for e in json.loads(listed.stdout)]
    assert listed.returncode == 0 and names == [None, "a", "z", "c"]


@pytest.mark.slow
def test_audit_commands_create_no_database_and_exit_2_when_they_cannot_verify(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    for command in (("audit", "verify"), ("audit", "list")):
        result = script(url, *command)
        assert result.returncode == 2
        assert result.stderr == f"xinyong-gateway: error: No database at {url}; run `xinyong-gateway migrate` first.\n"
    assert list(tmp_path.iterdir()) == []
    assert script(url, "migrate").returncode == 0
    wrong_key = script(url, "audit", "verify", XINYONG_MASTER_KEY="A" * 43 + "=")
    assert wrong_key.returncode == 2
    assert wrong_key.stderr.startswith("xinyong-gateway: error: The audit log could not be verified: The master key")
