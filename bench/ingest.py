"""Ingest throughput: the real gateway against a trivial aiohttp handler, under the same load.

    .venv/bin/python bench/ingest.py                  # defaults: about a minute (also `make bench`)
    .venv/bin/python bench/ingest.py --repeat 5 --events 30000 --concurrency 64 --json

What it does, all on 127.0.0.1, in a scratch folder that is removed afterwards (unless ``--keep``):

1. ``xinyong-gateway migrate`` and ``sources add`` (a marketplace with a v1 HMAC secret) on a fresh SQLite
   database; then ``xinyong-gateway serve`` as shipped: WAL, ``synchronous=FULL`` (a 202 only after the
   group commit is on disk), production JSON logs ON (one line per request, written to a file in the scratch
   folder). The source is given a high ``--rate`` so the guard rail against runaway clients is not what is
   measured. The projector, which by default runs inside ``serve``, is turned off (``--no-projector``): this
   measures ingest; ``--with-projector`` keeps it on, sharing the server's core.
2. The baseline: ``bench/_baseline_server.py``, an aiohttp app (same aiohttp) whose handler awaits
   ``request.read()`` and answers 200, access log off, in its own process.
3. Both servers are pinned to ``--server-cpu`` (default 0), this process (the load generator) to
   ``--client-cpu`` (default 1). Each run sends distinct, valid ~1 KB events (``merchant.registered`` and
   ``commitment.published`` with a padded free-text field), built and v1-signed just before the run so every
   timestamp is well inside the ±300 s window, over ``--concurrency`` keep-alive connections, closed loop
   (``bench/_loadgen.py``: a selectors loop, pre-encoded requests, minimal response parsing).
4. ``--repeat`` rounds alternate a baseline run and a gateway run (each after its own warm-up) and the report
   shows medians: the machine is shared and noisy. Only 202 counts as accepted by the gateway (200 by the
   baseline); any other status aborts the benchmark loudly.
   ``--reference`` adds a third run to every round: ``bench/_reference_server.py``, an aiohttp handler that
   verifies and validates each event (the SDK's verifier, the gateway's body checks) and stores nothing, the
   issue's context figure. Its ratio to the baseline is what the contract's checks alone leave; the gap between it
   and the gateway is what sealing, the durable commit and the logs cost.
5. The generator's CPU time over wall time and the server's (from ``/proc/<pid>/stat``, all threads) show
   which side was the bottleneck. Finally the inbox row count is compared with the number of 202s.

Figures, not a test: nothing here asserts on time. The target (ratio >= 0.5) is printed next to the result.

**On PostgreSQL** (``--db postgresql://user@host:port/db``) it answers another question: what does a second
gateway process cost per event? It creates a scratch database ``xinyong_bench_<hex>`` on that server (dropped at
the end unless ``--keep``), migrates it and registers the source as above (``XINYONG_MASTER_KEY``: a fresh key),
then for each round and each entry of ``--workers`` (default ``1,2``, run side by side in every round) starts
``xinyong-gateway serve --workers N --no-projector`` on a fresh port, waits until every worker is ready, warms it
up and measures one closed-loop run as above. No baseline and no pinning: the gateway processes, PostgreSQL and
the load generator share the machine's CPUs. Around the measured phase (gateway still connected) it reads
user + system CPU seconds from ``/proc/<pid>/stat`` of the gateway's process tree (supervisor, workers) and of
every process whose ``comm`` is ``postgres``; the report shows CPU-seconds per 1,000 accepted events for each,
and the ratio of N workers to the first entry (target from the issue: 2 workers <= 1.25 x the CPU per event of
1). Other load on the same PostgreSQL server counts in its figure: the report shows how much of it came from
sessions on the scratch database.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from stdnum.cn import uscc as stdnum_uscc

import _postgres
from _loadgen import LoadResult, percentile, run_closed_loop
from xinyong.webhooks import SigningSecret

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BODY_BYTES = 1024
START_TIMEOUT = 30.0

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_PAD_TEXT = "正品保障七天无理由退货假一赔十诚信经营明码标价如实描述按时发货售后无忧"


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# -- command line ----------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of process counts: {text!r} (example: 1,2)") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("process counts must be at least 1 (example: 1,2)")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description=(
            "Accepted events/s and latency of the real gateway (SQLite, full durability, JSON logs on) against "
            "a trivial aiohttp handler, under the same closed-loop load of distinct, pre-signed ~1 KB events."
        ),
        epilog="Figures, not a test. Everything runs on 127.0.0.1 in a scratch folder and stops by itself.",
    )
    parser.add_argument(
        "--events", type=_positive_int, default=15_000, metavar="N", help="events per measured run (default 15000)"
    )
    parser.add_argument(
        "--concurrency",
        "-c",
        type=_positive_int,
        default=64,
        metavar="C",
        help="keep-alive connections, one request in flight each (default 64)",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=20.0,
        metavar="SECONDS",
        help="a measured run stops after N events or this many seconds, whichever comes first (default 20)",
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=2_000,
        metavar="N",
        help="requests sent before each measured run and not measured (default 2000)",
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=3,
        metavar="R",
        help="rounds of (baseline run, gateway run), on PostgreSQL of one run per --workers entry; medians are"
        " reported (default 3)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, metavar="CPU", help="CPU for both servers (default 0)")
    parser.add_argument(
        "--client-cpu", type=int, default=1, metavar="CPU", help="CPU for the load generator (default 1)"
    )
    parser.add_argument(
        "--scratch-dir",
        type=Path,
        metavar="DIR",
        help="where the scratch folder (database, logs) is created (default: the system temp dir; "
        "use a real disk: on tmpfs an fsync costs nothing)",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also run a handler that only verifies and validates each event, storing nothing (the issue's context"
        " figure), on the same core, in every round",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="also run the gateway with /metrics on (`serve --metrics-port`, a second gateway process on the same"
        " database, scraped every 5 s), on the same core, in every round: what measuring costs",
    )
    parser.add_argument(
        "--with-projector",
        action="store_true",
        help="keep the projector running inside the gateway (off by default: this measures ingest)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="a PostgreSQL server (postgresql://user@host:port/db): measure gateway processes side by side on a"
        " scratch database created there and dropped at the end (default: a scratch SQLite file and the baseline)",
    )
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        metavar="N[,N...]",
        help="PostgreSQL only: `serve --workers N` for each N, side by side in every round (default 1,2)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (database and logs; on PostgreSQL the database)"
    )
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    parser.add_argument("--seed", type=int, default=2018, help="seed for the generated merchants (default 2018)")
    return parser


# -- events ----------------------------------------------------------------------------------------------
def _make_uscc(rng: random.Random) -> str:
    """A valid unified social credit code: both check characters computed."""
    region = "3207" + "".join(rng.choice("0123456789") for _ in range(2))
    body = "".join(rng.choice(_USCC_ALPHABET) for _ in range(8))
    org = 11 - sum(_ORG_ALPHABET.index(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    first17 = "91" + region + body + ("X" if org == 10 else "0" if org == 11 else str(org))
    return first17 + str(stdnum_uscc.calc_check_digit(first17))


def _pad(size: int) -> str:
    """Free text of exactly ``size`` UTF-8 bytes (Chinese, 3 bytes a character, then ASCII)."""
    chars, rest = divmod(size, 3)
    repeated = _PAD_TEXT * (chars // len(_PAD_TEXT) + 1)
    return repeated[:chars] + "." * rest


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class EventFactory:
    """Distinct, valid marketplace events of exactly ``BODY_BYTES`` bytes, numbered across the whole run."""

    def __init__(self, seed: int, merchants: int = 256) -> None:
        rng = random.Random(seed)
        self._merchants = [
            {"id_type": "uscc", "id": _make_uscc(rng), "name": f"连云港{n:03d}号电子商务有限公司"}
            for n in range(merchants)
        ]
        self._serial = 0

    def _document(self, n: int, pad: str, sent_at: str, fact_at: str) -> dict[str, Any]:
        merchant = self._merchants[n % len(self._merchants)]
        if n % 2 == 0:
            data: dict[str, Any] = {
                "merchant": merchant,
                "shop_id": f"shop-{n:08d}",
                "shop_name": f"{n:08d}号旗舰店 {pad}",
                "verification": ["business_license", "face_match"],
                "registered_at": fact_at,
            }
            return {"type": "merchant.registered", "timestamp": sent_at, "data": data}
        data = {
            "merchant": merchant,
            "commitment_id": f"cm-{n:08d}",
            "items": ["正品保障", f"承诺{n:08d}: {pad}"],
            "published_at": fact_at,
        }
        return {"type": "commitment.published", "timestamp": sent_at, "data": data}

    def batch(self, count: int) -> list[tuple[str, bytes]]:
        """``count`` new (webhook id, body) pairs, dated now."""
        now = datetime.now(UTC)
        sent_at = (now - timedelta(seconds=5)).isoformat(timespec="seconds")
        fact_at = (now - timedelta(minutes=1)).isoformat(timespec="seconds")
        events = []
        for _ in range(count):
            n = self._serial
            self._serial += 1
            short = len(_encode(self._document(n, "", sent_at, fact_at)))
            body = _encode(self._document(n, _pad(BODY_BYTES - short), sent_at, fact_at))
            if len(body) != BODY_BYTES:
                raise BenchError(f"could not build a {BODY_BYTES}-byte event (got {len(body)} bytes)")
            events.append((f"bench_{n:09d}", body))
        return events


def signed_requests(events: Sequence[tuple[str, bytes]], secret: SigningSecret, port: int, path: str) -> list[bytes]:
    """Complete HTTP/1.1 requests, v1-signed now: the timed phase only writes these bytes."""
    timestamp = int(time.time())
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
    requests = []
    for webhook_id, body in events:
        signature = secret.sign(webhook_id, timestamp, body)
        requests.append(
            (
                f"{head}Content-Length: {len(body)}\r\nwebhook-id: {webhook_id}\r\n"
                f"webhook-timestamp: {timestamp}\r\nwebhook-signature: {signature}\r\n\r\n"
            ).encode()
            + body
        )
    return requests


# -- processes -------------------------------------------------------------------------------------------
def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``xinyong-gateway`` with ``args`` and return its JSON output."""
    done = subprocess.run(
        [str(BIN / "xinyong-gateway"), "--json", *args], capture_output=True, text=True, check=False, env=env
    )
    if done.returncode != 0:
        raise BenchError(f"xinyong-gateway {' '.join(args[:4])} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server subprocess listening on ``HOST:port``, its output going to ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    metrics_port: int | None = None
    """Where its ``/metrics`` listener is (``--metrics``)."""

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (every thread), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(line[:300] for line in self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the {self.name} exited early:\n{self.log_tail()}")
            connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
            try:
                connection.request("GET", path)
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.1)
        raise BenchError(f"the {self.name} was not ready within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str]) -> Server:
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    return Server(name, process, port, log_path)


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Run the body with this process pinned to ``cpu``: processes started inside inherit it."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


# -- one run ---------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    target: str
    round: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float
    """Server CPU time over wall time (1.0 = one core fully busy)."""
    server_core_others: float
    """Share of the server's core used by anything else: other processes, interrupts, the hypervisor (steal)."""
    generator_cpu: float
    accepted: int
    sent: int
    wall_s: float
    statuses: dict[int, int] = field(default_factory=dict)


def measure(
    server: Server, requests: Sequence[bytes], expected: int, concurrency: int, duration: float
) -> tuple[RunResult, LoadResult]:
    """One closed-loop run against ``server``, with its CPU time read before and after."""
    core = next(iter(os.sched_getaffinity(server.process.pid)))
    cpu_before, (busy_before, total_before) = server.cpu_seconds(), core_seconds(core)
    load = run_closed_loop(
        HOST, server.port, requests, concurrency=concurrency, expected_status=expected, time_limit=duration
    )
    server_cpu = server.cpu_seconds() - cpu_before
    busy_after, total_after = core_seconds(core)
    others = max(0.0, busy_after - busy_before - server_cpu) / max(total_after - total_before, 1e-9)
    ordered = sorted(load.latencies_ns)
    result = RunResult(
        target=server.name,
        round=0,
        events_per_s=load.rate,
        p50_ms=percentile(ordered, 0.50) / 1e6,
        p99_ms=percentile(ordered, 0.99) / 1e6,
        server_cpu=server_cpu / load.wall_s if load.wall_s > 0 else 0.0,
        server_core_others=min(others, 1.0),
        generator_cpu=load.cpu_share,
        accepted=load.ok,
        sent=load.sent,
        wall_s=load.wall_s,
        statuses=dict(sorted(load.statuses.items())),
    )
    return result, load


def core_seconds(cpu: int) -> tuple[float, float]:
    """(busy, total) seconds of one CPU since boot, from /proc/stat; busy includes interrupts and steal."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
            tick = os.sysconf("SC_CLK_TCK")
            busy = user + nice + system + irq + softirq + steal
            return busy / tick, (busy + idle + iowait) / tick
    raise BenchError(f"CPU {cpu} is not in /proc/stat.")


def check(server: Server, load: LoadResult, expected: int, what: str) -> None:
    """Abort loudly on any unexpected answer."""
    if not load.errors and load.ok == load.completed == load.sent:
        return
    unexpected = sum(n for status, n in load.statuses.items() if status != expected)
    raise BenchError(
        f"{what}: {unexpected} unexpected answer(s) of {load.completed} (expected only {expected}; statuses "
        f"{load.statuses}).\n  " + "\n  ".join(load.errors) + f"\nlast lines of the {server.name} log:\n"
        f"{server.log_tail()}"
    )


# -- report ----------------------------------------------------------------------------------------------
def _mount_of(path: Path) -> tuple[str, str]:
    """(mount point, filesystem type) holding ``path``, from /proc/mounts."""
    best = ("/", "unknown")
    resolved = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mount, fstype = parts[1], parts[2]
            inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[0]):
                best = (mount, fstype)
    return best


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def summarize(runs: Sequence[RunResult]) -> dict[str, float]:
    return {
        "events_per_s": statistics.median(r.events_per_s for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "server_cpu": statistics.median(r.server_cpu for r in runs),
        "events_per_server_cpu_s": statistics.median(r.events_per_s / max(r.server_cpu, 1e-9) for r in runs),
        "server_core_others": statistics.median(r.server_core_others for r in runs),
        "generator_cpu": statistics.median(r.generator_cpu for r in runs),
        "generator_cpu_max": max(r.generator_cpu for r in runs),
    }


def print_run(result: RunResult, repeat: int) -> None:
    print(
        f"  round {result.round}/{repeat} {result.target:<10} {result.accepted:>7} in {result.wall_s:6.2f} s"
        f"  {result.events_per_s:9,.0f} events/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
        f"  server CPU {result.server_cpu:4.0%} (others {result.server_core_others:3.0%})"
        f"  generator CPU {result.generator_cpu:4.0%}",
        flush=True,
    )


METERED = "gw+metrics"
"""The gateway with ``--metrics-port`` (``--metrics``)."""


@contextlib.contextmanager
def scraping(server: Server, interval: float = 5.0) -> Iterator[None]:
    """While inside, scrape ``server``'s ``/metrics`` every ``interval`` seconds (as Prometheus would; a scrape's cost
    is part of what ``--metrics`` measures), when it has a metrics port."""
    port = server.metrics_port
    if port is None:
        yield
        return
    stop = threading.Event()

    def scrape() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
                answer.read()

    thread = threading.Thread(target=scrape, name="scraper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def print_metrics_cost(summary: dict[str, dict[str, float]], runs: dict[str, list[RunResult]]) -> None:
    """The gateway with metrics on against the gateway without, in the same rounds."""
    if METERED not in summary:
        return
    off, on = summary["gateway"]["events_per_server_cpu_s"], summary[METERED]["events_per_server_cpu_s"]
    per_round = [
        (m.events_per_s / max(m.server_cpu, 1e-9)) / (g.events_per_s / max(g.server_cpu, 1e-9))
        for g, m in zip(runs["gateway"], runs[METERED], strict=True)
    ]
    print(
        f"  metrics on: {on:,.0f} events per server CPU-second against {off:,.0f} off: {on / off:.3f} of the rate"
        f" (cost {1 - on / off:+.1%}; budget 3%); events/s {summary[METERED]['events_per_s']:,.0f} against"
        f" {summary['gateway']['events_per_s']:,.0f}"
    )
    print(f"    per round (on/off per server CPU-second): {', '.join(f'{r:.3f}' for r in per_round)}")
    if "reference" in summary:
        reference = summary["reference"]["events_per_server_cpu_s"]
        print(f"    with metrics on, the gateway does {on / reference:.2f} of the reference's rate")


def print_report(summary: dict[str, dict[str, float]], ratio: float, ratios: list[float]) -> None:
    targets = [name for name in ("baseline", "reference", "gateway", METERED) if name in summary]
    print("\nResults (medians over the rounds)")
    print(
        f"  {'':<10} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'server CPU':>11} {'generator CPU':>14}"
        f" {'others on server CPU':>21}"
    )
    for name in targets:
        s = summary[name]
        print(
            f"  {name:<10} {s['events_per_s']:>10,.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
            f" {s['server_cpu']:>11.0%} {s['generator_cpu']:>14.0%} {s['server_core_others']:>21.0%}"
        )
    print(f"\nratio (gateway/baseline events/s) = {ratio:.2f} (target >= 0.5)")
    print(f"  per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    per_cpu = {name: summary[name]["events_per_server_cpu_s"] for name in ("baseline", "gateway")}
    print(
        f"  events per server CPU-second: baseline {per_cpu['baseline']:,.0f}, gateway {per_cpu['gateway']:,.0f},"
        f" ratio {per_cpu['gateway'] / per_cpu['baseline']:.2f} (less sensitive to other load on the server core)"
    )
    if "reference" in summary:
        reference = summary["reference"]["events_per_server_cpu_s"]
        print(
            f"  reference (verify and validate, store nothing): {reference:,.0f} events per server CPU-second,"
            f" ratio to the baseline {reference / per_cpu['baseline']:.2f}; the gateway does"
            f" {per_cpu['gateway'] / reference:.2f} of its rate"
        )
        cost = {name: 1e6 / summary[name]["events_per_server_cpu_s"] for name in targets}
        print(
            f"  CPU per event: baseline {cost['baseline']:.0f} µs, reference {cost['reference']:.0f} µs"
            f" ({cost['reference'] - cost['baseline']:+.0f} for the checks), gateway {cost['gateway']:.0f} µs"
            f" ({cost['gateway'] - cost['reference']:+.0f} for storing, sealing and logging)"
        )
    worst_generator = max(summary[n]["generator_cpu_max"] for n in summary)
    if worst_generator < 0.8:
        print(
            f"  load generator: at most {worst_generator:.0%} of its core in any run: it had headroom, so it was"
            " not the bottleneck."
        )
    else:
        print(
            f"  WARNING: the load generator reached {worst_generator:.0%} of its core; it may have limited the"
            " rates (try fewer connections or a quieter machine)."
        )
    for name in targets:
        cpu, others = summary[name]["server_cpu"], summary[name]["server_core_others"]
        if cpu >= 0.9:
            print(f"  {name}: the server used {cpu:.0%} of its core: CPU-bound on the server side.")
        elif cpu + others >= 0.9:
            print(
                f"  {name}: the server got {cpu:.0%} of its core; other load took {others:.0%} of it (a shared,"
                " noisy machine: compare the rounds, or run with more --repeat on a quieter one)."
            )
        else:
            print(
                f"  {name}: the server used only {cpu:.0%} of its core: it waited (fsync, or too few requests in"
                " flight: try a higher --concurrency)."
            )


# -- main ------------------------------------------------------------------------------------------------
def print_header(args: argparse.Namespace, scratch: Path) -> None:
    mount, fstype = _mount_of(scratch)
    print("xinyong ingest benchmark")
    print(
        f"  machine: {_cpu_model()}, nproc {os.cpu_count()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, SQLite {sqlite3.sqlite_version}"
    )
    print(
        f"  settings: {args.events} events per run (at most {args.duration:g} s), {args.warmup} warm-up"
        f" requests per run, {args.concurrency} connections, {args.repeat} round(s);"
        f" servers on CPU {args.server_cpu}, generator on CPU {args.client_cpu}"
    )
    print(
        f"  events: distinct, valid, {BODY_BYTES} bytes each (merchant.registered / commitment.published),"
        " v1 HMAC-signed just before each run"
    )
    print(f"  scratch: {scratch} ({fstype} on {mount})")
    if fstype in {"tmpfs", "ramfs"}:
        print("  WARNING: the database is on a RAM filesystem, where fsync costs nothing; use --scratch-dir.")
    print(
        "  gateway: `xinyong-gateway serve` as shipped: SQLite WAL, synchronous=FULL (202 after the commit is on"
        " disk), production JSON logs ON (one line per request, to a file); the source's rate limit is set high;"
        + (" the projector runs inside it" if args.with_projector else " projector off (--no-projector)")
    )
    print("  baseline: aiohttp handler that awaits request.read() and returns 200, access log off")
    if args.reference:
        print(
            "  reference: aiohttp handler that verifies (SDK verifier) and validates (the gateway's body checks) each"
            " event, stores nothing and returns 202, access log off"
        )
    print()


def register_source(url: str, seed: int, env: dict[str, str] | None = None) -> tuple[SigningSecret, str]:
    """Migrate the scratch database and register a marketplace; (its secret, its webhook path)."""
    run_cli("--db", url, "migrate", env=env)
    source = run_cli(
        "--db",
        url,
        "sources",
        "add",
        "--kind",
        "marketplace",
        "--name",
        "基准测试商城",
        "--uscc",
        _make_uscc(random.Random(seed + 1)),
        "--rate",
        "1000000",
        env=env,
    )
    return SigningSecret.parse(source["secret"]), f"/v1/webhooks/{source['source_id']}"


def start_servers(
    args: argparse.Namespace, url: str, secret: SigningSecret, scratch: Path, servers: list[Server]
) -> dict[str, Server]:
    """Start the baseline, the reference (with ``--reference``) and the gateway pinned to the server CPU (appended to
    ``servers`` at once); by name, in the order each round runs them."""
    env = {**os.environ, "XINYONG_DATABASE_URL": url, "XINYONG_LOG_LEVEL": "info", "XINYONG_LOG_FORMAT": "json"}
    gateway_port, baseline_port = free_port(), free_port()
    gateway_argv = [str(BIN / "xinyong-gateway"), "--db", url, "serve", "--port", str(gateway_port)]
    if not args.with_projector:
        gateway_argv.append("--no-projector")
    baseline_argv = [sys.executable, str(HERE / "_baseline_server.py"), "--port", str(baseline_port)]
    with pinned(args.server_cpu):
        gateway = start_server(
            "gateway", [*gateway_argv, "--log-format", "json"], gateway_port, scratch / "gateway.log", env
        )
        servers.append(gateway)
        baseline = start_server("baseline", baseline_argv, baseline_port, scratch / "baseline.log", env)
        servers.append(baseline)
        targets = {"baseline": baseline}
        if args.reference:
            reference_port = free_port()
            reference = start_server(
                "reference",
                [sys.executable, str(HERE / "_reference_server.py"), "--port", str(reference_port)],
                reference_port,
                scratch / "reference.log",
                {**env, "XINYONG_BENCH_SECRET": str(secret)},
            )
            servers.append(reference)
            targets["reference"] = reference
        targets["gateway"] = gateway
        if args.metrics:
            metered_port, metrics_port = free_port(), free_port()
            metered_argv = [*gateway_argv, "--metrics-port", str(metrics_port), "--log-format", "json"]
            metered_argv[metered_argv.index(str(gateway_port))] = str(metered_port)
            metered = start_server(METERED, metered_argv, metered_port, scratch / "gateway-metrics.log", env)
            metered.metrics_port = metrics_port
            servers.append(metered)
            targets[METERED] = metered
    for name, server in targets.items():
        server.wait_ready("/readyz" if name in ("gateway", METERED) else "/healthz")
    for server in servers:
        cpus = sorted(os.sched_getaffinity(server.process.pid))
        print(f"  {server.name} pid {server.process.pid} on CPU {cpus}, port {server.port}")
    return targets


def run_rounds(
    args: argparse.Namespace, secret: SigningSecret, path: str, targets: dict[str, Server]
) -> tuple[dict[str, list[RunResult]], int]:
    """Run each target in turn, every round; (results by target, number of the gateway's 202 answers including
    warm-ups)."""
    factory = EventFactory(args.seed)
    runs: dict[str, list[RunResult]] = {name: [] for name in targets}
    acknowledged = 0
    for round_no in range(1, args.repeat + 1):
        for name, server in targets.items():
            expected = 200 if name == "baseline" else 202
            stores = name in ("gateway", METERED)
            if args.warmup:
                warm = signed_requests(factory.batch(args.warmup), secret, server.port, path)
                _, load = measure(server, warm, expected, args.concurrency, args.duration)
                check(server, load, expected, f"{server.name} warm-up")
                acknowledged += load.ok if stores else 0
            requests = signed_requests(factory.batch(args.events), secret, server.port, path)
            with scraping(server):
                result, load = measure(server, requests, expected, args.concurrency, args.duration)
            check(server, load, expected, f"{server.name} round {round_no}")
            acknowledged += load.ok if stores else 0
            result.round = round_no
            runs[server.name].append(result)
            print_run(result, args.repeat)
    return runs, acknowledged


def run(args: argparse.Namespace) -> int:
    if args.db is not None:
        if not _postgres.is_postgres(args.db):
            raise BenchError("--db takes a postgresql:// URL (the SQLite benchmark makes its own scratch file).")
        if args.reference:
            raise BenchError("--reference belongs to the SQLite benchmark (against the baseline); drop it with --db.")
        return run_postgres(args)
    if args.workers not in (None, [1]):
        raise BenchError("--workers needs --db postgresql://…: SQLite serves one process.")
    allowed = os.sched_getaffinity(0)
    for option, cpu in (("--server-cpu", args.server_cpu), ("--client-cpu", args.client_cpu)):
        if cpu not in allowed:
            raise BenchError(f"{option} {cpu} is not one of this process's CPUs {sorted(allowed)}.")
    if args.server_cpu == args.client_cpu:
        print("WARNING: server and generator share one CPU; the figures measure both together.")

    scratch_parent = args.scratch_dir or Path(tempfile.gettempdir())
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="xinyong-bench-", dir=scratch_parent))
    db_path = scratch / "xinyong.db"
    url = f"sqlite:///{db_path}"
    servers: list[Server] = []
    try:
        print_header(args, scratch)
        secret, path = register_source(url, args.seed)
        targets = start_servers(args, url, secret, scratch, servers)
        gateway = targets["gateway"]
        os.sched_setaffinity(0, {args.client_cpu})
        print(f"  generator pid {os.getpid()} on CPU {sorted(os.sched_getaffinity(0))}\n")

        runs, acknowledged = run_rounds(args, secret, path, targets)

        for server in servers:
            server.stop()
        with gateway.log_path.open("rb") as log:
            log_lines = sum(1 for _ in log)
        with contextlib.closing(sqlite3.connect(db_path)) as conn:
            stored = int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])

        summary = {name: summarize(results) for name, results in runs.items()}
        ratio = summary["gateway"]["events_per_s"] / summary["baseline"]["events_per_s"]
        ratios = [g.events_per_s / b.events_per_s for b, g in zip(runs["baseline"], runs["gateway"], strict=True)]
        print_report(summary, ratio, ratios)
        print_metrics_cost(summary, runs)
        same = stored == acknowledged
        print(
            f"\nstored = acknowledged: {'yes' if same else 'NO'} ({stored} inbox rows, {acknowledged} answers 202,"
            " warm-ups included)"
        )
        print(f"gateway log: {log_lines} JSON lines in {gateway.log_path.name} (logging was on throughout)")
        if args.json:
            document = {
                "machine": {
                    "cpu": _cpu_model(),
                    "nproc": os.cpu_count(),
                    "python": platform.python_version(),
                    "aiohttp": aiohttp.__version__,
                    "sqlite": sqlite3.sqlite_version,
                    "scratch_fs": _mount_of(scratch)[1],
                },
                "settings": {
                    "events": args.events,
                    "warmup": args.warmup,
                    "concurrency": args.concurrency,
                    "duration_s": args.duration,
                    "repeat": args.repeat,
                    "server_cpu": args.server_cpu,
                    "client_cpu": args.client_cpu,
                    "body_bytes": BODY_BYTES,
                    "reference": args.reference,
                },
                "summary": summary,
                "ratio": ratio,
                "ratios": ratios,
                "runs": [asdict(r) for results in runs.values() for r in results],
                "stored": stored,
                "acknowledged": acknowledged,
                "stored_equals_acknowledged": same,
            }
            print(json.dumps(document, indent=2))
        return 0 if same else 1
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


# -- PostgreSQL: gateway processes side by side ----------------------------------------------------------------
@dataclass
class ScaleRun:
    """One measured run of ``serve --workers N`` on PostgreSQL."""

    workers: int
    round: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    accepted: int
    wall_s: float
    gateway_cpu_s: float
    """User + system CPU of the gateway's process tree (supervisor and workers) during the run."""
    postgres_cpu_s: float
    """User + system CPU of every ``postgres`` process on this machine during the run."""
    postgres_scratch_cpu_s: float
    """The part of ``postgres_cpu_s`` used by sessions on the scratch database (the gateway's connections)."""
    generator_cpu: float
    machine_busy: float
    """Share of all CPUs busy during the run (anything: gateway, PostgreSQL, generator, others)."""
    others_cores: float
    """CPU used by anything but the gateway, PostgreSQL and the generator, in cores (other load: the noise)."""
    gateway_pids: list[int] = field(default_factory=list)

    def per_1k(self, cpu_seconds: float) -> float:
        return cpu_seconds / self.accepted * 1000 if self.accepted else 0.0


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = values
    busy = user + nice + system + irq + softirq + steal
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, (busy + idle + iowait) / tick


def start_gateway_processes(
    workers: int, url: str, log_path: Path, env: dict[str, str], with_projector: bool
) -> tuple[Server, set[int]]:
    """``serve --workers N`` on a fresh port, waited for until every worker is ready; (server, its pids)."""
    port = free_port()
    argv = [str(BIN / "xinyong-gateway"), "--db", url, "serve", "--port", str(port), "--log-format", "json"]
    argv += ["--workers", str(workers)]
    if not with_projector:
        argv.append("--no-projector")
    server = start_server(f"gateway ({workers} worker{'s' if workers > 1 else ''})", argv, port, log_path, env)
    try:
        server.wait_ready("/readyz")  # one worker is up ...
        deadline = time.monotonic() + START_TIMEOUT
        while b'"event":"serving"' not in log_path.read_bytes():  # ... and the supervisor says all of them are
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the {server.name} did not get every worker ready:\n{server.log_tail()}")
            time.sleep(0.05)
        pids = _postgres.process_tree(server.process.pid)
        expected = 1 if workers == 1 else workers + 2  # workers, the supervisor and multiprocessing's tracker
        if len(pids) != expected:
            raise BenchError(f"the {server.name} runs {len(pids)} processes, not {expected}:\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise
    return server, pids


def measure_processes(
    server: Server,
    pids: set[int],
    requests: Sequence[bytes],
    args: argparse.Namespace,
    scratch_name: str,
    scratch_url: str,
) -> tuple[ScaleRun, LoadResult]:
    """One closed-loop run, with the CPU of the gateway's processes and of PostgreSQL read before and after."""
    gateway_before = _postgres.CpuSnapshot.of(pids)
    postgres_before = _postgres.CpuSnapshot.of(_postgres.postgres_pids())
    busy_before, total_before = machine_seconds()
    load = run_closed_loop(
        HOST, server.port, requests, concurrency=args.concurrency, expected_status=202, time_limit=args.duration
    )
    busy_after, total_after = machine_seconds()
    gateway_after = _postgres.CpuSnapshot.of(pids)
    postgres_after = _postgres.CpuSnapshot.of(_postgres.postgres_pids())  # the gateway is still connected
    if set(gateway_after.seconds) != pids or _postgres.process_tree(server.process.pid) != pids:
        raise BenchError(f"a process of the {server.name} ended or was replaced during the run:\n{server.log_tail()}")
    scratch_sessions = _postgres.database_sessions(scratch_url, scratch_name)
    postgres_scratch = _postgres.CpuSnapshot(
        {pid: s for pid, s in postgres_after.seconds.items() if pid in scratch_sessions}
    ).used_since(postgres_before)
    ordered = sorted(load.latencies_ns)
    gateway_cpu = gateway_after.used_since(gateway_before)
    postgres_cpu = postgres_after.used_since(postgres_before)
    others = (busy_after - busy_before) - gateway_cpu - postgres_cpu - load.cpu_s
    result = ScaleRun(
        workers=0,
        round=0,
        events_per_s=load.rate,
        p50_ms=percentile(ordered, 0.50) / 1e6,
        p99_ms=percentile(ordered, 0.99) / 1e6,
        accepted=load.ok,
        wall_s=load.wall_s,
        gateway_cpu_s=gateway_cpu,
        postgres_cpu_s=postgres_cpu,
        postgres_scratch_cpu_s=postgres_scratch,
        generator_cpu=load.cpu_share,
        machine_busy=(busy_after - busy_before) / max(total_after - total_before, 1e-9),
        others_cores=max(0.0, others) / load.wall_s if load.wall_s > 0 else 0.0,
        gateway_pids=sorted(pids),
    )
    return result, load


def summarize_scale(runs: Sequence[ScaleRun]) -> dict[str, float]:
    return {
        "events_per_s": statistics.median(r.events_per_s for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "gateway_cpu_per_1k": statistics.median(r.per_1k(r.gateway_cpu_s) for r in runs),
        "postgres_cpu_per_1k": statistics.median(r.per_1k(r.postgres_cpu_s) for r in runs),
        "total_cpu_per_1k": statistics.median(r.per_1k(r.gateway_cpu_s + r.postgres_cpu_s) for r in runs),
        "scratch_total_cpu_per_1k": statistics.median(
            r.per_1k(r.gateway_cpu_s + r.postgres_scratch_cpu_s) for r in runs
        ),
        "postgres_scratch_share": statistics.median(
            r.postgres_scratch_cpu_s / r.postgres_cpu_s if r.postgres_cpu_s else 0.0 for r in runs
        ),
        "machine_busy": statistics.median(r.machine_busy for r in runs),
        "others_cores": statistics.median(r.others_cores for r in runs),
        "generator_cpu": statistics.median(r.generator_cpu for r in runs),
    }


def print_scale_run(result: ScaleRun, repeat: int) -> None:
    print(
        f"  round {result.round}/{repeat} workers {result.workers}  {result.accepted:>7} in {result.wall_s:6.2f} s"
        f"  {result.events_per_s:7,.0f} events/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
        f"  CPU s/1k: gateway {result.per_1k(result.gateway_cpu_s):.3f}"
        f" postgres {result.per_1k(result.postgres_cpu_s):.3f}  machine busy {result.machine_busy:4.0%}"
        f"  generator {result.generator_cpu:4.0%}  others {result.others_cores:.2f} cores",
        flush=True,
    )


def scale_ratios(summary: dict[int, dict[str, float]]) -> dict[int, dict[str, float]]:
    """CPU per event of each process count over that of the first one."""
    first = summary[next(iter(summary))]
    return {
        workers: {
            "gateway": s["gateway_cpu_per_1k"] / first["gateway_cpu_per_1k"],
            "gateway_and_postgres": s["total_cpu_per_1k"] / first["total_cpu_per_1k"],
            "gateway_and_scratch_sessions": s["scratch_total_cpu_per_1k"] / first["scratch_total_cpu_per_1k"],
            "events_per_s": s["events_per_s"] / first["events_per_s"],
        }
        for workers, s in summary.items()
    }


def print_scale_report(
    runs: dict[int, list[ScaleRun]], summary: dict[int, dict[str, float]], ratios: dict[int, dict[str, float]]
) -> None:
    print("\nResults (medians over the rounds; CPU in CPU-seconds per 1,000 accepted events)")
    print(
        f"  {'workers':>7} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'gateway CPU':>12} {'postgres CPU':>13}"
        f" {'total CPU':>10} {'machine busy':>13} {'generator':>10} {'others':>7}"
    )
    for workers, s in summary.items():
        print(
            f"  {workers:>7} {s['events_per_s']:>9,.0f} {s['p50_ms']:>7.2f} {s['p99_ms']:>7.2f}"
            f" {s['gateway_cpu_per_1k']:>12.3f} {s['postgres_cpu_per_1k']:>13.3f} {s['total_cpu_per_1k']:>10.3f}"
            f" {s['machine_busy']:>13.0%} {s['generator_cpu']:>10.0%} {s['others_cores']:>7.2f}"
        )
    first = next(iter(summary))
    for workers, ratio in ratios.items():
        if workers == first:
            continue
        verdict = ""
        if (first, workers) == (1, 2):
            met = ratio["gateway"] <= 1.25 and ratio["gateway_and_postgres"] <= 1.25
            verdict = f" (target <= 1.25: {'met' if met else 'NOT met'})"
        print(
            f"\nCPU per event, {workers} workers / {first}: gateway {ratio['gateway']:.2f}, gateway + PostgreSQL"
            f" {ratio['gateway_and_postgres']:.2f}{verdict}; events/s {ratio['events_per_s']:.2f}x"
        )
        print(
            f"  counting only PostgreSQL's sessions on the scratch database: gateway + PostgreSQL"
            f" {ratio['gateway_and_scratch_sessions']:.2f}"
        )
    shares = ", ".join(f"{w}: {s['postgres_scratch_share']:.0%}" for w, s in summary.items())
    print(
        f"  PostgreSQL CPU from sessions on the scratch database (the rest: WAL writer, checkpointer, other"
        f" databases' sessions): {shares}"
    )
    disturbed = [r for results in runs.values() for r in results if r.others_cores >= 0.1]
    if disturbed:
        listed = ", ".join(f"round {r.round} workers {r.workers} ({r.others_cores:.2f})" for r in disturbed)
        print(
            f"  WARNING: other load took at least 0.1 cores in {len(disturbed)} of {sum(map(len, runs.values()))}"
            f" runs: {listed}. Medians resist a minority of such runs; if it is more, run again on a quieter machine."
        )
    busiest = max(s["machine_busy"] for s in summary.values())
    if busiest >= 0.9:
        print(
            f"  the machine was {busiest:.0%} busy: gateway processes, PostgreSQL and the generator competed for"
            " its CPUs, so events/s shows what this machine can do, not what another worker adds on a bigger one."
        )


def print_postgres_header(args: argparse.Namespace, facts: dict[str, str], database: str, scratch: Path) -> None:
    print("xinyong ingest benchmark on PostgreSQL: gateway processes side by side")
    print(
        f"  machine: {_cpu_model()}, nproc {os.cpu_count()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
    )
    print(
        f"  PostgreSQL {facts['version']}: synchronous_commit={facts['synchronous_commit']} fsync={facts['fsync']}"
        f" wal_sync_method={facts['wal_sync_method']} commit_delay={facts['commit_delay']}"
        f" shared_buffers={facts['shared_buffers']}; data directory {facts['data_directory']}"
        + (f" ({_mount_of(Path(facts['data_directory']))[1]})" if facts["data_directory"].startswith("/") else "")
    )
    print(f"  scratch database: {database} (dropped at the end{' unless --keep' if not args.keep else ': kept'})")
    print(
        f"  settings: workers {','.join(map(str, args.workers))} side by side in each of {args.repeat} round(s);"
        f" {args.events} events per run (at most {args.duration:g} s), {args.warmup} warm-up requests, "
        f"{args.concurrency} connections, closed loop; no CPU pinning"
    )
    print(
        f"  gateway: `serve --workers N{'' if args.with_projector else ' --no-projector'}`, production JSON logs ON"
        f" (to files in {scratch}); a fresh start for every run\n"
    )


def run_postgres(args: argparse.Namespace) -> int:
    from xinyong_gateway.crypto import MasterKey

    args.workers = args.workers or [1, 2]
    if len(set(args.workers)) != len(args.workers):
        raise BenchError("--workers lists a process count twice.")
    scratch_parent = args.scratch_dir or Path(tempfile.gettempdir())
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="xinyong-bench-", dir=scratch_parent))
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")},
        "XINYONG_MASTER_KEY": MasterKey.generate_text(),
        "XINYONG_LOG_LEVEL": "info",
        "XINYONG_LOG_FORMAT": "json",
    }
    try:
        with _postgres.scratch_database(args.db, keep=args.keep) as (url, name):
            print_postgres_header(args, _postgres.server_facts(url), name, scratch)
            secret, path = register_source(url, args.seed, env)
            factory = EventFactory(args.seed)
            runs: dict[int, list[ScaleRun]] = {workers: [] for workers in args.workers}
            acknowledged = 0
            for round_no in range(1, args.repeat + 1):
                for workers in args.workers:
                    log_path = scratch / f"gateway-w{workers}-r{round_no}.log"
                    server, pids = start_gateway_processes(workers, url, log_path, env, args.with_projector)
                    try:
                        if args.warmup:
                            warm = signed_requests(factory.batch(args.warmup), secret, server.port, path)
                            load = run_closed_loop(
                                HOST,
                                server.port,
                                warm,
                                concurrency=args.concurrency,
                                expected_status=202,
                                time_limit=args.duration,
                            )
                            check(server, load, 202, f"{server.name} warm-up")
                            acknowledged += load.ok
                        requests = signed_requests(factory.batch(args.events), secret, server.port, path)
                        result, load = measure_processes(server, pids, requests, args, name, url)
                        check(server, load, 202, f"{server.name} round {round_no}")
                        acknowledged += load.ok
                    finally:
                        server.stop()
                    result.workers, result.round = workers, round_no
                    runs[workers].append(result)
                    print_scale_run(result, args.repeat)
            stored = _postgres.inbox_rows(url)
        summary = {workers: summarize_scale(results) for workers, results in runs.items()}
        ratios = scale_ratios(summary)
        print_scale_report(runs, summary, ratios)
        same = stored == acknowledged
        print(
            f"\nstored = acknowledged: {'yes' if same else 'NO'} ({stored} inbox rows, {acknowledged} answers 202,"
            " warm-ups included)"
        )
        if args.json:
            document = {
                "backend": "postgresql",
                "postgres": _postgres.server_facts(args.db),
                "settings": {
                    "workers": args.workers,
                    "events": args.events,
                    "warmup": args.warmup,
                    "concurrency": args.concurrency,
                    "duration_s": args.duration,
                    "repeat": args.repeat,
                    "body_bytes": BODY_BYTES,
                    "with_projector": args.with_projector,
                },
                "summary": {str(workers): s for workers, s in summary.items()},
                "ratios_to_first": {str(workers): r for workers, r in ratios.items()},
                "runs": [asdict(r) for results in runs.values() for r in results],
                "stored": stored,
                "acknowledged": acknowledged,
                "stored_equals_acknowledged": same,
            }
            print(json.dumps(document, indent=2))
        return 0 if same else 1
    finally:
        if args.keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def bench_main(
    name: str,
    parser: argparse.ArgumentParser,
    run_bench: Callable[[argparse.Namespace], object],
    argv: Sequence[str] | None,
) -> int:
    """A load bench's ``main``: parse, say when the server and the load generator must share one CPU, run; 1 on a
    ``BenchError`` (named), 130 on Ctrl-C."""
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs: the server and the load generator share one", file=sys.stderr)
    try:
        run_bench(args)
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nbench/ingest.py: ABORTED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
