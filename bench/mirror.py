"""``ListMirror`` figures: how fast it takes in a change feed, and how fast a lookup answers from the file.
Figures, not a test: nothing asserts on time.

    .venv/bin/python bench/mirror.py                        # 200,000 subjects, 100,000 lookups: well under a minute
    .venv/bin/python bench/mirror.py --subjects 1000000 --json

What it does, in a scratch folder removed at the end:

1. A feed server on 127.0.0.1 (an aiohttp handler in this process) serves ``GET /v1/lists/changes`` pages of
   ``--subjects`` distinct subjects, generated from a seed: 70% businesses by USCC, 30% persons by the pseudonym of
   a RIC under the bench's lookup secret; 1.5% black, 3.4% watch, 7.5% red, the rest on no list with grade A, each
   with the policy's measures and one reason per listing (the shape of the gateway's answers, validated by the SDK's
   wire model on the way in, as from the real gateway).
2. ``ListMirror.sync()`` pulls the whole feed, 1000 entries a page (one transaction per page): entries/s.
3. ``--lookups`` lookups on one thread, ``status()`` then ``check_onboarding()``, of subjects drawn at random: 90% known
   (businesses by code, persons by RIC, so the pseudonym is computed on each lookup), 10% never in the feed. Each
   call is timed with ``perf_counter_ns``: lookups/s, p50 and p99 in microseconds. No network is involved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from _loadgen import percentile
from xinyong import Client, ListMirror, ric_pseudonym

LOOKUP_SECRET = "xyls_" + "5a" * 32
_MEASURES = {
    "black": ["refuse_onboarding", "close_store", "freeze_account", "public_exposure"],
    "watch": ["search_demotion", "increased_inspection", "risk_warning"],
    "red": ["search_boost", "traffic_priority", "green_channel"],
    "none": [],
}
_SHARES = (("black", 0.015), ("watch", 0.034), ("red", 0.075))
_ORG = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _uscc(rng: random.Random) -> str:
    body = "".join(rng.choice(_USCC) for _ in range(8))
    check = 11 - sum(_ORG.index(c) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    first17 = "91" + f"{rng.randrange(10**6):06d}" + body + ("X" if check == 10 else "0" if check == 11 else str(check))
    return first17 + stdnum_uscc.calc_check_digit(first17)


def _ric(rng: random.Random) -> str:
    born = datetime(1960, 1, 1) + timedelta(days=rng.randrange(15000))
    first17 = f"320{rng.randrange(1000):03d}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + stdnum_ric.calc_check_digit(first17 + "0")


def _subjects(count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [
        {"id_type": "ric", "id": _ric(rng)} if rng.random() < 0.3 else {"id_type": "uscc", "id": _uscc(rng)}
        for _ in range(count)
    ]


def _entry(n: int, subject: dict[str, str], rng: random.Random, moment: str) -> dict[str, Any]:
    draw, listed = rng.random(), "none"
    for name, share in _SHARES:
        if draw < share:
            listed = name
            break
        draw -= share
    reasons = []
    if listed in ("black", "watch"):
        reasons.append(
            {
                "code": "LISTING_COUNTERFEIT" if listed == "black" else "MANIPULATION_CONFIRMED",
                "list": listed,
                "severity": "serious" if listed == "black" else "general",
                "source_events": [n * 3 + 1],
                "effective_from": moment,
                "effective_until": "2029-11-27T00:00:00+00:00",
            }
        )
    shown: dict[str, Any] = (
        {"id_type": "uscc", "id": subject["id"], "name": f"示例网店{n}有限公司"}
        if subject["id_type"] == "uscc"
        else {"id_type": "ric", "pseudonym": ric_pseudonym(subject["id"], LOOKUP_SECRET)}
    )
    return {
        "cursor": str(n + 1),
        "effective_at": moment,
        "subject": shown,
        "list": listed,
        "grade": {"black": "D", "watch": "B"}.get(listed, "A"),
        "score": {"black": 60, "watch": 85}.get(listed, 100),
        "measures": _MEASURES[listed],
        "reasons": reasons,
        "disputed": False,
        "policy_version": "lyg-2026.4",
        "as_of": moment,
    }


def feed_app(subjects: list[dict[str, str]], seed: int) -> web.Application:
    rng = random.Random(seed + 1)
    moment = datetime.now(UTC).isoformat()
    pages = [_entry(n, subject, rng, moment) for n, subject in enumerate(subjects)]

    async def changes(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "100"))
        page = pages[after : after + limit]
        body = {"changes": page, "next": page[-1]["cursor"] if page else str(after)}
        return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/lists/changes", changes)
    return app


async def sync(path: Path, subjects: list[dict[str, str]], seed: int) -> tuple[int, float]:
    runner = web.AppRunner(feed_app(subjects, seed), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Client(f"http://127.0.0.1:{port}", "xyk_bench") as client:
            with ListMirror(path, client, LOOKUP_SECRET) as mirror:
                started = time.perf_counter()
                applied = await mirror.sync()
                return applied, time.perf_counter() - started
    finally:
        await runner.cleanup()


def time_lookups(mirror: ListMirror, call: str, picks: list[dict[str, str]]) -> dict[str, float]:
    method = getattr(mirror, call)
    for subject in picks[:1000]:  # warm the page cache and the code paths
        method(subject)
    durations = []
    started = time.perf_counter()
    for subject in picks:
        before = time.perf_counter_ns()
        method(subject)
        durations.append(time.perf_counter_ns() - before)
    elapsed = time.perf_counter() - started
    durations.sort()
    return {
        "per_s": round(len(picks) / elapsed),
        "p50_us": round(percentile(durations, 0.50) / 1000, 1),
        "p99_us": round(percentile(durations, 0.99) / 1000, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    subjects = _subjects(args.subjects, args.seed)
    rng = random.Random(args.seed + 2)
    unknown = _subjects(max(1, args.lookups // 10), args.seed + 3)
    picks = [rng.choice(subjects) if rng.random() < 0.9 else rng.choice(unknown) for _ in range(args.lookups)]
    with tempfile.TemporaryDirectory(prefix="xinyong-bench-mirror-") as scratch:
        path = Path(scratch) / "lists.db"
        applied, sync_s = asyncio.run(sync(path, subjects, args.seed))
        size = sum(file.stat().st_size for file in path.parent.iterdir())
        rate = applied / sync_s
        print(f"synced {applied:,} feed entries in {sync_s:.1f} s ({rate:,.0f} entries/s), file {size >> 20} MiB")
        with ListMirror(path, None, LOOKUP_SECRET) as mirror:
            results = {call: time_lookups(mirror, call, picks) for call in ("status", "check_onboarding")}
    for call, figures in results.items():
        print(
            f"{call + '()':<20} {figures['per_s']:>9,} lookups/s   p50 {figures['p50_us']:>6.1f} µs"
            f"   p99 {figures['p99_us']:>6.1f} µs   (one thread, {args.lookups:,} lookups)"
        )
    return {
        "subjects": args.subjects,
        "sync_entries_per_s": round(applied / sync_s),
        "file_mib": round(size / (1 << 20), 1),
        **{f"{call}_{name}": value for call, figures in results.items() for name, value in figures.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/mirror.py",
        description="ListMirror: change-feed sync rate and lookup latency from the local file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  .venv/bin/python bench/mirror.py --subjects 1000000 --lookups 200000",
    )
    parser.add_argument("--subjects", type=int, default=200_000, metavar="N", help="subjects in the feed")
    parser.add_argument("--lookups", type=int, default=100_000, metavar="N", help="timed lookups of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.subjects < 1 or args.lookups < 1:
        parser.error("--subjects and --lookups must be at least 1")
    with contextlib.suppress(KeyboardInterrupt):
        figures = run(args)
        if args.json:
            print(json.dumps(figures))
        return 0
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
