"""Notifications survive crashes, on each backend: ``bench/notify_crash.py`` in a bounded form (``EVENTS`` events,
``KILLS`` SIGKILLs of the projector and as many of the dispatcher, the receiver failing 10 % and timing out 3 % of
messages) on the test's own database. The bench checks the receiver's log against the feed (every matching change
delivered, none invented, sequences 1..N); this test then reads the outbox itself: each subscription's messages are
numbered 1..N and every one was delivered."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.gateway.conftest import TEST_MASTER_KEY, gateway_env
from xinyong_gateway.store import open_store

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "notify_crash.py"
EVENTS = 150
KILLS = 2
DEADLINE = 240.0
"""Seconds the bounded run may take on a loaded 2-core machine (a deadline, never a measurement)."""


async def test_sigkills_of_projector_and_dispatcher_miss_no_notification_and_invent_none(
    database_url: str, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH),
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
        "--json",
        env=gateway_env(XINYONG_MASTER_KEY=TEST_MASTER_KEY),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await process.communicate()
    assert process.returncode == 0, out.decode() + err.decode()
    figures = json.loads(out)
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
