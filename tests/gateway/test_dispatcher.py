"""The dispatcher's outcomes, on each backend, against scripted endpoints on 127.0.0.1: the retry schedule and
``Retry-After`` (within bounds), redirects never followed, at most 64 KiB of an answer read, an attempt cut at its
timeout, a subscription disabled after failing for 5 days or when its API key is revoked, and the SSRF guard at
connect time. The schedule itself is held to the Standard Webhooks one by property tests (``Retry-After`` is read by
the SDK's ``xinyong.retries.retry_after_seconds``, tested with the SDK)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway
from xinyong_gateway.notify import (
    DISABLE_AFTER_SECONDS,
    RETRY_SCHEDULE,
    Dispatcher,
    OutboundGuard,
    next_delay,
    notification_body,
    notification_document,
    outcome_name,
    parse_networks,
)
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import DeliveryOutcome, to_micros

GUARD = OutboundGuard(parse_networks("127.0.0.1/32"))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def gateway_settings(database_url: str) -> GatewaySettings:
    return GatewaySettings(
        database_url=database_url, master_key=TEST_MASTER_KEY, log_format="json", projector=False, dispatcher=False
    )


async def endpoint(handle: Handler) -> TestServer:
    app = web.Application()
    app.router.add_post("/hook", handle)
    app.router.add_post("/elsewhere", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def one_message(gateway: Gateway, url: str, *, allowed: str = "127.0.0.1/32") -> tuple[str, str]:
    """A subscription of ``url`` (subscribed while ``allowed``), and one message for it in the outbox."""
    record, _, issued = await gateway.add_subscription(url, allowed=allowed)
    merchant = {"id_type": "uscc", "id": make_uscc(random.Random(url)), "name": "店"}
    await gateway.post_and_project([event("listing.violation", merchant=merchant, confirmed=True)], "d")
    assert len(await gateway.store.outbox_sequences(record.subscription_id)) == 1
    return record.subscription_id, issued.record.key_id


async def dispatch_once(gateway: Gateway, *, clock: Callable[[], float] | None = None, **options: Any) -> Dispatcher:
    """Run a dispatcher until it has recorded at least one outcome (at most 10 s)."""
    dispatcher = Dispatcher(
        gateway.store, gateway.master_key, GUARD, rng=random.Random(1), clock=clock or _now, **options
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if dispatcher.recorded:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return dispatcher


def _now() -> float:
    return time.time()


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(gateway: Gateway) -> None:
    calls: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        calls.append(request.path)
        return web.Response(status=307, headers={"Location": "/elsewhere"})

    server = await endpoint(handle)
    try:
        subscription_id, _ = await one_message(gateway, str(server.make_url("/hook")))
        await dispatch_once(gateway)
        state = await gateway.store.outbox_state(subscription_id)
        assert calls == ["/hook"]
        assert (state.pending, state.delivered) == (1, 0) and state.last_error == "answered 307"
    finally:
        await server.close()


async def test_only_64_kib_of_an_answer_is_read(gateway: Gateway) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        for _ in range(1024):  # 64 MiB offered, in 64 KiB chunks
            await response.write(b"x" * 65536)
        return response

    server = await endpoint(handle)
    try:
        subscription_id, _ = await one_message(gateway, str(server.make_url("/hook")))
        await dispatch_once(gateway)
        assert (await gateway.store.outbox_state(subscription_id)).delivered == 1
    finally:
        await server.close()


async def test_an_attempt_is_cut_at_its_timeout_and_retried(gateway: Gateway) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(status=204)

    server = await endpoint(handle)
    try:
        subscription_id, _ = await one_message(gateway, str(server.make_url("/hook")))
        await dispatch_once(gateway, timeout=0.3, lease=2)
        state = await gateway.store.outbox_state(subscription_id)
        assert (state.pending, state.delivered, state.last_error) == (1, 0, "timed out")
    finally:
        await server.close()


async def test_a_subscription_failing_for_five_days_is_disabled(gateway: Gateway) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    server = await endpoint(handle)
    try:
        subscription_id, _ = await one_message(gateway, str(server.make_url("/hook")))
        await dispatch_once(gateway)  # the first failure: failing since now
        assert (await gateway.store.get_subscription(subscription_id)).status == "active"  # type: ignore[union-attr]
        later = _now() + DISABLE_AFTER_SECONDS + 60
        await dispatch_once(gateway, clock=lambda: later)
        record = await gateway.store.get_subscription(subscription_id)
        assert record is not None and (record.status, record.disabled_reason) == ("disabled", "failing")
    finally:
        await server.close()


async def test_a_subscription_of_a_revoked_key_is_disabled_and_nothing_is_sent(gateway: Gateway) -> None:
    calls: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        calls.append(request.path)
        return web.Response(status=204)

    server = await endpoint(handle)
    try:
        subscription_id, key_id = await one_message(gateway, str(server.make_url("/hook")))
        await gateway.store.revoke_api_key(key_id, now=to_micros(datetime.now(UTC)))
        await dispatch_once(gateway)
        record = await gateway.store.get_subscription(subscription_id)
        assert record is not None and (record.status, record.disabled_reason) == ("disabled", "key-revoked")
        assert calls == []
    finally:
        await server.close()


async def test_the_guard_is_asked_again_when_the_message_is_sent(gateway: Gateway) -> None:
    """A subscription accepted while its address was allowed is refused at send time once it is not."""
    subscription_id, _ = await one_message(gateway, "http://127.0.0.2:9/hook", allowed="127.0.0.0/8")
    await dispatch_once(gateway)  # its guard allows 127.0.0.1 only
    state = await gateway.store.outbox_state(subscription_id)
    assert state.last_error is not None and state.last_error.startswith("refused by the outbound guard")


# -- the schedule -------------------------------------------------------------------------------------------


def test_the_schedule_is_the_standard_webhooks_one() -> None:
    assert RETRY_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert next_delay(len(RETRY_SCHEDULE), None, random.Random(1)) is None


@given(attempts=st.integers(min_value=1, max_value=7), seed=st.integers(), retry_after=st.none() | st.floats(0, 1e9))
def test_each_delay_is_its_step_within_ten_percent_or_a_longer_retry_after_capped_at_ten_hours(
    attempts: int, seed: int, retry_after: float | None
) -> None:
    delay = next_delay(attempts, retry_after, random.Random(seed))
    assert delay is not None
    step = RETRY_SCHEDULE[attempts]
    assert delay >= step * 0.9
    if retry_after is None or retry_after <= step * 0.9:
        assert delay <= step * 1.1
    else:
        assert delay == pytest.approx(max(min(retry_after, 36000.0), delay))
        assert delay <= max(step * 1.1, 36000.0)


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
entries = st.dictionaries(
    st.text(max_size=10).filter(lambda name: name != "sequence"),
    st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner)),
    min_size=1,
    max_size=6,
)


@given(entry=entries, sequence=st.integers(min_value=1, max_value=2**53), timestamp=st.text(max_size=40))
def test_the_spliced_body_is_byte_for_byte_the_serialised_one(
    entry: dict[str, Any], sequence: int, timestamp: str
) -> None:
    spliced = notification_body(json.dumps(entry, ensure_ascii=False), sequence, timestamp)
    assert spliced == notification_document(entry, sequence, timestamp)


@pytest.mark.parametrize(("status", "outcome"), [(204, "delivered"), (500, "retry"), (410, "disabled")])
async def test_each_recorded_attempt_is_told_to_the_metrics_by_its_outcome(
    gateway: Gateway, status: int, outcome: str
) -> None:
    """``on_outcome`` (``/metrics``' ``xinyong_deliveries_total``) hears of every attempt the dispatcher records."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status)

    server = await endpoint(handle)
    heard: list[str] = []
    try:
        await one_message(gateway, str(server.make_url("/hook")))
        await dispatch_once(gateway, on_outcome=heard.append)
        assert heard == [outcome]
    finally:
        await server.close()


def test_an_attempt_with_no_retry_left_counts_as_failed() -> None:
    assert outcome_name(DeliveryOutcome(1, "sub_x", False, 500, "answered 500", None)) == "failed"
    assert outcome_name(DeliveryOutcome(1, "sub_x", False, 500, "answered 500", 10)) == "retry"
