"""``xinyong-gateway`` as an operator uses it: in-process through ``main(argv)``, and as the installed script.

Every test runs on a database in its own tmp_path with no ``XINYONG_*`` variable from outside, so the master key
comes from the key file beside the database unless a test sets ``XINYONG_MASTER_KEY`` itself. The commands are the
same on PostgreSQL (the store tests cover both backends); the tests at the end show that the command line reaches
a PostgreSQL database, and that it needs ``XINYONG_MASTER_KEY`` there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import event, make_uscc, with_wrong_check
from tests.gateway.conftest import (
    GATEWAY_SCRIPT,
    TEST_MASTER_KEY,
    Gateway,
    Source,
    database_rows,
    free_port,
    gateway_env,
    migration_names,
)
from xinyong.webhooks import SigningKey, SigningSecret
from xinyong_gateway.cli import build_parser, main
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.web.app import create_app

MIGRATIONS = migration_names("sqlite")
LATEST = int(MIGRATIONS[-1].split("_", 1)[0])
"""The schema version after every migration: the last one's number (numbers may have gaps between branches)."""


@pytest.fixture(autouse=True)
def no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("XINYONG_"):
            monkeypatch.delenv(name)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


@pytest.fixture
def url(db: Path) -> str:
    return f"sqlite:///{db}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (exit status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def ok_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    return json.loads(out)


def script(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``xinyong-gateway`` script, as a subprocess."""
    return subprocess.run(
        [str(GATEWAY_SCRIPT), *argv],
        capture_output=True,
        text=True,
        env=env or gateway_env(),
        timeout=60,
        check=False,
    )


def assert_one_sentence_error(err: str) -> str:
    assert "Traceback" not in err
    message = err.strip()
    assert "\n" not in message, err
    assert message.startswith("xinyong-gateway: error: ")
    return message


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def migrated(capsys: pytest.CaptureFixture[str], url: str) -> str:
    ok_json(capsys, "--db", url, "migrate")
    return url


def add_marketplace(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> Any:
    return ok_json(capsys, "--db", url, "sources", "add", "--kind", "marketplace", "--name", "云购商城", *extra)


# -- migrate and the key file --------------------------------------------------------------------------------


def test_migrate_twice_prints_json_and_the_second_run_applies_nothing(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    first = ok_json(capsys, "--db", url, "migrate")
    second = ok_json(capsys, "--db", url, "migrate")
    assert first == {"applied": MIGRATIONS, "schema_version": LATEST, "database": url}
    assert second == {"applied": [], "schema_version": LATEST, "database": url}


def test_first_use_creates_a_key_file_beside_the_database_readable_only_by_its_owner(
    capsys: pytest.CaptureFixture[str], url: str, db: Path
) -> None:
    key_file = db.with_name("x.db.key")
    assert not key_file.exists()
    ok_json(capsys, "--db", url, "migrate")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    MasterKey.from_text(key_file.read_text())
    content = key_file.read_text()
    ok_json(capsys, "--db", url, "migrate")
    assert key_file.read_text() == content


def test_installed_script_migrates_and_prints_json_when_piped(db: Path, url: str) -> None:
    done = script("--db", url, "migrate")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"applied": MIGRATIONS, "schema_version": LATEST, "database": url}
    assert stat.S_IMODE(db.with_name("x.db.key").stat().st_mode) == 0o600


def test_master_key_command_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    printed = ok_json(capsys, "master-key")
    MasterKey.from_text(printed["master_key"])


# -- sources add ---------------------------------------------------------------------------------------------


def test_sources_add_prints_the_source_with_a_new_secret(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    added = add_marketplace(capsys, migrated)
    assert added["source_id"].startswith("src_")
    assert (added["kind"], added["name"], added["status"]) == ("marketplace", "云购商城", "active")
    assert added["secret"].startswith("whsec_")
    SigningSecret.parse(added["secret"])
    assert [key["scheme"] for key in added["keys"]] == ["v1"]


def test_sources_add_with_a_public_key_prints_no_secret(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    public_key = str(SigningKey.generate().public_key)
    added = ok_json(
        capsys,
        "--db",
        migrated,
        "sources",
        "add",
        "--kind",
        "courier",
        "--name",
        "顺捷快递",
        "--public-key",
        public_key,
    )
    assert "secret" not in added
    assert added["public_key"] == public_key
    assert [key["scheme"] for key in added["keys"]] == ["v1a"]


def test_sources_add_stores_a_valid_uscc_normalised(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    uscc = make_uscc()
    added = add_marketplace(capsys, migrated, "--uscc", " " + uscc.lower() + " ")
    assert added["uscc"] == uscc


def test_sources_add_with_an_invalid_uscc_fails_with_one_sentence(
    capsys: pytest.CaptureFixture[str], migrated: str
) -> None:
    status, out, err = run(
        capsys,
        "--db",
        migrated,
        "sources",
        "add",
        "--kind",
        "marketplace",
        "--name",
        "N",
        "--uscc",
        with_wrong_check(make_uscc()),
    )
    assert status != 0
    assert out == ""
    assert "USCC" in assert_one_sentence_error(err)
    assert ok_json(capsys, "--db", migrated, "sources", "list") == []


def test_sources_add_with_an_unknown_kind_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str], migrated: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--db", migrated, "sources", "add", "--kind", "bank", "--name", "N"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


async def test_secret_printed_by_sources_add_signs_webhooks_the_gateway_accepts(
    capsys: pytest.CaptureFixture[str], url: str, db: Path, aiohttp_client: Any
) -> None:
    """The CLI and the gateway agree on the key file and on the sealed secret."""
    assert await asyncio.to_thread(main, ["--db", url, "migrate"]) == 0
    assert await asyncio.to_thread(main, ["--db", url, "sources", "add", "--kind", "regulator", "--name", "R"]) == 0
    added = json.loads(capsys.readouterr().out.splitlines()[-1])
    settings = GatewaySettings(database_url=url, source_refresh_interval=0.2)
    gateway = Gateway(await aiohttp_client(create_app(settings)), settings, db.parent)
    source = Source(added["source_id"], SigningSecret.parse(added["secret"]), "regulator")
    response = await gateway.post(source, event("penalty.imposed"), webhook_id="msg_cli")
    assert response.status == 202, await response.text()


# -- sources list, disable, rotate ---------------------------------------------------------------------------


def test_sources_list_prints_every_source_with_its_keys_and_their_expiry(
    capsys: pytest.CaptureFixture[str], migrated: str
) -> None:
    first = add_marketplace(capsys, migrated)
    second = add_marketplace(capsys, migrated, "--rate", "5")
    listed = ok_json(capsys, "--db", migrated, "sources", "list")
    assert [item["source_id"] for item in listed] == [first["source_id"], second["source_id"]]
    assert listed[1]["rate_limit"] == 5.0
    for item in listed:
        assert "secret" not in item
        (key,) = item["keys"]
        assert set(key) == {"scheme", "fingerprint", "created_at", "expires_at"}
        assert key["expires_at"] is None


def test_sources_list_of_an_empty_database_is_an_empty_array(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    assert ok_json(capsys, "--db", migrated, "sources", "list") == []


def test_sources_disable_marks_the_source_disabled(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    source_id = add_marketplace(capsys, migrated)["source_id"]
    disabled = ok_json(capsys, "--db", migrated, "sources", "disable", source_id)
    assert (disabled["source_id"], disabled["status"]) == (source_id, "disabled")
    assert disabled["disabled_at"] is not None
    (listed,) = ok_json(capsys, "--db", migrated, "sources", "list")
    assert listed["status"] == "disabled"


def test_sources_rotate_prints_a_new_secret_and_the_old_key_expires_in_24_hours(
    capsys: pytest.CaptureFixture[str], migrated: str
) -> None:
    added = add_marketplace(capsys, migrated)
    rotated = ok_json(capsys, "--db", migrated, "sources", "rotate", added["source_id"])
    now = datetime.now(UTC)
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != added["secret"]
    old, new = rotated["keys"]
    assert now + timedelta(hours=23) < parse_time(old["expires_at"]) < now + timedelta(hours=25)
    assert new["expires_at"] is None
    assert rotated["previous_keys_expire_at"] == old["expires_at"]


def test_sources_rotate_with_a_grace_of_90_minutes(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    source_id = add_marketplace(capsys, migrated)["source_id"]
    rotated = ok_json(capsys, "--db", migrated, "sources", "rotate", source_id, "--grace", "90m")
    now = datetime.now(UTC)
    old_expiry = parse_time(rotated["keys"][0]["expires_at"])
    assert now + timedelta(minutes=89) < old_expiry < now + timedelta(minutes=91)


def test_sources_rotate_to_a_public_key_prints_no_secret(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    source_id = add_marketplace(capsys, migrated)["source_id"]
    public_key = str(SigningKey.generate().public_key)
    rotated = ok_json(capsys, "--db", migrated, "sources", "rotate", source_id, "--public-key", public_key)
    assert "secret" not in rotated
    assert [key["scheme"] for key in rotated["keys"]] == ["v1", "v1a"]


def test_sources_rotate_with_an_unreadable_grace_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str], migrated: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--db", migrated, "sources", "rotate", "src_x", "--grace", "soon"])
    assert exited.value.code == 2
    assert "not a duration" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["disable", "rotate"])
def test_changing_an_unknown_source_fails_with_one_sentence(
    capsys: pytest.CaptureFixture[str], migrated: str, action: str
) -> None:
    status, out, err = run(capsys, "--db", migrated, "sources", action, "src_doesnotexist")
    assert status == 1
    assert out == ""
    assert "src_doesnotexist" in assert_one_sentence_error(err)


def test_installed_script_reports_an_unknown_source_without_a_traceback(migrated: str) -> None:
    done = script("--db", migrated, "sources", "disable", "src_doesnotexist")
    assert done.returncode == 1
    assert done.stdout == ""
    assert_one_sentence_error(done.stderr)


# -- the master key ------------------------------------------------------------------------------------------


def test_database_whose_key_file_is_gone_is_refused_naming_the_key_file(
    capsys: pytest.CaptureFixture[str], migrated: str, db: Path
) -> None:
    db.with_name("x.db.key").unlink()
    status, out, err = run(capsys, "--db", migrated, "sources", "list")
    assert (status, out) == (1, "")
    message = assert_one_sentence_error(err)
    assert "x.db.key" in message
    assert not db.with_name("x.db.key").exists(), "a new key must never be made for an existing database"


def test_wrong_master_key_in_the_environment_is_refused(
    capsys: pytest.CaptureFixture[str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XINYONG_MASTER_KEY", MasterKey.generate_text())
    status, out, err = run(capsys, "--db", migrated, "sources", "list")
    assert (status, out) == (1, "")
    assert "does not match" in assert_one_sentence_error(err)


def test_malformed_master_key_in_the_environment_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XINYONG_MASTER_KEY", "not!a!key")
    status, _, err = run(capsys, "--db", migrated, "sources", "list")
    assert status == 1
    assert "not!a!key" not in assert_one_sentence_error(err)


# -- serve ---------------------------------------------------------------------------------------------------


def test_serve_with_two_workers_on_sqlite_is_refused(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    status, _, err = run(capsys, "--db", migrated, "serve", "--workers", "2")
    assert status != 0
    message = assert_one_sentence_error(err)
    assert "--workers" in message
    assert "PostgreSQL" in message


def test_serve_on_an_unmigrated_database_exits_telling_to_run_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    done = script("--db", url, "serve", "--port", str(free_port()))
    assert done.returncode != 0
    assert "xinyong-gateway migrate" in assert_one_sentence_error(done.stderr)


# -- PostgreSQL ----------------------------------------------------------------------------------------------


def test_migrate_and_sources_on_postgresql_with_the_master_key_from_the_environment(
    capsys: pytest.CaptureFixture[str], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    expected = migration_names("postgresql")
    first = ok_json(capsys, "--db", postgres_url, "migrate")
    assert (first["applied"], first["schema_version"]) == (expected, int(expected[-1].split("_", 1)[0]))
    assert ok_json(capsys, "--db", postgres_url, "migrate")["applied"] == []
    added = add_marketplace(capsys, postgres_url)
    SigningSecret.parse(added["secret"])
    listed = ok_json(capsys, "--db", postgres_url, "sources", "list")
    assert [(item["source_id"], item["name"], item["status"]) for item in listed] == [
        (added["source_id"], "云购商城", "active")
    ]


async def test_postgresql_without_xinyong_master_key_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], postgres_url: str
) -> None:
    """No key file stands in on PostgreSQL: the command says what to set, and the schema stays empty."""
    status, out, err = await asyncio.to_thread(run, capsys, "--db", postgres_url, "migrate")
    assert (status, out) == (1, "")
    assert "XINYONG_MASTER_KEY" in assert_one_sentence_error(err)
    assert await database_rows(postgres_url) == {}


# -- help, --version, options after the command ----------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of the parser tree, the top level (``()``) and each group included, as argv prefixes."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _subcommands(command: tuple[str, ...]) -> dict[str, str]:
    """The commands a group (or the top level) offers, with their one-line help."""
    parser = build_parser()
    for name in command:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = action.choices[name]
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {choice.dest: choice.help or "" for action in actions for choice in action._get_subactions()}


COMMANDS = list(_commands(build_parser()))
GROUPS = [command for command in COMMANDS if _subcommands(command)]


def test_the_walk_of_the_parser_tree_finds_every_command() -> None:
    assert {" ".join(command) for command in COMMANDS} == {
        *("", "migrate", "serve", "project", "import", "master-key"),
        *("sources", "sources add", "sources list", "sources disable", "sources rotate"),
        *("subjects", "subjects show", "policy", "policy check", "policy diff", "policy apply"),
        *("keys", "keys add", "keys list", "keys revoke"),
        *("objections", "objections file", "objections list", "objections show", "objections decide"),
        *("repairs", "repairs apply", "repairs list", "repairs show", "repairs decide"),
        *("audit", "audit list", "audit verify"),
    }
    assert {" ".join(group) for group in GROUPS} == {
        *("", "sources", "subjects", "policy", "keys"),
        *("objections", "repairs", "audit"),
    }


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: "-".join(command) or "top-level")
def test_help_of_every_command_exits_0_and_shows_an_example(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out.lower(), out
    examples = out.lower().split("example", 1)[1]
    assert " ".join(("xinyong-gateway", *command)) in " ".join(examples.split()), out


@pytest.mark.parametrize("group", GROUPS, ids=lambda command: "-".join(command) or "top-level")
def test_every_help_lists_each_of_its_commands_on_one_line_with_its_help(
    capsys: pytest.CaptureFixture[str], group: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit):
        main([*group, "--help"])
    lines = capsys.readouterr().out.splitlines()
    for name, help_text in _subcommands(group).items():
        assert help_text, name
        assert any(line.split() == [name, *help_text.split()] for line in lines), (name, lines)


@pytest.mark.parametrize("group", GROUPS, ids=lambda command: "-".join(command) or "top-level")
def test_a_group_named_without_its_command_prints_the_help_that_lists_them(
    capsys: pytest.CaptureFixture[str], group: tuple[str, ...]
) -> None:
    assert main(list(group)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"usage: {' '.join(('xinyong-gateway', *group))} ")
    assert all(name in err for name in _subcommands(group))


@pytest.mark.parametrize("script", [GATEWAY_SCRIPT, GATEWAY_SCRIPT.with_name("xinyong")], ids=lambda p: p.name)
def test_both_scripts_print_their_version(script: Path) -> None:
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{script.name} 0.1.0\n", "")


def test_the_global_options_may_follow_the_command(capsys: pytest.CaptureFixture[str], migrated: str) -> None:
    add_marketplace(capsys, migrated)
    status, out, _ = run(capsys, "sources", "list", "--db", migrated, "--json")
    assert status == 0 and len(json.loads(out)) == 1
    status, out, _ = run(capsys, "--db", "sqlite:///elsewhere.db", "keys", "list", "--db", migrated, "--json")
    assert (status, json.loads(out)) == (0, [])  # given after the command, it wins


def test_counts_are_written_in_the_singular_and_the_plural(
    capsys: pytest.CaptureFixture[str], migrated: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source_id = add_marketplace(capsys, migrated)["source_id"]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # the human-readable output of a terminal
    events = tmp_path / "one.ndjson"
    events.write_text(json.dumps(event("complaint.filed")) + "\n")
    assert run(capsys, "--db", migrated, "import", str(events), "--source", source_id)[0] == 0
    status, out, _ = run(capsys, "--db", migrated, "project", "--once")
    assert status == 0 and out.startswith("Applied 1 event; ")
    events.write_text("".join(json.dumps(event("complaint.filed")) + "\n" for _ in range(2)))
    assert run(capsys, "--db", migrated, "import", str(events), "--source", source_id)[0] == 0
    status, out, _ = run(capsys, "--db", migrated, "project", "--once")
    assert status == 0 and out.startswith("Applied 2 events; ")
