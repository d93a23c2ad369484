"""The badge from every organisation's standing kept in memory (``web.public.standings``): the book follows the
store in the order written, answers only while current, and a badge it answers is the badge the store's read gives
at that moment (no ttl, no lag).

The property test runs a gateway with the book beside one without, on one database and one clock, through random
badge views (with and without a tag seen earlier), changes of the subjects' files and time passing (past a day, past
a record's window)."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests.factories import event, make_uscc, now_rfc3339
from tests.gateway.conftest import Gateway, ShiftedClock, backend_of, eventually
from xinyong_gateway.store import ProjectionCommit, Standing, Store, SubjectRow, open_store
from xinyong_gateway.web.app import create_app
from xinyong_gateway.web.public.standings import StandingsBook

RUN_PROJECTOR = False
"""These tests project the inbox themselves."""

HOST = {"Host": "credit.example.cn"}  # the badge links to its host's page: the same host for both gateways
DAY = 86_400.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with open_store(database_url, create=True) as opened:
        await opened.migrate()
        yield opened


def _organisation(n: int, list_name: str, grade: str | None, due: int | None = None) -> SubjectRow:
    status = json.dumps({"list": list_name, "grade": grade})
    return SubjectRow(f"{n:064x}", "uscc", f"9132{n:014d}", f"店{n}", b"sealed", None, "{}", status, due)


async def _commit(store: Store, *rows: SubjectRow) -> None:
    await store.commit_projection(ProjectionCommit(partitions=(), subjects=rows, changes=(), recorded_at=1))


async def test_the_book_reads_a_chunk_at_a_time_and_is_current_only_up_to_the_marker_it_read(
    store: Store, database_url: str
) -> None:
    book = StandingsBook(store.standings_after, chunk=2)
    if backend_of(database_url) == "postgresql":  # no marker, no listing in commit order: never current
        await _commit(store, _organisation(1, "red", "A"))
        assert store.change_marker() is None
        assert not book.catch_up(store.change_marker()) and not book.current(None) and len(book) == 0
        return
    await _commit(store, *(_organisation(n, "none", "A") for n in range(5)))
    marker = store.change_marker()
    assert not book.current(marker)
    assert [book.catch_up(marker) for _ in range(3)] == [False, False, True]  # 2 + 2 + 1 standings
    assert book.current(marker) and len(book) == 5
    assert book.get("913200000000000003") == Standing("none", "A", None)
    assert book.get("913200000000000099") is None

    await _commit(store, _organisation(3, "black", "D", 10**15))
    moved = store.change_marker()
    assert book.current(marker) and not book.current(moved)  # current up to what it read, not past it
    assert book.get("913200000000000003") == Standing("none", "A", None)
    assert book.catch_up(moved) and book.current(moved)
    assert book.get("913200000000000003") == Standing("black", "D", 10**15)
    assert not book.catch_up(None)  # a store that cannot tell: nothing is read


async def test_the_book_is_filled_at_start_up_and_says_so(
    gateway: Gateway, aiohttp_client: Any, database_url: str, gateway_log: io.StringIO
) -> None:
    shops = [{"id_type": "uscc", "id": make_uscc(random.Random(n)), "name": f"海州区第{n}百货店"} for n in range(3)]
    await gateway.post_and_project([event("merchant.registered", merchant=s) for s in shops], "msg_shops")
    settings = gateway.settings.model_copy(update={"projector": False})
    await aiohttp_client(create_app(settings))

    def loaded() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in gateway_log.getvalue().splitlines()]
        return [line for line in lines if line.get("event") == "public.standings_loaded"]

    if backend_of(database_url) == "postgresql":
        await asyncio.sleep(0.2)
        assert loaded() == []  # no book: every badge reads the store
        return

    async def said() -> bool:
        return bool(loaded())

    await eventually(said)
    assert loaded()[0]["organisations"] >= 3


async def _get(gateway: Gateway, path: str, etag: str | None = None) -> tuple[int, str | None, bytes]:
    headers = dict(HOST) | ({"If-None-Match": etag} if etag else {})
    response = await gateway.client.get(path, headers=headers, allow_redirects=False)
    return response.status, response.headers.get("ETag"), await response.read()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_badge_or_page_from_the_book_is_what_the_store_gives_now(
    gateway: Gateway, aiohttp_client: Any, seed: int
) -> None:
    """Random badge and page views (a tag seen earlier in half of them), changes (penalties that list a shop or
    lower its grade, commitments, objections filed and decided, an agency's declaration) and time passing (seconds,
    a day, past a record's window): the gateway with the book answers exactly what the gateway without it answers at
    the same moment, for known, unknown, lower-case and malformed codes alike. A book that stopped following the
    store, or a page from it that is not the page rendered from the store, fails here."""
    rng = random.Random(seed)
    clock = ShiftedClock()
    shops = [{"id_type": "uscc", "id": make_uscc(rng), "name": f"海州区<第{n}>百货&店"} for n in range(4)]  # escaped
    firm = {"id_type": "uscc", "id": make_uscc(rng), "name": "海州工程咨询有限公司"}
    marketplace, regulator = await gateway.add_source("marketplace"), await gateway.add_source("regulator")
    made = []
    for book in (True, False):
        settings = gateway.settings.model_copy(
            update={"public_cache_ttl": 0.0, "public_badge_book": book, "projector": False}
        )
        made.append(Gateway(await aiohttp_client(create_app(settings, clock=clock)), settings, gateway.folder))
    booked, read = made
    await gateway.post_and_project(
        [event("merchant.registered", merchant=s) for s in shops[:3]], "msg_shops", source=marketplace
    )
    codes = [s["id"] for s in [*shops, firm]] + [shops[0]["id"].lower(), "91320000000000000X", "not-a-code"]
    paths = [f"/public/badge/{code}.svg" for code in codes] + [f"/public/subjects/uscc/{code}" for code in codes]
    tags: dict[str, list[str]] = {}
    changes, objections, pages_shown = 0, [], 0
    for _ in range(70):
        roll = rng.random()
        if roll < 0.25:
            changes += 1
            shop = rng.choice(shops)
            kind = rng.random()
            if shop is shops[0] or kind < 0.2:  # the first shop only publishes commitments: its page shows them
                body = event(
                    "commitment.published", merchant=shop, commitment_id=f"CM-{changes}", items=[f"承诺{changes}"]
                )
                await gateway.post_and_project([body], f"msg_c{changes}", source=marketplace)
            elif kind < 0.35:
                await _object(gateway, regulator, shop, objections, changes)
            elif kind < 0.45 and objections:
                objection_id, subject = objections.pop(rng.randrange(len(objections)))
                body = event("objection.decided", subject=subject, objection_id=objection_id, outcome="rejected")
                await gateway.post_and_project([body], f"msg_d{changes}", source=regulator)
            elif kind < 0.5:
                agency = await gateway.add_source("intermediary", uscc=firm["id"])
                body = event("intermediary.declared", agency=firm, declared_at=now_rfc3339(-timedelta(minutes=5)))
                await gateway.post_and_project([body], f"msg_a{changes}", source=agency)
            else:
                body = event("penalty.imposed", subject=shop, severity=rng.choice(["general", "serious", "minor"]))
                await gateway.post_and_project([body], f"msg_p{changes}", source=regulator)
        elif roll < 0.35:
            clock.offset += rng.choice([0.5, DAY, 400 * DAY, 1200 * DAY])
        else:
            path = rng.choice(paths)
            etag = rng.choice(tags[path]) if tags.get(path) and rng.random() < 0.5 else None
            expected = await _get(read, path, etag)
            assert await _get(booked, path, etag) == expected, path
            if expected[1]:
                tags.setdefault(path, []).append(expected[1])
            pages_shown += expected[0] == 200 and "/subjects/" in path
    assert changes > 5 and pages_shown > 3


async def _object(gateway: Gateway, regulator: Any, shop: dict[str, str], filed: list[Any], n: int) -> None:
    """File an objection against one of ``shop``'s records in publicity, if it has any."""
    key = gateway.master_key.subject_key("uscc", shop["id"])
    row = (await gateway.store.load_subjects([key])).get(key)
    reasons = json.loads(row.status)["reasons"] if row is not None else []
    if reasons:
        objection_id = f"OBJ-{n}"
        body = event("objection.filed", subject=shop, objection_id=objection_id, record_id=reasons[0]["record_id"])
        await gateway.post_and_project([body], f"msg_o{n}", source=regulator)
        filed.append((objection_id, shop))


async def test_a_page_from_the_book_changes_its_tag_with_what_it_shows(gateway: Gateway, aiohttp_client: Any) -> None:
    """A summary-only page's tag is made of what it shows: a new name or a new day each give a new tag (a client
    holding the old one gets the new page, not a 304). On SQLite the page comes from the book (caught up on the
    request's turn), on PostgreSQL from the store's read."""
    clock = ShiftedClock()
    settings = gateway.settings.model_copy(update={"public_cache_ttl": 0.0, "projector": False})
    site = Gateway(await aiohttp_client(create_app(settings, clock=clock)), settings, gateway.folder)
    shop = {"id_type": "uscc", "id": make_uscc(random.Random(5)), "name": "海州区百货店"}
    marketplace = await gateway.add_source("marketplace")
    await gateway.post_and_project([event("merchant.registered", merchant=shop)], "msg_1", source=marketplace)
    path = f"/public/subjects/uscc/{shop['id']}"

    status, first, body = await _get(site, path)
    assert status == 200 and first and "海州区百货店" in body.decode()
    assert (await _get(site, path, first))[0] == 304
    renamed = dict(shop, name="海州区百货商店")
    await gateway.post_and_project([event("merchant.registered", merchant=renamed)], "msg_2", source=marketplace)
    status, second, body = await _get(site, path, first)
    assert status == 200 and second not in (None, first) and "海州区百货商店" in body.decode()
    clock.offset += DAY
    status, third, _ = await _get(site, path, second)
    assert status == 200 and third not in (None, first, second)
