"""Notifications survive crashes: SIGKILL the projector and the dispatcher at random under load while the receiver
fails and times out at random, then prove that every status change that matches a subscription was delivered at
least once, that nothing was invented, and that each subscription's sequences cover 1..N without a gap.

    .venv/bin/python bench/notify_crash.py                                   # SQLite, in a scratch folder
    .venv/bin/python bench/notify_crash.py --db postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/notify_crash.py --events 2000 --kills 8 --json

What it does, all on 127.0.0.1:

1. A fresh database (a scratch SQLite file, or a scratch database on ``--db``'s server; ``--in-place`` uses the URL as
   it is), ``migrate``, a marketplace source and an API key of scope ``subscribe``; ``serve --no-projector
   --no-dispatcher`` for the API, a separate ``project`` and a separate ``dispatch`` (retry schedule shortened to
   ``[0, 0.2, 0.5, 1 …]`` s, attempts cut at 1 s, leases of 3 s, so that a run takes a minute and not five days).
2. Three subscriptions through the API: every list; the black list only; the black list for a fifth of the merchants.
3. The receiver (``_receiver.py``) verifies each message with the SDK's ``WebhookVerifier``; it answers
   ``--fail-rate`` of them 500 and holds ``--timeout-rate`` of them past the gateway's timeout.
4. ``--events`` events from 8 concurrent senders: confirmed counterfeit listings (the merchant goes on the black
   list) and withdrawals of earlier ones (it may leave it), about a pool of merchants. Meanwhile ``--kills`` SIGKILLs
   of the projector and as many of the dispatcher, each at a random moment, each followed by a restart.
5. When everything is acknowledged: the projector catches up, the outbox drains; then from the database and the
   receiver's log: **expected** (each feed entry routed independently by this script: the list before and after the
   change against each subscription's lists and subjects) equals the outbox's rows (none missing, none invented),
   the sequences of each subscription are 1..N, and the **received** sequences cover 1..N, each with the feed entry
   the outbox gave it.

Exit status 0 when all of that holds; 1 otherwise; 2 when the run could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from _notify import (
    MASTER_KEY,
    BenchError,
    Fleet,
    arrivals,
    database,
    post,
    subscribe,
    uscc,
    violation,
)
from xinyong.webhooks import SigningSecret
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import Store, open_store

RETRY_SCHEDULE = "[0, 0.2, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1]"


class CrashFleet(Fleet):
    def env_extra(self) -> dict[str, str]:
        return {
            "XINYONG_RETRY_SCHEDULE": RETRY_SCHEDULE,
            "XINYONG_DISPATCH_TIMEOUT": "1",
            "XINYONG_DISPATCH_LEASE": "3",
        }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="a PostgreSQL server URL (default: a scratch SQLite file)")
    parser.add_argument("--in-place", action="store_true", help="use --db as it is (a test's own schema)")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--merchants", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=4, help="SIGKILLs of the projector, and as many of the dispatcher")
    parser.add_argument("--fail-rate", type=float, default=0.1)
    parser.add_argument("--timeout-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds the outbox may take to drain")
    parser.add_argument("--scratch-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", action="store_true")
    return parser


def plan(events: int, merchants: list[str], rng: random.Random) -> list[tuple[str, bytes]]:
    """``(webhook_id, body)``: confirmed violations, and withdrawals of earlier cases (about 30 %)."""
    planned: list[tuple[str, bytes]] = []
    cases: list[tuple[int, str]] = []
    for n in range(events):
        if cases and rng.random() < 0.3:
            case, merchant = cases.pop(rng.randrange(len(cases)))
            planned.append((f"notify-crash-{n:06d}", violation(merchant, case, confirmed=False, case=f"case-{case}")))
        else:
            merchant = rng.choice(merchants)
            cases.append((n, merchant))
            planned.append((f"notify-crash-{n:06d}", violation(merchant, n)))
    return planned


async def expected_routes(store: Store, specs: dict[str, tuple[set[str], set[str] | None]]) -> dict[str, list[int]]:
    """For each subscription, the change ids that concern it, routed here from the feed itself: the subject's list
    before (its previous entry's, or ``none``) or after the change is one of the lists, and the subject is asked for."""
    before: dict[str, str] = {}
    routed: dict[str, list[int]] = {subscription: [] for subscription in specs}
    after = 0
    while rows := await store.read_changes(after, 1000):
        for row in rows:
            snapshot = json.loads(row.snapshot)
            old, new = before.get(row.subject_key, "none"), snapshot["list"]
            before[row.subject_key] = new
            for subscription, (lists, subjects) in specs.items():
                if (old in lists or new in lists) and (subjects is None or snapshot["subject"]["id"] in subjects):
                    routed[subscription].append(row.change_id)
        after = rows[-1].change_id
    return routed


async def run(args: argparse.Namespace, folder: Path, url: str) -> dict[str, Any]:
    rng = random.Random(args.seed)
    fleet = CrashFleet(folder, url)
    fleet.cli("migrate")
    source = fleet.cli("sources", "add", "--kind", "marketplace", "--name", "bench")
    key = fleet.cli("keys", "add", "--name", "bench", "--scopes", "subscribe")
    secret = SigningSecret.parse(source["secret"])
    merchants = [uscc(rng) for _ in range(args.merchants)]
    some = set(merchants[: max(1, len(merchants) // 5)])
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fleet.spawn("serve", "serve", "--port", str(fleet.port), "--no-projector", "--no-dispatcher")
        await fleet.wait_ready(session)
        specs: dict[str, tuple[set[str], set[str] | None]] = {}
        secrets: dict[str, str] = {}
        for lists, subjects in ((["black", "watch", "red"], None), (["black"], None), (["black"], some)):
            chosen = [{"id_type": "uscc", "id": code} for code in sorted(subjects)] if subjects else None
            subscription_id, subscription_secret = await subscribe(session, fleet, key["api_key"], lists, chosen)
            specs[subscription_id] = (set(lists), subjects)
            secrets[subscription_id] = subscription_secret
        fleet.spawn_receiver(
            secrets, "--fail-rate", str(args.fail_rate), "--timeout-rate", str(args.timeout_rate), "--hold", "2"
        )
        fleet.spawn("project", "project")
        fleet.spawn("dispatch", "dispatch")
        events = plan(args.events, merchants, rng)
        points = sorted(rng.sample(range(1, max(2, len(events))), min(2 * args.kills, max(1, len(events) - 1))))
        kills: Counter[str] = Counter()
        acknowledged = 0
        queue = list(reversed(events))

        async def sender() -> None:
            nonlocal acknowledged
            while queue:
                webhook_id, body = queue.pop()
                await post(session, fleet, source["source_id"], secret, webhook_id, body)
                acknowledged += 1

        async def killer() -> None:
            for index, point in enumerate(points):
                while acknowledged < point:  # noqa: ASYNC110 -- polled: the senders need no notifying
                    await asyncio.sleep(0.005)
                await asyncio.sleep(rng.random() * 0.05)
                role = "project" if index % 2 == 0 else "dispatch"
                fleet.kill(role)
                kills[role] += 1
                fleet.spawn(role, role)

        await asyncio.gather(killer(), *(sender() for _ in range(8)))
        load_s = time.monotonic() - started

        async with open_store(url) as store:
            master = MasterKey.from_text(MASTER_KEY)
            del master  # the store is read as it is; nothing is unsealed here
            deadline = time.monotonic() + args.deadline
            while True:
                caught_up = await store.projector_position() >= await store.inbox_count()
                states = [await store.outbox_state(subscription) for subscription in specs]
                if caught_up and all(state.pending == 0 for state in states):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"the outbox did not drain within {args.deadline:.0f} s: {states}")
                await asyncio.sleep(0.2)
            drained_s = time.monotonic() - started
            await asyncio.sleep(0.5)  # the receiver's log is flushed every 0.1 s
            fleet.stop_all()
            routed = await expected_routes(store, specs)
            outbox = {subscription: await store.outbox_sequences(subscription) for subscription in specs}
            failed = {subscription: (await store.outbox_state(subscription)).failed for subscription in specs}

    log = arrivals(folder)
    report: dict[str, Any] = {
        "events": len(events),
        "kills": dict(kills),
        "load_s": round(load_s, 1),
        "drained_s": round(drained_s, 1),
        "receiver": {
            "answered_500": sum(1 for line in log if line.get("failed")),
            "held_past_timeout": sum(1 for line in log if line.get("held")),
            "forged": sum(1 for line in log if line.get("forged")),
        },
        "subscriptions": {},
    }
    ok = report["receiver"]["forged"] == 0
    for index, subscription in enumerate(specs):
        rows = outbox[subscription]
        by_sequence = dict(rows)
        received = [line for line in log if line.get("subscription_id") == subscription]
        got = Counter(line["sequence"] for line in received)
        wrong = [line for line in received if by_sequence.get(line["sequence"]) != int(line["cursor"])]
        expected = routed[subscription]
        figures = {
            "expected": len(expected),
            "written": len(rows),
            "missing_from_outbox": len(set(expected) - {change for _, change in rows}),
            "invented_in_outbox": len({change for _, change in rows} - set(expected)),
            "sequences_gap_free": [sequence for sequence, _ in rows] == list(range(1, len(rows) + 1)),
            "received_distinct": len(got),
            "received_copies": sum(got.values()) - len(got),
            "not_received": len(set(range(1, len(rows) + 1)) - set(got)),
            "received_wrong_entry": len(wrong),
            "given_up": failed[subscription],
        }
        report["subscriptions"][f"#{index + 1} {'/'.join(sorted(specs[subscription][0]))}"] = figures
        ok = ok and (
            figures["missing_from_outbox"] == 0
            and figures["invented_in_outbox"] == 0
            and figures["sequences_gap_free"]
            and figures["not_received"] == 0
            and figures["received_wrong_entry"] == 0
            and figures["written"] == figures["expected"] > 0
        )
    report["ok"] = ok
    return report


def main() -> int:
    args = build_parser().parse_args()
    folder = Path(tempfile.mkdtemp(prefix="xinyong-notify-crash-", dir=args.scratch_dir))
    try:
        if args.db and args.in_place:
            context: Any = contextlib.nullcontext(args.db)
        else:
            context = database(folder, args.db, keep=args.keep)
        with context as url:
            report = asyncio.run(run(args, folder, url))
    except BenchError as exc:
        print(f"notify_crash: could not run: {exc} (scratch folder {folder})", file=sys.stderr)
        return 2
    finally:
        if not args.keep and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"events {report['events']}, kills {report['kills']}, load {report['load_s']} s, drained after"
              f" {report['drained_s']} s; receiver {report['receiver']}")  # fmt: skip
        for name, figures in report["subscriptions"].items():
            print(f"  subscription {name}: {figures}")
        print("OK: every matching change delivered, none invented, sequences 1..N" if report["ok"] else "FAILED")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
