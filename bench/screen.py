"""Screening figures: batch latency at one client, subjects per second at 8 clients, single-subject requests per
second beside a trivial aiohttp handler. Figures, not a test: nothing asserts on time.

    .venv/bin/python bench/screen.py --subjects 100000        # a few minutes
    .venv/bin/python bench/screen.py                          # 1,000,000 subjects: seeding takes ~10 minutes
    .venv/bin/python bench/screen.py --db postgresql://postgres@127.0.0.1:5432/postgres --subjects 100000

What it does, all on 127.0.0.1, in a scratch folder removed at the end (unless ``--keep``):

1. Seeding by bulk import, the path an operator would take with history: one NDJSON file from one marketplace
   source with a ``merchant.registered`` for every subject (95% businesses by USCC, 5% sole traders by RIC and
   name, registered over the past two years), a published commitment for 10% (those registered 180+ days ago
   and clean become red), a confirmed counterfeit listing for 1.5% (black) and a confirmed review manipulation
   for 4% (watch). ``xinyong-gateway import`` loads it, then ``xinyong-gateway project --once`` projects it; both
   are timed, and the list proportions are read back from the credit files.
2. ``xinyong-gateway serve --no-projector`` on the seeded store and the baseline (``bench/_baseline_server.py``,
   an aiohttp handler that awaits ``request.read()`` and answers 200), each pinned to ``--server-cpu``; the load
   generator (``bench/_loadgen.py``: keep-alive connections, pre-encoded requests) on ``--client-cpu``. JSON logs
   stay on. The API key gets a high ``--rate`` so the runaway guard is not what is measured.
3. Batch latency: one client sends ``--batches`` screenings of 1000 subjects each (90% seeded subjects drawn at
   random, 10% never reported), one at a time: p50 and p99.
4. Throughput: 8 clients send such batches at once: subjects screened per second.
5. Single subject: ``--concurrency`` clients send one-subject screenings to the gateway, then the same requests
   to the baseline: requests per second of each, and their ratio.

Targets (printed beside the figures): batch p99 under 50 ms at one client; at least 50,000 subjects/s at 8 clients;
single-subject throughput at least half the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stdnum.cn import ric as stdnum_ric

import _postgres
import ingest
from _loadgen import LoadResult, percentile, run_closed_loop
from ingest import BIN, HERE, HOST, BenchError, Server, free_port, pinned, run_cli, start_server
from xinyong_gateway.crypto import MasterKey

BATCH = 1000
BATCH_P99_TARGET_MS = 50.0
SUBJECTS_PER_S_TARGET = 50_000
SINGLE_RATIO_TARGET = 0.5
_TWO_YEARS_S = 730 * 86400
_SHARES = {"person": 0.05, "commitment": 0.10, "black": 0.015, "watch": 0.04}
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/screen.py",
        description="Screening latency and throughput over a seeded store, beside a trivial aiohttp handler.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  .venv/bin/python bench/screen.py --subjects 100000\n  .venv/bin/python bench/screen.py",
    )
    parser.add_argument("--subjects", type=ingest._positive_int, default=1_000_000, metavar="N", help="seeded subjects")
    parser.add_argument(
        "--batches", type=ingest._positive_int, default=300, metavar="N", help="1000-subject requests per run"
    )
    parser.add_argument(
        "--singles", type=ingest._positive_int, default=30_000, metavar="N", help="one-subject requests per run"
    )
    parser.add_argument("--concurrency", "-c", type=ingest._positive_int, default=64, metavar="C")
    parser.add_argument("--db", metavar="URL", help="postgresql://… server to use instead of SQLite (a scratch DB)")
    parser.add_argument("--server-cpu", type=int, default=0, metavar="CPU")
    parser.add_argument("--client-cpu", type=int, default=1, metavar="CPU")
    parser.add_argument("--scratch-dir", type=Path, metavar="DIR", help="parent of the scratch folder (a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (database, NDJSON, logs)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    parser.add_argument("--seed", type=int, default=2018)
    return parser


# -- seeding ----------------------------------------------------------------------------------------------
def _stamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def _ric(rng: random.Random) -> str:
    born = time.gmtime(rng.randrange(0, 1_000_000_000))
    first17 = f"3207{rng.randrange(0, 100):02d}{time.strftime('%Y%m%d', born)}{rng.randrange(0, 1000):03d}"
    return first17 + str(stdnum_ric.calc_check_digit(first17 + "0"))


@dataclass
class Seeded:
    file: Path
    subjects: list[dict[str, Any]]
    lines: int


def generate(folder: Path, count: int, seed: int) -> Seeded:
    """The marketplace's history as NDJSON (see the module docstring), and the subjects."""
    rng = random.Random(seed)
    now_s = int(time.time())
    codes: set[str] = set()
    people: set[str] = set()
    persons = int(count * _SHARES["person"])
    while len(codes) < count - persons:
        codes.add(ingest._make_uscc(rng))
    while len(people) < persons:
        people.add(_ric(rng))
    subjects: list[dict[str, Any]] = [
        {"id_type": "uscc", "id": code, "name": f"连云港{n:07d}号电子商务有限公司"}
        for n, code in enumerate(sorted(codes))
    ]
    subjects += [
        {"id_type": "ric", "id": ric, "name": rng.choice(_SURNAMES) + rng.choice(_SURNAMES)} for ric in sorted(people)
    ]
    rng.shuffle(subjects)
    path = folder / "history.ndjson"
    lines = 0
    with path.open("w", encoding="utf-8") as out:

        def write(event_type: str, fact_s: int, data: dict[str, Any]) -> None:
            nonlocal lines
            document = {"type": event_type, "timestamp": _stamp(fact_s + 30), "data": data}
            out.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
            lines += 1

        for n, subject in enumerate(subjects):
            registered = now_s - 3600 - rng.randrange(_TWO_YEARS_S)
            write(
                "merchant.registered",
                registered,
                {
                    "merchant": subject,
                    "shop_id": f"shop-{n:08d}",
                    "shop_name": f"{n:08d}号店",
                    "verification": ["business_license", "face_match"],
                    "registered_at": _stamp(registered),
                },
            )
            roll = rng.random()
            later = registered + rng.randrange(max(1, now_s - 120 - registered))
            if roll < _SHARES["black"]:
                data = {"case_id": f"lv-{n:08d}", "merchant": subject, "listing_id": f"item-{n:08d}"}
                write(
                    "listing.violation",
                    later,
                    data | {"kind": "counterfeit", "confirmed": True, "found_at": _stamp(later)},
                )
            elif roll < _SHARES["black"] + _SHARES["watch"]:
                data = {"case_id": f"rm-{n:08d}", "merchant": subject, "kind": "fake_order", "order_count": 20}
                write("review.manipulation_detected", later, data | {"confirmed": True, "detected_at": _stamp(later)})
            elif roll < _SHARES["black"] + _SHARES["watch"] + _SHARES["commitment"]:
                data = {"merchant": subject, "commitment_id": f"cm-{n:08d}", "items": ["正品保障", "七天无理由退货"]}
                write("commitment.published", later, data | {"published_at": _stamp(later)})
    return Seeded(path, subjects, lines)


def list_counts(url: str, env: dict[str, str]) -> dict[str, int]:
    """Subjects per list, read from the credit files."""
    query = "SELECT status, count(*) FROM subjects GROUP BY 1"
    if _postgres.is_postgres(url):
        import asyncio

        import asyncpg

        async def read() -> list[Any]:
            connection = await asyncpg.connect(url)
            try:
                return list(await connection.fetch("SELECT (status::json)->>'list', count(*) FROM subjects GROUP BY 1"))
            finally:
                await connection.close()

        return {row[0]: row[1] for row in asyncio.run(read())}
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(query.replace("status,", "json_extract(status, '$.list'),")).fetchall()
    return {row[0]: row[1] for row in rows}


# -- requests ---------------------------------------------------------------------------------------------
def screening_request(port: int, path: str, api_key: str, subjects: Sequence[dict[str, Any]]) -> bytes:
    body = json.dumps({"subjects": list(subjects)}, ensure_ascii=False, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def batches(
    rng: random.Random, subjects: Sequence[dict[str, Any]], count: int, size: int
) -> list[list[dict[str, Any]]]:
    """``count`` lists of ``size`` subjects: 90% seeded (drawn at random), 10% never reported."""
    out = []
    for _ in range(count):
        batch = [rng.choice(subjects) for _ in range(size)]
        for i in range(0, size, 10):
            batch[i] = {"id_type": "uscc", "id": ingest._make_uscc(rng)}
        rng.shuffle(batch)
        out.append(batch)
    return out


def run_load(
    server: Server, requests: list[bytes], concurrency: int, what: str, client_cpu: int, time_limit: float = 120.0
) -> LoadResult:
    with pinned(client_cpu):
        result = run_closed_loop(
            HOST, server.port, requests, concurrency=concurrency, expected_status=200, time_limit=time_limit
        )
    if result.errors or result.ok != result.completed:
        raise BenchError(f"{what}: {result.errors[:3]} statuses {result.statuses}\n{server.log_tail()}")
    return result


# -- the run ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def database(args: argparse.Namespace, scratch: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
    if args.db:
        if not _postgres.is_postgres(args.db):
            raise BenchError("--db takes a postgresql:// server URL (SQLite is the default)")
        env["XINYONG_MASTER_KEY"] = MasterKey.generate_text()
        with _postgres.scratch_database(args.db, keep=args.keep) as (url, _name):
            yield url, env
        return
    yield f"sqlite:///{scratch / 'screen.db'}", env


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="xinyong-screen-", dir=args.scratch_dir))
    servers: list[Server] = []
    try:
        with database(args, scratch) as (url, env):
            print(f"scratch folder {scratch}; database {url.split('@')[-1]}")
            started = time.perf_counter()
            seeded = generate(scratch, args.subjects, args.seed)
            took = time.perf_counter() - started
            print(f"generated {seeded.lines:,} events about {len(seeded.subjects):,} subjects in {took:.1f} s")
            run_cli("--db", url, "migrate", env=env)
            source = run_cli("--db", url, "sources", "add", "--kind", "marketplace", "--name", "基准商城", env=env)
            key = run_cli(
                "--db", url, "keys", "add", "--name", "bench", "--scopes", "screen", "--rate", "1000000", env=env
            )
            with pinned(args.server_cpu):
                started = time.perf_counter()
                imported = run_cli("--db", url, "import", str(seeded.file), "--source", source["source_id"], env=env)
                import_s = time.perf_counter() - started
                accepted = imported["accepted"]
                print(f"imported {accepted:,} events in {import_s:.1f} s ({accepted / import_s:,.0f}/s)")
                started = time.perf_counter()
                run_cli("--db", url, "project", "--once", env=env)
                project_s = time.perf_counter() - started
            print(f"projected in {project_s:.1f} s ({seeded.lines / project_s:,.0f} events/s)")
            counts = list_counts(url, env)
            total = sum(counts.values())
            print(
                "lists: "
                + ", ".join(
                    f"{name} {counts.get(name, 0):,} ({counts.get(name, 0) / total:.1%})"
                    for name in ("black", "watch", "red", "none")
                )
            )

            gateway_port, baseline_port = free_port(), free_port()
            serve_env = {**env, "XINYONG_LOG_FORMAT": "json", "XINYONG_LOG_LEVEL": "info"}
            with pinned(args.server_cpu):
                gateway = start_server(
                    "gateway",
                    [
                        str(BIN / "xinyong-gateway"),
                        "--db",
                        url,
                        "serve",
                        "--port",
                        str(gateway_port),
                        "--no-projector",
                        "--log-format",
                        "json",
                    ],
                    gateway_port,
                    scratch / "gateway.log",
                    serve_env,
                )
                servers.append(gateway)
                baseline = start_server(
                    "baseline",
                    [sys.executable, str(HERE / "_baseline_server.py"), "--port", str(baseline_port)],
                    baseline_port,
                    scratch / "baseline.log",
                    serve_env,
                )
                servers.append(baseline)
            gateway.wait_ready("/readyz")
            baseline.wait_ready("/healthz")

            rng = random.Random(args.seed + 7)
            api_key = key["api_key"]
            warm = [
                screening_request(gateway_port, "/v1/screenings", api_key, b)
                for b in batches(rng, seeded.subjects, 20, BATCH)
            ]
            run_load(gateway, warm, 1, "warm-up", args.client_cpu)

            one = [
                screening_request(gateway_port, "/v1/screenings", api_key, b)
                for b in batches(rng, seeded.subjects, args.batches, BATCH)
            ]
            single_client = run_load(gateway, one, 1, "one client", args.client_cpu)
            latencies = sorted(single_client.latencies_ns)
            p50_ms, p99_ms = percentile(latencies, 0.50) / 1e6, percentile(latencies, 0.99) / 1e6

            eight = [
                screening_request(gateway_port, "/v1/screenings", api_key, b)
                for b in batches(rng, seeded.subjects, args.batches, BATCH)
            ]
            cpu_before = gateway.cpu_seconds()
            eight_clients = run_load(gateway, eight, 8, "8 clients", args.client_cpu)
            gateway_cpu = (gateway.cpu_seconds() - cpu_before) / eight_clients.wall_s
            subjects_per_s = eight_clients.ok * BATCH / eight_clients.wall_s

            singles = batches(rng, seeded.subjects, args.singles, 1)
            to_gateway = [screening_request(gateway_port, "/v1/screenings", api_key, b) for b in singles]
            to_baseline = [screening_request(baseline_port, "/v1/webhooks/screen", api_key, b) for b in singles]
            run_load(baseline, to_baseline[:2000], args.concurrency, "baseline warm-up", args.client_cpu)
            baseline_run = run_load(baseline, to_baseline, args.concurrency, "baseline", args.client_cpu)
            gateway_run = run_load(gateway, to_gateway, args.concurrency, "single subjects", args.client_cpu)
            ratio = gateway_run.rate / baseline_run.rate

            results = {
                "subjects": len(seeded.subjects),
                "events": seeded.lines,
                "import_s": round(import_s, 1),
                "project_s": round(project_s, 1),
                "lists": counts,
                "batch_p50_ms": round(p50_ms, 2),
                "batch_p99_ms": round(p99_ms, 2),
                "subjects_per_s_8_clients": round(subjects_per_s),
                "gateway_cpu_8_clients": round(gateway_cpu, 2),
                "single_rps": round(gateway_run.rate),
                "baseline_rps": round(baseline_run.rate),
                "single_ratio": round(ratio, 2),
                "single_p99_ms": round(percentile(sorted(gateway_run.latencies_ns), 0.99) / 1e6, 2),
            }
            print()
            target = f"(target p99 < {BATCH_P99_TARGET_MS:.0f} ms)"
            print(f"  1000-subject batch, one client     p50 {p50_ms:7.2f} ms   p99 {p99_ms:7.2f} ms   {target}")
            target = f"(target >= {SUBJECTS_PER_S_TARGET:,}; gateway CPU {gateway_cpu:.0%})"
            print(f"  1000-subject batches, 8 clients    {subjects_per_s:10,.0f} subjects/s    {target}")
            rates = f"{gateway_run.rate:10,.0f} requests/s    baseline {baseline_run.rate:,.0f}/s"
            print(f"  single subject, {args.concurrency} clients        {rates}")
            print(f"  ratio (gateway / trivial handler)  {ratio:10.2f}               (target >= {SINGLE_RATIO_TARGET})")
            if args.json:
                print(json.dumps(results))
            return results
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return ingest.bench_main("bench/screen.py", build_parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
