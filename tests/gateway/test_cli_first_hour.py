"""A new operator's first hour with ``xinyong-gateway``, as the installed script: mistakes are one sentence in their
terms (exit status non-zero, nothing on stdout, no traceback), and a command that only reads never creates a
database, a key file or a directory: only ``migrate`` does. ``serve`` binds its port and checks the database before
it starts anything, so a port in use leaves the database as it was, with no projector started on it."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.gateway.conftest import DEFAULT_POLICY_TEXT, GATEWAY_SCRIPT, free_port, gateway_env

READ_ONLY_COMMANDS = [
    ("sources", "list"),
    ("keys", "list"),
    ("subjects", "show", "uscc", "91330100MA2H9X4W2M"),
    ("policy", "diff", "POLICY"),
    ("policy", "apply", "POLICY"),
    ("project", "--once"),
    ("import", "EVENTS", "--source", "src_x"),
    ("serve", "--port", "PORT"),
]
"""Commands that must find a database, with the placeholders of :func:`argv` (each would have created the
database, its key file and ``var/`` before)."""


def failing_status(command: tuple[str, ...]) -> int:
    return 2 if command[0] == "import" else 1  # import: 2 when it could not run at all (1: some lines rejected)


def argv(command: tuple[str, ...], folder: Path) -> list[str]:
    """``command`` with its placeholders filled: a policy file, an events file (outside ``var/``), a free port."""
    policy = folder.parent / "policy.toml"
    policy.write_text(DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', 'version = "next-1"'))
    events = folder.parent / "events.ndjson"
    events.write_text("{}\n")
    fill = {"POLICY": str(policy), "EVENTS": str(events), "PORT": str(free_port())}
    return [fill.get(part, part) for part in command]


def gateway(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY_SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=gateway_env(**env),
        timeout=60,
        check=False,
    )


def one_sentence(done: subprocess.CompletedProcess[str], status: int) -> str:
    """The error sentence of a command that failed with ``status``: one line on stderr, nothing on stdout."""
    assert (done.returncode, done.stdout) == (status, ""), done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("xinyong-gateway: error: ")
    return done.stderr.removeprefix("xinyong-gateway: error: ").removesuffix("\n")


def snapshot(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every file under ``folder`` with its size and modification time, and every directory (None)."""
    found: dict[str, tuple[int, int] | None] = {}
    for path in sorted(folder.rglob("*")):
        info = path.stat()
        found[str(path.relative_to(folder))] = None if path.is_dir() else (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to run commands in (the inputs they need live beside it, not in it)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def migrated(workdir: Path) -> Path:
    """``workdir`` after ``xinyong-gateway migrate`` there: ./var/xinyong.db and its key file."""
    done = gateway("migrate", cwd=workdir)
    assert done.returncode == 0, done.stderr
    return workdir


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("var/xinyong.db", "sqlite:///var/xinyong.db"),
        ("/srv/xinyong.db", "sqlite:////srv/xinyong.db"),
        ("sqlite://var/xinyong.db", "sqlite:///var/xinyong.db"),
    ],
)
@pytest.mark.parametrize("from_environment", [False, True], ids=["flag", "environment"])
def test_a_database_path_that_is_not_a_url_says_which_url_was_meant_and_creates_nothing(
    workdir: Path, given: str, meant: str, from_environment: bool
) -> None:
    """Before: ``--db var/xinyong.db`` said the master key was missing."""
    if from_environment:
        done = gateway("sources", "list", cwd=workdir, XINYONG_DATABASE_URL=given)
    else:
        done = gateway("--db", given, "sources", "list", cwd=workdir)
    message = one_sentence(done, 2)
    assert f"write {meant} " in message and "master key" not in message
    assert message.startswith(f"{given} is not a")
    assert snapshot(workdir) == {}


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda command: "-".join(command[:2]))
def test_a_read_only_command_in_the_wrong_directory_says_there_is_no_database_and_creates_nothing(
    workdir: Path, command: tuple[str, ...]
) -> None:
    done = gateway(*argv(command, workdir), cwd=workdir)
    assert one_sentence(done, failing_status(command)) == (
        f"No database at var/xinyong.db in {workdir} — run `xinyong-gateway migrate` first (or check --db /"
        " XINYONG_DATABASE_URL)."
    )
    assert snapshot(workdir) == {}, "no database, no key file, no var/ directory"


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda command: "-".join(command[:2]))
def test_a_mistyped_database_url_creates_neither_the_file_nor_its_directory(
    workdir: Path, command: tuple[str, ...]
) -> None:
    typo = workdir / "vra" / "xinyong.db"
    done = gateway("--db", f"sqlite:///{typo}", *argv(command, workdir), cwd=workdir)
    assert one_sentence(done, failing_status(command)).startswith(
        f"No database at {typo} — run `xinyong-gateway migrate` first"
    )
    assert snapshot(workdir) == {}


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda command: "-".join(command[:2]))
def test_a_database_whose_key_file_is_gone_is_refused_and_no_new_key_is_made(
    migrated: Path, command: tuple[str, ...]
) -> None:
    """A new key could never open the sealed data already stored: the database is left as it was."""
    (migrated / "var" / "xinyong.db.key").unlink()
    before = snapshot(migrated)
    done = gateway(*argv(command, migrated), cwd=migrated)
    message = one_sentence(done, failing_status(command))
    assert message.startswith("The database var/xinyong.db exists but its master key file var/xinyong.db.key is")
    assert "set XINYONG_MASTER_KEY" in message
    after = snapshot(migrated)
    assert not (migrated / "var" / "xinyong.db.key").exists()
    assert {name: after[name] for name in before} == before  # SQLite may leave its -wal and -shm files, no more


def test_migrate_is_the_command_that_creates_the_database_its_directory_and_key_file(workdir: Path) -> None:
    done = gateway("migrate", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert {"var", "var/xinyong.db", "var/xinyong.db.key"} <= set(snapshot(workdir))
    assert (workdir / "var" / "xinyong.db.key").stat().st_mode & 0o777 == 0o600


def test_serve_on_a_port_in_use_says_so_and_leaves_the_database_untouched(migrated: Path) -> None:
    """Before: ``[Errno 98] …`` after a projector had started on the live database."""
    before = snapshot(migrated)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = gateway("serve", "--port", str(port), cwd=migrated)
    assert one_sentence(done, 1) == f"Port {port} on 127.0.0.1 is in use — is another gateway running? (--port)"
    assert snapshot(migrated) == before  # not even opened: no -wal file, no projector's commit, no log line


def test_serve_on_a_host_that_is_not_this_machine_says_so(migrated: Path) -> None:
    done = gateway("serve", "--host", "192.0.2.1", "--port", str(free_port()), cwd=migrated)  # TEST-NET-1
    assert one_sentence(done, 1) == "192.0.2.1 is not an address of this machine (--host)."


def test_a_missing_policy_file_is_one_sentence_in_words_not_an_errno(migrated: Path) -> None:
    done = gateway("policy", "check", "nosuch.toml", cwd=migrated)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.endswith("Cannot read the policy file nosuch.toml: no such file or directory.\n")
    assert "Errno" not in done.stderr


def test_an_invalid_setting_in_the_environment_names_the_setting_and_its_variable(migrated: Path) -> None:
    done = gateway("serve", cwd=migrated, XINYONG_PORT="eighty")
    assert one_sentence(done, 2) == (
        "Invalid setting port (XINYONG_PORT or serve --port): input should be a valid integer, unable to parse string"
        " as an integer."
    )


def test_a_public_key_that_is_not_one_is_a_usage_error_naming_the_option(migrated: Path) -> None:
    done = gateway("sources", "add", "--kind", "courier", "--name", "x", "--public-key", "whsec_abc", cwd=migrated)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines()[-1] == (
        "xinyong-gateway sources add: error: argument --public-key: not a public key (a public key must start with"
        " 'whpk_'; this is a symmetric signing secret (whsec_…); `xinyong keygen` makes a key pair)"
    )


def test_output_cut_short_by_its_reader_is_no_error(migrated: Path) -> None:
    """``xinyong-gateway master-key | head -c0``: the reader went away; nothing to report, no traceback."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed_pipe:
        done = subprocess.run(
            [str(GATEWAY_SCRIPT), "master-key"],
            cwd=migrated,
            stdout=closed_pipe,
            stderr=subprocess.PIPE,
            text=True,
            env=gateway_env(),
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr == ""
