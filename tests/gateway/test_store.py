"""The storage interface on each backend (a fresh SQLite file and a fresh PostgreSQL schema per test): migrations,
the inbox with its exactly-once appends, the master key check, sources.

What only SQLite has (its file, its write-ahead log, its URLs) is in ``test_store_sqlite.py``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.gateway.conftest import backend_of, database_rows, inbox_refuses_inserts, migration_names
from xinyong_gateway.errors import (
    MasterKeyError,
    SchemaNotReadyError,
    SourceNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from xinyong_gateway.store import (
    AppendStatus,
    CaseRef,
    Commitment,
    InboxEntry,
    Micros,
    NewSourceKey,
    OrganisationStanding,
    ProjectionCommit,
    PublicSubject,
    Standing,
    Store,
    SubjectRow,
    open_store,
    to_micros,
)
from xinyong_gateway.store.base import migrations_in

NOW = to_micros(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
SECOND = 1_000_000
MINUTE, HOUR, DAY = 60 * SECOND, 3600 * SECOND, 86400 * SECOND


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with open_store(database_url, create=True) as opened:
        await opened.migrate()
        yield opened


def new_key(material: bytes = b"sealed secret") -> NewSourceKey:
    return NewSourceKey("v1", material, hashlib.sha256(material).hexdigest()[:12])


async def make_source(store: Store, source_id: str = "src_a", *, now: Micros = NOW) -> str:
    await store.create_source(
        source_id=source_id, kind="marketplace", name="云购商城", uscc=None, rate_limit=None, key=new_key(), now=now
    )
    return source_id


def entry(source_id: str, webhook_id: str, body: bytes = b'{"type": "complaint.filed"}') -> InboxEntry:
    """An inbox entry; the store treats digest and sealed body as opaque bytes."""
    return InboxEntry(
        source_id=source_id,
        webhook_id=webhook_id,
        body_digest=hashlib.sha256(body).digest(),
        event_type="complaint.filed",
        webhook_timestamp=1_772_352_000,
        signature="v1,c2lnbmF0dXJl",
        received_at=1_772_352_000_000_000,
        sealed_body=b"sealed:" + body,
    )


# -- schema --------------------------------------------------------------------------------------------------


async def test_migrate_applies_every_packaged_migration_once_in_order_then_nothing(database_url: str) -> None:
    expected = migration_names(backend_of(database_url))
    assert expected, "the backend ships no migrations"
    async with open_store(database_url, create=True) as store:
        assert await store.migrate() == expected
        assert await store.migrate() == []
    async with open_store(database_url) as reopened:
        assert await reopened.migrate() == []


async def test_schema_status_lists_pending_migrations_before_and_none_after(database_url: str) -> None:
    names = migration_names(backend_of(database_url))
    latest = int(names[-1].split("_", 1)[0])  # migrations are numbered: 0004_partitions.sql is version 4
    async with open_store(database_url, create=True) as store:
        before = await store.schema_status()
        assert (before.current, before.latest, before.pending, before.ready) == (0, latest, tuple(names), False)
        await store.migrate()
        after = await store.schema_status()
        assert (after.current, after.latest, after.pending, after.ready) == (latest, latest, (), True)


async def test_unmigrated_database_is_refused_with_schema_not_ready(database_url: str) -> None:
    async with open_store(database_url, create=True) as store:
        with pytest.raises(SchemaNotReadyError, match="migrate"):
            await store.require_schema()
        with pytest.raises(SchemaNotReadyError):
            await store.check_master_key(b"check")


def test_two_migrations_with_one_version_are_refused(tmp_path: Path) -> None:
    """Branches merged with the same number would otherwise apply only one of the two, silently."""
    for name in ("0001_initial.sql", "0002_due_process_cases.sql", "0002_audit_log.sql", "notes.txt"):
        (tmp_path / name).write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(StoreError, match=r"0002_audit_log.sql and 0002_due_process_cases.sql .* same version 2"):
        migrations_in(tmp_path)
    (tmp_path / "0002_audit_log.sql").rename(tmp_path / "0003_audit_log.sql")
    assert [m.name for m in migrations_in(tmp_path)] == [
        "0001_initial.sql", "0002_due_process_cases.sql", "0003_audit_log.sql",
    ]  # fmt: skip


# -- inbox ---------------------------------------------------------------------------------------------------


async def test_new_webhooks_are_accepted_with_increasing_seq(store: Store) -> None:
    source = await make_source(store)
    results = [await store.append(entry(source, f"msg_{n}")) for n in range(3)]
    assert [result.status for result in results] == [AppendStatus.ACCEPTED] * 3
    seqs = [result.seq for result in results]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    rows = await store.read_inbox()
    assert [(row.seq, row.webhook_id) for row in rows] == [(seq, f"msg_{n}") for n, seq in enumerate(seqs)]


async def test_stored_row_keeps_every_field_of_the_entry(store: Store) -> None:
    source = await make_source(store)
    sent = entry(source, "msg_1")
    result = await store.append(sent)
    (row,) = await store.read_inbox()
    assert row.seq == result.seq
    assert (row.source_id, row.webhook_id, row.event_type) == (sent.source_id, sent.webhook_id, sent.event_type)
    assert (row.webhook_timestamp, row.signature, row.received_at) == (
        sent.webhook_timestamp,
        sent.signature,
        sent.received_at,
    )
    assert (row.body_digest, row.sealed_body) == (sent.body_digest, sent.sealed_body)


async def test_same_id_and_digest_again_is_a_duplicate_with_the_first_seq(store: Store) -> None:
    source = await make_source(store)
    first = await store.append(entry(source, "msg_1"))
    await store.append(entry(source, "msg_2"))
    again = await store.append(entry(source, "msg_1"))
    assert again.status is AppendStatus.DUPLICATE
    assert again.seq == first.seq
    assert await store.inbox_count() == 2


async def test_same_id_with_another_digest_is_a_conflict_and_writes_nothing(store: Store) -> None:
    source = await make_source(store)
    first = await store.append(entry(source, "msg_1", b"first"))
    conflict = await store.append(entry(source, "msg_1", b"second"))
    assert conflict.status is AppendStatus.CONFLICT
    assert conflict.seq == first.seq
    (row,) = await store.read_inbox()
    assert row.sealed_body == b"sealed:first"


async def test_same_webhook_id_under_two_sources_is_two_rows(store: Store) -> None:
    one = await make_source(store, "src_one")
    other = await make_source(store, "src_other")
    assert (await store.append(entry(one, "msg_1"))).status is AppendStatus.ACCEPTED
    assert (await store.append(entry(other, "msg_1"))).status is AppendStatus.ACCEPTED
    assert await store.inbox_count() == 2


async def test_read_inbox_pages_in_log_order(store: Store) -> None:
    source = await make_source(store)
    seqs = [(await store.append(entry(source, f"msg_{n}"))).seq for n in range(5)]
    first_page = await store.read_inbox(limit=2)
    assert [row.seq for row in first_page] == seqs[:2]
    rest = await store.read_inbox(after_seq=first_page[-1].seq)
    assert [row.seq for row in rest] == seqs[2:]
    assert await store.read_inbox(after_seq=seqs[-1]) == []


async def test_two_hundred_concurrent_appends_are_all_accepted_and_all_in_the_log(store: Store) -> None:
    source = await make_source(store)
    results = await asyncio.gather(*(store.append(entry(source, f"msg_{n}")) for n in range(200)))
    assert all(result.status is AppendStatus.ACCEPTED for result in results)
    seqs = sorted(result.seq for result in results if result.seq is not None)
    assert len(set(seqs)) == 200
    assert [row.seq for row in await store.read_inbox(limit=1000)] == seqs
    assert await store.inbox_count() == 200


async def test_racing_copies_of_one_webhook_store_one_row(store: Store) -> None:
    source = await make_source(store)
    results = await asyncio.gather(*(store.append(entry(source, "msg_race")) for _ in range(20)))
    statuses = sorted(result.status.value for result in results)
    assert statuses == ["accepted"] + ["duplicate"] * 19
    assert len({result.seq for result in results}) == 1
    assert await store.inbox_count() == 1


async def test_racing_conflicting_bodies_of_one_webhook_accept_one_and_conflict_the_rest(store: Store) -> None:
    source = await make_source(store)
    bodies = [f"body {n}".encode() for n in range(10)]
    results = await asyncio.gather(*(store.append(entry(source, "msg_race", body)) for body in bodies))
    statuses = sorted(result.status.value for result in results)
    assert statuses == ["accepted"] + ["conflict"] * 9
    winner = next(body for body, result in zip(bodies, results, strict=True) if result.status is AppendStatus.ACCEPTED)
    (row,) = await store.read_inbox()
    assert row.sealed_body == b"sealed:" + winner


async def test_rows_survive_closing_and_reopening_the_database(database_url: str) -> None:
    async with open_store(database_url, create=True) as store:
        await store.migrate()
        source = await make_source(store)
        accepted = [await store.append(entry(source, f"msg_{n}")) for n in range(3)]
    async with open_store(database_url) as reopened:
        assert [row.seq for row in await reopened.read_inbox()] == [result.seq for result in accepted]
        assert (await reopened.append(entry(source, "msg_0"))).status is AppendStatus.DUPLICATE
    assert len((await database_rows(database_url))["inbox"]) == 3


async def test_failed_commit_raises_store_unavailable_for_the_batch_and_writes_nothing(
    store: Store, database_url: str
) -> None:
    source = await make_source(store)
    await store.append(entry(source, "msg_before"))
    async with inbox_refuses_inserts(database_url):
        outcomes = await asyncio.gather(
            *(store.append(entry(source, f"msg_{n}")) for n in range(5)), return_exceptions=True
        )
    assert all(isinstance(outcome, StoreUnavailableError) for outcome in outcomes), outcomes
    assert await store.inbox_count() == 1
    assert (await store.append(entry(source, "msg_0"))).status is AppendStatus.ACCEPTED


# -- master key check ----------------------------------------------------------------------------------------


async def test_master_key_check_value_is_recorded_on_first_use_and_accepted_again(database_url: str) -> None:
    async with open_store(database_url, create=True) as store:
        await store.migrate()
        await store.check_master_key(b"check value of key A")
        await store.check_master_key(b"check value of key A")
    async with open_store(database_url) as reopened:
        await reopened.check_master_key(b"check value of key A")


async def test_different_master_key_is_refused_with_master_key_error(database_url: str) -> None:
    async with open_store(database_url, create=True) as store:
        await store.migrate()
        await store.check_master_key(b"check value of key A")
    async with open_store(database_url) as reopened:
        with pytest.raises(MasterKeyError, match="does not match"):
            await reopened.check_master_key(b"check value of key B")
        await reopened.check_master_key(b"check value of key A")


# -- sources -------------------------------------------------------------------------------------------------


async def test_created_source_is_active_with_one_current_key(store: Store) -> None:
    record = await store.create_source(
        source_id="src_a",
        kind="courier",
        name="顺捷快递",
        uscc="91320700MA1P4K7L4X",
        rate_limit=5.0,
        key=new_key(b"material"),
        now=NOW,
    )
    assert (record.source_id, record.kind, record.name, record.uscc) == (
        "src_a",
        "courier",
        "顺捷快递",
        "91320700MA1P4K7L4X",
    )
    assert (record.rate_limit, record.status, record.created_at, record.disabled_at) == (5.0, "active", NOW, None)
    (key,) = record.keys
    assert (key.scheme, key.material, key.created_at, key.expires_at) == ("v1", b"material", NOW, None)
    assert await store.get_source("src_a") == record


async def test_sources_are_listed_in_creation_order(store: Store) -> None:
    await make_source(store, "src_b", now=NOW)
    await make_source(store, "src_a", now=NOW + SECOND)
    assert [record.source_id for record in await store.list_sources()] == ["src_b", "src_a"]


async def test_unknown_source_is_none(store: Store) -> None:
    assert await store.get_source("src_missing") is None


async def test_disabling_a_source_is_idempotent_and_keeps_the_first_time(store: Store) -> None:
    await make_source(store)
    first = await store.disable_source("src_a", now=NOW + HOUR)
    again = await store.disable_source("src_a", now=NOW + 2 * HOUR)
    assert (first.status, first.disabled_at) == ("disabled", NOW + HOUR)
    assert (again.status, again.disabled_at) == ("disabled", NOW + HOUR)


async def test_rotation_adds_a_current_key_and_gives_older_keys_the_grace_expiry(store: Store) -> None:
    await make_source(store)
    grace_until = NOW + 24 * HOUR
    record = await store.rotate_source_key("src_a", new_key(b"new"), now=NOW, grace_until=grace_until)
    old, new = record.keys
    assert (old.expires_at, new.expires_at) == (grace_until, None)
    assert new.material == b"new"
    assert old.valid_at(grace_until - 1)
    assert not old.valid_at(grace_until)


async def test_a_second_rotation_never_extends_an_earlier_expiry(store: Store) -> None:
    await make_source(store)
    await store.rotate_source_key("src_a", new_key(b"second"), now=NOW, grace_until=NOW + HOUR)
    later = NOW + 10 * MINUTE
    record = await store.rotate_source_key("src_a", new_key(b"third"), now=later, grace_until=later + 7 * DAY)
    first, second, third = record.keys
    assert first.expires_at == NOW + HOUR
    assert second.expires_at == later + 7 * DAY
    assert third.expires_at is None


@pytest.mark.parametrize("action", ["disable", "rotate"])
async def test_changing_an_unknown_source_raises_source_not_found_and_writes_nothing(
    store: Store, database_url: str, action: str
) -> None:
    await make_source(store)
    before = await database_rows(database_url)
    with pytest.raises(SourceNotFoundError):
        if action == "disable":
            await store.disable_source("src_missing", now=NOW)
        else:
            await store.rotate_source_key("src_missing", new_key(), now=NOW, grace_until=NOW)
    assert await database_rows(database_url) == before


async def test_one_key_lookups_answer_what_the_batch_lookup_answers(store: Store) -> None:
    """``load_subjects`` with one key takes a primary-key fast path (SQLite: no JSON array); held equal to the batch
    form for known and unknown keys alike."""
    rng = random.Random(11)
    rows = [
        SubjectRow(f"{n:064x}", "uscc", f"9132{n:014d}", f"店{n}", b"sealed", None, "{}", f'{{"n": {n}}}', n or None)
        for n in range(40)
    ]
    await store.commit_projection(ProjectionCommit(partitions=(), subjects=tuple(rows), changes=(), recorded_at=1))
    keys = [row.subject_key for row in rows] + [f"{n:064x}" for n in range(1000, 1010)]  # and ten unknown ones
    for _ in range(30):
        chosen = rng.sample(keys, rng.randint(2, 12))
        one_by_one: dict[str, SubjectRow] = {}
        for key in chosen:
            one_by_one |= await store.load_subjects([key])
        assert await store.load_subjects(chosen) == one_by_one


async def test_public_reads_answer_what_the_file_and_its_commitments_say(store: Store) -> None:
    """``public_subject`` (the page: file and commitments in one statement) and ``subject_standing`` (the badge: list
    and grade read from the stored status) are held equal to ``load_subjects`` and the stored status, for subjects with
    no, one and several commitments (newest first, then by id), and None for a subject not held."""
    rng = random.Random(7)
    rows, commitments = [], []
    for n in range(30):
        status = {
            "list": rng.choice(["black", "watch", "red", "none"]),
            "grade": rng.choice(["A", "B", "C", "D", None]),
        }
        key = f"{n:064x}"
        rows.append(
            SubjectRow(key, "uscc", f"9132{n:014d}", f"店{n}", b"sealed", None, "{}", json.dumps(status), n or None)
        )
        for c in range(n % 4):
            published = NOW - rng.choice([0, DAY, 2 * DAY])  # equal times too: then by id
            commitments.append(Commitment(key, f"cm-{n}-{c}", published, tuple(f"承诺{i}" for i in range(c + 1))))
    await store.commit_projection(
        ProjectionCommit(partitions=(), subjects=tuple(rows), changes=(), recorded_at=1, commitments=tuple(commitments))
    )
    for row in rows:
        key = row.subject_key
        expected = sorted(
            (c for c in commitments if c.subject_key == key), key=lambda c: (-c.published_at, c.commitment_id)
        )
        assert await store.public_subject(key) == PublicSubject(
            (await store.load_subjects([key]))[key], tuple(expected)
        )
        status = json.loads(row.status)
        assert await store.subject_standing(key) == Standing(status["list"], status["grade"], row.next_change_at)
    assert await store.public_subject(f"{999:064x}") is None
    assert await store.subject_standing(f"{999:064x}") is None


async def test_the_change_marker_moves_with_every_commit_of_any_connection(store: Store, database_url: str) -> None:
    """SQLite: ``change_marker`` compares equal to an earlier reading only while nothing was committed in between, by
    this store's writer or by another store on the same file (another process); reads leave it. PostgreSQL cannot
    tell without a round trip: None, and the public site keeps answers for their ttl only."""
    if backend_of(database_url) == "postgresql":
        assert store.change_marker() is None
        return
    row = SubjectRow(f"{1:064x}", "uscc", "913200000000000001", "店", b"sealed", None, "{}", '{"list": "none"}', None)
    before = store.change_marker()
    assert before is not None and store.change_marker() == before
    await store.load_subjects([row.subject_key])
    await store.public_subject(row.subject_key)
    assert store.change_marker() == before  # reads move nothing
    await store.commit_projection(ProjectionCommit(partitions=(), subjects=(row,), changes=(), recorded_at=1))
    after_own = store.change_marker()
    assert after_own != before
    async with open_store(database_url) as other:  # another connection, as another process would commit
        await other.commit_projection(ProjectionCommit(partitions=(), subjects=(row,), changes=(), recorded_at=2))
    assert store.change_marker() not in (before, after_own)


async def test_the_standings_written_since_a_seq_are_listed_in_the_order_written(
    store: Store, database_url: str
) -> None:
    """SQLite: every organisation's badge standing (the stored status's list and grade, ``next_change_at``) is listed
    after the seq a reader saw, each at most once (its latest), in the order written; a write that changes none of
    the three lists nothing; persons are never listed. PostgreSQL cannot list in commit order: None."""
    if backend_of(database_url) == "postgresql":
        assert store.standings_after(0, 10) is None
        return
    assert store.standings_after(0, 10) == []
    rng = random.Random(7)

    def row(n: int, status: dict[str, object], due: int | None = None, id_type: str = "uscc") -> SubjectRow:
        return SubjectRow(
            f"{n:064x}", id_type, f"9132{n:014d}", f"店{n}", b"sealed", None, "{}", json.dumps(status), due
        )

    expected: dict[str, tuple[str, str | None, int | None]] = {}
    seen = 0
    for round_ in range(6):
        rows = []
        for n in rng.sample(range(12), 5):
            status = {"list": rng.choice(["black", "red", "none"]), "grade": rng.choice(["A", "D", None]), "n": round_}
            due = rng.choice([None, 10**15 + n])
            rows.append(row(n, status, due))
            expected[f"9132{n:014d}"] = (str(status["list"]), status["grade"], due)  # type: ignore[assignment]
        rows.append(row(100 + round_, {"list": "black", "grade": "D"}, id_type="ric"))  # a person: never listed
        await store.commit_projection(
            ProjectionCommit(partitions=(), subjects=tuple(rows), changes=(), recorded_at=round_)
        )
        new = store.standings_after(seen, 1000)
        assert new is not None
        assert [s.seq for s in new] == sorted(s.seq for s in new) and all(s.seq > seen for s in new)
        assert len({s.code for s in new}) == len(new)
        for standing in new:
            assert expected[standing.code] == (standing.list, standing.grade, standing.next_change_at)
        if new:
            seen = new[-1].seq
    everything = store.standings_after(0, 1000)
    assert everything is not None
    assert {s.code: (s.list, s.grade, s.next_change_at) for s in everything} == expected
    assert [s.code for s in store.standings_after(0, 3) or []] == [s.code for s in everything[:3]]

    # a write that moves neither list, grade nor next_change_at (a record that changes nothing the badge shows)
    code = everything[0].code
    n = int(code[4:])
    unchanged = row(
        n, {"list": everything[0].list, "grade": everything[0].grade, "n": "other"}, everything[0].next_change_at
    )
    await store.commit_projection(ProjectionCommit(partitions=(), subjects=(unchanged,), changes=(), recorded_at=9))
    assert store.standings_after(seen, 1000) == []
    moved = row(n, {"list": "watch", "grade": "C"}, everything[0].next_change_at)
    await store.commit_projection(ProjectionCommit(partitions=(), subjects=(moved,), changes=(), recorded_at=10))
    (latest,) = store.standings_after(seen, 1000) or []
    assert (latest.code, latest.list, latest.grade) == (code, "watch", "C") and latest.seq > seen


async def test_standings_carry_the_summary_of_pages_that_show_nothing_else(store: Store, database_url: str) -> None:
    """A standing says what an organisation's public page shows when that page is its summary and commitments alone
    (name, score, measures, policy version, whether it has commitments), and ``summary_only`` only while its status
    has no reason in publicity and no intermediary member and no objection was ever filed against it; any of them,
    or a change of what the page shows (a first commitment included), writes the standing anew."""
    if backend_of(database_url) == "postgresql":
        assert store.standings_after(0, 10) is None
        return
    code = "913200000000000042"
    key = f"{42:064x}"

    def row(name: str | None = "海州区百货商店", score: int = 95, **status: object) -> SubjectRow:
        document = {
            "subject": {"id_type": "uscc", "id": code, "name": name},
            "list": "none",
            "grade": "A",
            "score": score,
            "measures": [],
            "reasons": [],
            "disputed": False,
            "policy_version": "p-1",
            "as_of": "2026-12-05T00:00:00+00:00",
        } | status
        return SubjectRow(key, "uscc", code, name, b"sealed", None, '{"records":{}}', json.dumps(document), None)

    async def write(
        subject: SubjectRow, *commitments: Commitment, cases: tuple[CaseRef, ...] = ()
    ) -> OrganisationStanding | None:
        seen = max((s.seq for s in store.standings_after(0, 1000) or []), default=0)
        commit = ProjectionCommit(
            partitions=(), subjects=(subject,), changes=(), recorded_at=1, commitments=commitments, cases=cases
        )
        await store.commit_projection(commit)
        (written,) = store.standings_after(seen, 1000) or [None]
        return written

    first = await write(row(name="海州区百货店", score=100))
    assert first is not None and first.summary_only
    assert (first.name, first.score, first.measures, first.policy_version) == ("海州区百货店", 100, "[]", "p-1")
    assert await write(row(name="海州区百货店", score=100, as_of="2026-12-06T00:00:00+00:00")) is None  # nothing moved
    renamed = await write(row())
    assert renamed is not None and renamed.summary_only and (renamed.name, renamed.score) == ("海州区百货商店", 95)
    reason = {"record_id": "rec_1", "code": "PENALTY", "list": "watch", "severity": "general", "disputed": False}
    for shown in (
        row(list="watch", grade="C", measures=["risk_warning"], reasons=[reason]),
        row(intermediary={"kind": "intermediary", "tier": None}),
    ):
        written = await write(shown)
        assert written is not None and not written.summary_only, shown
        back = await write(row())
        assert back is not None and back.summary_only

    assert renamed.committed is False
    committed = await write(row(), Commitment(key, "CM-1", 1, ("正品保障",)))
    assert committed is not None and committed.summary_only and committed.committed  # still answered from memory
    assert await store.public_commitments(key) == (Commitment(key, "CM-1", 1, ("正品保障",)),)
    assert await write(row(), Commitment(key, "CM-1", 2, ("正品保障", "七天"))) is None  # a merchant may have hundreds:
    assert await write(row(), Commitment(key, "CM-0", 3, ("假一赔十",))) is None  # they are read with the page
    assert [c.commitment_id for c in await store.public_commitments(key)] == ["CM-0", "CM-1"]  # newest first

    assert await write(row(), cases=(CaseRef("repair", "REP-1", key),)) is None  # a repair shows nothing here
    objected = await write(row(), cases=(CaseRef("objection", "OBJ-1", key),))
    assert objected is not None and not objected.summary_only  # from its first objection on, read from the store
    assert await write(row(as_of="2027-01-01T00:00:00+00:00")) is None
    assert [s.code for s in store.standings_after(0, 1000) or []] == [code]  # one standing per organisation


async def test_public_commitments_are_those_of_the_public_subject(store: Store) -> None:
    """``public_commitments`` reads a subject's commitments as ``public_subject`` does (newest first), and none for a
    subject without any or unknown to the store."""
    key, other = f"{7:064x}", f"{8:064x}"
    status = json.dumps({"list": "none", "grade": "A"})
    rows = tuple(
        SubjectRow(k, "uscc", f"9132{n:014d}", None, b"sealed", None, "{}", status, None)
        for n, k in ((7, key), (8, other))
    )
    promised = (Commitment(key, "CM-1", 1, ("正品保障",)), Commitment(key, "CM-2", 5, ("七天无理由退货", "假一赔十")))
    await store.commit_projection(
        ProjectionCommit(partitions=(), subjects=rows, changes=(), recorded_at=1, commitments=promised)
    )
    found = await store.public_subject(key)
    assert found is not None
    assert await store.public_commitments(key) == found.commitments == (promised[1], promised[0])
    assert await store.public_commitments(other) == ()
    assert await store.public_commitments(f"{9:064x}") == ()
