"""Long ``xinyong-gateway`` commands speak: ``import``, ``policy diff``, ``policy apply`` and ``project --once`` show
progress on stderr (plain lines every ``XINYONG_PROGRESS_INTERVAL`` seconds when stderr is a pipe, 0 here: every
update), and Ctrl-C (SIGINT) ends them with exit status 130 and one sentence of what was done and whether running
them again is safe: no traceback, nothing on stdout. The installed script, as subprocesses, on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.factories import event
from tests.gateway.conftest import DEFAULT_POLICY_TEXT, GATEWAY_SCRIPT, gateway_env

EVENTS = 20_000
"""Events in the shared inbox: enough that each replay is still running when its first progress line is read."""
REPLAY_PROGRESS = {
    "policy diff": r"replaying the inbox: [\d,]+ of 20,000 events \(\d+%\)",
    "policy apply": r"replaying the inbox under next-1: [\d,]+ of 20,000 events \(\d+%\)",
    "project": r"applied [\d,]+ events \([\d,]+/s\)",
}
"""The progress line of each replaying command, after ``xinyong-gateway COMMAND: ``."""


def write_events(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as file:
        for _ in range(count):
            file.write(json.dumps(event("complaint.filed", rng), ensure_ascii=False) + "\n")
    return path


def gateway(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY_SCRIPT), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=gateway_env(**env),
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder whose ./var/xinyong.db holds one marketplace source and an inbox of ``EVENTS`` complaints; its id."""
    folder = tmp_path_factory.mktemp("inbox")
    assert gateway(folder, "migrate").returncode == 0
    added = gateway(folder, "--json", "sources", "add", "--kind", "marketplace", "--name", "云购商城")
    source_id = json.loads(added.stdout)["source_id"]
    events = write_events(folder / "history.ndjson", EVENTS, seed=1)
    imported = gateway(folder, "import", str(events), "--source", source_id)
    assert imported.returncode == 0, imported.stderr
    return folder, source_id


@pytest.fixture
def copy(inbox: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the shared inbox's database (and key file) that this test may change."""
    shutil.copytree(inbox[0] / "var", tmp_path / "var")
    return tmp_path


def next_policy(folder: Path) -> Path:
    path = folder / "next.toml"
    path.write_text(DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', 'version = "next-1"'), encoding="utf-8")
    return path


async def interrupted(folder: Path, *args: str) -> tuple[int | None, str, list[str]]:
    """Run the script with progress on every update; SIGINT once its first progress line is on stderr.
    Returns (exit status, stdout, stderr lines)."""
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY_SCRIPT),
        *args,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=gateway_env(XINYONG_PROGRESS_INTERVAL="0"),
    )
    assert process.stderr is not None
    try:
        first = await asyncio.wait_for(process.stderr.readline(), 60)
        assert first.startswith(b"xinyong-gateway "), first
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, out.decode(), (first + err).decode().splitlines()


def assert_interrupted(status: int | None, out: str, err: list[str], command: str) -> str:
    """The sentence of an interrupted run of ``command``: exit 130, nothing on stdout, no traceback; before it, only
    progress lines (``REPLAY_PROGRESS``)."""
    assert (status, out) == (130, ""), err
    assert not any("Traceback" in line for line in err), err
    progress, sentence = err[:-1], err[-1]
    assert progress, "the first progress line was read before the interrupt"
    if command in REPLAY_PROGRESS:
        expected = re.compile(f"xinyong-gateway {command}: {REPLAY_PROGRESS[command]}")
        assert all(expected.fullmatch(line) for line in progress), err
    assert sentence.startswith("xinyong-gateway: Interrupted"), err
    return sentence.removeprefix("xinyong-gateway: ")


# -- progress ---------------------------------------------------------------------------------------------------


def test_import_writes_plain_progress_lines_to_a_pipe_and_only_the_summary_to_stdout(
    inbox: tuple[Path, str], copy: Path
) -> None:
    events = write_events(copy / "more.ndjson", 11_000, seed=2)
    done = gateway(copy, "import", str(events), "--source", inbox[1], XINYONG_PROGRESS_INTERVAL="0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accepted"] == 11_000  # stdout: the summary, one JSON line
    lines = done.stderr.splitlines()
    assert len(lines) == 3  # one a committed chunk of 5,000 lines (the last one partial)
    pattern = re.compile(
        r"xinyong-gateway import: +\d+\.\d%  ([\d,]+) lines  [\d,]+ lines/s  ([\d,]+) accepted, 0 duplicate, 0 rejected"
    )
    counts = [pattern.fullmatch(line) for line in lines]
    assert all(counts), lines
    assert [match.group(1) for match in counts if match] == ["5,000", "10,000", "11,000"]
    assert "\r" not in done.stderr


def test_a_run_shorter_than_the_interval_writes_no_progress_to_a_pipe(inbox: tuple[Path, str], copy: Path) -> None:
    events = write_events(copy / "few.ndjson", 10, seed=3)
    done = gateway(copy, "import", str(events), "--source", inbox[1])  # the default interval, 5 s
    assert (done.returncode, done.stderr) == (0, "")


# -- Ctrl-C -----------------------------------------------------------------------------------------------------


async def test_ctrl_c_in_import_says_what_was_committed_and_a_rerun_stores_each_line_once(
    inbox: tuple[Path, str], copy: Path
) -> None:
    events = await asyncio.to_thread(write_events, copy / "big.ndjson", 25_000, 4)
    status, out, err = await interrupted(copy, "import", str(events), "--source", inbox[1])
    sentence = assert_interrupted(status, out, err, "import")
    match = re.fullmatch(
        rf"Interrupted after ([\d,]+) lines of {re.escape(str(events))} were committed \(([\d,]+) accepted, 0"
        r" duplicate, 0 rejected\); lines being committed then may or may not be stored, and running the same import"
        r" again is safe \(stored lines answer duplicate\)\.",
        sentence,
    )
    assert match, sentence
    committed = int(match.group(1).replace(",", ""))
    assert 5_000 <= committed < 25_000 and committed % 5_000 == 0
    again = await asyncio.to_thread(gateway, copy, "import", str(events), "--source", inbox[1])
    summary = json.loads(again.stdout)
    assert summary["accepted"] + summary["duplicate"] == 25_000 and summary["duplicate"] >= committed


async def test_ctrl_c_in_policy_diff_says_how_far_it_got_and_that_nothing_was_written(copy: Path) -> None:
    status, out, err = await interrupted(copy, "policy", "diff", str(next_policy(copy)))
    sentence = assert_interrupted(status, out, err, "policy diff")
    assert re.fullmatch(
        r"Interrupted after replaying [\d,]+ of 20,000 events; a dry run writes nothing, so running it again is safe\.",
        sentence,
    ), sentence


async def test_ctrl_c_in_policy_apply_before_its_commit_leaves_the_policy_in_force(copy: Path) -> None:
    status, out, err = await interrupted(copy, "policy", "apply", str(next_policy(copy)))
    sentence = assert_interrupted(status, out, err, "policy apply")
    assert re.fullmatch(
        r"Interrupted after replaying [\d,]+ of 20,000 events, before anything was written: policy lyg-2026\.4 stays"
        r" in force, and running the command again is safe\.",
        sentence,
    ), sentence
    with contextlib.closing(sqlite3.connect(copy / "var" / "xinyong.db")) as db:
        assert db.execute("SELECT count(*) FROM policies").fetchone() == (0,)  # nothing was adopted


async def test_ctrl_c_in_project_once_says_a_rerun_resumes_where_it_stopped(copy: Path) -> None:
    status, out, err = await interrupted(copy, "project", "--once")
    sentence = assert_interrupted(status, out, err, "project")
    assert re.fullmatch(
        r"Interrupted after applying [\d,]+ events; the projector commits each batch with its inbox position, so"
        r" running it again resumes where it stopped\.",
        sentence,
    ), sentence
    resumed = await asyncio.to_thread(gateway, copy, "--json", "project", "--once")
    assert json.loads(resumed.stdout)["position"] == EVENTS
