"""The runnable examples of ``examples/``, run as their docstrings run them (a subprocess, settings in the
environment) against the real gateway on each backend.

(The gateway serves on this test's event loop, so the examples run as asynchronous subprocesses.)"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import Gateway, gateway_env
from xinyong import Client, ListMirror, SigningSecret, ric_pseudonym
from xinyong.webhooks import signature_headers

pytestmark = pytest.mark.slow

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BLACK = {"id_type": "uscc", "id": make_uscc(random.Random(61)), "name": "假货旗舰店"}
WATCH = {"id_type": "uscc", "id": make_uscc(random.Random(62)), "name": "刷单小店"}
RED = {"id_type": "uscc", "id": make_uscc(random.Random(63)), "name": "诚信老店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(64)), "name": "赵敏"}
NEW = {"id_type": "uscc", "id": make_uscc(random.Random(65))}


async def run_example(script: str, *argv: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=gateway_env(**env),
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def seed(gateway: Gateway) -> None:
    long_ago = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    bodies = [
        event("listing.violation", merchant=BLACK, kind="counterfeit", confirmed=True),
        event("review.manipulation_detected", merchant=WATCH, kind="fake_order", order_count=12, confirmed=True),
        event("review.manipulation_detected", merchant=PERSON, kind="fake_traffic", order_count=2, confirmed=True),
        event("merchant.registered", merchant=RED, registered_at=long_ago),
        event("commitment.published", merchant=RED, published_at=long_ago),
    ]
    await gateway.post_and_project(bodies, "msg_example")


async def test_marketplace_onboarding_opens_refuses_or_asks_a_person(gateway: Gateway, tmp_path: Path) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["screen", "changes"])
    env = {"XINYONG_URL": gateway.base_url, "XINYONG_API_KEY": key.api_key}
    masked = PERSON["id"][:6] + "********" + PERSON["id"][-4:]
    for merchant, status, first_line in [
        (BLACK, 4, f"DENY: uscc {BLACK['id']} 假货旗舰店"),
        (PERSON, 3, f"REVIEW: ric {masked} 赵*"),
        (NEW, 0, f"ALLOW: uscc {NEW['id']}"),
    ]:
        argv = [merchant["id_type"], merchant["id"], *([merchant["name"]] if "name" in merchant else [])]
        code, out, err = await run_example("marketplace_onboarding.py", *argv, **env)
        assert code == status, err
        assert out.splitlines()[0] == first_line
    assert "→ refuse the store" in (await run_example("marketplace_onboarding.py", "uscc", BLACK["id"], **env))[1]

    mirror = tmp_path / "lists.db"  # the marketplace keeps a list mirror; then the gateway goes away
    with ListMirror(mirror, gateway.base_url, key.lookup_secret, api_key=key.api_key) as copy:
        await copy.sync()
    await gateway.client.close()
    code, _, err = await run_example("marketplace_onboarding.py", "uscc", BLACK["id"], **env)
    assert code == 1 and "do not open the store yet" in err
    offline = env | {"XINYONG_MIRROR": str(mirror), "XINYONG_LOOKUP_SECRET": key.lookup_secret}
    code, out, _ = await run_example("marketplace_onboarding.py", "uscc", BLACK["id"], **offline)
    assert code == 4
    assert "list mirror as of" in out


async def test_courier_deliveries_posts_signed_records_once_and_empty_parcels_count(
    gateway: Gateway, tmp_path: Path
) -> None:
    courier = await gateway.add_source("courier", ed25519=True)
    key_file = tmp_path / "courier-key.json"
    key_file.write_text(json.dumps({"signing_key": str(courier.key)}))
    env = {"XINYONG_URL": gateway.base_url, "XINYONG_SOURCE_ID": courier.source_id, "XINYONG_KEY_FILE": str(key_file)}
    code, out, err = await run_example("courier_deliveries.py", WATCH["id"], NEW["id"], **env)
    assert code == 0, out + err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{WATCH['id']}: 8 delivery records of ")
    assert lines[0].endswith("(3 empty parcels): 8 accepted")
    code, out, _ = await run_example("courier_deliveries.py", WATCH["id"], NEW["id"], **env)
    assert code == 0
    assert [line.rsplit(": ", 1)[1] for line in out.splitlines()] == ["8 duplicate", "8 duplicate"]
    assert await gateway.store.inbox_count() == 16
    await gateway.project()
    key = await gateway.add_api_key(["screen"])
    async with Client(gateway.base_url, key.api_key) as client:
        status = await client.screen_one(NEW)
    assert status.list == "watch"
    assert [reason.code for reason in status.reasons] == ["EMPTY_PARCELS"]


async def test_apply_measures_follows_the_feed_and_updates_the_shops(gateway: Gateway, tmp_path: Path) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["changes"])
    env = {"XINYONG_URL": gateway.base_url, "XINYONG_API_KEY": key.api_key, "XINYONG_LOOKUP_SECRET": key.lookup_secret}
    shops: dict[str, Any] = {
        "cursor": None,
        "shops": [
            {
                "shop_id": f"shop-{n}",
                "merchant": {k: v for k, v in m.items() if k != "name"},
                "open": True,
                "search": "normal",
            }
            for n, m in enumerate((BLACK, WATCH, RED, PERSON, NEW))
        ],
    }
    records = tmp_path / "shops.json"
    records.write_text(json.dumps(shops))
    code, out, err = await run_example("apply_measures.py", str(records), **env)
    assert code == 0, err
    assert out.splitlines() == [
        "shop-0: store closed (black list: LISTING_COUNTERFEIT, LISTING_VIOLATION)",
        "shop-1: search normal → demoted (watch list: MANIPULATION_CONFIRMED)",
        "shop-3: search normal → demoted (watch list: MANIPULATION_CONFIRMED)",
        "shop-2: search normal → boosted (red list: no negative record)",
        out.splitlines()[-1],
    ]
    state = json.loads(records.read_text())
    assert [(shop["open"], shop["search"]) for shop in state["shops"]] == [
        (False, "normal"),
        (True, "demoted"),
        (True, "boosted"),
        (True, "demoted"),
        (True, "normal"),
    ]
    cursor = state["cursor"]
    assert out.splitlines()[-1] == f"4 shop records changed; feed cursor {cursor}"

    code, out, _ = await run_example("apply_measures.py", str(records), **env)  # nothing new since the cursor
    assert (code, out) == (0, f"0 shop records changed; feed cursor {cursor}\n")
    regulator = await gateway.add_source("regulator")
    penalty = event("penalty.imposed", subject=NEW, severity="serious", decision_no="连市监罚〔2026〕12号")
    assert (await gateway.post(regulator, penalty, webhook_id="msg_penalty")).status == 202
    await gateway.project()
    code, out, _ = await run_example("apply_measures.py", str(records), **env)
    assert out.splitlines()[0] == "shop-4: store closed (black list: PENALTY_SERIOUS)"


class Receiver:
    """``examples/notification_receiver.py`` running as a subprocess on a free port, and what it prints."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, secret: SigningSecret) -> None:
        self.process, self.url, self.secret = process, url, secret

    async def line(self) -> str:
        assert self.process.stdout is not None
        return (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode().rstrip("\n")

    async def post(
        self,
        session: aiohttp.ClientSession,
        entry: dict[str, Any],
        sequence: int,
        *,
        webhook_id: str | None = None,
        secret: SigningSecret | None = None,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> int:
        """POST one notification of ``entry`` signed with the SDK's signer, as the gateway sends them."""
        document = {
            "type": "list.changed",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": entry | {"sequence": sequence},
        }
        body = json.dumps(document, ensure_ascii=False).encode()
        headers = signature_headers(secret or self.secret, webhook_id or f"msg_{sequence}", body, timestamp=timestamp)
        if tamper:
            body = body.replace(b'"black"', b'"watch"')
        async with session.post(self.url, data=body, headers=headers | {"Content-Type": "application/json"}) as answer:
            return answer.status


async def test_notification_receiver_closes_the_store_once_and_catches_up_after_a_gap(gateway: Gateway) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["changes"])
    answer = await gateway.client.get("/v1/lists/changes", headers={"Authorization": f"Bearer {key.api_key}"})
    entries = (await answer.json())["changes"]  # the feed entries exactly as the gateway gives them to this key
    black, watch, person = (next(e for e in entries if e["subject"].get("id") == BLACK["id"]), entries[1], entries[2])
    assert (black["cursor"], black["list"], watch["list"]) == ("1", "black", "watch")
    assert person["subject"] == {"id_type": "ric", "pseudonym": ric_pseudonym(PERSON["id"], key.lookup_secret)}
    secret = SigningSecret.generate()
    env = {"XINYONG_URL": gateway.base_url, "XINYONG_API_KEY": key.api_key, "XINYONG_NOTIFICATION_SECRET": str(secret)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "notification_receiver.py"),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=gateway_env(**env),
    )
    try:
        receiver = Receiver(process, "", secret)
        started = await receiver.line()
        assert started.startswith("listening on http://127.0.0.1:")
        receiver.url = started.removeprefix("listening on ")
        async with aiohttp.ClientSession() as session:
            assert await receiver.post(session, black, 1) == 204
            closed = (
                f"close store of uscc {BLACK['id']} 假货旗舰店 (black list: LISTING_COUNTERFEIT, LISTING_VIOLATION)"
            )
            assert await receiver.line() == f"msg_1 #1: {closed}"
            assert await receiver.post(session, black, 1) == 204  # the gateway's retry: the store is not closed again
            assert await receiver.line() == "msg_1 #1: duplicate, already handled"

            assert await receiver.post(session, black, 2, tamper=True) == 401
            assert await receiver.line() == "refused (401): no valid signature for any of the keys"
            assert await receiver.post(session, black, 2, secret=SigningSecret.generate()) == 401
            assert (await receiver.line()).startswith("refused (401): no valid signature")
            assert await receiver.post(session, black, 2, timestamp=int(time.time()) - 3600) == 401
            assert "outside the ±300 s tolerance" in await receiver.line()

            # Notification 2 (the watch-listed shop) is lost; 3 arrives: the receiver catches up from the feed.
            assert await receiver.post(session, person, 3) == 204
            caught = "catching up from the change feed after cursor"
            assert await receiver.line() == f"msg_3 #3: notification 2 missed: {caught} 1"
            caught_up = [await receiver.line() for _ in entries[1:]]
            demoted = "watch list, measures search_demotion, increased_inspection, risk_warning"
            assert caught_up[0] == f"  feed 2: uscc {WATCH['id']} 刷单小店: {demoted}"
            assert caught_up[1].startswith(f"  feed 3: person {person['subject']['pseudonym'][:12]}…: watch list")
            assert [line.split(":")[0] for line in caught_up] == [f"  feed {e['cursor']}" for e in entries[1:]]
            assert await receiver.line() == "msg_3 #3: already handled from the feed"
            assert await receiver.post(session, watch, 2) == 204  # the lost one, retried late: nothing to do
            assert await receiver.line() == "msg_2 #2: already handled from the feed"

            # The gateway goes away: a gap cannot be filled, so the message is not acknowledged and its retry is
            # handled in full, not taken for a duplicate.
            await gateway.client.close()
            assert await receiver.post(session, black, 6) == 503
            assert await receiver.line() == f"msg_6 #6: notification 4-5 missed: {caught} {entries[-1]['cursor']}"
            assert (await receiver.line()).startswith("msg_6 #6: catch-up failed (Cannot reach ")
            assert await receiver.post(session, black, 6) == 503
            assert "notification 4-5 missed" in await receiver.line()
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 30) == 0
