"""EventSender against the real gateway, and against scripted peers on localhost for the retry paths."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.factories import event
from tests.gateway.conftest import Gateway
from xinyong import (
    ClientClosedError,
    ConflictError,
    EventSender,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeout,
    ServiceUnavailableError,
    TransportError,
    UnprocessableEntityError,
    problems,
)
from xinyong.responses import WebhookAck
from xinyong.webhooks import SigningSecret, WebhookVerifier

# -- against the real gateway -------------------------------------------------------------------


async def test_sender_posts_signed_event_accepted_then_duplicate_on_resend(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = event("complaint.filed")
    async with EventSender(gateway.base_url, source.source_id, str(source.key)) as sender:
        first = await sender.send(body, webhook_id="msg_sender_1")
        again = await sender.send(body, webhook_id="msg_sender_1")
    assert first == WebhookAck(status="accepted", webhook_id="msg_sender_1")
    assert again.status == "duplicate"


async def test_sender_signs_with_ed25519_key_for_v1a_source(gateway: Gateway) -> None:
    source = await gateway.add_source("courier", ed25519=True)
    async with EventSender(gateway.base_url, source.source_id, str(source.key)) as sender:
        ack = await sender.send(event("delivery.recorded"))
    assert ack.status == "accepted"
    assert ack.webhook_id.startswith("msg_")


async def test_sender_raises_typed_error_with_pointers_for_schema_problem(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    bad = event("listing.violation", confirmd=True)
    async with EventSender(gateway.base_url, source.source_id, str(source.key)) as sender:
        with pytest.raises(UnprocessableEntityError) as caught:
            await sender.send(bad)
    assert caught.value.status == 422
    assert caught.value.type == problems.SCHEMA_INVALID
    assert {"pointer": "/data/confirmd", "detail": caught.value.errors[0]["detail"]} in caught.value.errors
    assert caught.value.request_id


async def test_sender_raises_permission_denied_for_type_not_allowed(gateway: Gateway) -> None:
    source = await gateway.add_source("courier")
    async with EventSender(gateway.base_url, source.source_id, str(source.key)) as sender:
        with pytest.raises(PermissionDeniedError) as caught:
            await sender.send(event("penalty.imposed"))
    assert caught.value.type == problems.EVENT_NOT_ALLOWED


async def test_sender_raises_conflict_for_reused_id_with_other_body(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    async with EventSender(gateway.base_url, source.source_id, str(source.key)) as sender:
        await sender.send(event("complaint.filed"), webhook_id="msg_reused")
        with pytest.raises(ConflictError):
            await sender.send(event("complaint.filed"), webhook_id="msg_reused")


async def test_send_many_keeps_order_and_puts_errors_in_their_slots(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    events: list[Any] = [event("complaint.filed") for _ in range(20)]
    events[7] = event("complaint.filed", channel="fax")
    async with EventSender(gateway.base_url, source.source_id, str(source.key)) as sender:
        results = await sender.send_many([(f"msg_many_{i}", e) for i, e in enumerate(events)], concurrency=4)
    assert len(results) == 20
    assert isinstance(results[7], UnprocessableEntityError)
    for i, result in enumerate(results):
        if i != 7:
            assert isinstance(result, WebhookAck)
            assert result.webhook_id == f"msg_many_{i}"


# -- scripted peers (real HTTP on localhost) for retry behaviour ---------------------------------

SECRET = SigningSecret.generate()


@dataclass
class Script:
    """Answers in order; records each attempt's headers; verifies every signature it receives."""

    answers: list[Callable[[], web.Response]]
    attempts: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        WebhookVerifier([SECRET]).verify(request.headers, body)
        self.attempts.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            index = min(len(self.attempts) - 1, len(self.answers) - 1)
            return self.answers[index]()
        finally:
            self.in_flight -= 1


def problem(status: int, **headers: str) -> Callable[[], web.Response]:
    return lambda: web.json_response(
        {"type": "urn:test", "title": f"status {status}", "status": status},
        status=status,
        headers=headers,
        content_type="application/problem+json",
    )


def accepted() -> web.Response:
    return web.json_response({"status": "accepted", "webhook_id": "x"}, status=202)


@pytest.fixture
def scripted(peer_server: Callable[..., Any]) -> Callable[[Script], Any]:
    """Start a peer answering ``POST /v1/webhooks/{source_id}`` from ``script``; returns its base URL (await it)."""
    return lambda script: peer_server("/v1/webhooks/{source_id}", script.handle)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_sender_retries_5xx_with_same_id_and_fresh_signature(scripted: Callable[..., Any]) -> None:
    script = Script([problem(503), problem(502), accepted])
    base_url = await scripted(script)
    ticks = itertools.count(int(time.time()), 7)
    sleeps = Sleeps()
    async with EventSender(
        base_url, "src_x", SECRET, clock=lambda: float(next(ticks)), sleep=sleeps, max_attempts=5
    ) as sender:
        ack = await sender.send(b'{"x":1}', webhook_id="msg_retry")
    assert ack.status == "accepted"
    assert [a["webhook-id"] for a in script.attempts] == ["msg_retry"] * 3
    timestamps = [a["webhook-timestamp"] for a in script.attempts]
    signatures = [a["webhook-signature"] for a in script.attempts]
    assert len(set(timestamps)) == 3
    assert len(set(signatures)) == 3
    assert len(sleeps.waits) == 2
    assert all(0 <= w <= 20 for w in sleeps.waits)


async def test_sender_honours_retry_after_on_429(scripted: Callable[..., Any]) -> None:
    script = Script([problem(429, **{"Retry-After": "3"}), accepted])
    sleeps = Sleeps()
    async with EventSender(await scripted(script), "src_x", SECRET, sleep=sleeps) as sender:
        await sender.send(b"{}")
    assert sleeps.waits == [3.0]


async def test_sender_gives_up_after_max_attempts_with_last_error(scripted: Callable[..., Any]) -> None:
    script = Script([problem(429, **{"Retry-After": "1"})])
    sleeps = Sleeps()
    async with EventSender(await scripted(script), "src_x", SECRET, sleep=sleeps, max_attempts=3) as sender:
        with pytest.raises(RateLimitError) as caught:
            await sender.send(b"{}")
    assert caught.value.retry_after == 1.0
    assert len(script.attempts) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415, 422])
async def test_sender_never_retries_other_4xx(scripted: Callable[..., Any], status: int) -> None:
    script = Script([problem(status), accepted])
    async with EventSender(await scripted(script), "src_x", SECRET, sleep=Sleeps()) as sender:
        with pytest.raises(Exception) as caught:
            await sender.send(b"{}")
    assert getattr(caught.value, "status", None) == status
    assert len(script.attempts) == 1


async def test_sender_raises_service_unavailable_after_persistent_503(scripted: Callable[..., Any]) -> None:
    script = Script([problem(503)])
    async with EventSender(await scripted(script), "src_x", SECRET, sleep=Sleeps(), max_attempts=2) as sender:
        with pytest.raises(ServiceUnavailableError):
            await sender.send(b"{}")
    assert len(script.attempts) == 2


async def test_sender_translates_connection_refused_into_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    async with EventSender(f"http://127.0.0.1:{port}", "src_x", SECRET, sleep=sleeps, max_attempts=3) as sender:
        with pytest.raises(TransportError) as caught:
            await sender.send(b"{}")
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value.__cause__, aiohttp.ClientError)
    assert len(sleeps.waits) == 2


async def test_sender_raises_request_timeout_when_gateway_is_slow(scripted: Callable[..., Any]) -> None:
    script = Script([accepted], delay=2.0)
    async with EventSender(
        await scripted(script), "src_x", SECRET, timeout=0.2, max_attempts=1, sleep=Sleeps()
    ) as sender:
        with pytest.raises(RequestTimeout) as caught:
            await sender.send(b"{}")
    assert isinstance(caught.value, TimeoutError)


async def test_send_many_bounds_concurrency(scripted: Callable[..., Any]) -> None:
    script = Script([accepted], delay=0.02)
    async with EventSender(await scripted(script), "src_x", SECRET) as sender:
        results = await sender.send_many([b"{}"] * 24, concurrency=3)
    assert all(isinstance(r, WebhookAck) for r in results)
    assert script.max_in_flight == 3


async def test_sender_refuses_use_after_close_and_leaves_a_shared_session_open(
    scripted: Callable[..., Any],
) -> None:
    base_url = await scripted(Script([accepted]))
    async with aiohttp.ClientSession() as session:
        sender = EventSender(base_url, "src_x", SECRET, session=session)
        async with sender:
            await sender.send(b"{}")
        assert not session.closed
        with pytest.raises(ClientClosedError):
            await sender.send(b"{}")
