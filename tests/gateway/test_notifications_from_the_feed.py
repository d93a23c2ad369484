"""Notifications as a receiver sees them, built from the change feed of a live gateway (both backends): each entry
the gateway gives the subscribing key parses into the SDK's notification model, and a ``ListMirror`` given the
pushed entries and syncs in any order ends as one that only synced.

(The gateway's side, subscriptions and the dispatcher, is not part of this module: the notifications here are the
feed entries the contract says they carry, signed with the SDK's signer.)"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import Gateway
from xinyong import Client, ListMirror, NotificationReceiver, SigningSecret, ric_pseudonym
from xinyong.webhooks import signature_headers

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

BLACK = {"id_type": "uscc", "id": make_uscc(random.Random(81)), "name": "假货旗舰店"}
WATCH = {"id_type": "uscc", "id": make_uscc(random.Random(82)), "name": "刷单小店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(83)), "name": "欧阳娜娜"}
LATER = {"id_type": "uscc", "id": make_uscc(random.Random(84)), "name": "新开小店"}


async def feed_entries(gateway: Gateway, api_key: str, after: str | None = None) -> list[dict[str, Any]]:
    """The change feed's entries as the gateway answers them to this key (the JSON, not the SDK's model of it)."""
    query = f"?after={after}" if after else ""
    answer = await gateway.client.get(f"/v1/lists/changes{query}", headers={"Authorization": f"Bearer {api_key}"})
    assert answer.status == 200
    entries: list[dict[str, Any]] = (await answer.json())["changes"]
    return entries


def notification(entry: dict[str, Any], sequence: int, secret: SigningSecret) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {"type": "list.changed", "timestamp": "2026-12-05T14:00:00+08:00", "data": entry | {"sequence": sequence}},
        ensure_ascii=False,
    ).encode()
    return signature_headers(secret, f"msg_{sequence}", body, timestamp=int(time.time())), body


def rows(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT * FROM mirror_entries ORDER BY subject").fetchall()


async def test_every_entry_of_a_live_feed_parses_as_the_data_of_a_notification(gateway: Gateway) -> None:
    await gateway.post_and_project(
        [
            event("listing.violation", merchant=BLACK, kind="counterfeit", confirmed=True),
            event("review.manipulation_detected", merchant=PERSON, kind="fake_traffic", order_count=2, confirmed=True),
        ],
        "msg_seed",
    )
    key = await gateway.add_api_key(["changes"])
    entries = await feed_entries(gateway, key.api_key)
    secret = SigningSecret.generate()
    receiver = NotificationReceiver(secret)
    async with Client(gateway.base_url, key.api_key) as client:
        modelled = (await client.changes_page(None)).changes
    assert len(entries) == len(modelled) == 2
    for sequence, (entry, model) in enumerate(zip(entries, modelled, strict=True), start=1):
        received = receiver.receive(*notification(entry, sequence, secret))
        assert received.change.model_dump(exclude={"sequence"}) == model.model_dump()
        assert received.sequence == sequence and not received.missed
        receiver.acknowledge(received)
    black, person = (receiver.receive(*notification(entry, n, secret)).change for n, entry in enumerate(entries, 1))
    assert (black.subject.id_type, black.list, black.reasons[0].code) == ("uscc", "black", "LISTING_COUNTERFEIT")
    assert black.reasons[0].record_id is not None and black.reasons[0].record_id.startswith("rec_")
    assert person.subject.id_type == "ric"
    assert person.subject.pseudonym == ric_pseudonym(PERSON["id"], key.lookup_secret)


async def test_a_mirror_given_pushes_and_syncs_in_any_order_ends_as_one_that_only_synced(
    gateway: Gateway, tmp_path: Path
) -> None:
    await gateway.post_and_project(
        [
            event("listing.violation", merchant=BLACK, kind="counterfeit", confirmed=True),
            event("review.manipulation_detected", merchant=WATCH, kind="fake_order", order_count=12, confirmed=True),
            event("review.manipulation_detected", merchant=PERSON, kind="fake_traffic", order_count=2, confirmed=True),
        ],
        "msg_seed",
    )
    key = await gateway.add_api_key(["screen", "changes"])
    secret = SigningSecret.generate()
    receiver = NotificationReceiver(secret)
    first = await feed_entries(gateway, key.api_key)
    pushed = tmp_path / "pushed.db"
    with ListMirror(pushed, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        for sequence in random.Random(5).sample(range(1, len(first) + 1), len(first)):  # pushed out of order
            assert await mirror.apply(receiver.receive(*notification(first[sequence - 1], sequence, secret)).change)
        await mirror.sync()  # the feed: entries the mirror was pushed already change nothing
        assert await mirror.apply(receiver.receive(*notification(first[0], 1, secret)).notification) is False

        # A later change: pushed before the mirror syncs, it is what the mirror answers at once.
        regulator = await gateway.add_source("regulator")
        penalty = event("penalty.imposed", subject=LATER, severity="serious", decision_no="连市监罚〔2026〕12号")
        assert (await gateway.post(regulator, penalty, webhook_id="msg_penalty")).status == 202
        await gateway.project()
        later = await feed_entries(gateway, key.api_key, after=first[-1]["cursor"])
        assert [entry["list"] for entry in later] == ["black"]
        assert mirror.status(LATER).list == "none"
        assert await mirror.apply(receiver.receive(*notification(later[0], len(first) + 1, secret)).change)
        assert mirror.status(LATER).list == "black"
        assert mirror.check_onboarding(LATER).decision == "deny"
        await mirror.sync()
        assert mirror.freshness.cursor == later[-1]["cursor"]

    polled = tmp_path / "polled.db"
    with ListMirror(polled, gateway.base_url, key.lookup_secret, api_key=key.api_key) as mirror:
        await mirror.sync()
        async with Client(gateway.base_url, key.api_key) as client:
            for subject in (BLACK, WATCH, PERSON, LATER):  # a mirror never holds a person's name: not compared
                assert mirror.status(subject).model_dump(exclude={"as_of", "subject"}) == (
                    await client.screen_one(subject)
                ).model_dump(exclude={"as_of", "subject"})
    assert rows(pushed) == rows(polled)
