"""The pure engine's cost per event, this checkout against a baseline tree, in the same run.

    .venv/bin/python bench/engine_apply.py                       # this checkout only
    git archive main sdk gateway | tar -x -C /tmp/baseline
    .venv/bin/python bench/engine_apply.py --baseline /tmp/baseline --rounds 5

It builds N merchant events (deliveries, listing violations, penalties; the mix of bench/project.py, smaller) and,
with ``--intermediaries``, as many intermediary events again, then times ``credit.engine.project`` over them in a
fresh interpreter per tree and round (``PYTHONPATH`` pointing at the tree's ``sdk`` and ``gateway``), and prints
the median seconds of each tree and their ratio. The baseline only gets the event types it knows, so compare the two
without ``--intermediaries`` (the same events for both); with it, the figure is this checkout's alone.
Figures, not a test: nothing asserts on time; the machine is shared, so compare medians of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, random, sys, time
from datetime import UTC, datetime, timedelta
from xinyong.events import EVENT_TYPES
from xinyong_gateway.credit.engine import LoggedEvent, project
from xinyong_gateway.credit.policy import default_policy
sys.path.insert(0, sys.argv[3])
from tests.factories import event, make_ric, make_uscc
count, intermediaries = int(sys.argv[1]), sys.argv[2] == "1"
rng = random.Random(7)
merchants = [{"id_type": "uscc", "id": make_uscc(rng)} for _ in range(200)]
couriers = [{"id_type": "uscc", "id": make_uscc(rng)} for _ in range(5)]
agencies = [{"id_type": "uscc", "id": make_uscc(rng)} for _ in range(50)]
people = [{"id_type": "ric", "id": make_ric(rng)} for _ in range(150)]
now = datetime(2026, 6, 1, tzinfo=UTC)
context = {"now": datetime(2100, 1, 1, tzinfo=UTC)}
def at(): return (now - timedelta(minutes=rng.randrange(700 * 1440))).isoformat()
bodies = []
for n in range(count):
    kind = rng.random()
    if kind < 0.8:
        bodies.append(event("delivery.recorded", rng, merchant=rng.choice(merchants), courier=rng.choice(couriers),
                            waybill_no=f"W{n}",
                            status=rng.choice(["delivered"] * 8 + ["empty_parcel", "lost"]), occurred_at=at()))
    elif kind < 0.9:
        bodies.append(event("listing.violation", rng, merchant=rng.choice(merchants), case_id=f"L{n % 500}",
                            found_at=at()))
    else:
        bodies.append(event("penalty.imposed", rng, subject=rng.choice(merchants), decision_no=f"P{n % 300}",
                            decided_at=at()))
    if intermediaries and "intermediary.violation" in EVENT_TYPES:
        firm, person = rng.choice(agencies), rng.choice(people)
        pick = rng.random()
        if pick < 0.5:
            bodies.append(event("intermediary.service_evaluated", rng, agency=firm, service_id=f"S{n}",
                                satisfaction=rng.choice(["satisfied", "dissatisfied"]), evaluated_at=at()))
        elif pick < 0.7:
            bodies.append(event("intermediary.practitioner_joined", rng, agency=firm, practitioner=person,
                                certificate_no=person["id"][-6:], joined_at=at()))
        elif pick < 0.9:
            bodies.append(event("intermediary.evaluated", rng, subject=firm, evaluation_id=f"E{n % 100}",
                                evaluated_at=at()))
        else:
            bodies.append(event("intermediary.violation", rng, agency=firm, practitioners=[person],
                                case_id=f"V{n % 200}", found_at=at()))
logged = []
for seq, body in enumerate(bodies, start=1):
    body["timestamp"] = body["data"][next(k for k in body["data"] if k.endswith("_at"))]
    logged.append(LoggedEvent(seq, "src", f"wh{seq}", EVENT_TYPES[body["type"]].model_validate(body, context=context)))
rng.shuffle(logged)
policy = default_policy()
started = time.perf_counter()
files = project(logged, policy, lambda s: f"{s.id_type}:{s.id}")
for f in files.values():
    f.status_at(now, policy)
print(json.dumps({"seconds": time.perf_counter() - started, "events": len(logged), "files": len(files)}))
"""


def _run(tree: Path, count: int, intermediaries: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'sdk'}{os.pathsep}{tree / 'gateway'}", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(count), "1" if intermediaries else "0", str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="merchant events (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a tree with sdk/ and gateway/ to compare with")
    parser.add_argument("--intermediaries", action="store_true", help="add as many intermediary events")
    args = parser.parse_args()
    trees = {"this checkout": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
    times: dict[str, list[float]] = {name: [] for name in trees}
    for round_no in range(args.rounds):
        for name, tree in trees.items():  # interleaved, so a noisy moment hits both
            result = _run(tree, args.events, args.intermediaries)
            times[name].append(result["seconds"])
            print(f"round {round_no + 1} {name:<14} {result['events']:>8,.0f} events {result['files']:>5,.0f} files"
                  f" {result['seconds']:.3f} s")  # fmt: skip
    summary = {name: statistics.median(seconds) for name, seconds in times.items()}
    for name, seconds in summary.items():
        print(f"median {name:<14} {seconds:.3f} s")
    if "baseline" in summary:
        print(f"ratio this checkout / baseline: {summary['this checkout'] / summary['baseline']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
