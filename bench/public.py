"""Public site figures over 1,000,000 subjects: the subject page, the badge and a 304 revalidation in requests per
second beside a trivial aiohttp handler, and name-search latency. Figures, not a test: nothing asserts on time.

    .venv/bin/python bench/public.py                       # 1,000,000 subjects (seeding takes a few minutes)
    .venv/bin/python bench/public.py --subjects 100000     # quicker
    .venv/bin/python bench/public.py --db postgresql://postgres@127.0.0.1:5432/postgres --subjects 100000
    .venv/bin/python bench/public.py --keep                # then again on the same million, without seeding:
    .venv/bin/python bench/public.py --reuse /tmp/xinyong-public-…

What it does, all on 127.0.0.1, in a scratch folder removed at the end (unless ``--keep``):

1. Seeding straight through the store (``Store.commit_projection``, as the projector writes): every subject an
   organisation with a generated Chinese name (district, a two-character word, a trade, a suffix: 海州区速达数码店)
   and a shop name, its blind-index key and sealed identity under a fresh master key; 1.5% on the black list
   (a confirmed counterfeit listing, applied by the real engine), 10% with a published commitment, the rest
   clean (grade A). The names go into the bigram index as the projector's would.
2. ``xinyong-gateway serve --no-projector`` on that store twice: as served (its public answers reused for
   ``--cache-ttl`` seconds, ``XINYONG_PUBLIC_CACHE_TTL``, 1 by default, and past that while the store commits
   nothing, as here: ``web/public/answers.py``) and with reuse off (``... = 0``, the rows marked "no reuse"); and the
   baseline (``bench/_baseline_server.py``; its ``GET /healthz`` handler answers an empty 200), each pinned to
   ``--server-cpu``; the load generator (``bench/_loadgen.py``) on ``--client-cpu``. JSON logs stay on. On SQLite
   both gateways answer badges from their book of every organisation's standing (``web/public/standings.py``): the
   run waits until each has logged it filled (``public.standings_loaded``); a ``--reuse`` folder of an older version
   is migrated first.
3. ``--repeat`` interleaved rounds (medians printed) of ``--requests`` GETs at ``--concurrency`` keep-alive
   connections of: the baseline; the gateway's own ``GET /healthz`` (its floor: no store, its middleware and access
   log line); the subject page of random seeded subjects (a tenth of them black-listed, each
   subject seldom asked twice: reuse hardly helps); their badges; the subject page again with the ``If-None-Match``
   of an earlier answer (304), for 2,000 subjects asked in turn (reused once asked: on this run's quiet store the
   answers kept outlive the ttl, and asked for again they are protected from the other runs' one-off views).
   Requests per second of each and the ratio to the baseline, and the server's CPU per request.
4. Name search: ``--searches`` queries one at a time through ``GET /public/search?q=…`` (two-character words,
   three- and four-character parts of names, and the very common 有限公司), p50 and p99 per kind.

Targets (printed beside the figures): subject page >= 0.3 of the baseline, badge >= 0.5, 304 >= 0.6.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _postgres
import ingest
from _loadgen import LoadResult, percentile, run_closed_loop
from ingest import BIN, HERE, HOST, BenchError, Server, free_port, pinned, run_cli, start_server
from xinyong.events import EVENT_TYPES
from xinyong_gateway.credit.documents import status_document
from xinyong_gateway.credit.engine import CreditFile, LoggedEvent
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import Commitment, ProjectionCommit, SubjectName, SubjectRow, open_store, to_micros

TARGETS = {"subject page": 0.3, "badge": 0.5, "304 revalidation": 0.6}
_DISTRICTS = ["海州区", "连云区", "赣榆区", "东海县", "灌云县", "灌南县", "新浦区", "开发区", "徐圩新区", "高新区"]
_CHARACTERS = (
    "速达鑫源恒盛华锦瑞丰泰和兴隆宏福安康永嘉信诚德正明亮辉煌金玉满堂龙凤祥云天海山川林木青松翠竹"
    "春夏秋冬东南西北中新旧大小美佳优品尚雅宜家惠民乐购易通顺捷快捷百川汇聚宝鼎昌荣星月光彩虹"
)
_TRADES = ["数码", "茶叶", "服饰", "百货", "食品", "家电", "海鲜", "五金", "母婴", "水晶", "花卉", "文具", "家具"]
_SUFFIXES = ["店", "商行", "经营部", "有限公司", "电子商务有限公司", "贸易有限公司"]
_CHUNK = 5000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/public.py",
        description="Public site pages, badge and 304 beside a trivial aiohttp handler; name search latency.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subjects", type=ingest._positive_int, default=1_000_000, metavar="N")
    parser.add_argument("--requests", type=ingest._positive_int, default=20_000, metavar="N", help="per measured run")
    parser.add_argument("--repeat", type=ingest._positive_int, default=3, metavar="N", help="rounds (medians)")
    parser.add_argument("--searches", type=ingest._positive_int, default=300, metavar="N")
    parser.add_argument("--concurrency", "-c", type=ingest._positive_int, default=32, metavar="C")
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=1.0,
        metavar="S",
        help="the gateway's XINYONG_PUBLIC_CACHE_TTL (default 1, as served); a second gateway always runs with 0",
    )
    parser.add_argument(
        "--zipf",
        type=float,
        default=1.0,
        metavar="S",
        help="popularity exponent of the 'popular' runs (subjects asked for by Zipf's law; 0: no such runs)",
    )
    parser.add_argument("--db", metavar="URL", help="postgresql://… server to use instead of SQLite (a scratch DB)")
    parser.add_argument("--server-cpu", type=int, default=0, metavar="CPU")
    parser.add_argument("--client-cpu", type=int, default=1, metavar="CPU")
    parser.add_argument("--scratch-dir", type=Path, metavar="DIR")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (SQLite: for --reuse)")
    parser.add_argument(
        "--reuse", type=Path, metavar="DIR", help="run on a folder a --keep run left, without seeding (SQLite)"
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    parser.add_argument("--seed", type=int, default=2019)
    return parser


# -- seeding ----------------------------------------------------------------------------------------------
def _name(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_CHARACTERS) + rng.choice(_CHARACTERS)
    trade = rng.choice(_TRADES)
    return f"{rng.choice(_DISTRICTS)}{word}{trade}{rng.choice(_SUFFIXES)}", f"{word}{trade}旗舰店"


def _black_file(key: str, code: str, name: str, now: datetime, n: int) -> CreditFile:
    """A file with one confirmed counterfeit listing, applied by the engine under the default policy."""
    found = (now - timedelta(days=1 + n % 300)).isoformat()
    event = EVENT_TYPES["listing.violation"].model_validate(
        {
            "type": "listing.violation",
            "timestamp": found,
            "data": {
                "case_id": f"lv-{n}",
                "merchant": {"id_type": "uscc", "id": code, "name": name},
                "listing_id": f"item-{n}",
                "kind": "counterfeit",
                "confirmed": True,
                "found_at": found,
            },
        }
    )
    credit_file = CreditFile(key)
    credit_file.apply(LoggedEvent(n + 1, "src_bench", f"msg_{n}", event), "merchant", default_policy())
    return credit_file


async def seed(url: str, master: MasterKey, count: int, seed_value: int) -> list[tuple[str, bool]]:
    """Write ``count`` subjects through the store; return (code, black-listed) of each."""
    rng = random.Random(seed_value)
    policy = default_policy()
    now = datetime.now(UTC)
    clean = CreditFile("KEY").status_at(now, policy)
    clean_state = CreditFile("KEY").to_json()
    codes: set[str] = set()
    subjects: list[tuple[str, bool]] = []
    async with open_store(url) as store:
        await store.check_master_key(master.check_value)
        rows: list[SubjectRow] = []
        names: list[SubjectName] = []
        commitments: list[Commitment] = []
        for n in range(count):
            code = ingest._make_uscc(rng)
            while code in codes:
                code = ingest._make_uscc(rng)
            codes.add(code)
            name, shop = _name(rng)
            key = master.subject_key("uscc", code)
            black = rng.random() < 0.015
            if black:
                credit_file = _black_file(key, code, name, now, n)
                status, state = credit_file.status_at(now, policy), credit_file.to_json()
            else:
                status, state = clean, clean_state.replace('"key":"KEY"', f'"key":"{key}"')
            document = json.dumps(status_document(("uscc", code, name), status), ensure_ascii=False)
            sealed = master.seal_identity(key, code)
            rows.append(
                SubjectRow(key, "uscc", code, name, sealed, master.seal_identity(key, name), state, document, None)
            )
            names += [SubjectName(key, "name", name), SubjectName(key, "shop", shop)]
            if rng.random() < 0.10:
                commitments.append(Commitment(key, f"cm-{n}", to_micros(now), ("正品保障", "七天无理由退货")))
            subjects.append((code, black))
            if len(rows) == _CHUNK or n == count - 1:
                await store.commit_projection(
                    ProjectionCommit(
                        partitions=(),
                        subjects=tuple(rows),
                        changes=(),
                        recorded_at=to_micros(now) + n,
                        names=tuple(names),
                        commitments=tuple(commitments),
                    )
                )
                rows, names, commitments = [], [], []
                if (n + 1) % 100_000 == 0:
                    print(f"  seeded {n + 1:,} subjects", flush=True)
    return subjects


# -- requests ---------------------------------------------------------------------------------------------
def _serve(url: str, port: int) -> list[str]:
    return [
        str(BIN / "xinyong-gateway"),
        "--db",
        url,
        "serve",
        "--port",
        str(port),
        "--no-projector",
        "--log-format",
        "json",
    ]


def get(port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}\r\n".encode()


def wait_standings(server: Server, timeout: float = 120.0) -> None:
    """Wait until ``server`` logged that its book of the organisations' standings is filled (SQLite: the badges are
    answered from it from then on, ``web/public/standings.py``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if '"public.standings_loaded"' in server.log_path.read_text(errors="replace"):
            return
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited\n{server.log_tail()}")
        time.sleep(0.2)
    raise BenchError(f"{server.name} did not fill its book of standings in {timeout:.0f} s\n{server.log_tail()}")


def run_load(server: Server, requests: list[bytes], concurrency: int, what: str, cpu: int, status: int) -> LoadResult:
    with pinned(cpu):
        result = run_closed_loop(
            HOST, server.port, requests, concurrency=concurrency, expected_status=status, time_limit=120.0
        )
    if result.errors or result.ok != result.completed:
        raise BenchError(f"{what}: {result.errors[:3]} statuses {result.statuses}\n{server.log_tail()}")
    return result


def fetch(port: int, path: str) -> tuple[int, dict[str, str], float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=30) as answer:
            answer.read()
            return answer.status, dict(answer.headers), time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), time.perf_counter() - started


def popular_picks(rng: random.Random, codes: list[str], exponent: float, count: int) -> list[str]:
    """``count`` subjects asked for as shops' pages are visited: the k-th most popular (a random order of ``codes``)
    with a weight of 1/k**exponent (Zipf's law); none when ``exponent`` is 0."""
    if exponent <= 0:
        return []
    ranked = rng.sample(codes, len(codes))
    weights = list(itertools.accumulate(1 / k**exponent for k in range(1, len(ranked) + 1)))
    return rng.choices(ranked, cum_weights=weights, k=count)


def search_queries(rng: random.Random, count: int) -> dict[str, list[str]]:
    """Queries by kind: a two-character word, three or four characters of a name, the very common 有限公司."""
    kinds: dict[str, list[str]] = {"2 characters": [], "3-4 characters": [], "有限公司": []}
    for n in range(count):
        name, _ = _name(rng)
        if n % 3 == 0:
            word = rng.choice(_CHARACTERS) + rng.choice(_CHARACTERS)
            kinds["2 characters"].append(word)
        elif n % 3 == 1:
            size = rng.choice((3, 4))
            at = rng.randrange(len(name) - size + 1)
            kinds["3-4 characters"].append(name[at : at + size])
        else:
            kinds["有限公司"].append("有限公司")
    return kinds


def _seeded(args: argparse.Namespace, url: str, scratch: Path, env: dict[str, str]) -> list[tuple[str, bool]]:
    """Seed the scratch database (and leave in ``scratch`` what ``--reuse`` needs: the master key and the subjects),
    or, with ``--reuse``, take a folder seeded and kept before."""
    if args.reuse:
        subjects: list[tuple[str, bool]] = [tuple(s) for s in json.loads((scratch / "subjects.json").read_text())]
        print(f"reusing {len(subjects):,} subjects seeded before")
        run_cli("--db", url, "migrate", env=env)  # a folder kept by an older version: its database brought up to date
        return subjects
    run_cli("--db", url, "migrate", env=env)
    started = time.perf_counter()
    with pinned(args.server_cpu):
        subjects = asyncio.run(seed(url, MasterKey.from_text(env["XINYONG_MASTER_KEY"]), args.subjects, args.seed))
    took = time.perf_counter() - started
    black = sum(1 for _, is_black in subjects if is_black)
    print(f"seeded {len(subjects):,} subjects ({black:,} black-listed) in {took:.0f} s")
    if not args.db:
        key_file = scratch / "key"
        key_file.write_text(env["XINYONG_MASTER_KEY"])
        key_file.chmod(0o600)
        (scratch / "subjects.json").write_text(json.dumps(subjects))
    return subjects


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.reuse:
        if args.db or not (args.reuse / "public.db").is_file() or not (args.reuse / "subjects.json").is_file():
            raise BenchError(f"--reuse takes a folder that bench/public.py --keep left (SQLite): not {args.reuse}")
        scratch = args.reuse
    else:
        scratch = Path(tempfile.mkdtemp(prefix="xinyong-public-", dir=args.scratch_dir))
    servers: list[Server] = []
    env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
    env["XINYONG_MASTER_KEY"] = (scratch / "key").read_text() if args.reuse else MasterKey.generate_text()
    try:
        sqlite = contextlib.nullcontext((f"sqlite:///{scratch / 'public.db'}", None))
        with _postgres.scratch_database(args.db, keep=args.keep) if args.db else sqlite as (url, _):
            print(f"scratch folder {scratch}; database {url.split('@')[-1]}")
            subjects = _seeded(args, url, scratch, env)

            gateway_port, plain_port, baseline_port = free_port(), free_port(), free_port()
            serve_env = {**env, "XINYONG_LOG_FORMAT": "json", "XINYONG_LOG_LEVEL": "info"}
            with pinned(args.server_cpu):
                gateway = start_server("gateway", _serve(url, gateway_port), gateway_port, scratch / "gateway.log",
                                       {**serve_env, "XINYONG_PUBLIC_CACHE_TTL": str(args.cache_ttl)})  # fmt: skip
                servers.append(gateway)
                plain = start_server("gateway, no reuse", _serve(url, plain_port), plain_port, scratch / "plain.log",
                                     {**serve_env, "XINYONG_PUBLIC_CACHE_TTL": "0"})  # fmt: skip
                servers.append(plain)
                baseline_argv = [sys.executable, str(HERE / "_baseline_server.py"), "--port", str(baseline_port)]
                baseline = start_server("baseline", baseline_argv, baseline_port, scratch / "baseline.log", serve_env)
                servers.append(baseline)
            gateway.wait_ready("/readyz")
            plain.wait_ready("/readyz")
            baseline.wait_ready("/healthz")
            if not args.db:
                wait_standings(gateway)
                wait_standings(plain)

            rng = random.Random(args.seed + 1)
            blacks = [code for code, is_black in subjects if is_black]
            picks = [rng.choice(blacks) if n % 10 == 0 else rng.choice(subjects)[0] for n in range(args.requests)]
            revalidate = picks[:2000]
            etags = {}
            for code in revalidate:
                if code not in etags:
                    status, headers, _ = fetch(gateway_port, f"/public/subjects/uscc/{code}")
                    if status != 200:
                        raise BenchError(f"subject page answered {status}")
                    etags[code] = headers["ETag"]
            revalidated = [rng.choice(revalidate) for _ in range(args.requests)]
            popular = popular_picks(rng, [code for code, _ in subjects], args.zipf, args.requests)
            runs: dict[str, tuple[Server, list[bytes], int]] = {
                "baseline": (baseline, [get(baseline_port, "/healthz")] * args.requests, 200),
                # the gateway's floor: its least request (no store, a small JSON body) with its middleware and log line
                "gateway GET /healthz": (gateway, [get(gateway_port, "/healthz")] * args.requests, 200),
            }
            for server, suffix in ((gateway, ""), (plain, " (no reuse)")):
                port = server.port
                runs |= {
                    f"subject page{suffix}": (server, [get(port, f"/public/subjects/uscc/{c}") for c in picks], 200),
                    f"badge{suffix}": (server, [get(port, f"/public/badge/{c}.svg") for c in picks], 200),
                    f"304 revalidation{suffix}": (
                        server,
                        [get(port, f"/public/subjects/uscc/{c}", {"If-None-Match": etags[c]}) for c in revalidated],
                        304,
                    ),
                }
                if popular:
                    runs |= {
                        f"subject page, popular{suffix}": (
                            server,
                            [get(port, f"/public/subjects/uscc/{c}") for c in popular],
                            200,
                        ),
                        f"badge, popular{suffix}": (
                            server,
                            [get(port, f"/public/badge/{c}.svg") for c in popular],
                            200,
                        ),
                    }
            for what, (server, requests, status) in runs.items():
                run_load(server, requests[:2000], args.concurrency, f"{what} warm-up", args.client_cpu, status)
            rounds: dict[str, list[LoadResult]] = {what: [] for what in runs}
            cpu: dict[str, list[float]] = {what: [] for what in runs}
            for _ in range(args.repeat):  # interleaved rounds, medians: the machine is shared and noisy
                for what, (server, requests, status) in runs.items():
                    before = server.cpu_seconds()
                    result = run_load(server, requests, args.concurrency, what, args.client_cpu, status)
                    rounds[what].append(result)
                    cpu[what].append((server.cpu_seconds() - before) / result.ok * 1e6)
            rates = {what: statistics.median(r.rate for r in results) for what, results in rounds.items()}
            p99 = {
                what: statistics.median(percentile(sorted(r.latencies_ns), 0.99) for r in results) / 1e6
                for what, results in rounds.items()
            }

            searches: dict[str, dict[str, float]] = {}
            for kind, queries in search_queries(random.Random(args.seed + 2), args.searches).items():
                times = []
                for query in queries:
                    status, _, took_s = fetch(gateway_port, "/public/search?q=" + urllib.parse.quote(query))
                    if status != 200:
                        raise BenchError(f"search answered {status}")
                    times.append(int(took_s * 1e9))
                times.sort()
                searches[kind] = {"p50_ms": percentile(times, 0.5) / 1e6, "p99_ms": percentile(times, 0.99) / 1e6}

            print()
            heading = f"GET, {args.concurrency} clients, median of {args.repeat}"
            print(f"  {heading:<34}{'requests/s':>12}{'p99 ms':>9}{'ratio':>8}  {'server CPU/request':>18}  target")
            for what, rate in rates.items():
                ratio = rate / rates["baseline"]
                target = f">= {TARGETS[what]}" if what in TARGETS else ""
                spent = f"{statistics.median(cpu[what]):,.0f} µs"
                print(f"  {what:<34}{rate:12,.0f}{p99[what]:9.2f}{ratio:8.2f}  {spent:>18}  {target}")
            print()
            print(f"  name search over {len(subjects):,} subjects (one client, through HTTP)")
            for kind, figures in searches.items():
                print(f"  {kind:<26} p50 {figures['p50_ms']:7.2f} ms   p99 {figures['p99_ms']:7.2f} ms")
            figures: dict[str, Any] = {
                "subjects": len(subjects),
                "rates": {k: round(v) for k, v in rates.items()},
                "ratios": {k: round(v / rates["baseline"], 2) for k, v in rates.items()},
                "server_cpu_us": {k: round(statistics.median(v)) for k, v in cpu.items()},
                "search_ms": searches,
            }
            if args.json:
                print(json.dumps(figures, ensure_ascii=False))
            return figures
    finally:
        for server in servers:
            server.stop()
        if args.keep or args.reuse:
            print(f"kept {scratch} (run again on it: --reuse {scratch})")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return ingest.bench_main("bench/public.py", build_parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
