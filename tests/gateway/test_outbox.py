"""The outbox on each backend: notifications are written in the projector's own transaction (a commit that fails
writes neither the change nor its notification), routed against the subscriptions current at the commit, numbered
1, 2, 3 ... per subscription without a gap while projectors race; and dispatchers share the work without delivering a
message twice (PostgreSQL: two dispatchers of two store connections, ``FOR UPDATE SKIP LOCKED``).

The gateway app runs with neither projector nor dispatcher: the test drives both.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.factories import event, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, inbox_refuses_inserts, is_sqlite
from xinyong.webhooks import WebhookVerifier
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.errors import StoreError
from xinyong_gateway.notify import Dispatcher, OutboundGuard, parse_networks
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import open_store

GUARD = OutboundGuard(parse_networks("127.0.0.1/32"))


@pytest.fixture
def gateway_settings(database_url: str) -> GatewaySettings:
    return GatewaySettings(
        database_url=database_url,
        master_key=TEST_MASTER_KEY,
        log_format="json",
        projector=False,
        dispatcher=False,
        outbound_allowed_networks="127.0.0.1/32",
    )


def violations(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        event(
            "listing.violation",
            merchant={"id_type": "uscc", "id": make_uscc(rng), "name": f"店{n}"},
            kind="counterfeit",
            confirmed=True,
        )
        for n in range(count)
    ]


async def add_subscription(gateway: Gateway, url: str = "http://127.0.0.1:9/hook") -> tuple[str, str]:
    record, secret, _ = await gateway.add_subscription(url)
    return record.subscription_id, secret


async def test_a_commit_whose_notification_cannot_be_written_writes_nothing(gateway: Gateway) -> None:
    subscription_id, _ = await add_subscription(gateway)
    source = await gateway.add_source()
    for n, body in enumerate(violations(3, 1)):
        assert (await gateway.post(source, body, webhook_id=f"atomic_{n}")).status == 202
    projector = Projector(gateway.store, gateway.master_key, default_policy())
    async with inbox_refuses_inserts(gateway.settings.database_url, table="outbox"):
        with pytest.raises(StoreError):
            await projector.step()
    assert await gateway.store.read_changes() == []
    assert await gateway.store.projector_position() == 0
    assert await gateway.store.outbox_sequences(subscription_id) == []
    await projector.catch_up()
    changes = await gateway.store.read_changes()
    assert len(changes) == 3
    assert await gateway.store.outbox_sequences(subscription_id) == [
        (n + 1, c.change_id) for n, c in enumerate(changes)
    ]


async def test_a_subscription_made_between_routing_and_commit_gets_the_change(gateway: Gateway) -> None:
    source = await gateway.add_source()
    projector = Projector(gateway.store, gateway.master_key, default_policy())
    assert (await gateway.post(source, violations(1, 2)[0], webhook_id="race_0")).status == 202
    await projector.catch_up()  # routes (to nobody) and caches the subscriptions' generation
    subscription_id, _ = await add_subscription(gateway)  # the generation moves on
    assert (await gateway.post(source, violations(1, 3)[0], webhook_id="race_1")).status == 202
    await projector.catch_up()  # its first commit is refused as routed under the old generation, then routed again
    changes = await gateway.store.read_changes()
    assert await gateway.store.outbox_sequences(subscription_id) == [(1, changes[-1].change_id)]


async def test_racing_projectors_number_each_subscriptions_messages_without_gap_or_repeat(gateway: Gateway) -> None:
    first, _ = await add_subscription(gateway)
    second, _ = await add_subscription(gateway)
    source = await gateway.add_source()
    bodies = violations(60, 4)
    for n, body in enumerate(bodies):
        assert (await gateway.post(source, body, webhook_id=f"many_{n}")).status == 202
    projectors = [
        Projector(gateway.store, gateway.master_key, default_policy(), batch_size=7, claims=None) for _ in range(3)
    ]
    await asyncio.gather(*(projector.catch_up() for projector in projectors))
    changes = [change.change_id for change in await gateway.store.read_changes(limit=1000)]
    assert len(changes) == 60
    for subscription_id in (first, second):
        rows = await gateway.store.outbox_sequences(subscription_id)
        assert [sequence for sequence, _ in rows] == list(range(1, 61))
        assert sorted(change for _, change in rows) == changes


async def test_dispatchers_share_the_outbox_without_delivering_a_message_twice(gateway: Gateway) -> None:
    """On SQLite two dispatchers of one process; on PostgreSQL two of two store connections (as two processes)."""
    arrivals: Counter[str] = Counter()
    verifier: list[WebhookVerifier] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        verifier[0].verify(request.headers, body)
        arrivals[request.headers["webhook-id"]] += 1
        await asyncio.sleep(random.random() / 100)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        subscription_id, secret = await add_subscription(gateway, str(server.make_url("/hook")))
        verifier.append(WebhookVerifier([secret]))
        source = await gateway.add_source()
        for n, body in enumerate(violations(80, 5)):
            assert (await gateway.post(source, body, webhook_id=f"share_{n}")).status == 202
        await Projector(gateway.store, gateway.master_key, default_policy()).catch_up()
        async with open_store(gateway.settings.database_url) as other_store:
            stores = [gateway.store, gateway.store if is_sqlite(gateway.settings.database_url) else other_store]
            dispatchers = [Dispatcher(store, gateway.master_key, GUARD, concurrency=8) for store in stores]
            tasks = [asyncio.create_task(dispatcher.run()) for dispatcher in dispatchers]
            try:
                for _ in range(400):
                    if (await gateway.store.outbox_state(subscription_id)).delivered == 80:
                        break
                    await asyncio.sleep(0.05)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        state = await gateway.store.outbox_state(subscription_id)
        assert (state.delivered, state.pending, state.failed) == (80, 0, 0)
        assert len(arrivals) == 80 and set(arrivals.values()) == {1}
        assert all(dispatcher.delivered > 0 for dispatcher in dispatchers), [d.delivered for d in dispatchers]
        assert sorted(arrivals) == sorted(f"msg_{subscription_id}_{n}" for n in range(1, 81))
    finally:
        await server.close()
