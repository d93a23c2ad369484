"""How fast notifications go: the latency from the 202 of the event that changes a status to the subscriber's receipt,
under load, and the deliveries per second one dispatcher process sends to a local receiver.

    .venv/bin/python bench/notify.py                                         # SQLite, in a scratch folder
    .venv/bin/python bench/notify.py --db postgresql://postgres@127.0.0.1:5432/test --json

All on 127.0.0.1, in three phases, against ``xinyong-gateway serve`` (projector and dispatcher inside) and the
receiver (``_receiver.py``: verifies every message with the SDK's ``WebhookVerifier``, logs its arrival time):

1. **Ingest peak** (the reference of phase 2): this script's sender (``--concurrency`` connections) posts events that
   change no status (parcels delivered) for ``--peak-seconds``; acknowledged events per second.
2. **Latency at 70 % of that peak**, with ``--subscriptions`` subscriptions to the black list: for ``--seconds`` the
   sender keeps 70 % of the peak, and ``--triggers`` events per second among them put a new merchant on the black
   list. Each trigger's notification reaches the receiver once per subscription; the latency is its arrival minus the
   time the trigger's 202 arrived at the sender (both clocks are this machine's). p50, p99 and max.
3. **Deliveries per second at full speed**: with the dispatcher stopped (``serve --no-dispatcher``), ``--deliveries``
   notifications are queued (a tenth as many triggers, ten subscriptions each), then one ``xinyong-gateway dispatch``
   process sends them; first to last arrival at the receiver. **Baseline** in the same run: the same number of signed
   POSTs of a prepared body from a bare aiohttp client at the same concurrency, no store: the receiver's own ceiling.

The machine is shared and noisy: quote medians of several runs, and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from _notify import BenchError, Fleet, arrivals, database, filler, post, subscribe, uscc, violation
from xinyong.webhooks import SigningSecret, signature_headers
from xinyong_gateway.store import open_store


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="a PostgreSQL server URL (default: a scratch SQLite file)")
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--peak-seconds", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--triggers", type=float, default=20.0, help="status changes per second in phase 2")
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    return parser


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def ingest_peak(session: aiohttp.ClientSession, fleet: Fleet, source: Any, seconds: float, width: int) -> float:
    secret = SigningSecret.parse(source["secret"])
    courier = uscc(random.Random(1))
    counter = iter(range(10**9))
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            n = next(counter)
            await post(session, fleet, source["source_id"], secret, f"peak-{n}", filler(n, courier))
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(width)))
    return done / (time.monotonic() - started)


async def latency_phase(
    session: aiohttp.ClientSession, fleet: Fleet, source: Any, rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    secret = SigningSecret.parse(source["secret"])
    rng = random.Random(2)
    courier = uscc(rng)
    acked: dict[str, float] = {}
    started = time.monotonic()
    stop = started + args.seconds
    per_worker = rate / args.concurrency

    async def load(worker: int) -> None:
        n = 0
        while time.monotonic() < stop:
            due = started + n / per_worker
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await post(session, fleet, source["source_id"], secret, f"load-{worker}-{n}", filler(n, courier))
            n += 1

    async def triggers() -> None:
        n = 0
        while time.monotonic() < stop:
            due = started + n / args.triggers
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            merchant = uscc(rng)
            acked[merchant] = await post(
                session, fleet, source["source_id"], secret, f"trigger-{n}", violation(merchant, 10**6 + n)
            )
            n += 1

    await asyncio.gather(triggers(), *(load(w) for w in range(args.concurrency)))
    expected = len(acked) * args.subscriptions
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = [line for line in arrivals(fleet.folder) if line.get("subject") in acked]
        if len(got) >= expected:
            break
        await asyncio.sleep(0.2)
    latencies = [line["at"] - acked[line["subject"]] for line in got]
    return {
        "load_events_per_s": round(rate, 1),
        "triggers": len(acked),
        "notifications": len(got),
        "missing": expected - len(got),
        "p50_ms": round(quantile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(quantile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
    }


async def throughput_phase(
    session: aiohttp.ClientSession, fleet: Fleet, source: Any, subscriptions: int, deliveries: int
) -> dict[str, Any]:
    secret = SigningSecret.parse(source["secret"])
    rng = random.Random(3)
    count = deliveries // subscriptions
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            n = queue.pop()
            await post(session, fleet, source["source_id"], secret, f"bulk-{n}", violation(uscc(rng), 2 * 10**6 + n))

    await asyncio.gather(*(worker() for _ in range(32)))
    async with open_store(fleet.url) as store:
        while await store.projector_position() < await store.inbox_count():  # noqa: ASYNC110 -- another process
            await asyncio.sleep(0.2)
    before = len(arrivals(fleet.folder))
    fleet.spawn("dispatch", "dispatch")
    deadline = time.monotonic() + 600
    while len(arrivals(fleet.folder)) - before < count * subscriptions:
        if time.monotonic() > deadline:
            raise BenchError("the dispatcher did not deliver everything within 600 s")
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.3)
    lines = arrivals(fleet.folder)[before:]
    times = sorted(line["at"] for line in lines if "sequence" in line)
    elapsed = times[-1] - times[0]
    return {"deliveries": len(times), "seconds": round(elapsed, 2), "per_s": round(len(times) / elapsed, 0)}


async def baseline(fleet: Fleet, secret: str, deliveries: int, width: int) -> dict[str, Any]:
    """The same number of signed POSTs of one prepared body, from a bare aiohttp client, no store."""
    key = SigningSecret.parse(secret)
    body = json.dumps({"type": "list.changed", "timestamp": "2026-12-05T00:00:00+00:00", "data": {
        "sequence": 0, "cursor": "0", "subject": {"id_type": "uscc", "id": "x", "name": None}, "list": "black",
    }}).encode()  # fmt: skip
    url = f"http://127.0.0.1:{fleet.receiver_port}/hook"
    queue = list(range(deliveries))
    before = len(arrivals(fleet.folder))

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            n = queue.pop()
            headers = signature_headers(key, f"msg_baseline_{n}", body) | {"content-type": "application/json"}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

    connector = aiohttp.TCPConnector(limit=width)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(width)))
        elapsed = time.monotonic() - started
    await asyncio.sleep(0.3)
    if len(arrivals(fleet.folder)) - before != deliveries:
        raise BenchError("the receiver did not log every baseline message")
    return {"deliveries": deliveries, "seconds": round(elapsed, 2), "per_s": round(deliveries / elapsed, 0)}


async def run(args: argparse.Namespace, folder: Path, url: str) -> dict[str, Any]:
    fleet = Fleet(folder, url)
    fleet.cli("migrate")
    source = fleet.cli("sources", "add", "--kind", "marketplace", "--name", "bench")
    key = fleet.cli("keys", "add", "--name", "bench", "--scopes", "subscribe")
    report: dict[str, Any] = {"database": "postgresql" if url.startswith("postgres") else "sqlite"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        fleet.spawn("serve", "serve", "--port", str(fleet.port))
        await fleet.wait_ready(session)
        secrets = {}
        for _ in range(args.subscriptions):
            subscription_id, secret = await subscribe(session, fleet, key["api_key"], ["black"])
            secrets[subscription_id] = secret
        secrets["baseline"] = str(SigningSecret.generate())
        fleet.spawn_receiver(secrets)
        peak = await ingest_peak(session, fleet, source, args.peak_seconds, args.concurrency)
        report["ingest_peak_per_s"] = round(peak, 1)
        report["latency"] = await latency_phase(session, fleet, source, 0.7 * peak, args)
        fleet.kill("serve")
        fleet.spawn("serve", "serve", "--port", str(fleet.port), "--no-dispatcher")
        await fleet.wait_ready(session)
        report["dispatcher"] = await throughput_phase(session, fleet, source, args.subscriptions, args.deliveries)
    report["baseline"] = await baseline(fleet, secrets["baseline"], args.deliveries, 64)
    report["dispatcher_to_baseline"] = round(report["dispatcher"]["per_s"] / report["baseline"]["per_s"], 2)
    fleet.stop_all()
    return report


def main() -> int:
    args = build_parser().parse_args()
    folder = Path(tempfile.mkdtemp(prefix="xinyong-notify-"))
    fleet_error = None
    try:
        with database(folder, args.db) as url:
            report = asyncio.run(run(args, folder, url))
    except BenchError as exc:
        fleet_error = exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if fleet_error is not None:
        print(f"notify: could not run: {fleet_error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
        return 0
    latency = report["latency"]
    print(f"{report['database']}: ingest peak of this sender {report['ingest_peak_per_s']} events/s")
    print(
        f"latency at {latency['load_events_per_s']} events/s (70 %), {latency['triggers']} status changes x"
        f" {args.subscriptions} subscriptions: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms,"
        f" max {latency['max_ms']} ms ({latency['missing']} missing)"
    )
    print(
        f"deliveries at full speed, one dispatch process: {report['dispatcher']['per_s']:.0f}/s"
        f" ({report['dispatcher']['deliveries']} in {report['dispatcher']['seconds']} s);"
        f" baseline (bare client, no store) {report['baseline']['per_s']:.0f}/s;"
        f" ratio {report['dispatcher_to_baseline']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
