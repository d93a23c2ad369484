"""The audit log on each backend: entries chained in one transaction with the head record, one chain whoever writes,
append-only in the database, and ``audit.verify`` naming the first entry that was altered, deleted, inserted or moved.

Tampering happens behind the store's back, from a connection of the test's own, the way someone with write access to
the database but without the master key would do it: the append-only triggers dropped first."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from tests.gateway.conftest import TEST_MASTER_KEY, is_sqlite
from xinyong_gateway import audit
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import (
    AUDIT_GENESIS,
    AuditDraft,
    AuditEntry,
    AuditHead,
    Store,
    open_store,
    sqlite_path_from_url,
)

MASTER = MasterKey.from_text(TEST_MASTER_KEY)
OTHER_KEY = MasterKey.from_bytes(bytes(32))
"""Someone else's key: what a forger without the master key can at best compute hashes with."""


@pytest.fixture
async def store(database_url: str) -> Any:
    async with open_store(database_url, create=True) as opened:
        await opened.migrate()
        yield opened


async def write(store: Store, count: int, *, start: int = 1) -> list[AuditEntry]:
    return [
        await audit.record(store, MASTER, f"operator{n}", "keys.add", f"key_{n}", {"name": f"key {n}", "n": n})
        for n in range(start, start + count)
    ]


async def tamper(database_url: str, *statements: str) -> None:
    """Run ``statements`` on a connection of the test's own after dropping the append-only triggers, in one
    transaction."""
    if is_sqlite(database_url):
        with contextlib.closing(sqlite3.connect(sqlite_path_from_url(database_url), isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
            for statement in statements:
                conn.execute(statement)
            conn.execute("COMMIT")
        return
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.execute(
                "DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;"
                " DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log"
            )
            for statement in statements:
                await connection.execute(statement)
    finally:
        await connection.close()


def insert_sql(entry: AuditEntry) -> str:
    """An ``INSERT`` of ``entry`` as a forger would write it (literal values: both dialects read them alike)."""

    def literal(value: object) -> str:
        return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"

    values = ", ".join(literal(getattr(entry, name)) for name in AuditEntry.__dataclass_fields__)
    columns = "entry_id, at, actor, action, target, details, prev_hash, hash"
    return f"INSERT INTO audit_log ({columns}) VALUES ({values})"  # noqa: S608 -- the test's own values


def forged(entry_id: int, prev_hash: str, *, key: MasterKey = OTHER_KEY) -> AuditEntry:
    draft = AuditDraft(1_700_000_000_000_000, "eve", "keys.add", "key_forged", '{"name":"forged"}')
    entry_hash = audit.KeyedChain(key.audit_key).entry_hash(entry_id, prev_hash, draft)
    return AuditEntry(entry_id, draft.at, draft.actor, draft.action, draft.target, draft.details, prev_hash, entry_hash)


async def verdict(store: Store, *, anchor: str | None = None) -> tuple[int | None, str | None]:
    result = await audit.verify(store, MASTER, anchor=anchor)
    return result.broken_at, result.problem


# -- the chain as written --------------------------------------------------------------------------------------


async def test_entries_are_numbered_from_one_and_each_links_to_the_hash_before_it(store: Store) -> None:
    written = await write(store, 4)
    stored = await store.read_audit_log()
    assert stored == written
    assert [entry.entry_id for entry in stored] == [1, 2, 3, 4]
    assert [entry.prev_hash for entry in stored] == [AUDIT_GENESIS, *(entry.hash for entry in stored[:-1])]
    head = await store.audit_head()
    assert head is not None and (head.entry_id, head.hash) == (4, stored[-1].hash)
    assert await store.read_audit_log(after=2, limit=1) == stored[2:3]


async def test_an_entry_hash_is_the_documented_hmac_of_the_previous_hash_and_the_canonical_json(store: Store) -> None:
    """The formula of README/SECURITY.md, computed here independently: HMAC-SHA256 under the master key's HKDF
    ``audit`` key of the previous hash followed by the entry's JSON (sorted keys, no spaces, UTF-8 as is)."""
    entries = [
        await audit.record(store, MASTER, "王 regulator", "sources.add", "src_1", {"name": "云购商城", "rate": 2.5}),
        await audit.record(store, MASTER, "alice", "keys.revoke", "key_1"),
    ]
    raw = base64.b64decode(TEST_MASTER_KEY)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"xinyong/audit").derive(raw)
    for entry in entries:
        document = {
            "action": entry.action,
            "actor": entry.actor,
            "at": entry.at,
            "details": json.loads(entry.details),
            "entry_id": entry.entry_id,
            "target": entry.target,
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entry.hash == hmac.new(key, entry.prev_hash.encode() + text.encode(), hashlib.sha256).hexdigest()
    assert entries[0].details == '{"name":"云购商城","rate":2.5}'
    assert entries[1].details == "{}"


async def test_the_latest_entries_come_oldest_first_and_filter_by_action(store: Store) -> None:
    await write(store, 3)
    await audit.record(store, MASTER, "alice", "sources.disable", "src_1")
    await write(store, 2, start=4)
    latest = await store.latest_audit_entries(3)
    assert [entry.entry_id for entry in latest] == [4, 5, 6]
    assert [entry.entry_id for entry in await store.latest_audit_entries(10, action="keys.add")] == [1, 2, 3, 5, 6]
    assert [entry.target for entry in await store.latest_audit_entries(10, action="sources.disable")] == ["src_1"]
    assert await store.latest_audit_entries(10, action="policy.apply") == []


async def test_record_refuses_a_malformed_action_and_an_empty_or_unprintable_actor_or_target(store: Store) -> None:
    for action in ("", "Sources.add", "sources add", "sources.", ".add", "a" * 65):
        with pytest.raises(ValueError, match="Not an audit action"):
            await audit.record(store, MASTER, "alice", action, "src_1")
    with pytest.raises(ValueError, match="actor must be 1 to 128"):
        await audit.record(store, MASTER, "   ", "keys.add", "key_1")
    with pytest.raises(ValueError, match="target must not contain control"):
        await audit.record(store, MASTER, "alice", "keys.add", "key_1\nkeys.revoke key_2")
    assert await store.read_audit_log() == []


async def test_the_database_refuses_to_change_or_delete_an_entry(store: Store, database_url: str) -> None:
    await write(store, 2)
    if is_sqlite(database_url):
        with contextlib.closing(sqlite3.connect(sqlite_path_from_url(database_url), isolation_level=None)) as conn:
            for statement in ("UPDATE audit_log SET actor = 'eve'", "DELETE FROM audit_log WHERE entry_id = 2"):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute(statement)
    else:
        connection = await asyncpg.connect(database_url)
        try:
            for statement in (
                "UPDATE audit_log SET actor = 'eve'",
                "DELETE FROM audit_log WHERE entry_id = 2",
                "TRUNCATE audit_log",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await connection.execute(statement)
        finally:
            await connection.close()
    assert (await audit.verify(store, MASTER)).intact


async def test_concurrent_writers_on_one_database_keep_one_chain(database_url: str) -> None:
    """Several stores (a pool of connections each on PostgreSQL, a writer thread each on SQLite) append at once."""
    writers, each = (3, 8) if is_sqlite(database_url) else (4, 15)
    async with open_store(database_url, create=True) as first:
        await first.migrate()
    stores = [open_store(database_url) for _ in range(writers)]
    async with contextlib.AsyncExitStack() as stack:
        for opened in stores:
            await stack.enter_async_context(opened)
        await asyncio.gather(
            *(
                audit.record(opened, MASTER, f"writer{w}", "keys.add", f"key_{w}_{n}")
                for n in range(each)
                for w, opened in enumerate(stores)
            )
        )
        entries = await stores[0].read_audit_log(limit=10_000)
        result = await audit.verify(stores[0], MASTER)
    assert [entry.entry_id for entry in entries] == list(range(1, writers * each + 1))
    assert sorted(entry.target for entry in entries) == sorted(
        f"key_{w}_{n}" for w in range(writers) for n in range(each)
    )
    assert (result.intact, result.entries, result.head) == (True, writers * each, entries[-1].hash)


# -- verification --------------------------------------------------------------------------------------------------


async def test_verify_finds_an_empty_log_and_a_written_one_intact_and_names_the_head(store: Store) -> None:
    empty = await audit.verify(store, MASTER)
    assert (empty.intact, empty.entries, empty.head) == (True, 0, AUDIT_GENESIS)
    assert empty.summary() == f"audit log intact: 0 entries, head {AUDIT_GENESIS}"
    written = await write(store, 5)
    result = await audit.verify(store, MASTER, anchor=written[2].hash)
    assert (result.intact, result.entries, result.head_entry, result.head) == (True, 5, 5, written[-1].hash)
    assert result.summary() == f"audit log intact: 5 entries, head {written[-1].hash}"


async def test_verify_under_another_master_key_finds_the_first_entry_broken(store: Store) -> None:
    await write(store, 2)
    result = await audit.verify(store, OTHER_KEY)
    assert (result.broken_at, result.entries) == (1, 0)


async def test_an_altered_entry_is_named(store: Store, database_url: str) -> None:
    await write(store, 5)
    await tamper(database_url, """UPDATE audit_log SET details = '{"name":"key 3","n":33}' WHERE entry_id = 3""")
    result = await audit.verify(store, MASTER)
    assert (result.broken_at, result.entries) == (3, 2)
    assert result.summary() == (
        "audit log broken at entry 3: its contents do not match its hash (altered, or written without the master key)"
    )


@pytest.mark.parametrize(
    "change",
    [
        "actor = 'eve'",
        "action = 'keys.revoke'",
        "target = 'key_9'",
        "at = at + 1",
        "details = 'not json'",
        "hash = prev_hash",
    ],
)
async def test_any_column_altered_is_found_at_its_entry(store: Store, database_url: str, change: str) -> None:
    await write(store, 4)
    await tamper(database_url, f"UPDATE audit_log SET {change} WHERE entry_id = 2")  # noqa: S608 -- the test's own
    assert await verdict(store) == (
        2,
        "its contents do not match its hash (altered, or written without the master key)",
    )


async def test_a_deleted_middle_entry_is_named(store: Store, database_url: str) -> None:
    await write(store, 5)
    await tamper(database_url, "DELETE FROM audit_log WHERE entry_id = 3")
    assert await verdict(store) == (3, "deleted (the log goes from entry 2 to entry 4)")


async def test_a_deleted_first_entry_is_named(store: Store, database_url: str) -> None:
    await write(store, 3)
    await tamper(database_url, "DELETE FROM audit_log WHERE entry_id = 1")
    assert await verdict(store) == (1, "deleted (the log starts at entry 2)")


async def test_two_swapped_entries_are_found_at_the_first_of_them(store: Store, database_url: str) -> None:
    await write(store, 5)
    await tamper(
        database_url,
        "UPDATE audit_log SET entry_id = -2 WHERE entry_id = 2",
        "UPDATE audit_log SET entry_id = 2 WHERE entry_id = 3",
        "UPDATE audit_log SET entry_id = 3 WHERE entry_id = -2",
    )
    assert await verdict(store) == (
        2,
        "its previous hash is not the hash of entry 1 (an entry was inserted, deleted or moved before it)",
    )


async def test_swapped_contents_under_kept_ids_are_found_at_the_first_of_them(store: Store, database_url: str) -> None:
    """The rows keep their ids and previous hashes; only what they say moves."""
    written = await write(store, 4)
    second, third = written[1], written[2]
    await tamper(
        database_url,
        f"UPDATE audit_log SET actor = '{third.actor}', target = '{third.target}', details = '{third.details}'"  # noqa: S608
        " WHERE entry_id = 2",
        f"UPDATE audit_log SET actor = '{second.actor}', target = '{second.target}', details = '{second.details}'"  # noqa: S608
        " WHERE entry_id = 3",
    )
    assert (await verdict(store))[0] == 2


async def test_a_forged_entry_inserted_in_the_middle_is_named(store: Store, database_url: str) -> None:
    written = await write(store, 4)
    await tamper(
        database_url,
        "UPDATE audit_log SET entry_id = -(entry_id + 1) WHERE entry_id >= 3",
        "UPDATE audit_log SET entry_id = -entry_id WHERE entry_id < 0",
        insert_sql(forged(3, written[1].hash)),
    )
    assert await verdict(store) == (
        3,
        "its contents do not match its hash (altered, or written without the master key)",
    )


async def test_a_forged_entry_appended_at_the_end_is_named(store: Store, database_url: str) -> None:
    written = await write(store, 3)
    await tamper(
        database_url,
        insert_sql(forged(4, written[-1].hash)),
        f"UPDATE audit_head SET entry_id = 4, hash = '{forged(4, written[-1].hash).hash}'",  # noqa: S608
    )
    assert (await verdict(store))[0] == 4


async def test_a_copied_entry_does_not_verify_in_another_place(store: Store, database_url: str) -> None:
    """Replaying entry 2's row as entry 4 (its hash covers its id): the forger's best move without the key."""
    written = await write(store, 3)
    second = written[1]
    copy = AuditEntry(4, second.at, second.actor, second.action, second.target, second.details, written[2].hash,
                      second.hash)  # fmt: skip
    await tamper(database_url, insert_sql(copy))
    assert (await verdict(store))[0] == 4


async def test_entries_deleted_from_the_end_are_found_through_the_head_record(store: Store, database_url: str) -> None:
    await write(store, 5)
    await tamper(database_url, "DELETE FROM audit_log WHERE entry_id >= 4")
    assert await verdict(store) == (
        4,
        "deleted from the end of the log (the head record names entry 5 as the last written)",
    )


async def test_an_entry_written_after_a_truncation_leaves_the_gap_in_view(store: Store, database_url: str) -> None:
    """The next append chains to the head record, not to the last row left, so it cannot paper over the deletion."""
    await write(store, 5)
    await tamper(database_url, "DELETE FROM audit_log WHERE entry_id >= 4")
    (entry,) = await write(store, 1, start=6)
    assert entry.entry_id == 6
    assert await verdict(store) == (4, "deleted (the log goes from entry 3 to entry 6)")


async def test_a_truncation_with_the_head_record_set_back_needs_the_noted_head(store: Store, database_url: str) -> None:
    """The limit of what the database alone proves: with an older head record copied back (from a backup, say), the
    shortened log verifies; a head hash noted outside the database does not."""
    written = await write(store, 3)
    older = await store.audit_head()
    assert older is not None
    later = await write(store, 2, start=4)
    await tamper(
        database_url,
        "DELETE FROM audit_log WHERE entry_id >= 4",
        f"UPDATE audit_head SET entry_id = {older.entry_id}, hash = '{older.hash}', mac = '{older.mac}'",  # noqa: S608
    )
    assert (await audit.verify(store, MASTER)).intact
    assert (await audit.verify(store, MASTER, anchor=written[1].hash)).intact
    result = await audit.verify(store, MASTER, anchor=later[-1].hash)
    assert (result.intact, result.broken_at, result.entries) == (False, None, 3)
    assert result.summary() == (
        f"audit log broken: the head noted earlier, {later[-1].hash}, is not in it (entries were deleted from its"
        " end, or it was replaced)"
    )


async def test_a_head_record_moved_without_the_key_is_found(store: Store, database_url: str) -> None:
    written = await write(store, 5)
    await tamper(
        database_url,
        "DELETE FROM audit_log WHERE entry_id >= 4",
        f"UPDATE audit_head SET entry_id = 3, hash = '{written[2].hash}'",  # noqa: S608 -- the MAC is the old one
    )
    assert await verdict(store) == (3, "the head record naming it does not match its MAC (altered)")


async def test_a_deleted_head_record_is_found(store: Store, database_url: str) -> None:
    await write(store, 2)
    await tamper(database_url, "DELETE FROM audit_head")
    assert await verdict(store) == (None, "the head record is missing, with 2 entries in the log (deleted)")


async def test_an_emptied_log_is_found_through_its_head_record(store: Store, database_url: str) -> None:
    await write(store, 2)
    await tamper(database_url, "DELETE FROM audit_log")
    assert (await verdict(store))[0] == 1


# -- the rules, without a database ---------------------------------------------------------------------------------


def chain_of(count: int) -> Iterator[AuditEntry]:
    chain, prev_hash = audit.KeyedChain(MASTER.audit_key), AUDIT_GENESIS
    for n in range(1, count + 1):
        draft = AuditDraft(1_700_000_000_000_000 + n, "alice", "keys.add", f"key_{n}", audit.canonical_json({"n": n}))
        entry_hash = chain.entry_hash(n, prev_hash, draft)
        yield AuditEntry(n, draft.at, draft.actor, draft.action, draft.target, draft.details, prev_hash, entry_hash)
        prev_hash = entry_hash


def head_of(entries: list[AuditEntry]) -> AuditHead:
    last = entries[-1]
    return AuditHead(last.entry_id, last.hash, audit.KeyedChain(MASTER.audit_key).head_mac(last.entry_id, last.hash))


def checked(entries: list[AuditEntry], head: AuditHead) -> audit.AuditVerification:
    check = audit.ChainCheck(MASTER.audit_key, head)
    for entry in entries:
        if not check.feed(entry):
            break
    return check.result()


FIELDS = ["at", "actor", "action", "target", "details", "prev_hash", "hash"]


@given(count=st.integers(1, 6), data=st.data())
def test_any_single_change_to_any_entry_is_found_at_that_entry(count: int, data: st.DataObject) -> None:
    entries = list(chain_of(count))
    head = head_of(entries)
    assert checked(entries, head).intact
    index = data.draw(st.integers(0, count - 1), label="entry")
    name = data.draw(st.sampled_from(FIELDS), label="field")
    value = data.draw(st.integers(0, 2**62) if name == "at" else st.text(max_size=70), label="value")
    fields: dict[str, Any] = {field: getattr(entries[index], field) for field in AuditEntry.__dataclass_fields__}
    if value == fields[name] or (name == "details" and _same_json(value, fields[name])):
        return  # no change (details are compared as JSON: another spelling of the same object is the same entry)
    fields[name] = value
    entries[index] = AuditEntry(**fields)
    result = checked(entries, head)
    assert (result.intact, result.broken_at) == (False, index + 1)


@given(count=st.integers(2, 6), data=st.data())
def test_any_entry_removed_or_moved_is_found_at_its_place(count: int, data: st.DataObject) -> None:
    entries = list(chain_of(count))
    head = head_of(entries)
    first = data.draw(st.integers(0, count - 1), label="entry")
    if data.draw(st.booleans(), label="remove"):
        del entries[first]
        expected = first + 1
    else:
        second = data.draw(st.integers(0, count - 1).filter(lambda n: n != first), label="swapped with")
        entries[first], entries[second] = entries[second], entries[first]
        expected = min(first, second) + 1
    result = checked(entries, head)
    assert (result.intact, result.broken_at) == (False, expected)


def _same_json(text: str, other: str) -> bool:
    try:
        return bool(json.loads(text) == json.loads(other))
    except ValueError:
        return False
