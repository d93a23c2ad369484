"""The data lifecycle commands on one SQLite store, each timed beside the full replay they resemble.

    .venv/bin/python bench/lifecycle.py --events 50000            # a minute or two
    .venv/bin/python bench/lifecycle.py --events 200000 --repeat 3

In a scratch folder (removed afterwards unless ``--keep``): ``migrate``, one marketplace source, ``--events``
complaints and listing violations about 5,000 merchants, a third of them natural persons, with fact times spread over
the last 12 years (so retention has work), loaded with ``import``; ``project --once``. Then, ``--repeat`` times each,
timed from process start to exit: ``project --once`` after the projector's state is reset (the **baseline**: a cold
replay of the whole inbox), ``verify``, ``retention run --dry-run``, ``backup``, and ``master-key rotate`` (the key file
flow; each repeat rotates again). Medians, events/s, and each median's ratio to the baseline's.

Figures, not a test: nothing asserts on time. The machine may be shared: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.factories import event, make_uscc, person  # noqa: E402 -- after the path is set

GATEWAY = Path(sys.executable).parent / "xinyong-gateway"


def gateway(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(GATEWAY), *args], cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 2):
        raise SystemExit(f"xinyong-gateway {' '.join(args)} failed: {done.stderr}")
    return done


def seed(folder: Path, events: int) -> None:
    rng = random.Random(2026)
    people = [person(rng) for _ in range(1700)]
    companies = [{"id_type": "uscc", "id": make_uscc(rng), "name": "示例网店有限公司"} for _ in range(3300)]
    now = datetime.now(UTC)
    path = folder / "events.ndjson"
    with path.open("w", encoding="utf-8") as file:
        for _ in range(events):
            who = rng.choice(people) if rng.random() < 0.34 else rng.choice(companies)
            at = (now - timedelta(days=rng.uniform(1, 12 * 365))).isoformat()
            if rng.random() < 0.1:
                body = event("listing.violation", rng, merchant=who, found_at=at)
            else:
                body = event("complaint.filed", rng, merchant=who, filed_at=at)
            file.write(json.dumps(body, ensure_ascii=False) + "\n")
    gateway(folder, "migrate")
    source = json.loads(gateway(folder, "--json", "sources", "add", "--kind", "marketplace", "--name", "b").stdout)
    gateway(folder, "import", str(path), "--source", source["source_id"])
    gateway(folder, "project", "--once")


def reset_projection(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE subjects SET state = '', next_change_at = NULL")
        conn.execute("UPDATE projection_partitions SET position = 0, version = version + 1")


def timed(folder: Path, *args: str, before: object = None) -> float:
    if callable(before):
        before()
    started = time.perf_counter()
    gateway(folder, *args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="xinyong-lifecycle-"))
    try:
        seed(folder, args.events)
        db = folder / "var" / "xinyong.db"
        runs: dict[str, list[float]] = {name: [] for name in ("replay", "verify", "retention", "backup", "rotate")}
        for n in range(args.repeat):
            runs["replay"].append(timed(folder, "project", "--once", before=lambda: reset_projection(db)))
            runs["verify"].append(timed(folder, "verify"))
            runs["retention"].append(timed(folder, "retention", "run", "--dry-run"))
            runs["backup"].append(timed(folder, "backup", str(folder / f"copy-{n}.db")))
            runs["rotate"].append(timed(folder, "master-key", "rotate"))
        baseline = statistics.median(runs["replay"])
        print(f"{args.events:,} events, {args.repeat} runs each; medians (baseline: project --once, cold replay)")
        for name, seconds in runs.items():
            median = statistics.median(seconds)
            print(
                f"  {name:<10} {median:7.2f} s  {args.events / median:10,.0f} events/s  "
                f"{median / baseline:5.2f}x baseline"
            )
    finally:
        if not args.keep:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
