"""``xinyong-gateway import``: historical events from NDJSON into the inbox, checked as ingest checks them,
stored exactly once, through ``main(argv)`` on a fresh database of each backend (``database_url``); and the
store's bulk path under it."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import io
import json
import os
import random
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic_core
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event, make_ric, make_uscc, now_rfc3339
from tests.gateway.conftest import TEST_MASTER_KEY, backend_of, inbox_refuses_inserts
from tests.gateway.test_store import entry, make_source
from tests.gateway.test_store_sqlite import wal_commits
from xinyong import problems
from xinyong.events import EVENT_ADAPTER
from xinyong.ndjson import line_webhook_id
from xinyong_gateway.cli import main
from xinyong_gateway.cli.importer import IMPORT_SIGNATURE
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import AppendStatus, InboxEntry, StoredEvent, open_store, partition_of
from xinyong_gateway.store import sqlite as sqlite_store

MASTER = MasterKey.from_text(TEST_MASTER_KEY)


@pytest.fixture(autouse=True)
def master_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("XINYONG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)


@pytest.fixture
def url(database_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A migrated database, of each backend."""
    assert main(["--db", database_url, "migrate"]) == 0
    capsys.readouterr()
    return database_url


def add_source(capsys: pytest.CaptureFixture[str], url: str, kind: str = "marketplace") -> str:
    assert main(["--db", url, "--json", "sources", "add", "--kind", kind, "--name", f"历史 {kind}"]) == 0
    source_id: str = json.loads(capsys.readouterr().out)["source_id"]
    return source_id


@pytest.fixture
def market(capsys: pytest.CaptureFixture[str], url: str) -> str:
    return add_source(capsys, url)


def run_import(
    capsys: pytest.CaptureFixture[str], url: str, path: Path, source_id: str, *extra: str
) -> tuple[int, dict[str, Any], str]:
    """``xinyong-gateway --json import``: (exit status, JSON summary, stderr)."""
    status = main(["--db", url, "--json", "import", str(path), "--source", source_id, *extra])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out else {}), err


def write_lines(path: Path, lines: Sequence[dict[str, Any] | bytes | str]) -> Path:
    with path.open("wb") as file:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line, ensure_ascii=False)
            file.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def stored(url: str) -> list[StoredEvent]:
    async def read() -> list[StoredEvent]:
        async with open_store(url) as store:
            return await store.read_inbox(0, 1_000_000)

    return asyncio.run(read())


def rejects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def complaint(n: int, **data: Any) -> dict[str, Any]:
    return event("complaint.filed", random.Random(n), complaint_id=f"cmp-{n}", **data)


# -- counts, exactly once ------------------------------------------------------------------------------------


def test_import_counts_accepted_duplicate_and_rejected_lines(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    first = complaint(1)
    path = write_lines(
        tmp_path / "events.ndjson",
        [first, complaint(2), {"id": "hist-3", **complaint(3)}, first, "not json", {"type": "no.such_type"}],
    )
    status, summary, _ = run_import(capsys, url, path, market)
    assert status == 1
    assert {k: summary[k] for k in ("accepted", "duplicate", "rejected")} == {
        "accepted": 3,
        "duplicate": 1,
        "rejected": 2,
    }
    assert summary["rejected_file"] == str(tmp_path / "events.ndjson.import-rejected.ndjson")
    assert isinstance(summary["elapsed_s"], float)
    assert len(stored(url)) == 3


def test_imported_rows_carry_the_partitions_of_their_subjects(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    lines = [complaint(n) for n in range(20)]
    status, _, _ = run_import(capsys, url, write_lines(tmp_path / "events.ndjson", lines), market)
    assert status == 0
    master = MASTER
    by_id = {line["data"]["complaint_id"]: line["data"]["merchant"]["id"] for line in lines}
    rows = stored(url)
    for row in rows:
        assert row.sealed_body is not None
        body = json.loads(master.open_body(row.source_id, row.webhook_id, row.sealed_body))
        assert row.partitions == 1 << partition_of(master.subject_key("uscc", by_id[body["data"]["complaint_id"]]))
    assert len({row.partitions for row in rows}) > 1


def test_importing_the_same_file_again_answers_duplicate_for_every_line_and_stores_nothing(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    path = write_lines(
        tmp_path / "events.ndjson", [complaint(n) if n % 2 else {"id": f"h-{n}", **complaint(n)} for n in range(40)]
    )
    status, summary, _ = run_import(capsys, url, path, market)
    assert (status, summary["accepted"], summary["duplicate"], summary["rejected_file"]) == (0, 40, 0, None)
    before = stored(url)
    status, summary, _ = run_import(capsys, url, path, market)
    assert (status, summary["accepted"], summary["duplicate"], summary["rejected"]) == (0, 0, 40, 0)
    assert stored(url) == before


def test_a_line_reusing_an_id_with_another_body_is_rejected_as_a_conflict(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    """Within one file, and against what an earlier import stored; nothing of the conflicting line is written."""
    path = write_lines(tmp_path / "a.ndjson", [{"id": "case-7", **complaint(1)}, {"id": "case-7", **complaint(2)}])
    status, summary, _ = run_import(capsys, url, path, market)
    assert (status, summary["accepted"], summary["rejected"]) == (1, 1, 1)
    later = write_lines(tmp_path / "b.ndjson", [{"id": "case-7", **complaint(3)}])
    status, summary, _ = run_import(capsys, url, later, market)
    assert (status, summary["accepted"], summary["rejected"]) == (1, 0, 1)
    for rejects in (tmp_path / "a.ndjson.import-rejected.ndjson", tmp_path / "b.ndjson.import-rejected.ndjson"):
        (rejection,) = rejects_of(rejects)
        assert rejection["problem"] == problems.DUPLICATE_CONFLICT
    assert [row.webhook_id for row in stored(url)] == ["case-7"]


async def test_a_failed_commit_stores_nothing_exits_2_and_a_second_run_completes_the_import(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "events.ndjson", [complaint(n) for n in range(10)])
    async with inbox_refuses_inserts(url):
        status, summary, err = await asyncio.to_thread(run_import, capsys, url, path, market)
    assert (status, summary) == (2, {})
    assert "The import stopped" in err and "running the same import again is safe" in err
    assert await asyncio.to_thread(stored, url) == []
    status, summary, _ = await asyncio.to_thread(run_import, capsys, url, path, market)
    assert (status, summary["accepted"]) == (0, 10)


# -- what is stored ---------------------------------------------------------------------------------------------


def test_a_line_with_an_id_is_stored_without_it_as_compact_json_and_one_without_byte_for_byte(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    with_id, without_id = complaint(1), complaint(2)
    raw_without = json.dumps(without_id, ensure_ascii=False, indent=1).replace("\n", " ").encode()
    path = write_lines(tmp_path / "events.ndjson", [{"id": "hist-1", **with_id}, raw_without])
    assert run_import(capsys, url, path, market)[0] == 0
    first, second = stored(url)
    assert first.webhook_id == "hist-1"
    assert (
        MASTER.open_body(market, "hist-1", first.sealed_body)
        == json.dumps(with_id, ensure_ascii=False, separators=(",", ":")).encode()
    )
    digest = MASTER.body_digest(raw_without)
    assert (second.webhook_id, second.body_digest) == (line_webhook_id(raw_without), digest)  # as `xinyong send`
    assert MASTER.open_body(market, second.webhook_id, second.sealed_body) == raw_without
    assert {row.signature for row in (first, second)} == {IMPORT_SIGNATURE}
    assert first.event_type == "complaint.filed"


JSON_WITHOUT_FRACTIONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON_WITHOUT_FRACTIONS)
def test_the_compact_json_of_an_id_line_is_what_json_dumps_writes(document: Any) -> None:
    """The rule the README states (``json.dumps`` with compact separators), for the faster serialiser used.

    They differ on some floats (``1e-05``), which no event can hold: see the next test."""
    assert pydantic_core.to_json(document) == json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def test_no_event_field_takes_a_fractional_number() -> None:
    """What keeps the previous test sufficient: only documents that validate are re-serialised."""
    assert '"number"' not in json.dumps(EVENT_ADAPTER.json_schema())


# -- rejected lines ----------------------------------------------------------------------------------------------


def test_rejects_file_names_line_numbers_problem_types_and_pointers_but_no_personal_data(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    ric, name = make_ric(), "王小明"
    person = {"id_type": "ric", "id": ric, "name": name}
    future = complaint(3, merchant=person, filed_at=now_rfc3339(timedelta(minutes=10)))
    lines: list[dict[str, Any] | bytes | str] = [
        complaint(1, merchant=person),
        complaint(2, merchant=person, confirmd=True, category="xyzzy-category"),
        future,
        {"id": "has space", **complaint(4, merchant=person)},
        {"id": 12, **complaint(5)},
        "x" * 2000,
        {"type": "penalty.imposed", "timestamp": now_rfc3339(), "data": {"subject": person}},
    ]
    path = write_lines(tmp_path / "events.ndjson", lines)
    (tmp_path / "out").mkdir()
    status, summary, err = run_import(capsys, url, path, market, "--rejects", str(tmp_path / "out" / "r.ndjson"))
    assert (status, summary["accepted"], summary["rejected"]) == (1, 1, 6)
    rejects = tmp_path / "out" / "r.ndjson"
    assert summary["rejected_file"] == str(rejects)
    assert not (tmp_path / "events.ndjson.import-rejected.ndjson").exists()
    found = rejects_of(rejects)
    assert [(r["line"], r["problem"]) for r in found] == [
        (2, problems.SCHEMA_INVALID),
        (3, problems.SCHEMA_INVALID),
        (4, problems.SCHEMA_INVALID),
        (5, problems.SCHEMA_INVALID),
        (6, problems.BODY_NOT_JSON),
        (7, problems.EVENT_NOT_ALLOWED),
    ]
    assert {e["pointer"] for e in found[0]["errors"]} == {"/data/confirmd", "/data/category"}
    assert [e["pointer"] for e in found[1]["errors"]] == ["/data/filed_at"]
    assert [e["pointer"] for e in found[2]["errors"]] == ["/id"]
    assert [e["pointer"] for e in found[3]["errors"]] == ["/id"]
    assert all(set(r) == {"line", "problem", "detail", "errors"} and r["detail"] for r in found)
    text = rejects.read_text(encoding="utf-8")
    for secret in (ric, name, "xyzzy-category", "has space"):
        assert secret not in text and secret not in err and secret not in json.dumps(summary, ensure_ascii=False)


def test_invalid_utf8_and_non_json_lines_are_rejected_by_number_and_empty_lines_are_skipped(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(complaint(1)).encode() + b"\n"  # 1: a byte order mark is allowed
        b"\n"  # 2: empty
        b"   \t\n"  # 3: blank
        b'{"type": "complaint.filed", "note": "\xff\xfe"}\n'  # 4: not UTF-8
        b"{'type': 'complaint.filed'}\n"  # 5: not JSON
         + json.dumps(complaint(2)).encode() + b"\r\n"  # 6: CRLF
        b"[1, 2]\n"  # 7: not an object
        b'{"type": 5}'  # 8: no string type, no final newline
    )
    status, summary, _ = run_import(capsys, url, path, market)
    assert (status, summary["accepted"], summary["rejected"]) == (1, 2, 4)
    found = rejects_of(tmp_path / "events.ndjson.import-rejected.ndjson")
    assert [(r["line"], r["problem"], [e["pointer"] for e in r["errors"]]) for r in found] == [
        (4, problems.BODY_NOT_JSON, []),
        (5, problems.BODY_NOT_JSON, []),
        (7, problems.SCHEMA_INVALID, [""]),
        (8, problems.SCHEMA_INVALID, ["/type"]),
    ]
    assert not any(row.sealed_body.endswith(b"\r") for row in stored(url))
    assert MASTER.open_body(market, stored(url)[1].webhook_id, stored(url)[1].sealed_body).endswith(b"}")


def test_a_line_over_the_body_limit_is_rejected_as_too_large(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XINYONG_BODY_LIMIT", "1024")
    path = write_lines(tmp_path / "events.ndjson", [complaint(1), complaint(2, shop_note="长" * 400)])
    status, summary, _ = run_import(capsys, url, path, market)
    assert (status, summary["accepted"], summary["rejected"]) == (1, 1, 1)
    (rejection,) = rejects_of(tmp_path / "events.ndjson.import-rejected.ndjson")
    assert (rejection["line"], rejection["problem"]) == (2, problems.BODY_TOO_LARGE)


def test_an_event_type_the_source_kind_may_not_send_is_rejected_as_not_allowed(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    courier = add_source(capsys, url, "courier")
    path = write_lines(tmp_path / "events.ndjson", [event("delivery.recorded"), complaint(1)])
    status, summary, _ = run_import(capsys, url, path, courier)
    assert (status, summary["accepted"], summary["rejected"]) == (1, 1, 1)
    (rejection,) = rejects_of(tmp_path / "events.ndjson.import-rejected.ndjson")
    assert (rejection["line"], rejection["problem"]) == (2, problems.EVENT_NOT_ALLOWED)
    assert rejection["detail"] == "A courier source may not send complaint.filed."


def test_a_run_without_rejections_removes_the_rejects_file_of_an_earlier_run(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    first = complaint(1)
    path = write_lines(tmp_path / "events.ndjson", [first, "oops"])
    assert run_import(capsys, url, path, market)[0] == 1
    assert (tmp_path / "events.ndjson.import-rejected.ndjson").exists()
    write_lines(path, [first])
    status, summary, _ = run_import(capsys, url, path, market)
    assert (status, summary["duplicate"], summary["rejected_file"]) == (0, 1, None)
    assert not (tmp_path / "events.ndjson.import-rejected.ndjson").exists()


# -- could not run ----------------------------------------------------------------------------------------------


def test_an_unknown_source_exits_2(capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.ndjson", [complaint(1)])
    status, summary, err = run_import(capsys, url, path, "src_nosuchsource")
    assert (status, summary) == (2, {})
    assert err.strip() == "xinyong-gateway: error: No source with id 'src_nosuchsource'."
    assert stored(url) == []


def test_a_disabled_source_exits_2(capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path) -> None:
    assert main(["--db", url, "--json", "sources", "disable", market]) == 0
    capsys.readouterr()
    path = write_lines(tmp_path / "events.ndjson", [complaint(1)])
    status, _, err = run_import(capsys, url, path, market)
    assert status == 2
    assert f"Source {market} is disabled" in err
    assert stored(url) == []
    assert not (tmp_path / "events.ndjson.import-rejected.ndjson").exists()


def test_a_rejects_file_in_a_missing_directory_exits_2_before_anything_is_stored(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "events.ndjson", [complaint(1)])
    status, _, err = run_import(capsys, url, path, market, "--rejects", str(tmp_path / "no" / "r.ndjson"))
    assert status == 2
    assert "No directory" in err
    assert stored(url) == []


def test_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path) -> None:
    status, _, err = run_import(capsys, url, tmp_path / "nope.ndjson", market)
    assert status == 2
    assert "No such file" in err


def test_a_missing_database_exits_2_and_creates_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.ndjson", [complaint(1)])
    status, _, err = run_import(capsys, f"sqlite:///{tmp_path / 'none.db'}", path, "src_x")
    assert status == 2
    assert "run `xinyong-gateway migrate` first" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.ndjson"]


def test_a_database_sealed_under_another_master_key_exits_2(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_lines(tmp_path / "events.ndjson", [complaint(1)])
    monkeypatch.setenv("XINYONG_MASTER_KEY", MasterKey.generate_text())
    status, _, err = run_import(capsys, url, path, market)
    assert status == 2
    assert "master key" in err


# -- after the import -------------------------------------------------------------------------------------------


def test_imported_events_are_projected_into_credit_files(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    regulator = add_source(capsys, url, "regulator")
    uscc = make_uscc(random.Random(5))
    who = {"id_type": "uscc", "id": uscc, "name": "示例网店有限公司"}
    path = write_lines(
        tmp_path / "events.ndjson",
        [{"id": "P-1", **event("penalty.imposed", subject=who, decision_no="P-1", severity="general")}],
    )
    assert run_import(capsys, url, path, regulator)[0] == 0
    assert main(["--db", url, "--json", "project", "--once"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] == 1
    assert main(["--db", url, "--json", "subjects", "show", "uscc", uscc]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"]["list"] == "watch"
    assert [r["reason"] for r in shown["records"]] == ["PENALTY_GENERAL"]


def bulk_lines(count: int) -> Iterator[str]:
    """``count`` distinct valid marketplace events, a third of them with an id (built fast from templates)."""
    rng = random.Random(20_000)
    templates = [event(kind, rng) for kind in ("complaint.filed", "review.manipulation_detected", "listing.violation")]
    for n in range(count):
        template = templates[n % 3]
        data = dict(template["data"])
        data["complaint_id" if "complaint_id" in data else "case_id"] = f"bulk-{n}"
        line: dict[str, Any] = {**template, "data": data}
        if n % 3 == 0:
            line = {"id": f"bulk-{n}", **line}
        yield json.dumps(line, ensure_ascii=False)


@pytest.mark.slow
def test_a_bulk_of_20000_lines_imports_in_worker_processes_and_again_as_duplicates(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path
) -> None:
    path = tmp_path / "bulk.ndjson"
    path.write_text("\n".join(bulk_lines(20_000)) + "\n", encoding="utf-8")
    status, summary, _ = run_import(capsys, url, path, market, "--jobs", "2")
    assert (status, summary["accepted"], summary["duplicate"], summary["rejected"]) == (0, 20_000, 0, 0)
    rows = stored(url)
    assert len(rows) == 20_000
    assert [row.seq for row in rows] == list(range(1, 20_001))
    status, summary, _ = run_import(capsys, url, path, market, "--jobs", "1")
    assert (status, summary["accepted"], summary["duplicate"]) == (0, 0, 20_000)
    assert len(stored(url)) == 20_000


# -- the command line -------------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_goes_to_stderr_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
    url: str,
    market: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_lines(tmp_path / "events.ndjson", [complaint(n) for n in range(5)])
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["--db", url, "--json", "import", str(path), "--source", market]) == 0
    progress = terminal.getvalue()
    assert progress.startswith("\r")  # a live line, redrawn in place
    assert "100.0%  5 lines" in progress and "lines/s" in progress and "5 accepted, 0 duplicate, 0 rejected" in progress
    assert progress.endswith("\n")


def test_import_help_explains_the_id_rule_and_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["import", "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert 'top-level "id" member' in out and "line- and 32 hex digits of a SHA-256 of the line" in out
    assert "persons' ids and names left out" in out and "import- and" not in out  # the scheme of old imports
    assert "example: xinyong-gateway import events.ndjson --source" in out


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_jobs_below_1_is_refused(
    capsys: pytest.CaptureFixture[str], url: str, market: str, tmp_path: Path, jobs: str
) -> None:
    path = write_lines(tmp_path / "events.ndjson", [complaint(1)])
    status, _, err = run_import(capsys, url, path, market, "--jobs", jobs)
    assert status == 2
    assert "--jobs must be at least 1" in err


# -- the store's bulk path --------------------------------------------------------------------------------------


def mixed_entries(source_id: str) -> list[InboxEntry]:
    """New ids, repeats of new ids (same and other body) within the batch, and ids stored before."""
    return [
        entry(source_id, "old-same"),
        entry(source_id, "n1"),
        entry(source_id, "old-other", b"another body"),
        entry(source_id, "n2"),
        entry(source_id, "n1"),
        entry(source_id, "n2", b"changed"),
        entry(source_id, "n3"),
        entry(source_id, "n1", b"changed too"),
        entry(source_id, "n4"),
    ]


def store_module(database_url: str) -> Any:
    """The module of the backend of ``database_url`` (whose ``_BULK_CHUNK`` a test may shrink)."""
    return importlib.import_module(f"xinyong_gateway.store.{backend_of(database_url)}")


@pytest.mark.parametrize("chunk", [3, 5000])
async def test_append_many_answers_exactly_as_append_one_by_one(
    database_url: str, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Two sources with the same history in one database: one gets the batch in bulk, the other one by one."""
    monkeypatch.setattr(store_module(database_url), "_BULK_CHUNK", chunk)
    async with open_store(database_url, create=True) as store:
        await store.migrate()
        outcomes = []
        for source_id, bulk in (("src_bulk", True), ("src_single", False)):
            await make_source(store, source_id)
            await store.append(entry(source_id, "old-same"))
            await store.append(entry(source_id, "old-other"))
            batch = mixed_entries(source_id)
            results = await store.append_many(batch) if bulk else [await store.append(e) for e in batch]
            rows = {row.seq: row for row in await store.read_inbox(0, 1000)}
            # a result's seq names the row it stands for: the new one, or the one stored before under that id
            outcomes.append([(r.status, rows[r.seq or 0].webhook_id, rows[r.seq or 0].sealed_body) for r in results])
    bulk, single = outcomes
    assert bulk == single
    assert [status for status, _, _ in bulk] == [
        AppendStatus.DUPLICATE,
        AppendStatus.ACCEPTED,
        AppendStatus.CONFLICT,
        AppendStatus.ACCEPTED,
        AppendStatus.DUPLICATE,
        AppendStatus.CONFLICT,
        AppendStatus.ACCEPTED,
        AppendStatus.CONFLICT,
        AppendStatus.ACCEPTED,
    ]


async def test_append_many_commits_one_transaction_per_chunk_and_numbers_rows_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "_BULK_CHUNK", 4)
    db_path = tmp_path / "store.db"
    async with open_store(f"sqlite:///{db_path}", create=True) as store:
        await store.migrate()
        source_id = await make_source(store)
        salt, commits_before = wal_commits(db_path)
        results = await store.append_many([entry(source_id, f"id-{n}") for n in range(10)])
        assert wal_commits(db_path) == (salt, commits_before + 3)
        assert [(r.status, r.seq) for r in results] == [(AppendStatus.ACCEPTED, n) for n in range(1, 11)]
        rows = await store.read_inbox(0, 100)
        assert [(row.seq, row.webhook_id) for row in rows] == [(n + 1, f"id-{n}") for n in range(10)]
        assert rows[0].body_digest == hashlib.sha256(b'{"type": "complaint.filed"}').digest()
