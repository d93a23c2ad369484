"""``xinyong.ListMirror`` against the real gateway (both backends): it follows the change feed into a local SQLite
file, resumes from its cursor, matches persons only by pseudonym, answers when the gateway is gone, and says
``review`` rather than ``allow`` when it is stale.

(It lives under ``tests/gateway``: it needs the ``gateway`` fixture of this folder.)"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import stat
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import Gateway, eventually
from xinyong import (
    Client,
    InvalidIdentifierError,
    ListMirror,
    MirrorError,
    PermissionDeniedError,
    TransportError,
    ric_pseudonym,
)
from xinyong_gateway.access import IssuedApiKey
from xinyong_gateway.credit.policy import default_policy

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

POLICY = default_policy()
BLACK = {"id_type": "uscc", "id": make_uscc(random.Random(41)), "name": "假货旗舰店"}
WATCH = {"id_type": "uscc", "id": make_uscc(random.Random(42)), "name": "刷单小店"}
CLEAN = {"id_type": "uscc", "id": make_uscc(random.Random(43)), "name": "新开小店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(44)), "name": "欧阳娜娜"}
NEVER = {"id_type": "uscc", "id": make_uscc(random.Random(45))}
SUBJECTS = [BLACK, WATCH, CLEAN, PERSON, NEVER]


async def seed(gateway: Gateway) -> None:
    await gateway.post_and_project(
        [
            event("listing.violation", merchant=BLACK, kind="counterfeit", confirmed=True),
            event("review.manipulation_detected", merchant=WATCH, kind="fake_order", order_count=12, confirmed=True),
            event("merchant.registered", merchant=CLEAN),
            event("review.manipulation_detected", merchant=PERSON, kind="fake_traffic", order_count=2, confirmed=True),
        ],
        "msg_seed",
    )


async def many_changes(gateway: Gateway, count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` new shops, each registered and so named by the feed once."""
    rng = random.Random(prefix)
    shops = [{"id_type": "uscc", "id": make_uscc(rng), "name": f"店铺{n}"} for n in range(count)]
    await gateway.post_and_project([event("merchant.registered", merchant=shop) for shop in shops], prefix)
    return shops


def mirror_rows(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT * FROM mirror_entries ORDER BY subject").fetchall()


def stored_cursor(path: Path) -> str | None:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        row = connection.execute("SELECT value FROM mirror_meta WHERE name = 'cursor'").fetchone()
    return None if row is None else str(row[0])


def failing_after(requests: int) -> aiohttp.TraceConfig:
    """A session trace that lets ``requests`` requests through, then fails every later one as a broken
    connection would (the transport, injected; the SDK's code is untouched)."""
    seen = 0

    async def on_request_start(session: Any, context: SimpleNamespace, params: Any) -> None:
        nonlocal seen
        seen += 1
        if seen > requests:
            raise aiohttp.ClientConnectionError("connection reset (injected)")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace


@pytest.fixture
def mirror_path(tmp_path: Path) -> Path:
    return tmp_path / "mirror" / "lists.db"


@pytest.fixture(autouse=True)
def _mirror_folder(mirror_path: Path) -> Iterator[None]:
    mirror_path.parent.mkdir()
    yield


async def key_for(gateway: Gateway) -> IssuedApiKey:
    return await gateway.add_api_key(["screen", "changes"])


# -- the mirror answers as the gateway does ------------------------------------------------------------------


async def test_after_a_sync_the_mirror_answers_what_the_gateway_answers(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    async with Client(gateway.base_url, key.api_key) as client:
        mirror = ListMirror(mirror_path, client, key.lookup_secret)
        assert await mirror.sync() == 4
        online = [await client.check_onboarding(subject) for subject in SUBJECTS]
    with mirror:
        offline = [mirror.check_onboarding(subject) for subject in SUBJECTS]
        freshness = mirror.freshness
    assert [d.decision for d in offline] == ["deny", "review", "allow", "review", "allow"]
    assert [d.decision for d in offline] == [d.decision for d in online]
    for mine, theirs in zip(offline, online, strict=True):
        assert mine.notes == ()
        assert mine.status.model_dump(exclude={"as_of"}) == theirs.status.model_dump(exclude={"as_of"}) | {
            "subject": theirs.status.subject.model_dump()
            | ({"name": None} if mine.status.subject.id_type == "ric" else {})
        }
        assert mine.status.as_of == freshness.synced_at
    assert offline[3].status.subject.id == PERSON["id"][:6] + "********" + PERSON["id"][-4:]
    assert offline[4].status.policy_version == POLICY.version  # never named by the feed: the newest policy seen
    assert (freshness.entries, freshness.stale, freshness.max_age) == (4, False, timedelta(hours=1))
    assert freshness.cursor is not None and freshness.age is not None and freshness.age < timedelta(minutes=1)


async def test_a_person_is_found_through_the_pseudonym_of_the_ric_the_caller_gives(
    gateway: Gateway, mirror_path: Path
) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        await mirror.sync()
        spaced = {"id_type": "ric", "id": " ".join(PERSON["id"][i : i + 6] for i in range(0, 18, 6)).lower()}
        assert mirror.status(spaced).list == "watch"  # normalised as the gateway normalises it
        other = {"id_type": "ric", "id": make_ric(random.Random(46))}
        assert mirror.status(other).list == "none"
        with pytest.raises(InvalidIdentifierError, match="RIC check digit is wrong"):
            mirror.status({"id_type": "ric", "id": PERSON["id"][:-1] + ("1" if PERSON["id"][-1] != "1" else "2")})
    keys = [row[0] for row in mirror_rows(mirror_path)]
    assert "ric:" + ric_pseudonym(PERSON["id"], key.lookup_secret) in keys


async def test_the_mirror_file_never_holds_a_resident_id_or_a_persons_name(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        await mirror.sync()
        assert mirror.check_onboarding(PERSON).decision == "review"  # lookups write nothing either
        files = sorted(mirror_path.parent.iterdir())
        assert {file.name for file in files} >= {"lists.db", "lists.db-wal"}  # the log is read too, before a checkpoint
        stored = b"".join(file.read_bytes() for file in files)
    masked = PERSON["id"][:6] + "********" + PERSON["id"][-4:]
    for needle in (PERSON["id"], PERSON["name"], masked, PERSON["name"][0] + "***"):
        assert needle.encode() not in stored, needle
    assert BLACK["id"].encode() in stored  # the scan does read the data: a business is kept by its code
    assert ric_pseudonym(PERSON["id"], key.lookup_secret).encode() in stored


async def test_the_file_and_its_log_are_private_to_the_owner(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        await mirror.sync()
        modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in mirror_path.parent.iterdir()}
    assert set(modes) >= {"lists.db", "lists.db-wal", "lists.db-shm"}
    assert set(modes.values()) == {0o600}, modes


# -- resuming, crashes -----------------------------------------------------------------------------------------


async def test_a_mirror_closed_and_reopened_resumes_from_its_cursor(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key, page_size=3) as mirror:
        assert await mirror.sync() == 4
        cursor = mirror.freshness.cursor
    later = await many_changes(gateway, 7, "msg_later")
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key, page_size=3) as mirror:
        assert mirror.freshness.cursor == cursor
        assert mirror.check_onboarding(BLACK).decision == "deny"  # answers from the file before any sync
        assert await mirror.sync() == 7  # only what came after the cursor
        assert await mirror.sync() == 0
        assert [mirror.status(shop).grade for shop in later] == ["A"] * 7
        assert mirror.freshness.entries == 11


async def test_a_sync_broken_off_between_pages_skips_nothing_when_resumed(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    shops = await many_changes(gateway, 9, "msg_more")
    key = await key_for(gateway)
    async with aiohttp.ClientSession(trace_configs=[failing_after(2)]) as session:
        broken = Client(gateway.base_url, key.api_key, session=session, max_attempts=1)
        with ListMirror(mirror_path, broken, key.lookup_secret, page_size=4) as mirror:
            with pytest.raises(TransportError):
                await mirror.sync()
            assert (mirror.freshness.entries, mirror.freshness.synced_at) == (8, None)
            with pytest.raises(MirrorError, match="never completed a sync"):  # a partial copy never answers
                mirror.check_onboarding(CLEAN)
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key, page_size=4) as mirror:
        assert await mirror.sync() == 5
        assert mirror.freshness.entries == 13
        assert [mirror.status(shop).grade for shop in shops] == ["A"] * 9
    fresh = mirror_path.with_name("fresh.db")
    with ListMirror(fresh, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        await mirror.sync()
    assert mirror_rows(mirror_path) == mirror_rows(fresh)


async def test_a_page_that_fails_midway_leaves_neither_its_entries_nor_its_cursor(
    gateway: Gateway, mirror_path: Path
) -> None:
    """A crash inside a page's transaction (here: the file refuses one row, set up from another connection)."""
    await seed(gateway)
    shops = await many_changes(gateway, 6, "msg_six")
    key = await key_for(gateway)
    options: dict[str, Any] = {"api_key": key.api_key, "page_size": 4}
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, **options) as mirror:
        with contextlib.closing(sqlite3.connect(mirror_path)) as other:
            other.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON mirror_entries"
                f" WHEN NEW.subject = 'uscc:{shops[3]['id']}' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
            other.commit()
        with pytest.raises(MirrorError, match="disk I/O error"):
            await mirror.sync()
        # Page 1 (4 entries) committed; page 2 (shops 0..3) failed at its last row: none of it is there.
        assert mirror.freshness.entries == 4
        first_page_cursor = mirror.freshness.cursor
        assert not {f"uscc:{shop['id']}" for shop in shops} & {row[0] for row in mirror_rows(mirror_path)}
        with contextlib.closing(sqlite3.connect(mirror_path)) as other:
            other.execute("DROP TRIGGER refuse")
            other.commit()
        assert mirror.freshness.cursor == first_page_cursor
        assert await mirror.sync() == 6
        assert [mirror.status(shop).grade for shop in shops] == ["A"] * 6
        assert mirror.freshness.entries == 10


async def test_two_mirrors_syncing_one_file_at_once_end_with_the_latest_status(
    gateway: Gateway, mirror_path: Path
) -> None:
    await seed(gateway)
    await many_changes(gateway, 12, "msg_twelve")
    regulator = await gateway.add_source("regulator")
    penalty = event("penalty.imposed", subject=CLEAN, severity="serious", decision_no="连市监罚〔2026〕9号")
    assert (await gateway.post(regulator, penalty, webhook_id="msg_penalty")).status == 202
    await gateway.project()  # CLEAN: none, then black, later in the feed
    key = await key_for(gateway)
    options: dict[str, Any] = {"api_key": key.api_key, "page_size": 2}
    with (
        ListMirror(mirror_path, gateway.base_url, key.lookup_secret, **options) as one,
        ListMirror(mirror_path, gateway.base_url, key.lookup_secret, **options) as two,
    ):
        applied = await asyncio.gather(one.sync(), two.sync())
        assert sum(applied) == 17  # each entry applied once, by one of them
        assert one.check_onboarding(CLEAN).decision == "deny"
        assert two.freshness.entries == 16


async def test_a_mirror_without_a_client_reads_what_another_one_syncs(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    with (
        ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key) as syncing,
        ListMirror(mirror_path, None, key.lookup_secret) as reading,
    ):
        with pytest.raises(MirrorError, match="never completed a sync"):
            reading.status(BLACK)
        await syncing.sync()
        assert reading.check_onboarding(BLACK).decision == "deny"
        with pytest.raises(MirrorError, match="cannot sync"):
            await reading.sync()


# -- the gateway gone, stale mirrors ---------------------------------------------------------------------------


async def test_when_the_gateway_stops_the_mirror_still_answers(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    base_url = gateway.base_url
    mirror = ListMirror(mirror_path, base_url, key.lookup_secret, api_key=key.api_key)
    with mirror:
        await mirror.sync()
        await gateway.client.close()  # the gateway's server is gone: nothing listens on its port any more
        async with Client(base_url, key.api_key, max_attempts=1) as client:
            with pytest.raises(TransportError):
                await client.check_onboarding(BLACK)
            with pytest.raises(TransportError):
                await ListMirror(mirror_path, client, key.lookup_secret).sync()
        decisions = [mirror.check_onboarding(subject).decision for subject in SUBJECTS]
    assert decisions == ["deny", "review", "allow", "review", "allow"]


async def test_run_follows_the_feed_and_keeps_answering_through_an_outage(
    gateway: Gateway, mirror_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    async with aiohttp.ClientSession() as session:
        client = Client(gateway.base_url, key.api_key, session=session, max_attempts=1)
        with ListMirror(mirror_path, client, key.lookup_secret) as mirror:
            task = asyncio.create_task(mirror.run(interval=0.02))
            try:

                async def allowed() -> bool:
                    with contextlib.suppress(MirrorError):
                        return mirror.check_onboarding(CLEAN).decision == "allow"
                    return False

                await eventually(allowed)
                regulator = await gateway.add_source("regulator")
                penalty = event("penalty.imposed", subject=CLEAN, severity="serious", decision_no="连市监罚〔2026〕8号")
                assert (await gateway.post(regulator, penalty, webhook_id="msg_penalty")).status == 202
                await gateway.project()

                async def denied() -> bool:
                    return mirror.check_onboarding(CLEAN).decision == "deny"

                await eventually(denied)
                await gateway.client.close()  # an outage: the task logs, waits and tries again
                before = mirror.freshness.synced_at
                await asyncio.sleep(0.2)
                assert not task.done()
                assert mirror.freshness.synced_at == before
                assert mirror.check_onboarding(CLEAN).decision == "deny"
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def test_run_ends_with_the_error_when_the_key_cannot_read_the_feed(gateway: Gateway, mirror_path: Path) -> None:
    screen_only = await gateway.add_api_key(["screen"])
    with ListMirror(mirror_path, gateway.base_url, screen_only.lookup_secret, api_key=screen_only.api_key) as mirror:
        with pytest.raises(PermissionDeniedError):
            await asyncio.wait_for(mirror.run(interval=0.01), 10)


async def test_a_stale_mirror_answers_review_instead_of_allow_and_says_why(gateway: Gateway, mirror_path: Path) -> None:
    await seed(gateway)
    key = await key_for(gateway)
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        await mirror.sync()
    later = time.time() + 3 * 3600 + 12 * 60
    stale = ListMirror(mirror_path, None, key.lookup_secret, max_age=timedelta(minutes=30), clock=lambda: later)
    with stale:
        clean, black, watch = (stale.check_onboarding(s) for s in (CLEAN, BLACK, WATCH))
        freshness = stale.freshness
    assert (clean.decision, black.decision, watch.decision) == ("review", "deny", "review")
    assert clean.status.list == "none"  # the status is still the mirror's; only the decision is more careful
    for decision in (clean, black, watch):
        [note] = decision.notes
        assert note.startswith("The list mirror is stale: its last sync was 3 h 12 min ago (")
        assert "over its limit of 30 min" in note
    assert freshness.stale and freshness.age is not None and freshness.age > timedelta(hours=3)
    with ListMirror(mirror_path, None, key.lookup_secret, max_age=timedelta(hours=4), clock=lambda: later) as fresh:
        assert fresh.check_onboarding(CLEAN).decision == "allow"
        assert not fresh.freshness.stale


# -- files that are not this key's mirror ---------------------------------------------------------------------


async def test_a_mirror_refuses_another_keys_lookup_secret_and_files_that_are_not_mirrors(
    gateway: Gateway, mirror_path: Path
) -> None:
    key = await key_for(gateway)
    other = await key_for(gateway)
    with ListMirror(mirror_path, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        await mirror.sync()
    with pytest.raises(MirrorError, match="another API key's lookup secret"):
        ListMirror(mirror_path, None, other.lookup_secret)
    text = mirror_path.with_name("notes.txt")
    text.write_text("not a database, just notes\n" * 100)
    with pytest.raises(MirrorError, match="cannot be used as a list mirror"):
        ListMirror(text, None, key.lookup_secret)
    with pytest.raises(MirrorError, match="Cannot open"):
        ListMirror(mirror_path.parent / "no" / "such" / "folder.db", None, key.lookup_secret)
    closed = ListMirror(mirror_path, None, key.lookup_secret)
    closed.close()
    closed.close()  # idempotent
    with pytest.raises(MirrorError, match="closed"):
        closed.status(BLACK)
