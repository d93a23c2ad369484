"""``ListMirror.apply``: a pushed change lands exactly as a polled one, and push and poll meet in any order.

The property needs a feed that grows between steps, many times over, which a gateway per example cannot give in
time: a small aiohttp handler on 127.0.0.1 serves ``GET /v1/lists/changes`` from a list of entries (as
``bench/mirror.py`` does), and the mirror reads it through the SDK's real ``Client`` over HTTP. The entries are
validated by the SDK's wire model on the way in, as the gateway's are. ``tests/gateway/test_notifications.py`` does
the same with a live gateway on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from xinyong import Client, ListChange, ListMirror, MirrorError, parse_notification
from xinyong.queries import ListChangesPage

LOOKUP_SECRET = "xyls_" + "3c" * 32
NOW = 1_764_942_239.0
SUBJECTS: list[dict[str, Any]] = [
    {"id_type": "uscc", "id": "91291417QEFLCR639C", "name": "假货旗舰店"},
    {"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "name": "诚信老店"},
    {"id_type": "ric", "pseudonym": "ffc8eec6de97cde2c37ea2ac6702cb875b53e17bd97025f5715ecfa18a9cfbfa"},
]
MEASURES = {"black": ["refuse_onboarding", "close_store"], "watch": ["search_demotion"], "red": ["search_boost"]}


def entry(cursor: int, subject: int, listed: str) -> dict[str, Any]:
    moment = f"2026-12-05T13:{cursor // 60 % 60:02d}:{cursor % 60:02d}+00:00"
    return {
        "cursor": str(cursor),
        "effective_at": moment,
        "subject": SUBJECTS[subject],
        "list": listed,
        "grade": {"black": "D", "watch": "B", "red": "A"}.get(listed, "A"),
        "score": {"black": 45, "watch": 85}.get(listed, 100),
        "measures": MEASURES.get(listed, []),
        "reasons": [],
        "disputed": False,
        "policy_version": f"lyg-2026.{cursor}",
        "as_of": moment,
    }


class Feed:
    """The entries a feed has published so far (``visible`` of them), served over HTTP."""

    def __init__(self, entries: Sequence[dict[str, Any]]) -> None:
        self.entries = list(entries)
        self.visible = 0

    async def changes(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "100"))
        page = [item for item in self.entries[: self.visible] if int(item["cursor"]) > after][:limit]
        body = {"changes": page, "next": page[-1]["cursor"] if page else str(after)}
        return web.json_response(body)


@contextlib.asynccontextmanager
async def serving(feed: Feed) -> AsyncIterator[Client]:
    app = web.Application()
    app.router.add_get("/v1/lists/changes", feed.changes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with Client(f"http://127.0.0.1:{runner.addresses[0][1]}", "xyk_test") as client:
            yield client
    finally:
        await runner.cleanup()


def contents(path: Path) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT * FROM mirror_entries ORDER BY subject").fetchall()
        meta = dict(connection.execute("SELECT name, value FROM mirror_meta").fetchall())
    return rows, meta


def subject_key(item: dict[str, Any]) -> str:
    subject = item["subject"]
    return str("uscc:" + subject["id"] if subject["id_type"] == "uscc" else "ric:" + subject["pseudonym"])


def latest(items: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Each subject's latest cursor among ``items``."""
    found: dict[str, int] = {}
    for item in items:
        key = subject_key(item)
        found[key] = max(found.get(key, 0), int(item["cursor"]))
    return found


def held(path: Path) -> dict[str, int]:
    """Each subject's cursor in the mirror file (the feed position of the entry it holds)."""
    rows, _ = contents(path)
    return {row[0]: row[4] for row in rows}


def mirror(path: Path, client: Client) -> ListMirror:
    return ListMirror(path, client, LOOKUP_SECRET, page_size=3, clock=lambda: NOW)


def pushed(item: dict[str, Any], sequence: int = 1) -> ListChange:
    """The change a notification of ``item`` carries (parsed from the notification's body, as a receiver would)."""
    body = {"type": "list.changed", "timestamp": "2026-12-05T14:00:00Z", "data": item | {"sequence": sequence}}
    return parse_notification(json.dumps(body).encode()).data


async def poll_alone(
    folder: Path, entries: Sequence[dict[str, Any]], feed: Feed, client: Client
) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    """What one sync of the whole feed gives, in a file of its own."""
    feed.entries, feed.visible = list(entries), len(entries)
    with mirror(folder / "polled.db", client) as only_polled:
        await only_polled.sync()
    return contents(folder / "polled.db")


def published(drawn: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
    """Entries with increasing cursors (steps of 1 to 3, as a feed filtered for one key may skip numbers)."""
    cursor, items = 0, []
    for step, subject, listed in drawn:
        cursor += step
        items.append(entry(cursor, subject, listed))
    return items


feeds = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, len(SUBJECTS) - 1), st.sampled_from(["black", "watch", "red", "none"])),
    min_size=1,
    max_size=10,
).map(published)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 9)),
        st.tuples(st.just("publish"), st.integers(1, 4)),
        st.tuples(st.just("poll"), st.just(0)),
    ),
    max_size=25,
)


@given(entries=feeds, interleaving=steps)
def test_push_and_poll_in_any_interleaving_end_equal_to_poll_alone(
    entries: list[dict[str, Any]], interleaving: list[tuple[str, int]]
) -> None:
    """Pushes of any entries (published yet or not, again and again, in any order) between syncs of a growing feed,
    then a last sync: the file holds exactly what a sync alone gives; and after every step, each subject's entry is
    the latest the mirror was given, pushed or polled (an older one never replaces a newer one, even for a while)."""

    async def scenario(folder: Path) -> None:
        feed = Feed(entries)
        known: set[int] = set()
        async with serving(feed) as client:
            with mirror(folder / "mixed.db", client) as mixed:
                for action, argument in interleaving:
                    if action == "push":
                        await mixed.apply(pushed(entries[argument % len(entries)]))
                        known.add(argument % len(entries))
                    elif action == "publish":
                        feed.visible = min(len(entries), feed.visible + argument)
                    else:
                        await mixed.sync()
                        known.update(range(feed.visible))
                    assert held(folder / "mixed.db") == latest(entries[n] for n in known)
                feed.visible = len(entries)
                await mixed.sync()
            assert contents(folder / "mixed.db") == await poll_alone(folder, entries, feed, client)

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder)))


@given(entries=feeds, order=st.lists(st.integers(0, 9), max_size=30))
def test_pushes_alone_in_any_order_hold_the_latest_entry_of_each_subject_as_a_sync_would(
    entries: list[dict[str, Any]], order: list[int]
) -> None:
    """Every entry pushed once, plus any repeats in any order, never synced: the entries equal a sync's, and the
    feed cursor is untouched (the next sync still reads the whole feed)."""

    async def scenario(folder: Path) -> None:
        sequence = [n % len(entries) for n in order] + list(reversed(range(len(entries))))
        feed = Feed([])
        async with serving(feed) as client:
            with mirror(folder / "pushed.db", client) as only_pushed:
                for n in sequence:
                    await only_pushed.apply(pushed(entries[n]))
            rows, meta = contents(folder / "pushed.db")
            assert rows == (await poll_alone(folder, entries, feed, client))[0]
        assert "cursor" not in meta and "synced_at" not in meta

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder)))


async def test_apply_says_whether_the_mirror_changed(tmp_path: Path) -> None:
    first, second = entry(1, 0, "watch"), entry(2, 0, "black")
    feed = Feed([first, second])
    async with serving(feed) as client:
        with mirror(tmp_path / "lists.db", client) as lists:
            assert await lists.apply(pushed(second)) is True
            assert await lists.apply(pushed(second)) is False  # the same entry again
            assert await lists.apply(pushed(first)) is False  # an older entry of the subject
            feed.visible = 1
            assert await lists.sync() == 1  # the feed's older entry does not overwrite the pushed one
            assert lists.status({"id_type": "uscc", "id": SUBJECTS[0]["id"]}).list == "black"
            feed.visible = 2
            await lists.sync()
            third = entry(3, 1, "red")
            assert await lists.apply(pushed(third)) is True
            assert await lists.apply(pushed(entry(2, 1, "black"))) is False  # synced past cursor 2 already
            assert lists.status({"id_type": "uscc", "id": SUBJECTS[1]["id"]}).list == "red"
            assert lists.freshness.cursor == "2"  # a push never moves the feed cursor


async def test_a_whole_notification_can_be_applied_and_a_person_is_found_by_pseudonym(tmp_path: Path) -> None:
    item = entry(5, 2, "watch")
    body = {"type": "list.changed", "timestamp": "2026-12-05T14:00:00Z", "data": item | {"sequence": 9}}
    notification = parse_notification(json.dumps(body).encode())
    async with serving(Feed([item])) as client:
        with mirror(tmp_path / "lists.db", client) as lists:
            assert await lists.apply(notification) is True
            with pytest.raises(MirrorError, match="never completed a sync"):
                lists.status({"id_type": "uscc", "id": SUBJECTS[0]["id"]})  # a push alone is no complete copy
    rows, _ = contents(tmp_path / "lists.db")
    assert [(row[0], json.loads(row[2])["list"], row[4]) for row in rows] == [
        ("ric:" + SUBJECTS[2]["pseudonym"], "watch", 5)
    ]


async def test_a_mirror_file_of_an_earlier_sdk_gains_the_cursor_column_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "lists.db"
    feed = Feed([entry(1, 0, "watch"), entry(2, 1, "red")])
    feed.visible = 2
    async with serving(feed) as client:
        with mirror(path, client) as lists:
            await lists.sync()
        with contextlib.closing(sqlite3.connect(path)) as connection:  # the file as the SDK before pushes made it
            connection.execute("ALTER TABLE mirror_entries DROP COLUMN cursor")
            connection.commit()
        with mirror(path, client) as lists:
            assert await lists.apply(pushed(entry(1, 0, "black"))) is False  # at or below the synced cursor
            assert await lists.apply(pushed(entry(3, 0, "black"))) is True
            assert lists.status({"id_type": "uscc", "id": SUBJECTS[0]["id"]}).list == "black"
            assert lists.status({"id_type": "uscc", "id": SUBJECTS[1]["id"]}).list == "red"


async def test_a_feed_whose_cursors_are_not_numbers_is_refused_rather_than_misordered(tmp_path: Path) -> None:
    odd = ListChangesPage.model_validate_json(json.dumps({"changes": [entry(1, 0, "black")], "next": "1"}))
    change = odd.changes[0].model_copy(update={"cursor": "abc"})
    async with serving(Feed([])) as client:
        with mirror(tmp_path / "lists.db", client) as lists:
            with pytest.raises(MirrorError, match="not a decimal number"):
                await lists.apply(change)
