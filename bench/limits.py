"""Rate limits under load: a noisy source far above its limit, a quiet one below it, and an API key over its own.

    .venv/bin/python bench/limits.py                          # SQLite, about 15 s
    .venv/bin/python bench/limits.py --duration 20 --noisy-concurrency 32 --json
    .venv/bin/python bench/limits.py --db postgresql://postgres@127.0.0.1:5432/test

What it does, all on 127.0.0.1, against ``xinyong-gateway serve --no-projector`` (one process) on a scratch database:

- **noisy**: a marketplace source limited to ``--noisy-rate`` events/s (``sources add --rate``), posting distinct
  signed events closed-loop over ``--noisy-concurrency`` connections, as fast as the gateway answers;
- **quiet**: another marketplace source limited to ``--quiet-rate`` events/s, posting open-loop at ``--quiet-offer``
  events/s (below its limit), on a schedule, whatever the answers;
- **key**: an API key limited to ``--key-rate`` requests/s, screening one subject closed-loop over 4 connections.

First ``--alone`` seconds with the quiet source and the key only, then ``--duration`` seconds with the noisy source
too. For each client and phase it prints what was offered and accepted per second, the 429s (and whether every one
carried ``Retry-After``), any other answer, and the quiet source's latency: a limit holds when a client's accepted
rate stays at its limit plus the one-second burst, and the noisy source starves no one when the quiet source gets
everything it offers, 429-free, in both phases. Rate limits are per process: with ``serve --workers N`` each worker
holds its own buckets (README, "Scaling out").

Figures, not a test (``tests/gateway/test_limits.py`` holds the counts); nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

import _postgres
from crash import scratch_folder
from ingest import BIN, HOST, BenchError, _make_uscc, free_port, run_cli, start_server
from xinyong.webhooks import SigningSecret, signature_headers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/limits.py",
        description=(
            "Offered and accepted rates of a noisy source (far above its limit), a quiet source (below its limit)"
            " and an API key (above its limit), concurrently against one gateway process."
        ),
        epilog="Figures, not a test. Everything runs on 127.0.0.1 and stops by itself.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds with the noisy source (default 10)")
    parser.add_argument("--alone", type=float, default=3.0, help="seconds before it, without it (default 3)")
    parser.add_argument(
        "--noisy-rate", type=float, default=50.0, help="the noisy source's limit, events/s (default 50)"
    )
    parser.add_argument(
        "--noisy-concurrency", type=int, default=16, help="the noisy source's connections, closed loop (default 16)"
    )
    parser.add_argument(
        "--quiet-rate", type=float, default=50.0, help="the quiet source's limit, events/s (default 50)"
    )
    parser.add_argument("--quiet-offer", type=float, default=25.0, help="what the quiet source sends, events/s (25)")
    parser.add_argument("--key-rate", type=float, default=20.0, help="the API key's limit, requests/s (default 20)")
    parser.add_argument("--db", metavar="URL", help="a PostgreSQL server: run on a scratch database created there")
    parser.add_argument("--scratch-dir", type=Path, metavar="DIR", help="where the scratch folder is created")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (and a scratch database)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    return parser


@dataclass
class Tally:
    """What one client saw in one phase."""

    offered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: int = 0
    """429 answers that carried a Retry-After header."""
    latencies_ms: list[float] = field(default_factory=list)
    """Of accepted requests."""

    def record(self, status: int, retry_after: str | None, started: float) -> None:
        self.statuses[status] += 1
        if status == 429 and retry_after is not None:
            self.retry_after += 1
        if status < 300:
            self.latencies_ms.append((time.perf_counter() - started) * 1000)

    @property
    def accepted(self) -> int:
        return sum(n for status, n in self.statuses.items() if status < 300)

    def figures(self, seconds: float) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)
        return {
            "offered_per_s": round(self.offered / seconds, 1),
            "accepted_per_s": round(self.accepted / seconds, 1),
            "offered": self.offered,
            "accepted": self.accepted,
            "rate_limited": self.statuses.get(429, 0),
            "rate_limited_with_retry_after": self.retry_after,
            "other_answers": {str(s): n for s, n in self.statuses.items() if s >= 300 and s != 429},
            "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
        }


def _event(merchant: dict[str, str], n: int) -> bytes:
    now = datetime.now(UTC)
    document = {
        "type": "commitment.published",
        "timestamp": (now - timedelta(seconds=2)).isoformat(timespec="seconds"),
        "data": {
            "merchant": merchant,
            "commitment_id": f"limits-{n}",
            "items": ["正品保障"],
            "published_at": (now - timedelta(minutes=1)).isoformat(timespec="seconds"),
        },
    }
    return json.dumps(document, ensure_ascii=False).encode()


class Clients:
    def __init__(self, port: int, sources: dict[str, tuple[str, SigningSecret]], api_key: str) -> None:
        self._port = port
        self._sources = sources
        self._api_key = api_key
        rng = random.Random(2018)
        self._merchants = [{"id_type": "uscc", "id": _make_uscc(rng)} for _ in range(50)]
        self._serial = 0

    async def post_event(self, session: aiohttp.ClientSession, who: str, tally: Tally) -> None:
        source_id, secret = self._sources[who]
        self._serial += 1
        body = _event(self._merchants[self._serial % len(self._merchants)], self._serial)
        headers = signature_headers(secret, f"{who}-{self._serial}", body) | {"Content-Type": "application/json"}
        tally.offered += 1
        started = time.perf_counter()
        url = f"http://{HOST}:{self._port}/v1/webhooks/{source_id}"
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            tally.record(response.status, response.headers.get("Retry-After"), started)

    async def screen(self, session: aiohttp.ClientSession, tally: Tally) -> None:
        tally.offered += 1
        started = time.perf_counter()
        headers = {"Authorization": f"Bearer {self._api_key}"}
        body = {"subjects": [self._merchants[tally.offered % len(self._merchants)]]}
        url = f"http://{HOST}:{self._port}/v1/screenings"
        async with session.post(url, json=body, headers=headers) as response:
            await response.read()
            tally.record(response.status, response.headers.get("Retry-After"), started)

    async def phase(self, seconds: float, *, quiet_offer: float, noisy: int) -> dict[str, Tally]:
        tallies = {name: Tally() for name in ("noisy", "quiet", "key")}
        deadline = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=noisy + 64)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def closed_loop(send: Any) -> None:
                while time.monotonic() < deadline:
                    await send()

            async def paced() -> None:
                pending = []
                start, n = time.monotonic(), 0
                while (due := start + n / quiet_offer) < deadline:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    pending.append(asyncio.create_task(self.post_event(session, "quiet", tallies["quiet"])))
                    n += 1
                await asyncio.gather(*pending)

            work = [paced()]
            work += [closed_loop(lambda: self.screen(session, tallies["key"])) for _ in range(4)]
            work += [closed_loop(lambda: self.post_event(session, "noisy", tallies["noisy"])) for _ in range(noisy)]
            await asyncio.gather(*work)
        return tallies


def run(args: argparse.Namespace) -> dict[str, Any]:
    with scratch_folder(args.scratch_dir, args.keep) as folder, contextlib.ExitStack() as stack:
        if args.db is None:
            url, database = f"sqlite:///{folder / 'gateway.db'}", "SQLite scratch file"
        elif _postgres.is_postgres(args.db):
            url, name = stack.enter_context(_postgres.scratch_database(args.db, keep=args.keep))
            database = f"PostgreSQL scratch database {name}"
        else:
            raise BenchError("--db takes a PostgreSQL URL (SQLite runs in a scratch folder by default).")
        env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
        env |= {"XINYONG_DATABASE_URL": url, "XINYONG_MASTER_KEY": os.environ.get("XINYONG_MASTER_KEY", "")}
        if not env["XINYONG_MASTER_KEY"]:
            env["XINYONG_MASTER_KEY"] = run_cli("master-key", env=env)["master_key"]
        run_cli("migrate", env=env)
        sources = {}
        for who, rate in (("noisy", args.noisy_rate), ("quiet", args.quiet_rate)):
            added = run_cli("sources", "add", "--kind", "marketplace", "--name", who, "--rate", str(rate), env=env)
            sources[who] = (added["source_id"], SigningSecret.parse(added["secret"]))
        key = run_cli("keys", "add", "--name", "limits", "--scopes", "screen", "--rate", str(args.key_rate), env=env)
        port = free_port()
        argv = [str(BIN / "xinyong-gateway"), "serve", "--no-projector", "--port", str(port), "--log-format", "json"]
        server = start_server("gateway", argv, port, folder / "gateway.log", env)
        try:
            server.wait_ready("/readyz")
            clients = Clients(port, sources, key["api_key"])
            alone = asyncio.run(clients.phase(args.alone, quiet_offer=args.quiet_offer, noisy=0))
            contended = asyncio.run(
                clients.phase(args.duration, quiet_offer=args.quiet_offer, noisy=args.noisy_concurrency)
            )
        finally:
            server.stop()
    return {
        "database": database,
        "limits": {"noisy": args.noisy_rate, "quiet": args.quiet_rate, "key": args.key_rate},
        "alone": {name: tally.figures(args.alone) for name, tally in alone.items() if name != "noisy"},
        "with_noisy": {name: tally.figures(args.duration) for name, tally in contended.items()},
        "seconds": {"alone": args.alone, "with_noisy": args.duration},
    }


def print_report(result: dict[str, Any]) -> None:
    limits = result["limits"]
    print(f"\nrate limits under load: one gateway process, {result['database']}")
    print(
        f"{'phase':<12}{'client':<8}{'limit/s':>9}{'offered/s':>11}{'accepted/s':>12}{'429s':>8}"
        f"{'with Retry-After':>18}{'other':>8}{'p50 ms':>9}{'p99 ms':>9}"
    )
    for phase in ("alone", "with_noisy"):
        for name, figures in result[phase].items():
            other = sum(figures["other_answers"].values())
            p50 = "-" if figures["p50_ms"] is None else f"{figures['p50_ms']:.1f}"
            p99 = "-" if figures["p99_ms"] is None else f"{figures['p99_ms']:.1f}"
            print(
                f"{phase:<12}{name:<8}{limits[name]:>9.0f}{figures['offered_per_s']:>11,.1f}"
                f"{figures['accepted_per_s']:>12,.1f}{figures['rate_limited']:>8,}"
                f"{figures['rate_limited_with_retry_after']:>18,}{other:>8,}{p50:>9}{p99:>9}"
            )
    quiet, noisy = result["with_noisy"]["quiet"], result["with_noisy"]["noisy"]
    seconds = result["seconds"]["with_noisy"]
    ceiling = limits["noisy"] * (seconds + 1)
    all_retry_after = noisy["rate_limited_with_retry_after"] == noisy["rate_limited"]
    print(
        f"\nnoisy source: {noisy['accepted']:,} accepted of {noisy['offered']:,} offered (its limit allows at most"
        f" {ceiling:,.0f} in {seconds:g} s with the one-second burst): the limit "
        f"{'held' if noisy['accepted'] <= ceiling else 'did NOT hold'};"
        f" every 429 with Retry-After: {'yes' if all_retry_after else 'NO'}"
    )
    print(
        f"quiet source: {quiet['accepted']:,} accepted of {quiet['offered']:,} offered, {quiet['rate_limited']} 429s:"
        f" {'not starved' if quiet['accepted'] == quiet['offered'] else 'STARVED'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except BenchError as exc:
        print(f"\nbench/limits.py: ABORTED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=lambda o: asdict(o)))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
