"""Instructions per request of the public site, counted by valgrind's callgrind beside the trivial handler's.

The machine this project is measured on is shared, and a rate moves by a third from one minute to the next; the
number of instructions a request takes does not. This counts them for the same kinds of request as
``bench/public.py``, on a million subjects a ``bench/public.py --keep`` run left:

    .venv/bin/python bench/public.py --keep --scratch-dir /tmp          # seed once (about 10 minutes)
    .venv/bin/python bench/instructions.py --reuse /tmp/xinyong-public-…  # about 5 minutes under valgrind

What it does: the gateway (``serve --no-projector``, JSON logs on, its public answers reused for ``--cache-ttl``
seconds, 60 by default: under valgrind every request takes some 50 times as long) and the trivial handler
(``bench/_baseline_server.py``) each run under ``valgrind --tool=callgrind --instr-atstart=no`` with
``PYTHONMALLOC=malloc`` (valgrind sees every allocation; malloc's share, about a tenth, is larger than in service).
For each kind of request: a warm-up, ``callgrind_control -i on`` and ``-z``, ``--requests`` requests from the
benchmarks' load generator, ``callgrind_control -d``, and the dump's total over the requests answered. User-space
instructions only: a system call's work in the kernel is not counted, and a cache miss counts as much as a hit (which
flatters a request that reads a million subjects' pages against one that reads nothing). A guide for comparing two
versions of the code, not the rate the targets are about.

Kinds: the trivial handler's ``GET /healthz``; the gateway's ``GET /healthz``; the subject page of random subjects
(a tenth black-listed); their badges; a 304 revalidation of random subjects the gateway was never asked for (their
tags from a third gateway: nothing reused); the same 304s asked again (the tags reused: ``web.public.answers``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ingest
from _loadgen import run_closed_loop
from ingest import BIN, HERE, HOST, BenchError, Server, free_port, start_server
from public import fetch, get, wait_standings

_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/instructions.py",
        description="Instructions per public-site request (callgrind) beside a trivial aiohttp handler's.",
    )
    parser.add_argument(
        "--reuse", type=Path, required=True, metavar="DIR", help="a folder bench/public.py --keep left (SQLite)"
    )
    parser.add_argument("--requests", type=int, default=1000, metavar="N", help="counted requests per kind")
    parser.add_argument("--warmup", type=int, default=300, metavar="N", help="requests before counting, per kind")
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=60.0,
        metavar="S",
        help="the gateway's reuse ttl (long: under valgrind a request takes some 50 times as long)",
    )
    parser.add_argument(
        "--dumps",
        type=Path,
        metavar="DIR",
        help="keep each kind's callgrind dump in DIR (for callgrind_annotate --inclusive=yes DIR/page.out)",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    parser.add_argument("--seed", type=int, default=7)
    return parser


def _valgrind(argv: list[str], out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *argv]


def _control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True, timeout=120)


def _count(
    server: Server, out: Path, requests: list[bytes], warmup: list[bytes], status: int, c: int, keep: Path | None
) -> float:
    """Instructions per answered request of ``requests`` (after ``warmup``), from a fresh dump."""
    for batch, counted in ((warmup, False), (requests, True)):
        if counted:
            _control(server.process.pid, "-i", "on")
            _control(server.process.pid, "-z")
        result = run_closed_loop(
            HOST, server.port, batch, concurrency=c, expected_status=status, time_limit=600.0, drain_timeout=60.0
        )
        if result.errors or result.ok != len(batch):
            raise BenchError(f"{server.name}: {result.errors[:3]} statuses {result.statuses}\n{server.log_tail()}")
    before = set(out.parent.glob(f"{out.name}*"))
    _control(server.process.pid, "-d")
    _control(server.process.pid, "-i", "off")
    dumps = sorted(set(out.parent.glob(f"{out.name}*")) - before, key=lambda p: p.stat().st_mtime)
    if not dumps:
        raise BenchError(f"{server.name}: callgrind wrote no dump")
    found = _TOTALS.search(dumps[-1].read_text(errors="replace"))
    if found is None:
        raise BenchError(f"{server.name}: no total in {dumps[-1]}")
    if keep is not None:
        shutil.copyfile(dumps[-1], keep)
    return int(found.group(1)) / len(requests)


def _dump(folder: Path | None, what: str) -> Path | None:
    """Where ``--dumps`` keeps the dump of ``what`` (``subject page`` -> ``DIR/subject-page.out``)."""
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-") + ".out")


def _wait_ready(server: Server, path: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited under valgrind\n{server.log_tail()}")
        try:
            if fetch(server.port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise BenchError(f"{server.name} not ready under valgrind after {timeout:.0f} s\n{server.log_tail()}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder: Path = args.reuse
    if not (folder / "public.db").is_file() or not (folder / "subjects.json").is_file():
        raise BenchError(f"--reuse takes a folder that bench/public.py --keep left (SQLite): not {folder}")
    subprocess.run(["valgrind", "--version"], check=True, capture_output=True)
    subjects = [(code, black) for code, black in json.loads((folder / "subjects.json").read_text())]
    url = f"sqlite:///{folder / 'public.db'}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
    env |= {
        "XINYONG_MASTER_KEY": (folder / "key").read_text(),
        "XINYONG_LOG_FORMAT": "json",
        "XINYONG_LOG_LEVEL": "info",
        "XINYONG_PUBLIC_CACHE_TTL": str(args.cache_ttl),
        "PYTHONMALLOC": "malloc",
    }
    rng = random.Random(args.seed)
    blacks = [code for code, black in subjects if black]
    total = args.warmup + args.requests
    picks = [rng.choice(blacks) if n % 10 == 0 else rng.choice(subjects)[0] for n in range(2 * total)]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="xinyong-callgrind-") as scratch_dir:
        scratch = Path(scratch_dir)
        servers: list[Server] = []
        try:
            baseline_port, gateway_port = free_port(), free_port()
            baseline_out, gateway_out = scratch / "baseline.out", scratch / "gateway.out"
            baseline_argv = [sys.executable, str(HERE / "_baseline_server.py"), "--port", str(baseline_port)]
            baseline = start_server(
                "baseline", _valgrind(baseline_argv, baseline_out), baseline_port, scratch / "baseline.log", env
            )
            servers.append(baseline)
            serve = [str(BIN / "xinyong-gateway"), "--db", url, "serve", "--port", str(gateway_port), "--no-projector"]
            gateway = start_server("gateway", _valgrind(serve, gateway_out), gateway_port, scratch / "gateway.log", env)
            servers.append(gateway)
            _wait_ready(baseline, "/healthz")
            _wait_ready(gateway, "/readyz")
            wait_standings(gateway, timeout=900.0)  # a million standings under valgrind: about a minute
            print("both servers ready under valgrind; counting", flush=True)
            healthz = [get(baseline_port, "/healthz")] * total
            figures["trivial GET /healthz"] = _count(
                baseline,
                baseline_out,
                healthz[args.warmup :],
                healthz[: args.warmup],
                200,
                args.concurrency,
                _dump(args.dumps, "trivial GET /healthz"),
            )
            page = [get(gateway_port, f"/public/subjects/uscc/{code}") for code in picks]
            badge = [get(gateway_port, f"/public/badge/{code}.svg") for code in picks]
            # Tags of subjects the counted gateway was never asked for, from a gateway of their own (not under
            # valgrind, nothing reused): revalidating them there is the slow path, a read and a hash.
            tagger_port = free_port()
            tagger_argv = [*serve[:-2], str(tagger_port), "--no-projector"]
            tagger = start_server(
                "tagger", tagger_argv, tagger_port, scratch / "tagger.log", env | {"XINYONG_PUBLIC_CACHE_TTL": "0"}
            )
            servers.append(tagger)
            _wait_ready(tagger, "/readyz")
            tags = {code: fetch(tagger_port, f"/public/subjects/uscc/{code}")[1]["ETag"] for code in picks[total:]}
            stale = [get(gateway_port, f"/public/subjects/uscc/{c}", {"If-None-Match": tags[c]}) for c in picks[total:]]
            runs = {
                "gateway GET /healthz": ([get(gateway_port, "/healthz")] * total, 200),
                "subject page": (page[:total], 200),
                "badge": (badge[:total], 200),
                "304 revalidation": (stale, 304),
            }
            for what, (requests, status) in runs.items():
                figures[what] = _count(
                    gateway,
                    gateway_out,
                    requests[args.warmup :],
                    requests[: args.warmup],
                    status,
                    args.concurrency,
                    _dump(args.dumps, what),
                )
                print(f"  {what}: {figures[what]:,.0f}", flush=True)
            if args.cache_ttl > 0:  # the same revalidations again: their tags are kept
                again = stale[args.warmup : args.warmup + args.requests // 2]
                what = "304 revalidation, tag reused"
                figures[what] = _count(
                    gateway, gateway_out, again, again, 304, args.concurrency, _dump(args.dumps, what)
                )
        finally:
            for server in servers:
                server.stop()
    trivial = figures["trivial GET /healthz"]
    print()
    print(f"  {'instructions per request (callgrind)':<36}{'instructions':>14}{'trivial / this':>16}")
    for what, count in figures.items():
        print(f"  {what:<36}{count:14,.0f}{trivial / count:16.2f}")
    result = {"instructions": {k: round(v) for k, v in figures.items()}}
    if args.json:
        print(json.dumps(result))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return ingest.bench_main("bench/instructions.py", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
