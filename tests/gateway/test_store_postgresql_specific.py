"""What only the PostgreSQL store has to get right: several processes on one database.

Each "process" is a :class:`PostgresStore` of its own (its own pool of connections). Tests that need a server
use the suite's ``postgres_server`` / ``postgres_url`` fixtures (tests/conftest.py): a fresh schema per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import asyncpg
import pytest

from tests.gateway.conftest import migration_names
from xinyong_gateway.crypto import master_key_for
from xinyong_gateway.errors import (
    MasterKeyError,
    ProjectionConflictError,
    SchemaNotReadyError,
    StoreUnavailableError,
)
from xinyong_gateway.store import (
    PARTITIONS,
    AppendStatus,
    FeedEntry,
    InboxEntry,
    NewSourceKey,
    PartitionAdvance,
    PartitionClaims,
    PostgresClaims,
    PostgresStore,
    ProjectionCommit,
    SubjectRow,
    open_store,
    to_micros,
)

NOW = to_micros(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
FULL = (1 << PARTITIONS) - 1


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@pytest.fixture
def server_url(postgres_server: str) -> str:
    return postgres_server


@pytest.fixture
def url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture
def schema(postgres_url: str) -> str:
    """The fresh schema of ``url`` (dropped after the test)."""
    return dict(parse_qsl(urlsplit(postgres_url).query))["search_path"]


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(url, rebalance_interval=0.0) as opened:
        await opened.migrate()
        await make_source(opened)
        yield opened


@pytest.fixture
async def other(store: PostgresStore, url: str) -> AsyncIterator[PostgresStore]:
    """A second process on the same database as ``store``."""
    async with PostgresStore(url, rebalance_interval=0.0) as opened:
        yield opened


async def make_source(store: PostgresStore, source_id: str = "src_a") -> str:
    key = NewSourceKey("v1", b"sealed secret", "fingerprint")
    await store.create_source(
        source_id=source_id, kind="marketplace", name="云购商城", uscc=None, rate_limit=None, key=key, now=NOW
    )
    return source_id


def entry(webhook_id: str, body: bytes = b'{"type": "complaint.filed"}', source_id: str = "src_a") -> InboxEntry:
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


def subject(key: str) -> SubjectRow:
    return SubjectRow(key, "uscc", "91320700MA1P4K7L4X", None, b"sealed id", None, "{}", "{}", None)


async def settle(*claims: PartitionClaims, rounds: int = 6) -> list[int]:
    """Let the claims rebalance a few rounds (the interval is 0: every acquire rebalances); the final masks."""
    masks = [0] * len(claims)
    for _ in range(rounds):
        masks = [await claim.acquire() for claim in claims]
    return masks


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- URLs, connecting, the master key (no server needed) ---------------------------------------------------------


def test_postgresql_urls_open_the_postgres_store() -> None:
    assert isinstance(open_store("postgresql://u@db.example:5432/credit"), PostgresStore)
    assert isinstance(open_store("postgres://u@db.example/credit"), PostgresStore)


def test_display_url_hides_the_password_in_the_user_part_and_in_the_query() -> None:
    store = PostgresStore("postgresql://gw:s3cret@db.example:5432/credit?password=other&search_path=xy")
    assert store.display_url == "postgresql://gw@db.example:5432/credit?search_path=xy"


async def test_unreachable_server_is_store_unavailable_naming_the_url_without_password() -> None:
    store = PostgresStore(f"postgresql://gw:s3cret@127.0.0.1:{closed_port()}/credit")
    with pytest.raises(StoreUnavailableError, match=r"^Cannot connect to the PostgreSQL database") as caught:
        await store.open()
    assert store.display_url in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_postgresql_database_without_the_master_key_variable_is_refused_with_one_sentence() -> None:
    with pytest.raises(MasterKeyError, match=r"^XINYONG_MASTER_KEY must be set for this database"):
        master_key_for("postgresql://postgres@127.0.0.1:5432/test", None)


# -- connecting and the schema -----------------------------------------------------------------------------------


async def test_unknown_database_is_store_unavailable_naming_it(server_url: str) -> None:
    missing = urlunsplit(urlsplit(server_url)._replace(path="/xinyong_no_such_database"))
    with pytest.raises(StoreUnavailableError, match=r"xinyong_no_such_database.*does not exist"):
        await PostgresStore(missing).open()


async def test_a_search_path_naming_no_existing_schema_is_refused_with_what_to_do(server_url: str) -> None:
    store = PostgresStore(with_search_path(server_url, "xinyong_no_such_schema"))
    with pytest.raises(StoreUnavailableError, match="create the schema first"):
        await store.open()


async def test_an_unmigrated_schema_is_refused_with_schema_not_ready(url: str) -> None:
    async with PostgresStore(url) as store:
        with pytest.raises(SchemaNotReadyError, match="migrate"):
            await store.require_schema()
        with pytest.raises(SchemaNotReadyError, match="xinyong-gateway migrate"):
            await store.read_inbox()


async def test_tables_are_created_in_the_schema_of_the_search_path(server_url: str, url: str, schema: str) -> None:
    async with PostgresStore(url) as store:
        await store.migrate()
    admin = await asyncpg.connect(server_url)
    try:
        tables = {row[0] for row in await admin.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)}
    finally:
        await admin.close()
    assert {"inbox", "projection_partitions", "subjects", "status_changes", "schema_migrations"} <= tables


async def test_migrate_runs_at_once_take_turns_the_first_applies_everything(url: str) -> None:
    """One run holds the migration lock from its first check to its last migration: the others wait, then find
    nothing to do (not a migration each, which a lock per migration would allow)."""
    async with contextlib.AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(PostgresStore(url)) for _ in range(4)]
        results = await asyncio.gather(*(store.migrate() for store in stores))
        assert sorted(results) == [[], [], [], migration_names("postgresql")]
        assert (await stores[0].schema_status()).ready


async def test_every_partition_starts_at_position_zero(store: PostgresStore) -> None:
    states = await store.partition_states()
    assert sorted(states) == list(range(PARTITIONS))
    assert {(state.position, state.version) for state in states.values()} == {(0, 0)}


async def test_connections_commit_synchronously_even_when_the_url_asks_otherwise(url: str) -> None:
    async with PostgresStore(f"{url}&synchronous_commit=off") as store:
        # White-box on purpose: the setting is per connection and visible only from the store's own connections.
        assert await store._read(lambda conn: conn.fetchval("SHOW synchronous_commit")) == "on"


# -- the inbox across processes ------------------------------------------------------------------------------


async def test_two_processes_receiving_one_webhook_at_once_store_one_row(
    store: PostgresStore, other: PostgresStore
) -> None:
    ids = [f"msg_{n}" for n in range(50)]
    firsts = await asyncio.gather(*(store.append(entry(webhook_id)) for webhook_id in ids))
    seconds = await asyncio.gather(*(other.append(entry(webhook_id)) for webhook_id in ids))
    racing = await asyncio.gather(*(s.append(entry(f"race_{n}")) for n in range(50) for s in (store, other)))
    for pair in [*zip(firsts, seconds, strict=True), *zip(racing[::2], racing[1::2], strict=True)]:
        assert sorted(result.status.value for result in pair) == ["accepted", "duplicate"]
        assert pair[0].seq == pair[1].seq
    assert await store.inbox_count() == 100


async def test_two_processes_racing_different_bodies_for_one_id_accept_one_and_conflict_the_other(
    store: PostgresStore, other: PostgresStore
) -> None:
    one, two = await asyncio.gather(store.append(entry("msg_x", b"one")), other.append(entry("msg_x", b"two")))
    assert sorted([one.status, two.status], key=lambda status: status.value) == [
        AppendStatus.ACCEPTED,
        AppendStatus.CONFLICT,
    ]
    (row,) = await store.read_inbox()
    assert row.sealed_body == (b"sealed:one" if one.status is AppendStatus.ACCEPTED else b"sealed:two")


async def test_in_one_batch_the_first_copy_is_accepted_and_later_ones_are_duplicates_or_conflicts(
    store: PostgresStore,
) -> None:
    results = await asyncio.gather(
        store.append(entry("msg_1", b"a")), store.append(entry("msg_1", b"a")), store.append(entry("msg_1", b"b"))
    )
    assert [result.status for result in results] == [
        AppendStatus.ACCEPTED,
        AppendStatus.DUPLICATE,
        AppendStatus.CONFLICT,
    ]
    assert len({result.seq for result in results}) == 1


async def test_a_reader_paging_by_seq_never_misses_a_row_while_two_processes_append(
    store: PostgresStore, other: PostgresStore
) -> None:
    writing = True

    async def writer(target: PostgresStore, name: str) -> None:
        for n in range(40):
            await target.append(entry(f"{name}_{n}"))

    async def reader() -> list[int]:
        seen: list[int] = []
        while True:
            finished = not writing  # decided before reading: this page then includes every committed row
            rows = await store.read_inbox(seen[-1] if seen else 0, 1000)
            seen += [row.seq for row in rows]
            if finished and not rows:
                return seen

    reading = asyncio.create_task(reader())
    await asyncio.gather(
        *(writer(target, f"{name}{k}") for k in range(12) for name, target in [("a", store), ("b", other)])
    )
    writing = False
    seen = await reading
    stored = [row.seq for row in await store.read_inbox(0, 10_000)]
    assert len(stored) == 2 * 12 * 40
    assert seen == stored


async def test_bulk_calls_commit_in_the_order_they_are_made_and_classify_like_append(store: PostgresStore) -> None:
    await store.append(entry("old", b"stored before"))
    first = store.append_many([entry(f"bulk_{n}") for n in range(6000)] + [entry("bulk_0"), entry("old", b"other")])
    second = store.append_many([entry(f"later_{n}") for n in range(10)])
    first_results, second_results = await asyncio.gather(first, second)
    accepted = [result.seq for result in first_results[:6000]]
    assert {result.status for result in first_results[:6000]} == {AppendStatus.ACCEPTED}
    assert accepted == sorted(accepted)
    assert [result.status for result in first_results[6000:]] == [AppendStatus.DUPLICATE, AppendStatus.CONFLICT]
    assert first_results[6000].seq == accepted[0]
    assert min(result.seq for result in second_results if result.seq) > max(accepted)
    assert await store.inbox_count() == 1 + 6000 + 10


async def test_a_failed_commit_fails_every_append_of_the_batch_with_store_unavailable_and_writes_nothing(
    store: PostgresStore, url: str
) -> None:
    admin = await asyncpg.connect(url)
    await admin.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk is full'; END $$;"
        " CREATE TRIGGER refuse_inbox BEFORE INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION refuse();"
    )
    try:
        outcomes = await asyncio.gather(*(store.append(entry(f"msg_{n}")) for n in range(5)), return_exceptions=True)
        with pytest.raises(StoreUnavailableError, match="disk is full"):
            await store.append_many([entry("bulk")])
    finally:
        await admin.execute("DROP TRIGGER refuse_inbox ON inbox")
        await admin.close()
    assert all(isinstance(outcome, StoreUnavailableError) for outcome in outcomes), outcomes
    assert await store.inbox_count() == 0
    assert (await store.append(entry("msg_0"))).status is AppendStatus.ACCEPTED


# -- projection across processes -----------------------------------------------------------------------------


async def test_the_change_feed_never_shows_an_entry_behind_a_later_one_while_two_projectors_commit(
    store: PostgresStore, other: PostgresStore
) -> None:
    projecting = True

    async def projector(target: PostgresStore, partition: int) -> None:
        key = f"{partition:x}0"
        for n in range(30):
            state = (await target.partition_states())[partition]
            await target.commit_projection(
                ProjectionCommit(
                    partitions=(PartitionAdvance(partition, state, n),),
                    subjects=(subject(key),),
                    changes=tuple(FeedEntry(key, f'{{"n": {n}}}', n) for _ in range(3)),
                    recorded_at=n,
                )
            )

    async def follower() -> list[int]:
        seen: list[int] = []
        while True:
            finished = not projecting
            changes = await store.read_changes(seen[-1] if seen else 0, 1000)
            seen += [change.change_id for change in changes]
            if finished and not changes:
                return seen

    following = asyncio.create_task(follower())
    await asyncio.gather(*(projector(target, p) for p, target in enumerate([store, other] * 4)))
    projecting = False
    seen = await following
    assert len(seen) == 8 * 30 * 3
    assert seen == [change.change_id for change in await store.read_changes(0, 10_000)]


async def test_a_commit_from_a_stale_state_is_refused_even_from_another_process(
    store: PostgresStore, other: PostgresStore
) -> None:
    state = (await store.partition_states())[3]
    await store.commit_projection(
        ProjectionCommit(partitions=(PartitionAdvance(3, state, 1),), subjects=(), changes=(), recorded_at=1)
    )
    with pytest.raises(ProjectionConflictError):
        await other.commit_projection(
            ProjectionCommit(partitions=(PartitionAdvance(3, state, 2),), subjects=(), changes=(), recorded_at=2)
        )
    assert (await other.partition_states())[3].position == 1


# -- claims --------------------------------------------------------------------------------------------------


def held(mask: int) -> set[int]:
    return {partition for partition in range(PARTITIONS) if mask >> partition & 1}


async def test_one_projector_claims_every_partition(store: PostgresStore) -> None:
    async with store.claim_partitions() as claims:
        assert await claims.acquire() == FULL


async def test_two_projectors_split_the_partitions_eight_and_eight(store: PostgresStore, other: PostgresStore) -> None:
    async with store.claim_partitions() as one, other.claim_partitions() as two:
        first, second = await settle(one, two)
    assert (len(held(first)), len(held(second))) == (8, 8)
    assert held(first) | held(second) == set(range(PARTITIONS))


async def test_when_a_projector_goes_away_the_survivor_takes_all_its_partitions(
    store: PostgresStore, other: PostgresStore
) -> None:
    async with store.claim_partitions() as survivor:
        leaving = other.claim_partitions()
        await settle(survivor, leaving)
        await leaving.release()
        await leaving.release()  # a second release is harmless
        assert await survivor.acquire() == FULL


async def test_three_projectors_cover_every_partition_without_sharing_one(
    store: PostgresStore, other: PostgresStore
) -> None:
    async with store.claim_partitions() as one, other.claim_partitions() as two, store.claim_partitions() as three:
        masks = [held(mask) for mask in await settle(one, two, three)]
    assert sorted(len(mask) for mask in masks) == [4, 6, 6]
    assert set().union(*masks) == set(range(PARTITIONS))
    assert sum(len(mask) for mask in masks) == PARTITIONS


async def test_claims_rebalance_at_most_once_per_interval(url: str, store: PostgresStore) -> None:
    now = 0.0

    def clock() -> float:
        return now

    async with PostgresClaims(url, rebalance_interval=1.0, clock=clock) as first:
        assert await first.acquire() == FULL
        async with PostgresClaims(url, rebalance_interval=1.0, clock=clock) as second:
            assert await second.acquire() == 0  # everything is held
            now = 0.5
            assert await first.acquire() == FULL  # too early to look again: the answer from memory
            now = 1.0
            assert len(held(await first.acquire())) == 8  # a second member: gives back its extra partitions
            assert len(held(await second.acquire())) == 8


async def test_projectors_on_two_schemas_of_one_database_do_not_share_claims(
    store: PostgresStore, server_url: str, schema: str
) -> None:
    admin = await asyncpg.connect(server_url)
    await admin.execute(f"CREATE SCHEMA {schema}_b")
    try:
        async with PostgresStore(with_search_path(server_url, f"{schema}_b"), rebalance_interval=0.0) as elsewhere:
            async with store.claim_partitions() as here, elsewhere.claim_partitions() as there:
                assert await settle(here, there) == [FULL] * 2
    finally:
        await admin.execute(f"DROP SCHEMA {schema}_b CASCADE")
        await admin.close()


async def test_a_broken_claims_connection_answers_no_partitions_then_reconnects(
    store: PostgresStore, server_url: str, schema: str
) -> None:
    async with store.claim_partitions() as claims:
        assert await claims.acquire() == FULL
        admin = await asyncpg.connect(server_url)
        try:
            # Claims are advisory locks keyed by the schema's oid: end the session that holds them.
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
                schema,
            )
        finally:
            await admin.close()
        assert killed >= 1
        assert await claims.acquire() == 0
        assert await claims.acquire() == FULL
