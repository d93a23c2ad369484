"""Notifications to platforms, on each backend, through the HTTP API and a real receiver on 127.0.0.1: subscribing
(``/v1/subscriptions``, scope ``subscribe``), the signed ``list.changed`` deliveries the dispatcher inside the app
sends (verified with the SDK's own ``WebhookVerifier``), their sequences, retries, 410, secret rotation and replay.

The receiver is an aiohttp server of the test's own that verifies every message and records it; scripted answers
make it fail. The gateway allows 127.0.0.1/32 only (``XINYONG_OUTBOUND_ALLOWED_NETWORKS``) and retries on a short
schedule; no test sends anything anywhere but 127.0.0.1.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, assert_problem, eventually
from xinyong import problems
from xinyong.queries import ric_pseudonym
from xinyong.webhooks import WebhookVerifier
from xinyong_gateway.settings import GatewaySettings

SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(71)), "name": "假货旗舰店"}
OTHER_SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(72)), "name": "另一家店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(73)), "name": "赵敏"}


@pytest.fixture
def gateway_settings(database_url: str) -> GatewaySettings:
    return GatewaySettings(
        database_url=database_url,
        master_key=TEST_MASTER_KEY,
        source_refresh_interval=0.2,
        log_format="json",
        outbound_allowed_networks="127.0.0.1/32",
        retry_schedule=(0, 0.2, 0.2, 0.2),
    )


@dataclass
class Receiver:
    """A platform's endpoint: verifies each message with the subscription's secret(s) and records it."""

    url: str = ""
    secrets: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    answers: list[web.Response] = field(default_factory=list)
    """Scripted answers, used up first (then 204)."""
    verified_with: list[set[int]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        matching = set()
        for index, secret in enumerate(self.secrets):
            try:
                WebhookVerifier([secret]).verify(request.headers, body)
                matching.add(index)
            except Exception:  # noqa: S112 -- a secret that does not verify is simply not in the set
                continue
        assert matching, "a delivery did not verify with any secret of the subscription"
        self.verified_with.append(matching)
        self.headers.append(dict(request.headers))
        if self.answers:
            return self.answers.pop(0)
        self.received.append(json.loads(body))
        return web.Response(status=204)

    def sequences(self) -> list[int]:
        return [message["data"]["sequence"] for message in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    found.url = str(server.make_url("/hook"))
    yield found
    await server.close()


async def subscribe(gateway: Gateway, key: str, receiver: Receiver, **body: Any) -> dict[str, Any]:
    body = {"url": receiver.url, "lists": ["black", "watch"], **body}
    response = await gateway.client.post("/v1/subscriptions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    receiver.secrets.append(created["secret"])
    return created


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_status_change_reaches_the_subscriber_signed_with_the_feed_entry_and_sequence_1(
    gateway: Gateway, receiver: Receiver
) -> None:
    key = await gateway.add_api_key(("subscribe", "changes"))
    created = await subscribe(gateway, key.api_key, receiver)
    assert created["secret"].startswith("whsec_") and created["status"] == "active"
    await gateway.post_and_project(
        [event("listing.violation", merchant=SHOP, kind="counterfeit", confirmed=True)], "sub1"
    )
    await eventually(lambda: _holds(len(receiver.received) >= 1))
    message = receiver.received[0]
    assert message["type"] == "list.changed"
    assert message["data"]["sequence"] == 1
    feed = await (await gateway.client.get("/v1/lists/changes", headers=auth(key.api_key))).json()
    assert {k: v for k, v in message["data"].items() if k != "sequence"} == feed["changes"][0]
    assert receiver.headers[0]["webhook-id"] == f"msg_{created['subscription_id']}_1"


async def test_persons_are_matched_and_named_by_the_keys_pseudonym_and_other_subjects_are_not_sent(
    gateway: Gateway, receiver: Receiver
) -> None:
    key = await gateway.add_api_key(("subscribe",))
    pseudonym = ric_pseudonym(PERSON["id"], key.lookup_secret)
    await subscribe(gateway, key.api_key, receiver, subjects=[{"id_type": "ric", "pseudonym": pseudonym}])
    await gateway.post_and_project(
        [
            event("listing.violation", merchant=OTHER_SHOP, kind="counterfeit", confirmed=True),
            event("listing.violation", merchant=PERSON, kind="counterfeit", confirmed=True),
        ],
        "sub2",
    )
    await eventually(lambda: _holds(len(receiver.received) >= 1))
    assert receiver.sequences() == [1]
    assert receiver.received[0]["data"]["subject"] == {"id_type": "ric", "pseudonym": pseudonym}
    assert PERSON["id"] not in json.dumps(receiver.received)


async def test_a_failing_endpoint_is_retried_with_the_same_webhook_id_until_it_answers(
    gateway: Gateway, receiver: Receiver
) -> None:
    key = await gateway.add_api_key(("subscribe",))
    await subscribe(gateway, key.api_key, receiver)
    receiver.answers = [web.Response(status=500), web.Response(status=503, headers={"Retry-After": "0"})]
    await gateway.post_and_project(
        [event("listing.violation", merchant=SHOP, kind="counterfeit", confirmed=True)], "sub3"
    )
    await eventually(lambda: _holds(len(receiver.received) == 1), within=10)
    ids = {headers["webhook-id"] for headers in receiver.headers}
    assert len(receiver.headers) == 3 and len(ids) == 1


async def test_a_410_disables_the_subscription(gateway: Gateway, receiver: Receiver) -> None:
    key = await gateway.add_api_key(("subscribe",))
    created = await subscribe(gateway, key.api_key, receiver)
    receiver.answers = [web.Response(status=410)]
    await gateway.post_and_project(
        [event("listing.violation", merchant=SHOP, kind="counterfeit", confirmed=True)], "sub4"
    )

    async def disabled() -> bool:
        shown = await gateway.client.get(f"/v1/subscriptions/{created['subscription_id']}", headers=auth(key.api_key))
        document = await shown.json()
        return bool(document["status"] == "disabled" and document["disabled_reason"] == "gone")

    await eventually(disabled, within=10)
    assert len(receiver.headers) == 1


async def test_after_a_rotation_deliveries_carry_both_signatures_during_the_grace_period(
    gateway: Gateway, receiver: Receiver
) -> None:
    key = await gateway.add_api_key(("subscribe",))
    created = await subscribe(gateway, key.api_key, receiver)
    rotated = await gateway.client.post(
        f"/v1/subscriptions/{created['subscription_id']}/rotate-secret",
        json={"grace_seconds": 3600},
        headers=auth(key.api_key),
    )
    assert rotated.status == 200
    receiver.secrets.append((await rotated.json())["secret"])
    await gateway.post_and_project(
        [event("listing.violation", merchant=SHOP, kind="counterfeit", confirmed=True)], "sub5"
    )
    await eventually(lambda: _holds(len(receiver.received) == 1))
    assert receiver.verified_with == [{0, 1}]
    assert len(receiver.headers[0]["webhook-signature"].split(" ")) == 2


async def test_a_replay_sends_the_changes_again_with_new_sequences(gateway: Gateway, receiver: Receiver) -> None:
    key = await gateway.add_api_key(("subscribe",))
    created = await subscribe(gateway, key.api_key, receiver)
    await gateway.post_and_project(
        [event("listing.violation", merchant=SHOP, kind="counterfeit", confirmed=True)], "sub6"
    )
    await eventually(lambda: _holds(len(receiver.received) == 1))
    replayed = await gateway.client.post(
        f"/v1/subscriptions/{created['subscription_id']}/replay",
        json={"since": "2000-01-01T00:00:00+00:00"},
        headers=auth(key.api_key),
    )
    assert replayed.status == 202 and await replayed.json() == {"queued": 1}
    await eventually(lambda: _holds(len(receiver.received) == 2))
    assert sorted(receiver.sequences()) == [1, 2]
    assert receiver.received[0]["data"]["cursor"] == receiver.received[1]["data"]["cursor"]


async def test_a_key_sees_and_changes_only_its_own_subscriptions(gateway: Gateway, receiver: Receiver) -> None:
    mine = await gateway.add_api_key(("subscribe",))
    theirs = await gateway.add_api_key(("subscribe",))
    created = await subscribe(gateway, mine.api_key, receiver)
    path = f"/v1/subscriptions/{created['subscription_id']}"
    listed = await (await gateway.client.get("/v1/subscriptions", headers=auth(theirs.api_key))).json()
    assert listed == {"subscriptions": []}
    for method in ("GET", "DELETE"):
        response = await gateway.client.request(method, path, headers=auth(theirs.api_key))
        await assert_problem(response, 404, problems.SUBSCRIPTION_NOT_FOUND)
    own = await (await gateway.client.get("/v1/subscriptions", headers=auth(mine.api_key))).json()
    assert [s["subscription_id"] for s in own["subscriptions"]] == [created["subscription_id"]]
    assert "secret" not in own["subscriptions"][0]
    assert (await gateway.client.delete(path, headers=auth(mine.api_key))).status == 204
    await assert_problem(
        await gateway.client.get(path, headers=auth(mine.api_key)), 404, problems.SUBSCRIPTION_NOT_FOUND
    )


async def test_subscribing_needs_the_subscribe_scope(gateway: Gateway, receiver: Receiver) -> None:
    key = await gateway.add_api_key(("screen", "changes"))
    response = await gateway.client.post(
        "/v1/subscriptions", json={"url": receiver.url, "lists": ["black"]}, headers=auth(key.api_key)
    )
    await assert_problem(response, 403, problems.SCOPE_MISSING)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://127.0.0.2/hook",
        "http://2130706434/hook",
        "http://0x7f000002/hook",
        "http://0177.0.0.2/hook",
        "http://127.2/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "ftp://example.com/hook",
        "http://user:pw@127.0.0.1/hook",
    ],
)
async def test_a_url_to_a_non_public_address_is_refused_at_subscription_time(gateway: Gateway, url: str) -> None:
    key = await gateway.add_api_key(("subscribe",))
    response = await gateway.client.post(
        "/v1/subscriptions", json={"url": url, "lists": ["black"]}, headers=auth(key.api_key)
    )
    problem = await assert_problem(response, 422, problems.SUBSCRIPTION_URL_REFUSED)
    assert problem["errors"][0]["pointer"] == "/url"
    listed = await (await gateway.client.get("/v1/subscriptions", headers=auth(key.api_key))).json()
    assert listed == {"subscriptions": []}


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"url": "https://example.com/h", "lists": []}, "/lists"),
        ({"url": "https://example.com/h", "lists": ["grey"]}, "/lists/0"),
        ({"url": "https://example.com/h", "lists": ["black"], "subjects": [{"id_type": "ric", "id": "x"}]}, None),
        ({"lists": ["black"]}, "/url"),
    ],
)
async def test_a_subscription_body_that_does_not_match_its_schema_is_a_422_with_pointers(
    gateway: Gateway, body: dict[str, Any], pointer: str | None
) -> None:
    key = await gateway.add_api_key(("subscribe",))
    response = await gateway.client.post("/v1/subscriptions", json=body, headers=auth(key.api_key))
    problem = await assert_problem(response, 422, problems.REQUEST_INVALID)
    if pointer is not None:
        assert pointer in [error["pointer"] for error in problem["errors"]]
    assert make_ric(random.Random(73)) not in json.dumps(problem)


async def _holds(value: bool) -> bool:
    return value
