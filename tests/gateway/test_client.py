"""The SDK's query client (``xinyong.Client``, ``xinyong.SyncClient``) against the real gateway on localhost, and
against scripted peers for the retry paths.

(It lives beside ``test_sender.py`` under ``tests/gateway``: both need the ``gateway`` fixture of this folder.)"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import Gateway
from xinyong import (
    ApiError,
    AuthenticationError,
    Client,
    ClientClosedError,
    InvalidIdentifierError,
    ListChange,
    OnboardingDecision,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    SyncClient,
    TransportError,
    UnprocessableEntityError,
    problems,
    ric_pseudonym,
)
from xinyong.queries import ShownSubject, SubjectStatus
from xinyong_gateway.credit.policy import default_policy

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

POLICY = default_policy()
BLACK = {"id_type": "uscc", "id": make_uscc(random.Random(21)), "name": "假货旗舰店"}
WATCH = {"id_type": "uscc", "id": make_uscc(random.Random(22)), "name": "刷单小店"}
CLEAN = {"id_type": "uscc", "id": make_uscc(random.Random(23)), "name": "新开小店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(24)), "name": "张伟"}


class Sleeps:
    """An injected ``sleep`` that records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def seed(gateway: Gateway) -> None:
    bodies = [
        event("listing.violation", merchant=BLACK, kind="counterfeit", confirmed=True),
        event("review.manipulation_detected", merchant=WATCH, kind="fake_order", order_count=12, confirmed=True),
        event("merchant.registered", merchant=CLEAN),
        event("review.manipulation_detected", merchant=PERSON, kind="fake_traffic", order_count=2, confirmed=True),
    ]
    await gateway.post_and_project(bodies, "msg_client")


# -- against the real gateway -------------------------------------------------------------------------------


async def test_check_onboarding_denies_reviews_and_allows_from_projected_credit_files(gateway: Gateway) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["screen"])
    async with Client(gateway.base_url, key.api_key) as client:
        black = await client.check_onboarding(BLACK)
        watch = await client.check_onboarding(WATCH)
        clean = await client.check_onboarding(CLEAN)
        never = await client.check_onboarding({"id_type": "uscc", "id": make_uscc(random.Random(99))})
    assert (black.decision, watch.decision, clean.decision, never.decision) == ("deny", "review", "allow", "allow")
    assert "refuse_onboarding" in black.measures
    assert [reason.code for reason in black.reasons] == ["LISTING_COUNTERFEIT", "LISTING_VIOLATION"]
    assert black.status.list == "black"
    assert watch.measures == tuple(POLICY.measures.watch)
    assert [reason.code for reason in watch.reasons] == ["MANIPULATION_CONFIRMED"]
    assert (clean.measures, clean.reasons, clean.status.grade) == ((), (), "A")
    assert (never.status.grade, never.status.score, never.status.policy_version) == (None, None, POLICY.version)


async def test_screen_splits_long_lists_into_batches_and_keeps_the_order(gateway: Gateway) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["screen"])
    rng = random.Random(5)
    subjects: list[dict[str, Any]] = [{"id_type": "uscc", "id": make_uscc(rng)} for _ in range(2345)]
    for position, known in ((0, BLACK), (999, WATCH), (1000, BLACK), (2001, PERSON), (2344, WATCH)):
        subjects[position] = known
    async with Client(gateway.base_url, key.api_key, concurrency=2) as client:
        statuses = await client.screen(subjects)
    assert len(statuses) == len(subjects)
    assert [s.subject.id for s in statuses] == [
        subject["id"] if subject["id_type"] == "uscc" else subject["id"][:6] + "********" + subject["id"][-4:]
        for subject in subjects
    ]
    lists = {i: s.list for i, s in enumerate(statuses) if s.list != "none"}
    assert lists == {0: "black", 999: "watch", 1000: "black", 2001: "watch", 2344: "watch"}


async def test_an_invalid_subject_raises_naming_its_position_before_anything_is_sent(gateway: Gateway) -> None:
    key = await gateway.add_api_key(["screen"])
    subjects = [CLEAN] * 1500 + [{"id_type": "ric", "id": "320102199001011230"}]
    async with Client(gateway.base_url, key.api_key) as client:
        with pytest.raises(InvalidIdentifierError) as caught:
            await client.screen(subjects)
    assert str(caught.value) == "Subject 1500 is not valid (/id: RIC check digit is wrong)."


async def test_answers_that_are_not_retried_raise_typed_errors_with_the_problem(gateway: Gateway) -> None:
    changes_only = await gateway.add_api_key(["changes"])
    async with Client(gateway.base_url, changes_only.api_key) as client:
        with pytest.raises(PermissionDeniedError) as denied:
            await client.screen_one(CLEAN)
    assert (denied.value.status, denied.value.type) == (403, problems.SCOPE_MISSING)
    assert denied.value.request_id
    source = await gateway.add_source("marketplace")
    async with Client(gateway.base_url, str(source.key)) as client:  # a webhook secret is no API key
        with pytest.raises(AuthenticationError) as refused:
            await client.check_onboarding(CLEAN)
    assert refused.value.type == problems.API_KEY_INVALID


async def test_changes_stops_at_the_head_and_follow_sees_a_later_change(gateway: Gateway) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["changes"])
    async with Client(gateway.base_url, key.api_key) as client:
        everything = [change async for change in client.changes(limit=2)]
        assert [change.list for change in everything] == ["black", "watch", "none", "watch"]
        person = everything[3].subject
        assert person.id_type == "ric"
        assert person.pseudonym == ric_pseudonym(PERSON["id"], key.lookup_secret)  # type: ignore[union-attr]
        assert [change async for change in client.changes(after=everything[-1].cursor)] == []

        followed: list[ListChange] = []

        async def follow() -> None:
            async for change in client.changes(after=everything[-1].cursor, follow=True, poll_interval=0.05):
                followed.append(change)
                return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.2)  # the follower is polling at the head by now
        assert followed == []
        regulator = await gateway.add_source("regulator")
        penalty = event("penalty.imposed", subject=CLEAN, severity="serious", decision_no="连市监罚〔2026〕7号")
        assert (await gateway.post(regulator, penalty, webhook_id="msg_later")).status == 202
        await gateway.project()
        await asyncio.wait_for(follower, 10)
    [later] = followed
    assert (later.subject.id, later.list) == (CLEAN["id"], "black")  # type: ignore[union-attr]


async def test_sync_client_works_from_plain_synchronous_code(gateway: Gateway) -> None:
    """A marketplace whose back end is not async: the SyncClient is used from a plain function (run in a worker
    thread here, because this test's event loop runs the gateway)."""
    await seed(gateway)
    key = await gateway.add_api_key(["screen", "changes"])

    def back_end() -> tuple[str, str, int, int]:
        with SyncClient(gateway.base_url, key.api_key) as client:
            denied = client.check_onboarding(BLACK).decision
            allowed = client.check_onboarding(CLEAN).decision
            screened = len(client.screen([CLEAN, WATCH, BLACK]))
            changes = sum(1 for _ in client.changes(limit=1))
        with pytest.raises(ClientClosedError):
            client.screen_one(CLEAN)
        return denied, allowed, screened, changes

    assert await asyncio.to_thread(back_end) == ("deny", "allow", 3, 4)


async def test_a_closed_client_refuses_to_work(gateway: Gateway) -> None:
    key = await gateway.add_api_key(["screen"])
    client = Client(gateway.base_url, key.api_key)
    async with client:
        await client.screen_one(CLEAN)
    await client.close()  # idempotent
    with pytest.raises(ClientClosedError):
        await client.screen_one(CLEAN)


# -- failures: never "allow" by default ---------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_gateway_raises_and_never_answers_allow() -> None:
    sleeps = Sleeps()
    async with Client(f"http://127.0.0.1:{closed_port()}", "xyk_x", max_attempts=3, sleep=sleeps) as client:
        with pytest.raises(TransportError):
            await client.check_onboarding(CLEAN)
    assert len(sleeps.waits) == 2  # retried, then gave up with the error


def test_sync_client_raises_too_when_the_gateway_is_unreachable() -> None:
    with SyncClient(f"http://127.0.0.1:{closed_port()}", "xyk_x", max_attempts=1) as client:
        with pytest.raises(TransportError):
            client.check_onboarding(CLEAN)


@dataclass
class Script:
    """A peer that answers screenings from a list of answers in order and records each attempt's headers."""

    answers: list[Callable[[], web.Response]]
    attempts: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.attempts.append(dict(request.headers))
        return self.answers[min(len(self.attempts), len(self.answers)) - 1]()


def problem(status: int, **headers: str) -> Callable[[], web.Response]:
    return lambda: web.json_response(
        {"type": "urn:test", "title": f"status {status}", "status": status},
        status=status,
        headers=headers,
        content_type="application/problem+json",
    )


def watch_status() -> web.Response:
    status = SubjectStatus(
        subject=ShownSubject(id_type="uscc", id=CLEAN["id"], name=None),
        list="watch",
        grade="B",
        score=85,
        measures=["risk_warning"],
        reasons=[],
        disputed=False,
        policy_version="test",
        as_of=datetime(2026, 11, 27, tzinfo=UTC),
    )
    return web.Response(body=json.dumps({"results": [status.model_dump(mode="json")]}), content_type="application/json")


@pytest.fixture
def scripted(peer_server: Callable[..., Any]) -> Callable[[Script], Any]:
    """Start a peer answering ``POST /v1/screenings`` from ``script``; returns its base URL (await it)."""
    return lambda script: peer_server("/v1/screenings", script.handle)


async def test_5xx_is_retried_with_the_same_idempotency_key(scripted: Callable[[Script], Any]) -> None:
    script = Script([problem(503), problem(500), watch_status])
    sleeps = Sleeps()
    async with Client(await scripted(script), "xyk_test", sleep=sleeps) as client:
        decision = await client.check_onboarding(CLEAN)
    assert isinstance(decision, OnboardingDecision)
    assert (decision.decision, decision.measures) == ("review", ("risk_warning",))
    assert len(script.attempts) == 3
    assert len({attempt["Idempotency-Key"] for attempt in script.attempts}) == 1
    assert all(attempt["Authorization"] == "Bearer xyk_test" for attempt in script.attempts)
    assert len(sleeps.waits) == 2


async def test_429_is_retried_after_the_time_the_gateway_asks(scripted: Callable[[Script], Any]) -> None:
    script = Script([problem(429, **{"Retry-After": "3"}), watch_status])
    sleeps = Sleeps()
    async with Client(await scripted(script), "xyk_test", sleep=sleeps) as client:
        await client.screen_one(CLEAN)
    assert sleeps.waits == [3.0]


async def test_retries_end_with_the_last_error_never_a_default_answer(scripted: Callable[[Script], Any]) -> None:
    sleeps = Sleeps()
    unavailable = Script([problem(503)])
    async with Client(await scripted(unavailable), "xyk_test", sleep=sleeps, max_attempts=4) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.check_onboarding(CLEAN)
    assert len(unavailable.attempts) == 4
    limited = Script([problem(429, **{"Retry-After": "1"})])
    async with Client(await scripted(limited), "xyk_test", sleep=sleeps, max_attempts=2) as client:
        with pytest.raises(RateLimitError):
            await client.check_onboarding(CLEAN)
    invalid = Script([problem(422)])
    async with Client(await scripted(invalid), "xyk_test", sleep=sleeps) as client:
        with pytest.raises(UnprocessableEntityError):
            await client.check_onboarding(CLEAN)
    assert len(invalid.attempts) == 1  # a 4xx other than 429 is final


async def test_an_answer_that_breaks_the_contract_raises(scripted: Callable[[Script], Any]) -> None:
    def no_results() -> web.Response:
        return web.json_response({"results": []})

    def not_a_status() -> web.Response:
        return web.json_response({"results": [{"list": "green"}]})

    async with Client(await scripted(Script([no_results])), "xyk_test") as client:
        with pytest.raises(ApiError, match="Wrong number of results"):
            await client.check_onboarding(CLEAN)
    async with Client(await scripted(Script([not_a_status])), "xyk_test") as client:
        with pytest.raises(ApiError, match="Unexpected answer"):
            await client.check_onboarding(CLEAN)
