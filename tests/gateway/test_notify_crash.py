"""Notifications survive crashes, on each backend: ``bench/notify_crash.py`` in a bounded form (``EVENTS`` events,
``KILLS`` SIGKILLs of the projector and as many of the dispatcher, the receiver failing 10 % and timing out 3 % of
messages) on the test's own database. The bench checks the receiver's log against the feed (every matching change
delivered, none invented, sequences 1..N); this test then reads the outbox itself: each subscription's messages are
numbered 1..N and every one was delivered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.conftest import run_bench_json
from xinyong_gateway.store import open_store

pytestmark = pytest.mark.slow

EVENTS = 150
KILLS = 2


async def test_sigkills_of_projector_and_dispatcher_miss_no_notification_and_invent_none(
    database_url: str, tmp_path: Path
) -> None:
    figures = await run_bench_json(
        "notify_crash.py",
        "--db",
        database_url,
        "--in-place",
        "--events",
        str(EVENTS),
        "--kills",
        str(KILLS),
        "--seed",
        "7",
        "--scratch-dir",
        str(tmp_path),
        "--deadline",
        "180",
    )
    assert figures["ok"], figures
    assert figures["kills"] == {"project": KILLS, "dispatch": KILLS}
    assert figures["receiver"]["forged"] == 0
    for name, subscription in figures["subscriptions"].items():
        assert subscription["written"] == subscription["expected"] > 0, name
        assert subscription["not_received"] == subscription["received_wrong_entry"] == 0, name

    async with open_store(database_url) as store:
        subscriptions = await store.list_subscriptions()
        assert len(subscriptions) == 3
        for record in subscriptions:
            rows = await store.outbox_sequences(record.subscription_id)
            assert [sequence for sequence, _ in rows] == list(range(1, record.last_sequence + 1))
            state = await store.outbox_state(record.subscription_id)
            assert (state.delivered, state.pending, state.failed) == (len(rows), 0, 0)
