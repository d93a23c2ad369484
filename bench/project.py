"""Projector throughput from a cold start, and its lag behind ingest under open-loop load.

    .venv/bin/python bench/project.py --quick          # 100,000 events / 10,000 subjects: a few minutes
    .venv/bin/python bench/project.py                  # 1,000,000 events / 100,000 subjects
    .venv/bin/python bench/project.py --ingest-peak 2000 --lag-seconds 30 --json
    .venv/bin/python bench/project.py --shuffle         # also a store whose last 90 days arrive in random order

What it does, all on 127.0.0.1, in a scratch folder that is removed afterwards (unless ``--keep``):

1. Ingest peak (unless ``--ingest-peak`` is given): a short closed-loop run against ``xinyong-gateway serve
   --no-projector`` on a fresh database of its own, with the events, signing and load generator of
   ``bench/ingest.py`` (imported from it, not copied).
2. Seeding: valid events as NDJSON, one file per source kind: mostly ``delivery.recorded`` from couriers (a
   handful of courier companies, merchants drawn Zipf-like, so a few subjects hold a large share), plus
   marketplace events (``merchant.registered``, commitments, complaints, listing violations) and regulator
   events (penalties, breached commitments); fact times over the past two years, never in the future. The
   sources are registered with the CLI and each file is loaded with ``xinyong-gateway import``. The projector
   has not run yet.
3. Cold projection: ``xinyong-gateway project --once`` over the seeded store, pinned to the server CPU, timed
   from start to exit (process start and the final sweep included); events/s against the ingest peak. With
   ``--shuffle`` a second store is seeded from the same events, the lines of each file whose facts lie in the last
   90 days imported in random order (late and out-of-order arrival, as nightly courier batches and retries give),
   and projected the same way right after the first: the shuffled figure against the in-order one, same run.
4. Lag: ``xinyong-gateway serve`` with its built-in projector (pinned to the server CPU) on the projected
   store; open-loop ingest at 70% of the peak for ``--lag-seconds`` (requests paced on a schedule, sent on
   whichever keep-alive connection is free), while a read-only sqlite3 connection samples the inbox's max seq
   (with its received_at) and the projector's position every 50 ms. The lag of an event is the first sample
   time at which the position reached its seq, minus its received_at: p50 / p99 / max over every ingested event.

Figures, not a test: nothing asserts on time. Targets (printed next to the figures): lag p99 under 1 s,
projection events/s at least the ingest peak, and (``--shuffle``) shuffled projection at least 0.8 of in-order.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import random
import selectors
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ingest
from _loadgen import _parse_response, percentile
from ingest import BIN, HOST, BenchError, Server, pinned, run_cli
from xinyong.webhooks import SigningSecret

SAMPLE_INTERVAL = 0.05
SHUFFLE_DAYS = 90
SHUFFLE_TARGET = 0.8
LAG_TARGET_S = 1.0
LAG_SHARE = 0.70
CATCH_UP_LIMIT_S = 60.0
"""After the lag run, how long the sampler waits for the projector to reach the last ingested event."""

_COURIER_NAMES = ("顺捷快递", "中通达物流", "韵达速运", "圆通星辰", "申程快运", "极兔飞递", "百世汇通", "德邦顺达")
_COURIER_SHARES = (0.35, 0.25, 0.18, 0.12, 0.06, 0.02, 0.01, 0.01)
_DELIVERY_STATUSES = ("delivered", "delayed", "lost", "damaged", "returned")
_DELIVERY_WEIGHTS = (0.95, 0.02, 0.01, 0.01, 0.01)
_TWO_YEARS_S = 730 * 86400


# -- command line ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/project.py",
        description=(
            "Projector events/s from a cold start over a seeded store, and its lag behind ingest (p50/p99) while "
            "ingest runs open-loop at 70%% of its peak rate. Figures, not a test."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  .venv/bin/python bench/project.py --quick\n"
            "  .venv/bin/python bench/project.py --ingest-peak 2000 --lag-seconds 30 --json\n\n"
            "Everything runs on 127.0.0.1 in a scratch folder and stops by itself."
        ),
    )
    parser.add_argument("--events", type=ingest._positive_int, default=1_000_000, metavar="N", help="seeded events")
    parser.add_argument(
        "--subjects", type=ingest._positive_int, default=100_000, metavar="N", help="distinct subjects (default 100000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="100,000 events across 10,000 subjects (overrides the two above)"
    )
    parser.add_argument(
        "--lag-seconds",
        type=ingest._positive_float,
        default=20.0,
        metavar="S",
        help="duration of the open-loop ingest run (default 20)",
    )
    parser.add_argument(
        "--ingest-peak",
        type=ingest._positive_float,
        metavar="EVENTS_PER_S",
        help="ingest peak to compare with and pace at 70%% of (default: measured with a short closed-loop run)",
    )
    parser.add_argument("--concurrency", "-c", type=ingest._positive_int, default=64, metavar="C")
    parser.add_argument("--server-cpu", type=int, default=0, metavar="CPU", help="CPU for the gateway (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, metavar="CPU", help="CPU for the load (default 1)")
    parser.add_argument("--scratch-dir", type=Path, metavar="DIR", help="parent of the scratch folder (a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (database, NDJSON, logs)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    parser.add_argument("--seed", type=int, default=2018, help="seed for the generated data (default 2018)")
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help=f"also project a store whose last {SHUFFLE_DAYS} days of facts arrive in random order, and compare",
    )
    return parser


# -- seeding ---------------------------------------------------------------------------------------------
def _stamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def _line(event_type: str, fact_s: int, data: dict[str, Any]) -> str:
    document = {"type": event_type, "timestamp": _stamp(fact_s + 30), "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass
class Seed:
    files: dict[str, Path]
    counts: dict[str, int]
    """Events per type."""
    top_share: float
    """Share of subject mentions held by the 10 most mentioned subjects."""


def _sorted_times(rng: random.Random, count: int, now_s: int) -> list[int]:
    """``count`` fact times (unix seconds) over the past two years, at least 2 minutes ago, in order."""
    return sorted(now_s - 120 - rng.randrange(_TWO_YEARS_S) for _ in range(count))


def generate(folder: Path, events: int, subjects: int, seed: int) -> Seed:
    """Write courier, marketplace and regulator NDJSON files; facts sorted by time within each file."""
    rng = random.Random(seed)
    couriers = max(1, min(len(_COURIER_NAMES), subjects // 1000))
    merchants = max(1, subjects - couriers)
    codes: set[str] = set()
    while len(codes) < couriers + merchants:
        codes.add(ingest._make_uscc(rng))
    ordered = sorted(codes)
    rng.shuffle(ordered)
    courier_subjects = [
        {"id_type": "uscc", "id": code, "name": name} for code, name in zip(ordered, _COURIER_NAMES, strict=False)
    ]
    merchant_subjects = [
        {"id_type": "uscc", "id": code, "name": f"连云港{n:06d}号电子商务有限公司"}
        for n, code in enumerate(ordered[couriers:])
    ]
    zipf = [1.0 / (k + 1) for k in range(merchants)]

    registered = min(merchants, events // 10)
    plan = {
        "merchant.registered": registered,
        "commitment.published": events * 3 // 100,
        "complaint.filed": events * 3 // 100,
        "complaint.resolved": events * 2 // 100,
        "listing.violation": events // 200,
        "penalty.imposed": events * 7 // 1000,
        "commitment.breached": events * 3 // 1000,
    }
    plan["delivery.recorded"] = max(0, events - sum(plan.values()))
    now_s = int(time.time())
    mentions: dict[str, int] = {}
    data: dict[str, Any]

    def merchant_picks(count: int) -> list[dict[str, Any]]:
        picks = rng.choices(merchant_subjects, weights=zipf, k=count)
        for pick in picks:
            mentions[pick["id"]] = mentions.get(pick["id"], 0) + 1
        return picks

    files = {kind: folder / f"{kind}.ndjson" for kind in ("courier", "marketplace", "regulator")}

    # couriers: deliveries, one file per courier company (each company is its own source)
    deliveries = plan["delivery.recorded"]
    shares = _COURIER_SHARES[:couriers]
    courier_of = rng.choices(range(couriers), weights=shares, k=deliveries)
    status_of = rng.choices(_DELIVERY_STATUSES, weights=_DELIVERY_WEIGHTS, k=deliveries)
    with files["courier"].open("w", encoding="utf-8") as out:
        for n, (fact_s, merchant) in enumerate(
            zip(_sorted_times(rng, deliveries, now_s), merchant_picks(deliveries), strict=True)
        ):
            courier = courier_subjects[courier_of[n]]
            mentions[courier["id"]] = mentions.get(courier["id"], 0) + 1
            data = {
                "waybill_no": f"SJ{n:012d}",
                "courier": courier,
                "merchant": merchant,
                "status": status_of[n],
                "occurred_at": _stamp(fact_s),
            }
            out.write(_line("delivery.recorded", fact_s, data))

    # marketplace: registrations first (each merchant once, in the first months), then the rest in time order
    with files["marketplace"].open("w", encoding="utf-8") as out:
        for n, (fact_s, merchant) in enumerate(
            zip(_sorted_times(rng, registered, now_s - _TWO_YEARS_S // 2), merchant_subjects, strict=False)
        ):
            mentions[merchant["id"]] = mentions.get(merchant["id"], 0) + 1
            data = {
                "merchant": merchant,
                "shop_id": f"shop-{n:08d}",
                "shop_name": f"{n:08d}号旗舰店",
                "verification": ["business_license", "face_match"],
                "registered_at": _stamp(fact_s),
            }
            out.write(_line("merchant.registered", fact_s, data))
        kinds = ["commitment.published", "complaint.filed", "complaint.resolved", "listing.violation"]
        mix = [t for t in kinds for _ in range(plan[t])]
        rng.shuffle(mix)
        for n, (fact_s, event_type, merchant) in enumerate(
            zip(_sorted_times(rng, len(mix), now_s), mix, merchant_picks(len(mix)), strict=True)
        ):
            if event_type == "commitment.published":
                data = {"merchant": merchant, "commitment_id": f"cm-{n:08d}", "items": ["正品保障", "七天无理由退货"]}
                data["published_at"] = _stamp(fact_s)
            elif event_type == "complaint.filed":
                data = {"complaint_id": f"cp-{n:08d}", "merchant": merchant, "category": "quality", "channel": "12315"}
                data["filed_at"] = _stamp(fact_s)
            elif event_type == "complaint.resolved":
                outcome = rng.choice(("upheld", "rejected", "settled"))
                data = {"complaint_id": f"cr-{n:08d}", "merchant": merchant, "outcome": outcome}
                data["resolved_at"] = _stamp(fact_s)
            else:
                data = {"case_id": f"lv-{n:08d}", "merchant": merchant, "listing_id": f"item-{n:08d}"}
                data |= {"kind": "counterfeit", "confirmed": rng.random() < 0.5, "found_at": _stamp(fact_s)}
            out.write(_line(event_type, fact_s, data))

    # regulator: penalties and breached commitments
    with files["regulator"].open("w", encoding="utf-8") as out:
        mix = ["penalty.imposed"] * plan["penalty.imposed"] + ["commitment.breached"] * plan["commitment.breached"]
        rng.shuffle(mix)
        for n, (fact_s, event_type, merchant) in enumerate(
            zip(_sorted_times(rng, len(mix), now_s), mix, merchant_picks(len(mix)), strict=True)
        ):
            severity = rng.choice(("minor", "general", "serious"))
            if event_type == "penalty.imposed":
                data = {
                    "decision_no": f"连市监罚〔{n:08d}〕",
                    "subject": merchant,
                    "authority": "连云港市市场监督管理局",
                }
                data |= {"severity": severity, "violation": "虚假宣传", "decided_at": _stamp(fact_s)}
            else:
                data = {"merchant": merchant, "commitment_id": f"cm-{n:08d}", "severity": severity}
                data["found_at"] = _stamp(fact_s)
            out.write(_line(event_type, fact_s, data))

    top = sorted(mentions.values(), reverse=True)[:10]
    return Seed(files, plan, sum(top) / max(1, sum(mentions.values())))


# -- open-loop paced sender ------------------------------------------------------------------------------
@dataclass
class PacedResult:
    sent: int
    ok: int
    statuses: dict[int, int]
    wall_s: float
    behind_max_s: float
    """The most a request was sent after its scheduled time (no free connection, or a busy generator)."""
    errors: list[str] = field(default_factory=list)


def run_paced(
    port: int, requests: Sequence[bytes], rate: float, concurrency: int, expected: int, drain_timeout: float = 15.0
) -> PacedResult:
    """Send request i at start + i/rate on any free keep-alive connection (open loop), collect the answers."""
    selector = selectors.DefaultSelector()
    idle: list[socket.socket] = []
    buffers: dict[socket.socket, bytearray] = {}
    for _ in range(concurrency):
        sock = socket.create_connection((HOST, port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        idle.append(sock)
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ, sock)
    result = PacedResult(0, 0, {}, 0.0, 0.0)
    in_flight = 0
    started = time.perf_counter()
    last_answer = started
    try:
        while result.sent < len(requests) or in_flight:
            now = time.perf_counter()
            while result.sent < len(requests) and idle and started + result.sent / rate <= now:
                result.behind_max_s = max(result.behind_max_s, now - started - result.sent / rate)
                idle.pop().sendall(requests[result.sent])
                result.sent += 1
                in_flight += 1
            wait = 0.05
            if result.sent < len(requests) and idle:
                wait = min(wait, max(0.0, started + result.sent / rate - time.perf_counter()))
            events = selector.select(timeout=wait)
            if not events and in_flight and time.perf_counter() - last_answer > drain_timeout:
                result.errors.append(f"{in_flight} request(s) got no answer within {drain_timeout:.0f} s")
                break
            for key, _ in events:
                sock = key.data
                chunk = sock.recv(65536)
                if not chunk:
                    raise BenchError("the gateway closed a keep-alive connection")
                buffer = buffers[sock]
                buffer += chunk
                parsed = _parse_response(buffer)
                if parsed is None:
                    continue
                status, length, _ = parsed
                del buffer[:length]
                in_flight -= 1
                last_answer = time.perf_counter()
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == expected:
                    result.ok += 1
                elif len(result.errors) < 5:
                    result.errors.append(f"HTTP {status}")
                idle.append(sock)
        result.wall_s = last_answer - started
    finally:
        selector.close()
        for sock in buffers:
            sock.close()
    return result


# -- sampling --------------------------------------------------------------------------------------------
@dataclass
class Sampler:
    """Samples (time µs, inbox max seq, its received_at, projector position) every 50 ms in a thread."""

    db_path: Path
    samples: list[tuple[int, int, int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, check_same_thread=False)) as conn:
            conn.execute("PRAGMA busy_timeout = 1000")
            while not self._stop.is_set():
                with contextlib.suppress(sqlite3.OperationalError):
                    row = conn.execute("SELECT seq, received_at FROM inbox ORDER BY seq DESC LIMIT 1").fetchone()
                    pos = conn.execute("SELECT coalesce(min(position), 0) FROM projection_partitions").fetchone()[0]
                    now_us = time.time_ns() // 1000
                    self.samples.append((now_us, row[0] if row else 0, row[1] if row else 0, pos))
                self._stop.wait(SAMPLE_INTERVAL)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def position(self) -> int:
        return self.samples[-1][3] if self.samples else 0


def lags_us(samples: Sequence[tuple[int, int, int, int]], received: Sequence[tuple[int, int]]) -> list[int]:
    """Lag of each (seq, received_at µs) event: first sample whose position ≥ seq, minus received_at."""
    positions = [s[3] for s in samples]
    lags = []
    for seq, received_at in received:
        at = bisect.bisect_left(positions, seq)  # positions only grow
        if at < len(samples):
            lags.append(samples[at][0] - received_at)
    return sorted(lags)


# -- phases ----------------------------------------------------------------------------------------------
def start_gateway(url: str, scratch: Path, name: str, cpu: int, *, projector: bool) -> Server:
    env = {**os.environ, "XINYONG_DATABASE_URL": url, "XINYONG_LOG_LEVEL": "info", "XINYONG_LOG_FORMAT": "json"}
    port = ingest.free_port()
    argv = [str(BIN / "xinyong-gateway"), "--db", url, "serve", "--port", str(port), "--log-format", "json"]
    if not projector:
        argv.append("--no-projector")
    with pinned(cpu):
        server = ingest.start_server("gateway", argv, port, scratch / f"{name}.log", env)
    return server


def measure_peak(args: argparse.Namespace, scratch: Path, servers: list[Server]) -> float:
    """Closed-loop peak of `serve --no-projector` on a fresh database (bench/ingest.py's events and signing)."""
    url = f"sqlite:///{scratch / 'peak.db'}"
    secret, path = ingest.register_source(url, args.seed)
    server = start_gateway(url, scratch, "peak-gateway", args.server_cpu, projector=False)
    servers.append(server)
    server.wait_ready("/readyz")
    factory = ingest.EventFactory(args.seed)
    for what, count in (("warm-up", 1000), ("peak run", 8000)):
        requests = ingest.signed_requests(factory.batch(count), secret, server.port, path)
        result, load = ingest.measure(server, requests, 202, args.concurrency, 8.0)
        ingest.check(server, load, 202, f"ingest peak {what}")
    server.stop()
    print(f"  ingest peak (closed loop, --no-projector): {result.events_per_s:,.0f} events/s", flush=True)
    return result.events_per_s


def generate_seed(args: argparse.Namespace, scratch: Path) -> Seed:
    started = time.perf_counter()
    seed = generate(scratch, args.events, args.subjects, args.seed)
    generated_s = time.perf_counter() - started
    size = sum(p.stat().st_size for p in seed.files.values())
    print(
        f"  generated {sum(seed.counts.values()):,} events ({size / 2**20:,.0f} MiB) in {generated_s:.1f} s;"
        f" the 10 most mentioned subjects hold {seed.top_share:.0%} of subject mentions",
        flush=True,
    )
    return seed


def shuffled_seed(seed: Seed, folder: Path, rng_seed: int) -> Seed:
    """The same events with the lines of each file whose facts lie in the last ``SHUFFLE_DAYS`` days in random
    order (the envelope ``timestamp`` is the fact time plus 30 s, so it tells which lines those are)."""
    folder.mkdir()
    rng = random.Random(rng_seed)
    cutoff = _stamp(int(time.time()) - SHUFFLE_DAYS * 86400)
    files: dict[str, Path] = {}
    late = 0
    for kind, source in seed.files.items():
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
        old = [line for line in lines if json.loads(line)["timestamp"] < cutoff]
        recent = [line for line in lines if json.loads(line)["timestamp"] >= cutoff]
        rng.shuffle(recent)
        late += len(recent)
        files[kind] = folder / source.name
        files[kind].write_text("".join(old + recent), encoding="utf-8")
    print(f"  shuffled the arrival order of {late:,} events of the last {SHUFFLE_DAYS} days", flush=True)
    return Seed(files, seed.counts, seed.top_share)


def seed_store(args: argparse.Namespace, url: str, seed: Seed) -> tuple[SigningSecret, str, dict[str, Any]]:
    """Register the sources and import the seed's files; (marketplace secret, its webhook path, figures)."""
    run_cli("--db", url, "migrate")
    secret, path = SigningSecret.generate(), ""
    imported = 0
    import_s = 0.0
    for kind, file in seed.files.items():
        uscc = ingest._make_uscc(random.Random(f"{args.seed}-{kind}"))
        source = run_cli(
            "--db", url, "sources", "add", "--kind", kind, "--name", f"基准{kind}", "--uscc", uscc, "--rate", "1000000"
        )
        if kind == "marketplace":
            secret, path = SigningSecret.parse(source["secret"]), f"/v1/webhooks/{source['source_id']}"
        if file.stat().st_size == 0:
            continue
        t0 = time.perf_counter()
        done = run_cli("--db", url, "import", str(file), "--source", source["source_id"])
        elapsed = time.perf_counter() - t0
        if done.get("rejected"):
            raise BenchError(f"import of {file.name}: {done['rejected']} line(s) rejected (see the rejects file)")
        imported += int(done["accepted"])
        import_s += elapsed
        print(f"  import {kind:<11} {done['accepted']:>9,} lines in {elapsed:6.1f} s", flush=True)
    rate = imported / import_s if import_s else 0.0
    print(f"  import rate: {rate:,.0f} lines/s overall", flush=True)
    figures = {"events": imported, "counts": seed.counts, "top10_share": seed.top_share, "import_per_s": rate}
    return secret, path, figures


def cold_projection(args: argparse.Namespace, url: str, db_path: Path, what: str = "") -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        position = conn.execute("SELECT coalesce(max(position), 0) FROM projection_partitions").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
    if position:
        raise BenchError(f"the projector already ran on the seeded store (position {position})")
    argv = [str(BIN / "xinyong-gateway"), "--db", url, "project", "--once"]
    with pinned(args.server_cpu):
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(f"project --once failed: {done.stderr.strip()[-1000:]}")
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        position = conn.execute("SELECT min(position) FROM projection_partitions").fetchone()[0]
        subjects = conn.execute("SELECT count(*) FROM subjects").fetchone()[0]
    rate = total / elapsed
    print(
        f"  project --once{what}: {total:,} events, {subjects:,} subjects in {elapsed:.1f} s = {rate:,.0f} events/s"
        f" (position {position})",
        flush=True,
    )
    return {"events": total, "subjects": subjects, "seconds": elapsed, "events_per_s": rate}


def lag_run(
    args: argparse.Namespace, url: str, db_path: Path, scratch: Path, secret: SigningSecret, path: str, peak: float
) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        base = int(conn.execute("SELECT coalesce(max(seq), 0) FROM inbox").fetchone()[0])
    rate = LAG_SHARE * peak
    count = max(1, round(rate * args.lag_seconds))
    server = start_gateway(url, scratch, "lag-gateway", args.server_cpu, projector=True)
    sampler = Sampler(db_path)
    try:
        server.wait_ready("/readyz")
        factory = ingest.EventFactory(args.seed + 7)
        requests = ingest.signed_requests(factory.batch(count), secret, server.port, path)
        sampler.start()
        with pinned(args.client_cpu):
            sent = run_paced(server.port, requests, rate, args.concurrency, 202)
        if sent.errors or sent.ok != count:
            raise BenchError(
                f"lag run: {sent.ok}/{count} accepted, {sent.statuses}, {sent.errors}\n{server.log_tail()}"
            )
        with contextlib.closing(sqlite3.connect(db_path)) as conn:
            last = int(conn.execute("SELECT max(seq) FROM inbox").fetchone()[0])
        deadline = time.monotonic() + CATCH_UP_LIMIT_S
        while sampler.position() < last and time.monotonic() < deadline:
            time.sleep(SAMPLE_INTERVAL)
        time.sleep(2 * SAMPLE_INTERVAL)
    finally:
        sampler.stop()
        server.stop()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        received = conn.execute("SELECT seq, received_at FROM inbox WHERE seq > ? ORDER BY seq", (base,)).fetchall()
    lags = lags_us(sampler.samples, received)
    backlog = max((s[1] - s[3] for s in sampler.samples), default=0)
    figures = {
        "rate_target": rate,
        "rate_achieved": sent.ok / sent.wall_s if sent.wall_s else 0.0,
        "sent_behind_max_s": sent.behind_max_s,
        "ingested": len(received),
        "measured": len(lags),
        "p50_ms": percentile(lags, 0.50) / 1000 if lags else None,
        "p99_ms": percentile(lags, 0.99) / 1000 if lags else None,
        "max_ms": lags[-1] / 1000 if lags else None,
        "max_backlog": backlog,
        "samples": len(sampler.samples),
    }
    print(
        f"  open-loop ingest: {sent.ok:,} events at {figures['rate_achieved']:,.0f}/s (target {rate:,.0f}/s,"
        f" sends at most {sent.behind_max_s * 1000:.0f} ms behind schedule); max backlog {backlog:,} events",
        flush=True,
    )
    return figures


# -- main ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def scratch_folder(parent: Path | None, keep: bool) -> Iterator[Path]:
    base = parent or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="xinyong-project-", dir=base))
    try:
        yield scratch
    finally:
        if keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.events, args.subjects = 100_000, 10_000
    allowed = os.sched_getaffinity(0)
    for option, cpu in (("--server-cpu", args.server_cpu), ("--client-cpu", args.client_cpu)):
        if cpu not in allowed:
            raise BenchError(f"{option} {cpu} is not one of this process's CPUs {sorted(allowed)}.")
    servers: list[Server] = []
    with scratch_folder(args.scratch_dir, args.keep) as scratch:
        try:
            print("xinyong projector benchmark")
            print(
                f"  {args.events:,} events across {args.subjects:,} subjects; lag run {args.lag_seconds:g} s at"
                f" {LAG_SHARE:.0%} of the ingest peak; gateway and projector on CPU {args.server_cpu}, load on CPU"
                f" {args.client_cpu}; scratch {scratch}",
                flush=True,
            )
            peak = args.ingest_peak or measure_peak(args, scratch, servers)
            db_path = scratch / "xinyong.db"
            url = f"sqlite:///{db_path}"
            seed = generate_seed(args, scratch)
            secret, path, seeded = seed_store(args, url, seed)
            shuffled_path = scratch / "shuffled.db"
            shuffled_url = f"sqlite:///{shuffled_path}"
            if args.shuffle:
                seed_store(args, shuffled_url, shuffled_seed(seed, scratch / "shuffled", args.seed + 1))
            cold = cold_projection(args, url, db_path, " (in order)" if args.shuffle else "")
            shuffled = cold_projection(args, shuffled_url, shuffled_path, " (shuffled)") if args.shuffle else None
            lag = lag_run(args, url, db_path, scratch, secret, path, peak)
        finally:
            for server in servers:
                server.stop()
        ratio = cold["events_per_s"] / peak
        print("\nResults")
        print(
            f"  cold projection: {cold['events_per_s']:,.0f} events/s; ingest peak {peak:,.0f} events/s;"
            f" projection/ingest-peak = {ratio:.2f} (target >= 1): {'met' if ratio >= 1 else 'NOT met'}"
        )
        if shuffled is not None:
            shuffle_ratio = shuffled["events_per_s"] / cold["events_per_s"]
            print(
                f"  shuffled arrival: {shuffled['events_per_s']:,.0f} events/s against {cold['events_per_s']:,.0f} in"
                f" order = {shuffle_ratio:.2f} (target >= {SHUFFLE_TARGET}):"
                f" {'met' if shuffle_ratio >= SHUFFLE_TARGET else 'NOT met'}"
            )
        if lag["measured"]:
            met = lag["p99_ms"] < LAG_TARGET_S * 1000
            print(
                f"  lag at {LAG_SHARE:.0%} of peak: p50 {lag['p50_ms']:,.0f} ms, p99 {lag['p99_ms']:,.0f} ms, max"
                f" {lag['max_ms']:,.0f} ms over {lag['measured']:,} events (of {lag['ingested']:,} ingested);"
                f" p99 < 1 s: {'yes' if met else 'NO'}"
            )
            if lag["measured"] < lag["ingested"]:
                print(f"  the projector had not reached every event {CATCH_UP_LIMIT_S:.0f} s after ingest stopped")
        else:
            print("  lag: no event was projected during the run")
        if lag["rate_achieved"] < 0.95 * lag["rate_target"] or lag["sent_behind_max_s"] > LAG_TARGET_S:
            print(
                f"  WARNING: the offered rate was not sustained ({lag['rate_achieved']:,.0f}/s of"
                f" {lag['rate_target']:,.0f}/s; sends up to {lag['sent_behind_max_s']:.1f} s late): the gateway with"
                " its projector is saturated at this rate, events queued in the generator, and the lag above"
                " (from received_at) leaves that wait out."
            )
        print(f"  (lag resolution: the {SAMPLE_INTERVAL * 1000:.0f} ms sampling interval)")
        if args.json:
            settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
            document = {
                "settings": settings,
                "ingest_peak_per_s": peak,
                "seeded": seeded,
                "cold_projection": cold,
                "cold_projection_shuffled": shuffled,
                "projection_over_ingest_peak": ratio,
                "lag": lag,
                "lag_target_ms": LAG_TARGET_S * 1000,
            }
            print(json.dumps(document, indent=2, ensure_ascii=False, default=lambda o: asdict(o)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nbench/project.py: ABORTED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench/project.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
