"""The xinyong demo: a gateway on embedded SQLite, three sources, and a stream of signed events.

Run with ``make demo``. It works in a scratch folder, starts ``xinyong-gateway serve`` on a free local
port, registers a marketplace (HMAC secret), a courier (Ed25519 key pair from ``xinyong keygen``) and a
regulator, sends realistic events through the SDK's ``EventSender`` (and a few that are rejected, to show
why). Then a merchant moves onto the black list and the marketplace, which screens merchants with the SDK's
``Client``, refuses to onboard it; another merchant objects to a penalty, which is disputed until the regulator
upholds the objection and the record is corrected; the marketplace subscribes to the black list and a counterfeit
report reaches its endpoint as a signed notification (the latency printed); an intermediary agency declares about
itself, is evaluated, and loses its tier when one of its practitioners files a false report (the practitioner is
banned); the public disclosure site (``/public/``) shows a black-listed shop's page as a person reads it; the
marketplace's ``ListMirror`` syncs the lists and it keeps a signed attestation of its check; the gateway is stopped,
the mirror still answers and the attestation verifies offline. It prints a summary. Nothing is left running and
nothing is left on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from xinyong import (
    ApiError,
    AttestationError,
    Client,
    EventSender,
    ListMirror,
    NotificationReceiver,
    NotifiedChange,
    OnboardingDecision,
    SelectionDecision,
    TransportError,
    XinyongError,
    verify_attestation,
)
from xinyong.webhooks import SigningKey, SigningSecret, signature_headers

BIN = Path(sys.executable).parent

# Valid identifiers (check characters computed): Lianyungang shops, a courier, a regulator.
SHOP_A = {"id_type": "uscc", "id": "91320700MA1P4K7L4R", "name": "连云港海鲜优选电子商务有限公司"}
SHOP_B = {"id_type": "uscc", "id": "91320703MA20B8C33E", "name": "连云区水晶饰品商行"}
SHOP_C = {"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "name": "海州区速达数码店"}
SHOP_D = {"id_type": "uscc", "id": "91320705MA21Q7K346", "name": "新浦区茶叶小铺"}
SHOP_E = {"id_type": "uscc", "id": "91320706MA27H5Q841", "name": "海州区潮牌运动鞋店"}
SOLE_TRADER = {"id_type": "ric", "id": "320706198605174597", "name": "王小明"}
COURIER = {"id_type": "uscc", "id": "91320700134762510T", "name": "连云港顺捷快递有限公司"}
MARKETPLACE_USCC = "91330100MA2H9X4W2M"
# An intermediary agency in administrative approvals (涉审中介机构), another one, and two of its practitioners.
AGENCY = {"id_type": "uscc", "id": "91320703MA1W8E2K6M", "name": "连云港海州工程咨询有限公司"}
OTHER_AGENCY = {"id_type": "uscc", "id": "91320706MA1XQ3L53E", "name": "连云港新浦检测技术有限公司"}
ENGINEER = {"id_type": "ric", "id": "320703198403125843", "name": "陈晓东"}
SURVEYOR = {"id_type": "ric", "id": "320706199007025414", "name": "刘海燕"}
REGULATOR_USCC = "1132070001438827X3"


def at(minutes_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "timestamp": at(0), "data": data}


def run_cli(*args: str) -> Any:
    """Run a command-line tool of the project and return its JSON output."""
    done = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base_url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll /readyz until the gateway answers 200 (or give up after 20 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"The gateway exited early:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:  # noqa: S310 -- http://127.0.0.1 only
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("The gateway did not become ready within 20 s.")


class Tally:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, who: str, what: str, outcome: str) -> None:
        self.rows.append((who, what, outcome))
        print(f"  {who:<11} {what:<48} {outcome}")


async def post_raw(base_url: str, source_id: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Post exactly these bytes and headers (to show what the gateway refuses)."""
    async with aiohttp.ClientSession() as session:
        headers = {**headers, "Content-Type": "application/json"}
        async with session.post(f"{base_url}/v1/webhooks/{source_id}", data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)


async def scenario(base_url: str, sources: dict[str, dict[str, Any]], courier_key: SigningKey) -> Tally:
    tally = Tally()
    market, regulator, courier = sources["marketplace"], sources["regulator"], sources["courier"]

    print("\nA marketplace registers shops and reports what its risk team found (HMAC-SHA256, v1):")
    async with EventSender(base_url, market["source_id"], market["secret"]) as sender:
        for shop, shop_id in (
            (SHOP_A, "shop-1001"),
            (SHOP_B, "shop-1002"),
            (SHOP_C, "shop-1003"),
            (SOLE_TRADER, "shop-1004"),
        ):
            ack = await sender.send(
                envelope(
                    "merchant.registered",
                    {
                        "merchant": shop,
                        "shop_id": shop_id,
                        "shop_name": f"{shop['name']}旗舰店",
                        "verification": ["business_license", "face_match"],
                        "registered_at": at(60),
                    },
                ),
                webhook_id=f"reg-{shop_id}",
            )
            tally.add("marketplace", f"merchant.registered {shop_id}", ack.status)
        brushing = envelope(
            "review.manipulation_detected",
            {
                "case_id": "RM-2026-0412",
                "merchant": SHOP_C,
                "kind": "fake_order",
                "order_count": 164,
                "confirmed": True,
                "detected_at": at(30),
            },
        )
        ack = await sender.send(brushing, webhook_id="case-RM-2026-0412")
        tally.add("marketplace", "review.manipulation_detected (164 fake orders)", ack.status)
        ack = await sender.send(brushing, webhook_id="case-RM-2026-0412")
        tally.add("marketplace", "  the same webhook sent again (a retry)", f"{ack.status}: stored once")
        ack = await sender.send(
            envelope(
                "commitment.published",
                {
                    "merchant": SHOP_A,
                    "commitment_id": "CM-88",
                    "items": ["正品保障", "七天无理由退货"],
                    "published_at": at(50),
                },
            ),
            webhook_id="cm-88",
        )
        tally.add("marketplace", "commitment.published", ack.status)
        try:
            await sender.send(
                envelope(
                    "complaint.filed",
                    {
                        "complaint_id": "C-1",
                        "merchant": {"id_type": "uscc", "id": "91320700MA1P4K7L4X"},
                        "category": "quality",
                        "channel": "12315",
                        "filed_at": at(5),
                    },
                ),
            )
        except ApiError as exc:
            pointer = exc.errors[0]["pointer"] if exc.errors else "-"
            tally.add("marketplace", "complaint.filed, mistyped USCC", f"{exc.status} rejected at {pointer}")

    print("\nA courier posts delivery records signed with Ed25519 (v1a), including empty parcels:")
    async with EventSender(base_url, courier["source_id"], courier_key) as sender:
        records = [
            (f"YT{7_310_000 + n}", "empty_parcel" if n % 4 == 0 else "delivered", SHOP_C if n % 4 == 0 else SHOP_B)
            for n in range(12)
        ]
        results = await sender.send_many(
            (
                f"wb-{no}",
                envelope(
                    "delivery.recorded",
                    {"waybill_no": no, "courier": COURIER, "merchant": shop, "status": status, "occurred_at": at(20)},
                ),
            )
            for no, status, shop in records
        )
        empties = sum(1 for _, status, _ in records if status == "empty_parcel")
        accepted = sum(1 for r in results if not isinstance(r, XinyongError) and r.status == "accepted")
        tally.add("courier", f"delivery.recorded x{len(records)} ({empties} empty parcels)", f"{accepted} accepted")
        try:
            await sender.send(
                envelope(
                    "penalty.imposed",
                    {
                        "decision_no": "X",
                        "subject": SHOP_C,
                        "authority": "courier?",
                        "severity": "minor",
                        "violation": "n/a",
                        "decided_at": at(1),
                    },
                )
            )
        except ApiError as exc:
            tally.add("courier", "penalty.imposed (not a courier's to send)", f"{exc.status} {exc.title}")

    print("\nThe market regulator posts a penalty decision (HMAC-SHA256, v1):")
    async with EventSender(base_url, regulator["source_id"], regulator["secret"]) as sender:
        ack = await sender.send(
            envelope(
                "penalty.imposed",
                {
                    "decision_no": "连市监罚〔2026〕118号",
                    "subject": SHOP_C,
                    "authority": "连云港市市场监督管理局",
                    "severity": "serious",
                    "violation": "组织虚假交易（刷单）",
                    "decided_at": at(10),
                },
            ),
            webhook_id="pen-2026-118",
        )
        tally.add("regulator", "penalty.imposed (serious)", ack.status)

    print("\nWhat the gateway refuses, and why:")
    secret = SigningSecret.parse(market["secret"])
    body = json.dumps(
        envelope(
            "complaint.filed",
            {
                "complaint_id": "C-2",
                "merchant": SHOP_B,
                "category": "misdescription",
                "channel": "platform",
                "filed_at": at(2),
            },
        ),
        ensure_ascii=False,
    ).encode()
    headers = signature_headers(secret, "msg-tampered", body)
    tampered = body.replace(b"misdescription", b"counterfeit")
    status, problem = await post_raw(base_url, market["source_id"], tampered, headers)
    tally.add("someone", "complaint with its body altered after signing", f"{status} {problem['title']}")
    old = signature_headers(secret, "msg-replayed", body, timestamp=int(time.time()) - 3600)
    status, problem = await post_raw(base_url, market["source_id"], body, old)
    tally.add("someone", "a captured webhook replayed an hour later", f"{status} {problem['title']}")
    fresh = signature_headers(secret, "reg-shop-1001", body)
    status, problem = await post_raw(base_url, market["source_id"], body, fresh)
    tally.add("marketplace", "a used webhook-id with a different body", f"{status} {problem['title']}")
    return tally


def decided(decision: OnboardingDecision) -> str:
    codes = ", ".join(dict.fromkeys(reason.code for reason in decision.reasons)) or "no negative record"
    status = decision.status
    return f"{decision.decision.upper():<6} ({status.list} list, grade {status.grade or '-'}: {codes})"


async def onboarding(base_url: str, market: dict[str, Any], key: dict[str, Any], mirror_path: Path) -> bool:
    """A merchant moves onto the black list; the marketplace refuses it, and its list mirror syncs."""
    print("\nA merchant asks the marketplace for a second store; the marketplace screens it (API key, Client):")
    async with Client(base_url, key["api_key"]) as client:
        before = await client.check_onboarding(SHOP_B)
        print(f"  {SHOP_B['id']} {SHOP_B['name']}: {decided(before)}")
        print("The marketplace's risk team then confirms counterfeit goods in one of its listings:")
        async with EventSender(base_url, market["source_id"], market["secret"]) as sender:
            violation = {
                "case_id": "LV-2026-0093",
                "merchant": SHOP_B,
                "listing_id": "item-88231",
                "kind": "counterfeit",
                "confirmed": True,
                "found_at": at(1),
            }
            ack = await sender.send(envelope("listing.violation", violation), webhook_id="case-LV-2026-0093")
        print(
            f"  listing.violation (counterfeit, confirmed): {ack.status}; the projector inside the gateway applies it"
        )
        deadline = time.monotonic() + 20
        after = await client.check_onboarding(SHOP_B)
        while after.decision != "deny" and time.monotonic() < deadline:  # the projector runs beside ingest
            await asyncio.sleep(0.1)
            after = await client.check_onboarding(SHOP_B)
        print(f"  screened again: {decided(after)}")
        print(f"  → the marketplace refuses the store; measures: {', '.join(after.measures)}")
        print("The marketplace keeps a list mirror: a local SQLite copy of the lists, following the change feed:")
        with ListMirror(mirror_path, client, key["lookup_secret"]) as mirror:
            applied = await mirror.sync()
            freshness = mirror.freshness
        print(f"  synced {applied} change-feed entries into {mirror_path.name} ({freshness.entries} subjects)")
    return before.decision == "allow" and after.decision == "deny" and applied > 0


# -- notifications: the marketplace subscribes, and is told ------------------------------------------------------
async def notifications(base_url: str, market: dict[str, Any], key: dict[str, Any]) -> bool:
    """The marketplace subscribes its endpoint to the black list; a counterfeit report reaches it as a signed
    ``list.changed`` message (verified and parsed by the SDK's ``NotificationReceiver``), and the latency is printed."""
    print("\nThe marketplace subscribes its endpoint to the black list (API key scope subscribe):")
    arrived: asyncio.Future[tuple[float, NotifiedChange]] = asyncio.get_running_loop().create_future()
    receivers: list[NotificationReceiver] = []

    async def endpoint(request: web.Request) -> web.Response:
        received = receivers[0].receive(request.headers, await request.read())  # raises unless signed and well-formed
        if not arrived.done():
            arrived.set_result((time.time(), received.change))
        receivers[0].acknowledge(received)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/xinyong/notifications", endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{base_url}/v1/subscriptions",
                json={"url": f"http://127.0.0.1:{port}/xinyong/notifications", "lists": ["black"]},
                headers={"Authorization": f"Bearer {key['api_key']}"},
            ) as response:
                created = await response.json()
        receivers.append(NotificationReceiver([created["secret"]]))
        print(f"  subscription {created['subscription_id']}: its secret whsec_… is shown once, the endpoint keeps it")
        async with EventSender(base_url, market["source_id"], market["secret"]) as sender:
            report = {
                "case_id": "LV-2026-0107",
                "merchant": SHOP_E,
                "listing_id": "item-90412",
                "kind": "counterfeit",
                "confirmed": True,
                "found_at": at(1),
            }
            ack = await sender.send(envelope("listing.violation", report), webhook_id="case-LV-2026-0107")
            acknowledged = time.time()
        print(f"  the risk team reports counterfeit sneakers at {SHOP_E['name']}: {ack.status}")
        received_at, change = await asyncio.wait_for(arrived, 20)
        latency = received_at - acknowledged
        within = "within the second" if latency < 1 else "later than a second (a busy machine?)"
        shop = change.subject.id if change.subject.id_type == "uscc" else change.subject.pseudonym
        print(
            f"  the endpoint received list.changed #{change.sequence}, signature verified (NotificationReceiver):"
            f" {shop} → {change.list} list, {', '.join(change.measures)}"
        )
        print(f"  latency from the gateway's 202 to the endpoint: {latency * 1000:.0f} ms ({within})")
        return bool(change.list == "black" and shop == SHOP_E["id"])
    finally:
        await runner.cleanup()


async def screened_until(client: Client, subject: dict[str, str], done: Any) -> OnboardingDecision:
    """Screen ``subject`` until ``done(decision)`` holds (the projector inside the gateway runs beside ingest)."""
    deadline = time.monotonic() + 20
    decision = await client.check_onboarding(subject)
    while not done(decision) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        decision = await client.check_onboarding(subject)
    return decision


async def objection(base_url: str, url: str, sources: dict[str, dict[str, Any]], key: dict[str, Any]) -> bool:
    """A penalised merchant objects through the marketplace; disputed until the regulator upholds it; then allowed."""
    market, regulator = sources["marketplace"], sources["regulator"]
    print("\nDue process: a merchant objects to a penalty it says was imposed on the wrong shop:")
    async with (
        Client(base_url, key["api_key"]) as client,
        EventSender(base_url, regulator["source_id"], regulator["secret"]) as by_regulator,
        EventSender(base_url, market["source_id"], market["secret"]) as by_market,
    ):
        penalty = {
            "decision_no": "连市监罚〔2026〕131号",
            "subject": SHOP_D,
            "authority": "连云港市市场监督管理局",
            "severity": "serious",
            "violation": "销售假冒注册商标的商品",
            "decided_at": at(3),
        }
        await by_regulator.send(envelope("penalty.imposed", penalty), webhook_id="pen-2026-131")
        before = await screened_until(client, SHOP_D, lambda d: d.decision == "deny")
        record_id = before.reasons[0].record_id or ""
        print(f"  {SHOP_D['id']} {SHOP_D['name']}: {decided(before)}, record {record_id}")
        filed = {
            "objection_id": "OBJ-2026-0007",
            "subject": SHOP_D,
            "record_id": record_id,
            "grounds": "处罚决定书所列商品并非本店销售，附平台订单记录",
            "filed_at": at(2),
        }
        await by_market.send(envelope("objection.filed", filed), webhook_id="obj-2026-0007")
        disputed = await screened_until(client, SHOP_D, lambda d: d.status.disputed)
        print(f"  the marketplace files objection OBJ-2026-0007: screened again: {decided(disputed)}, disputed:"
              f" {str(disputed.status.disputed).lower()}")  # fmt: skip
        case = await client.objection("OBJ-2026-0007")  # GET /v1/objections/{id}: the marketplace's own filing
        print(f"  the marketplace follows its case: {case.state}; the regulator must reply by {case.reply_due}"
              " (30 days, policy [due_process])")  # fmt: skip
        ruling = {
            "objection_id": "OBJ-2026-0007",
            "subject": SHOP_D,
            "outcome": "upheld",
            "note": "经核查，处罚对象有误，予以更正",
            "decided_at": at(1),
        }
        await by_regulator.send(envelope("objection.decided", ruling), webhook_id="obj-2026-0007-ruling")
        after = await screened_until(client, SHOP_D, lambda d: d.decision == "allow")
        print(f"  the regulator upholds it: the record is corrected; screened again: {decided(after)}")
        shown = run_cli("xinyong-gateway", "--db", url, "--json", "objections", "show", "OBJ-2026-0007")
        print(f"  the correction was published at {shown['published_at']} (in the change feed); it was due by"
              f" {shown['publish_due']} (3 working days, China calendar)")  # fmt: skip
    return before.decision == "deny" and disputed.status.disputed and after.decision == "allow"


# -- intermediaries (issue #21): an agency declares, is evaluated, and loses its tier -------------------------------


def chosen(choice: SelectionDecision) -> str:
    standing = choice.status.intermediary
    tier = standing.tier if standing is not None else None
    shown = f"tier {tier.grade} ({', '.join(tier.measures) or 'no measures'})" if tier is not None else "no tier"
    return f"{choice.decision.upper():<6} {shown}" + (f"; {', '.join(choice.reasons)}" if choice.reasons else "")


async def intermediaries(base_url: str, url: str, sources: dict[str, dict[str, Any]], key: dict[str, Any]) -> int:
    """An agency declares about itself (and may not about another), the industry regulator evaluates it, an approval
    department may choose it; one of its practitioners files a false report: both are black-listed, the agency loses
    its tier and the practitioner is banned. Returns the number of events stored here (0 when something is off)."""
    print("\nIntermediaries in administrative approvals (涉审中介机构):")
    agency = run_cli("xinyong-gateway", "--db", url, "sources", "add", "--kind", "intermediary",
                     "--name", AGENCY["name"], "--uscc", AGENCY["id"])  # fmt: skip
    print(f"  registered intermediary {agency['source_id']} (posts about {AGENCY['id']} only)")
    regulator = sources["regulator"]
    declaration = {
        "agency": AGENCY,
        "services": ["design_consulting", "assessment"],
        "qualifications": [{"name": "工程咨询单位甲级资信", "certificate_no": "甲级-2026-0318",
                            "valid_until": "2029-03-17"}],
        "practitioners": [{"person": ENGINEER, "certificate_no": "ZXGCS-0701"},
                          {"person": SURVEYOR, "certificate_no": "CHS-0702"}],
        "commitment": {"accepted": True, "items": ["申报信息真实、准确、完整", "依法依规执业，不出具虚假报告"],
                       "signatory": "法定代表人"},
        "declared_at": at(5),
    }  # fmt: skip
    stored = 0
    async with (
        Client(base_url, key["api_key"]) as client,
        EventSender(base_url, agency["source_id"], agency["secret"]) as by_agency,
        EventSender(base_url, regulator["source_id"], regulator["secret"]) as by_regulator,
    ):
        await by_agency.send(envelope("intermediary.declared", declaration), webhook_id="decl-2026-1")
        stored += 1
        try:
            await by_agency.send(envelope("intermediary.declared", {**declaration, "agency": OTHER_AGENCY}),
                                 webhook_id="decl-other")  # fmt: skip
            print("  it declared for another agency?! (a bug)")
            return 0
        except ApiError as exc:
            print(f"  it tries to declare for another agency: {exc.status} {exc.title}")
        evaluation = {"evaluation_id": "PJ-2026-H1-031", "subject": AGENCY, "period": "2026-H1", "grade": "A",
                      "evaluator": "连云港市发展和改革委员会", "evaluated_at": at(4)}  # fmt: skip
        await by_regulator.send(envelope("intermediary.evaluated", evaluation), webhook_id="eval-2026-h1-031")
        stored += 1
        before = await selected_until(client, AGENCY, lambda c: c.decision == "allow")
        print(f"  evaluated A for 2026-H1; an approval department's check_selection: {chosen(before)}")
        violation = {"case_id": "ZJ-2026-017", "agency": AGENCY, "practitioners": [ENGINEER], "kind": "false_report",
                     "severity": "serious", "confirmed": True, "decision_no": "连发改罚〔2026〕17号",
                     "found_at": at(2)}  # fmt: skip
        await by_regulator.send(envelope("intermediary.violation", violation), webhook_id="iv-2026-017")
        stored += 1
        after = await selected_until(client, AGENCY, lambda c: c.decision == "deny")
        print(f"  a practitioner's false report (连发改罚〔2026〕17号): check_selection: {chosen(after)}")
        banned = await client.screen_one(ENGINEER)
        tier = banned.intermediary.tier if banned.intermediary is not None else None
        ban = f"tier {tier.grade}: {', '.join(tier.measures)}" if tier is not None else "no tier"
        print(f"  the practitioner {banned.subject.id} {banned.subject.name}: {banned.list} list, {ban}")
    shown = run_cli("xinyong-gateway", "--db", url, "--json", "subjects", "show", "uscc", AGENCY["id"])
    listed = ", ".join(f"{p['name']} ({p['certificate_no']})" for p in shown["intermediary"]["practitioners"])
    print(f"  the agency's file lists its practitioners masked: {listed}")
    ok = (
        before.decision == "allow" and after.decision == "deny" and tier is not None and "practice_ban" in tier.measures
    )
    return stored if ok else 0


async def selected_until(client: Client, agency: dict[str, str], done: Any) -> SelectionDecision:
    """Ask until the projector has applied the latest events (it runs inside the gateway, a moment behind)."""
    choice = await client.check_selection(agency)
    for _ in range(100):
        if done(choice):
            break
        await asyncio.sleep(0.05)
        choice = await client.check_selection(agency)
    return choice


def offline(base_url: str, key: dict[str, Any], mirror_path: Path) -> bool:
    """The gateway is stopped: the client cannot answer, the list mirror can."""
    print("\nThe gateway is stopped. The marketplace's client cannot screen any more:")

    async def online() -> str:
        async with Client(base_url, key["api_key"], max_attempts=1) as client:
            try:
                await client.check_onboarding(SHOP_B)
            except TransportError:
                return "TransportError (no answer, and never a default allow)"
        return "an answer?!"

    print(f"  Client.check_onboarding → {asyncio.run(online())}")
    print("but its list mirror still answers, from the local file, without the network:")
    answers = []
    with ListMirror(mirror_path, None, key["lookup_secret"]) as mirror:
        for shop in (SHOP_B, SHOP_A, SOLE_TRADER):
            started = time.perf_counter()
            decision = mirror.check_onboarding(shop)
            micros = (time.perf_counter() - started) * 1e6
            answers.append(decision.decision)
            shown = f"{decision.status.subject.id} {shop['name'] if shop['id_type'] == 'uscc' else '(a person)'}"
            print(f"  {shown:<44} {decided(decision)}  in {micros:.0f} µs")
        synced = mirror.freshness.synced_at
    print(f"  (as of its last sync, {synced:%H:%M:%S} UTC; past its max_age it answers review instead of allow)")
    in_mirror = SOLE_TRADER["id"].encode() in b"".join(p.read_bytes() for p in mirror_path.parent.glob("lists.db*"))
    print(
        f"  does the sole trader's resident id appear in the mirror file? {'YES (a bug!)' if in_mirror else 'no'}"
        " (persons are matched by pseudonym)"
    )
    return answers == ["deny", "allow", "allow"] and not in_mirror


# -- attestations: a signed proof of the onboarding check, verified offline ------------------------------------------
async def fetch_attestation(base_url: str, key: dict[str, Any], folder: Path) -> bool:
    """(Gateway running) The marketplace keeps a signed attestation of the refused merchant, and the gateway's keys."""
    print("\nThe marketplace keeps a signed attestation of that check (POST /v1/attestations, scope attest):")
    async with Client(base_url, key["api_key"]) as client:
        token = await client.attest(SHOP_B)
        jwks = await client.signing_keys()
    (folder / "SHOP_B.jws").write_text(token + "\n")
    (folder / "jwks.json").write_text(json.dumps(jwks))
    header = token.split(".", 1)[0]
    print(f"  {SHOP_B['id']}: a compact JWS of {len(token)} characters (EdDSA, Ed25519), saved as SHOP_B.jws")
    print(f"  and the gateway's public keys from /.well-known/jwks.json ({len(jwks['keys'])} key), saved as jwks.json")
    return bool(header) and len(jwks["keys"]) == 1


def verify_attestation_offline(folder: Path) -> bool:
    """(Gateway stopped) The attestation verifies from the two files alone; a changed byte does not."""
    print("\nWith the gateway stopped, anyone holding the two files verifies the attestation offline:")
    claims = run_cli("xinyong", "attest", "verify", str(folder / "SHOP_B.jws"), "--jwks", str(folder / "jwks.json"))
    print(
        f"  xinyong attest verify SHOP_B.jws --jwks jwks.json → valid: {claims['subject']['id']}"
        f" {claims['subject']['name']}, list {claims['list']}, grade {claims['grade']}, signed for {claims['aud']}"
    )
    token = (folder / "SHOP_B.jws").read_text().strip()
    payload_at = token.index(".") + 5
    changed = token[:payload_at] + ("A" if token[payload_at] != "A" else "B") + token[payload_at + 1 :]
    try:
        verify_attestation(changed, (folder / "jwks.json").read_text())
        refused = "accepted (a bug!)"
    except AttestationError as exc:
        refused = f"refused: {exc}"
    print(f"  one character of the payload changed → {refused}")
    return claims["list"] == "black" and refused.startswith("refused")


# -- the public disclosure site (信用公示) ---------------------------------------------------------------------------
class _PageText(HTMLParser):
    """The text of a page's <main> as a person reads it: one line per block, table cells joined by " | "."""

    _BLOCKS = frozenset({"p", "h1", "h2", "li", "tr", "div", "dt", "section", "ol", "ul", "table"})

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = [""]
        self._in_main = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main":
            self._in_main = True
        elif self._in_main and tag in self._BLOCKS:
            self.lines.append("")
        elif self._in_main and tag in ("td", "th", "dd") and self.lines[-1]:
            self.lines[-1] += " | "

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self._in_main = False

    def handle_data(self, data: str) -> None:
        if self._in_main:
            self.lines[-1] += re.sub(r"\s+", " ", data)

    def text(self) -> list[str]:
        return [line.strip(" |") for line in self.lines if line.strip(" |")]


def public_site(base_url: str) -> bool:
    """A person looks the black-listed shop up on the public site: by a part of its name, then its page."""
    print("\nThe public disclosure site (信用公示), as a person reads it:")
    search = f"{base_url}/public/search?q=" + urllib.parse.quote("速达")
    with urllib.request.urlopen(search, timeout=10) as answer:  # noqa: S310 -- the demo's own local gateway
        found = SHOP_C["id"] in answer.read().decode()
    print(f"  searching 速达 on {base_url}/public/ finds {SHOP_C['name']}: {'yes' if found else 'NO (a bug!)'}")
    address = f"{base_url}/public/subjects/uscc/{SHOP_C['id']}"
    with urllib.request.urlopen(address, timeout=10) as answer:  # noqa: S310 -- the demo's own local gateway
        page = answer.read().decode()
    reader = _PageText()
    reader.feed(page)
    print(f"  {address}")
    for line in reader.text():
        print(f"    {line}")
    print(f"  badge for the shop's page on a marketplace: {base_url}/public/badge/{SHOP_C['id']}.svg")
    banner = "该主体已列入严重失信主体名单" in page
    return found and banner and SOLE_TRADER["id"] not in page


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="xinyong-demo-") as scratch:
        db = Path(scratch) / "xinyong.db"
        url = f"sqlite:///{db}"
        print(f"xinyong demo — gateway on embedded SQLite at {db}\n  master key file created beside it (mode 0600)")
        run_cli("xinyong-gateway", "--db", url, "--json", "migrate")
        keys = run_cli("xinyong", "keygen", "--json")
        add = ("xinyong-gateway", "--db", url, "sources", "add")
        sources = {
            "marketplace": run_cli(*add, "--kind", "marketplace", "--name", "云购商城", "--uscc", MARKETPLACE_USCC),
            "courier": run_cli(
                *add,
                "--kind",
                "courier",
                "--name",
                "连云港顺捷快递",
                "--uscc",
                COURIER["id"],
                "--public-key",
                keys["public_key"],
            ),
            "regulator": run_cli(
                *add, "--kind", "regulator", "--name", "连云港市市场监督管理局", "--uscc", REGULATOR_USCC
            ),
        }
        for kind, source in sources.items():
            scheme = source["keys"][0]["scheme"]
            label = "Ed25519" if scheme == "v1a" else "HMAC"
            print(f"  registered {kind:<11} {source['source_id']}  ({label} {scheme})")
        api_key = run_cli(
            "xinyong-gateway",
            "--db",
            url,
            "keys",
            "add",
            "--name",
            "云购商城",
            "--scopes",
            "screen,changes,cases,attest,subscribe",
            "--sources",
            sources["marketplace"]["source_id"],
        )
        print(
            f"  API key {api_key['key_id']} for the marketplace (scopes screen, changes, cases, attest, subscribe; with"
            " a lookup secret)"
        )
        mirror_path = Path(scratch) / "marketplace" / "lists.db"
        mirror_path.parent.mkdir()

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = Path(scratch) / "gateway.log"
        with log_path.open("wb") as log_file:
            server = subprocess.Popen(
                [str(BIN / "xinyong-gateway"), "--db", url, "serve", "--port", str(port), "--log-format", "json"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # The demo's marketplace endpoint listens on this machine: the operator allows loopback as an
                # exception to the SSRF guard (by default notifications go only to public addresses).
                env={**os.environ, "XINYONG_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32"},
            )
            try:
                wait_ready(base_url, server, log_path)
                print(f"  gateway listening on {base_url}")
                tally = asyncio.run(scenario(base_url, sources, SigningKey.parse(keys["signing_key"])))
                onboarded = asyncio.run(onboarding(base_url, sources["marketplace"], api_key, mirror_path))
                notified = asyncio.run(notifications(base_url, sources["marketplace"], api_key))
                objected = asyncio.run(objection(base_url, url, sources, api_key))
                intermediary_events = asyncio.run(intermediaries(base_url, url, sources, api_key))
                fetched = asyncio.run(fetch_attestation(base_url, api_key, mirror_path.parent))
                disclosed = public_site(base_url)
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        mirror_answers = offline(base_url, api_key, mirror_path)
        attested = fetched and verify_attestation_offline(mirror_path.parent)

        # The projector ran inside the gateway; `project --once` makes sure it has caught up before we look.
        run_cli("xinyong-gateway", "--db", url, "--json", "project", "--once")
        print("\nWhat the credit files say now (the projector applied the policy to every stored event):")
        for shop in (SHOP_A, SHOP_B, SHOP_C, SOLE_TRADER, COURIER):
            shown = run_cli("xinyong-gateway", "--db", url, "--json", "subjects", "show", shop["id_type"], shop["id"])
            status = shown["status"]
            codes = ", ".join(reason["code"] for reason in status["reasons"]) or "no negative record"
            who = f"{shown['subject']['id']} {shown['subject']['name'] or ''}"
            print(f"  {who:<44} {status['list']:<5} grade {status['grade']}  ({codes})")
        print("  (a resident id and a person's name are shown masked; `subjects show ... --reveal` unmasks them)")

        log_lines = log_path.read_text().splitlines()
        entries = [json.loads(line) for line in log_lines if line.startswith("{")]
        stored = sum(1 for entry in entries if entry.get("outcome") == "accepted")
        refused = sum(1 for entry in entries if "problem" in entry)
        plain_ric = SOLE_TRADER["id"].encode()
        on_disk = b"".join(p.read_bytes() for p in Path(scratch).iterdir() if p.name.startswith("xinyong.db"))
        in_log = plain_ric in log_path.read_bytes()
        print("\nSummary")
        print(f"  {stored} events stored durably (each acknowledged only after its commit reached the disk)")
        print(f"  {refused} requests refused with a problem+json answer; nothing of them stored")
        print(f"  (of the events stored, {intermediary_events} came from the intermediaries step)")
        sealed = "YES (a bug!)" if plain_ric in on_disk else "no: raw bodies are sealed with AES-256-GCM"
        print(f"  does the sole trader's resident id appear in the database files? {sealed}")
        logged = "YES (a bug!)" if in_log else "no"
        requests = sum(1 for entry in entries if entry.get("event") == "request")
        print(f"  gateway log: {requests} request lines (one per request); resident id in it: {logged}")
        print("\nThe gateway has stopped and the scratch folder is removed. Next: `make test`, or see README.md.")
        ok = (
            plain_ric not in on_disk
            and not in_log
            and tally.rows
            and onboarded
            and notified
            and objected
            and disclosed
            and mirror_answers
            and attested
            and intermediary_events > 0
        )
        return 0 if ok else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
