"""The public site's micro-cache (``web.public.answers``): a subject's page and badge are reused for
``public_cache_ttl`` seconds, and past that while the store has committed nothing (SQLite); every answer served is
one the slow path (no reuse) gives now or gave within the ttl.

The property test runs a gateway that reuses answers beside one that does not, on one database and one clock, through
random views, revalidations, badge views, changes of the subjects' files and waits (longer than the ttl too)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event, make_uscc
from tests.gateway.conftest import Gateway, ShiftedClock
from xinyong_gateway.store import to_micros
from xinyong_gateway.web.app import create_app
from xinyong_gateway.web.public.answers import Answer, AnswerCache
from xinyong_gateway.web.public.views import cst_day, cst_day_at, horizon

RUN_PROJECTOR = False
"""These tests project the inbox themselves."""

TTL = 2.0
HOST = {"Host": "credit.example.cn"}  # the badge links to its host's page: the same host for both gateways


# -- the cache itself -----------------------------------------------------------------------------------------


def test_an_answer_is_kept_for_the_ttl_and_not_a_moment_longer() -> None:
    now = [100.0]
    cache = AnswerCache(ttl=2.0, entries=10, clock=lambda: now[0])
    cache.put("a", Answer('"1"', b"one"))
    now[0] = 101.999
    assert cache.get("a") == Answer('"1"', b"one")
    now[0] = 102.0
    assert cache.get("a") is None and len(cache) == 0


def test_a_clock_that_went_back_makes_an_answer_stale() -> None:
    now = [100.0]
    cache = AnswerCache(ttl=2.0, entries=10, clock=lambda: now[0])
    cache.put("a", Answer('"1"', None))
    now[0] = 99.0
    assert cache.get("a") is None


def test_with_a_ttl_of_zero_nothing_is_kept() -> None:
    cache = AnswerCache(ttl=0.0, entries=10, clock=lambda: 100.0)
    cache.put("a", Answer('"1"', b"one"))
    assert cache.get("a") is None and len(cache) == 0


def test_past_its_bound_the_cache_forgets_the_answer_stored_first() -> None:
    cache = AnswerCache(ttl=60.0, entries=3, clock=lambda: 100.0)
    for key in "abc":
        cache.put(key, Answer(f'"{key}"', None))
    cache.put("a", Answer('"a2"', None))  # stored anew: now the newest
    cache.put("d", Answer('"d"', None))
    assert len(cache) == 3
    assert cache.get("b") is None
    assert [cache.get(key) for key in "acd"] == [Answer('"a2"', None), Answer('"c"', None), Answer('"d"', None)]


def test_a_run_of_one_off_answers_pushes_out_none_asked_for_again() -> None:
    """A segmented LRU: answers asked for again are protected (four fifths of the bound) from a crawler's scan; past
    that share, the least recently asked for goes back on probation, and from there, first."""
    cache = AnswerCache(ttl=60.0, entries=5, clock=lambda: 100.0)
    for key in ("p1", "p2", "p3"):
        cache.put(key, Answer(f'"{key}"', None))
        assert cache.get(key) == Answer(f'"{key}"', None)  # asked for again: protected
    for n in range(100):  # one-off views
        cache.put(f"once{n}", Answer(f'"{n}"', None))
    assert len(cache) == 5
    assert [cache.get(key) for key in ("p1", "p2", "p3")] == [Answer(f'"{k}"', None) for k in ("p1", "p2", "p3")]
    assert cache.get("once97") is None and cache.get("once98") == Answer('"98"', None)  # on probation: the newest
    cache.put("p4", Answer('"p4"', None))
    assert cache.get("p4") is not None  # a fifth protected: over four fifths of 5, p1 (least recent) is demoted
    for n in range(2):
        cache.put(f"again{n}", Answer('"x"', None))
    assert cache.get("p1") is None  # demoted to probation, then the first to go
    assert all(cache.get(key) is not None for key in ("p2", "p3", "p4"))


def test_keep_takes_the_tag_first_and_the_body_from_the_second_view_on() -> None:
    now = [100.0]
    cache = AnswerCache(ttl=2.0, entries=10, clock=lambda: now[0])
    cache.keep("a", '"1"', b"one")
    assert cache.get("a") == Answer('"1"', None)  # one view: the tag only
    cache.keep("a", '"1"', None)  # a 304: nothing new to keep
    assert cache.get("a") == Answer('"1"', None)
    cache.keep("a", '"1"', b"one")
    assert cache.get("a") == Answer('"1"', b"one")  # the second view of the same tag: the body too
    cache.keep("a", '"2"', b"two")
    assert cache.get("a") == Answer('"2"', None)  # another tag: a first view again
    now[0] = 103.0
    cache.keep("a", '"2"', b"two")
    assert cache.get("a") == Answer('"2"', None)  # the earlier view expired: a first view again


class Basis:
    """What answers are worked out from, as a test moves it; counts how often the cache asked."""

    def __init__(self) -> None:
        self.value: object | None = 1
        self.asked = 0

    def __call__(self) -> object | None:
        self.asked += 1
        return self.value


def test_past_its_ttl_an_answer_is_good_while_its_basis_holds_and_its_horizon_has_not_come() -> None:
    now, basis = [100.0], Basis()
    cache = AnswerCache(ttl=2.0, entries=10, clock=lambda: now[0], basis=basis)
    kept_with = cache.basis()
    cache.put("a", Answer('"1"', b"one"), basis=kept_with, until=110.0)
    asked = basis.asked
    now[0] = 101.0
    assert cache.get("a") == Answer('"1"', b"one") and basis.asked == asked  # within the ttl: not asked
    now[0] = 105.0
    assert cache.get("a") == Answer('"1"', b"one") and basis.asked == asked + 1  # past it: asked, still good
    now[0] = 106.9
    assert cache.get("a") == Answer('"1"', b"one") and basis.asked == asked + 1  # stamped anew at 105: not asked
    now[0] = 109.5
    basis.value = 2  # something was committed
    assert cache.get("a") is None and len(cache) == 0

    cache.put("b", Answer('"2"', None), basis=cache.basis(), until=111.0)
    now[0] = 111.4  # past its horizon (the end of its day, or its subject's next_change_at), within the ttl: good
    assert cache.get("b") == Answer('"2"', None)
    now[0] = 111.5  # past the ttl too: its basis holds, but never past its horizon
    assert cache.get("b") is None


def test_without_a_basis_an_answer_is_good_for_the_ttl_only() -> None:
    now, basis = [100.0], Basis()
    basis.value = None  # the store cannot tell (PostgreSQL)
    cache = AnswerCache(ttl=2.0, entries=10, clock=lambda: now[0], basis=basis)
    cache.put("a", Answer('"1"', b"one"), basis=cache.basis(), until=1e12)
    now[0] = 102.0
    assert cache.get("a") is None
    off = AnswerCache(ttl=0.0, entries=10, clock=lambda: now[0], basis=Basis())
    assert off.basis() is None  # off: nothing kept, nothing asked


def test_a_clock_that_went_back_makes_an_answer_stale_whatever_its_basis() -> None:
    now = [100.0]
    cache = AnswerCache(ttl=2.0, entries=10, clock=lambda: now[0], basis=Basis())
    cache.put("a", Answer('"1"', None), basis=cache.basis(), until=1e12)
    now[0] = 99.0
    assert cache.get("a") is None


def test_the_horizon_is_the_end_of_the_china_standard_time_day_or_the_next_change() -> None:
    moment = datetime(2026, 12, 5, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in China
    day_ends = datetime(2026, 12, 5, 16, 0, tzinfo=UTC).timestamp()
    assert horizon(moment.timestamp(), None) == day_ends
    assert horizon(moment.timestamp(), to_micros(moment) + 500_000) == moment.timestamp() + 0.5
    assert horizon(moment.timestamp(), to_micros(moment) + 2_000_000) == day_ends
    assert horizon(day_ends, None) == day_ends + 86_400  # a new day: its own end
    assert horizon(datetime(2026, 12, 5, 0, 0, tzinfo=UTC).timestamp(), None) == day_ends  # 08:00 in China


@given(st.integers(min_value=0, max_value=4_102_444_800_000_000))  # 1970 to 2100, in microseconds
def test_the_day_of_a_posix_time_is_the_day_of_its_instant(micros: int) -> None:
    """``cst_day_at`` (a day's number and a cached label, asked at every badge and page) equals ``cst_day`` of the
    same instant, midnights in China and the microseconds around them included."""
    for at in (micros, micros - micros % 86_400_000_000 + 57_600_000_000 + micros % 3 - 1):  # near 00:00 in China
        now = at / 1_000_000
        assert cst_day_at(now) == cst_day(datetime.fromtimestamp(now, UTC))


# -- through HTTP, beside the slow path -----------------------------------------------------------------------


async def _pair(gateway: Gateway, aiohttp_client: Any, clock: ShiftedClock) -> tuple[Gateway, Gateway]:
    """A gateway that reuses answers for ``TTL`` seconds and one that never does, on ``gateway``'s database, both on
    ``clock``; neither answers badges from its book of standings (``test_public_standings.py``), which would be
    fresher than the ttl."""
    made = []
    for ttl in (TTL, 0.0):
        update = {"public_cache_ttl": ttl, "projector": False, "public_badge_book": False}
        settings = gateway.settings.model_copy(update=update)
        made.append(Gateway(await aiohttp_client(create_app(settings, clock=clock)), settings, gateway.folder))
    return made[0], made[1]


async def _get(gateway: Gateway, path: str, etag: str | None = None) -> tuple[int, str | None, bytes]:
    headers = dict(HOST) | ({"If-None-Match": etag} if etag else {})
    response = await gateway.client.get(path, headers=headers, allow_redirects=False)
    return response.status, response.headers.get("ETag"), await response.read()


async def test_a_page_and_a_badge_lag_a_change_by_at_most_the_ttl(gateway: Gateway, aiohttp_client: Any) -> None:
    clock = ShiftedClock()
    cached, _ = await _pair(gateway, aiohttp_client, clock)
    shop = {"id_type": "uscc", "id": make_uscc(random.Random(31)), "name": "海州区速达数码店"}
    await gateway.post_and_project([event("merchant.registered", merchant=shop)], "msg_shop")
    page, badge = f"/public/subjects/uscc/{shop['id']}", f"/public/badge/{shop['id']}.svg"
    status, page_tag, before = await _get(cached, page)
    assert status == 200 and "该主体已列入严重失信主体名单" not in before.decode()
    assert await _get(cached, page) == (200, page_tag, before)  # a second view: now the body is kept too
    status, badge_tag, badge_before = await _get(cached, badge)
    assert status == 200 and "严重失信" not in badge_before.decode()
    assert await _get(cached, badge) == (200, badge_tag, badge_before)

    regulator = await gateway.add_source("regulator")
    await gateway.post_and_project(
        [event("penalty.imposed", subject=shop, severity="serious")], "msg_pen", source=regulator
    )
    clock.offset += TTL * 0.9  # still within the ttl: the answers worked out before the change
    assert await _get(cached, page) == (200, page_tag, before)
    assert (await _get(cached, page, page_tag))[0] == 304
    assert await _get(cached, badge) == (200, badge_tag, badge_before)

    clock.offset += TTL * 0.2  # past it: worked out afresh
    status, new_tag, after = await _get(cached, page)
    assert status == 200 and new_tag != page_tag and "该主体已列入严重失信主体名单" in after.decode()
    assert (await _get(cached, page, page_tag))[0] == 200
    status, _, badge_after = await _get(cached, badge)
    assert status == 200 and "严重失信" in badge_after.decode()


async def test_a_page_seen_once_keeps_its_tag_only(gateway: Gateway, aiohttp_client: Any) -> None:
    """The first view keeps the tag (a revalidation within the ttl is a 304 without a read), not the body: a view
    after a change renders afresh, fresher than the ttl allows."""
    clock = ShiftedClock()
    cached, _ = await _pair(gateway, aiohttp_client, clock)
    shop = {"id_type": "uscc", "id": make_uscc(random.Random(33)), "name": "赣榆区海鲜商行"}
    await gateway.post_and_project([event("merchant.registered", merchant=shop)], "msg_once")
    page = f"/public/subjects/uscc/{shop['id']}"
    _, tag, _ = await _get(cached, page)
    regulator = await gateway.add_source("regulator")
    await gateway.post_and_project(
        [event("penalty.imposed", subject=shop, severity="serious")], "msg_pen", source=regulator
    )
    assert (await _get(cached, page, tag))[0] == 304
    status, new_tag, after = await _get(cached, page)
    assert status == 200 and new_tag != tag and "该主体已列入严重失信主体名单" in after.decode()


async def test_an_unknown_subject_is_never_kept(gateway: Gateway, aiohttp_client: Any) -> None:
    clock = ShiftedClock()
    cached, _ = await _pair(gateway, aiohttp_client, clock)
    shop = {"id_type": "uscc", "id": make_uscc(random.Random(32)), "name": "连云港诚信百货有限公司"}
    assert (await _get(cached, f"/public/subjects/uscc/{shop['id']}"))[0] == 404
    status, _, unknown = await _get(cached, f"/public/badge/{shop['id']}.svg")
    assert status == 200 and "暂无公示信息" in unknown.decode()
    await gateway.post_and_project([event("merchant.registered", merchant=shop)], "msg_new")
    assert (await _get(cached, f"/public/subjects/uscc/{shop['id']}"))[0] == 200  # at once, not after the ttl
    status, _, known = await _get(cached, f"/public/badge/{shop['id']}.svg")
    assert status == 200 and "信用等级 A" in known.decode()


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_answer_is_one_the_slow_path_gave_within_the_ttl(
    gateway: Gateway, aiohttp_client: Any, seed: int
) -> None:
    """Random views, revalidations (with a tag seen earlier), badge views, changes and waits: whatever the reusing
    gateway answers, the gateway that never reuses gives the same now or gave it (tag and body, or the tag a 304
    confirms) for the same path no more than ``TTL`` seconds earlier. Past the ttl, on SQLite, answers kept are reused
    while nothing was committed: a cache that reused them regardless fails here."""
    rng = random.Random(seed)
    clock = ShiftedClock()
    shops = [{"id_type": "uscc", "id": make_uscc(rng), "name": f"海州区第{n}百货店"} for n in range(3)]
    # the sources first: both gateways name a record's source from their registry of sources, loaded at start-up
    marketplace, regulator = await gateway.add_source("marketplace"), await gateway.add_source("regulator")
    cached, slow = await _pair(gateway, aiohttp_client, clock)
    await gateway.post_and_project(
        [event("merchant.registered", merchant=s) for s in shops], "msg_shops", source=marketplace
    )
    seen: dict[str, list[tuple[float, str | None, bytes]]] = {}  # path -> what the slow path answered, when
    tags: dict[str, list[str]] = {}
    changes = 0

    def within_ttl(path: str) -> list[tuple[float, str | None, bytes]]:
        return [entry for entry in seen.get(path, []) if clock() - TTL < entry[0] <= clock()]

    views: list[Callable[[dict[str, str]], str]] = [
        lambda shop: f"/public/subjects/uscc/{shop['id']}",
        lambda shop: f"/public/badge/{shop['id']}.svg",
    ]
    for _ in range(60):
        shop = rng.choice(shops)
        roll = rng.random()
        if roll < 0.15:
            changes += 1
            if rng.random() < 0.5:
                body = event(
                    "commitment.published", merchant=shop, commitment_id=f"CM-{changes}", items=[f"承诺{changes}"]
                )
                await gateway.post_and_project([body], f"msg_c{changes}", source=marketplace)
            else:
                body = event("penalty.imposed", subject=shop, severity=rng.choice(["general", "serious"]))
                await gateway.post_and_project([body], f"msg_p{changes}", source=regulator)
        elif roll < 0.3:
            clock.offset += rng.choice([0.3, 0.9, 1.5, 2.5])
        else:
            path = rng.choice(views)(shop)
            etag = rng.choice(tags[path]) if tags.get(path) and rng.random() < 0.5 else None
            slow_status, slow_tag, slow_body = await _get(slow, path)
            assert slow_status == 200
            seen.setdefault(path, []).append((clock(), slow_tag, slow_body))
            status, tag, answer = await _get(cached, path, etag)
            recent = within_ttl(path)
            if status == 304:
                assert tag == etag and any(entry[1] == etag for entry in recent), (path, etag)
            else:
                assert status == 200 and any(entry[1:] == (tag, answer) for entry in recent), path
                tags.setdefault(path, []).append(tag or "")
    assert changes > 3
