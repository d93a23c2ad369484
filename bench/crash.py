"""Crash without loss: SIGKILL the gateway and the projector at random moments under load, then prove that every
acknowledged event is stored exactly once and that the credit files equal a clean replay of the log.

    .venv/bin/python bench/crash.py                                        # SQLite, in a scratch folder
    .venv/bin/python bench/crash.py --db postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/crash.py --events 20000 --kills 10 --json

What it does, all on 127.0.0.1 (about 20 s with the defaults):

1. A fresh database: a SQLite file in a scratch folder, or with ``--db postgresql://…`` a scratch database created on
   that server and dropped at the end (``--in-place`` uses the database or schema the URL names, as it is: the test
   suite's way). ``migrate``; three sources (a marketplace and a regulator with ``whsec_`` secrets, a courier with an
   Ed25519 key); ``--events`` distinct, valid events of a city's mix (deliveries, empty parcels, review manipulation,
   complaints, listing violations, penalties) about a few hundred merchants and a few couriers, dated over the past
   month, so that the projector moves subjects between lists.
2. The sender: ``--concurrency`` workers post every event, signed afresh at each attempt with the same
   ``webhook-id``, as a sender does: a connection error, a timeout or a 5xx is "not acknowledged" and retried after a
   short back-off; a 2xx is the acknowledgement. Any other answer aborts the run.
3. The kills, at random moments while the sender works (each when a random number of events has been acknowledged,
   plus up to 50 ms): first ``--kills`` SIGKILLs of ``xinyong-gateway serve`` with its projector inside, each
   followed by a restart; then, from the middle of the run, ``serve --no-projector`` and a separate ``xinyong-gateway
   project``, and ``--kills`` SIGKILLs of the projector, each followed by a restart.
4. Once every event is acknowledged: the projector catches up; every acknowledged event is sent again and must
   answer 200 ``duplicate``; then, from the database: rows per (source, webhook-id) (lost: acknowledged but not
   stored; duplicated: stored more than once), every stored body equal to the one sent, and the credit files and
   their archives equal to a clean replay of the stored log (``credit.engine.project``) under the same policy.

Printed: events sent, attempts and how many had no answer, acknowledged (and how many of those were first answered
"duplicate": a kill came after the commit and before the answer), stored, **lost (must be 0)**, **duplicated (must
be 0)**, the kills and the time from a kill to serving again, and the replay verdict. Exit status 0 when nothing was
lost, duplicated, altered or projected wrongly; 1 otherwise; 2 when the run could not be carried out.

A SIGKILL tests a process crash: the operating system keeps what was written. It does not test a power loss, where
what was not flushed to the disk is gone; SECURITY.md says what protects against that and how it was checked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

import _postgres
from ingest import BIN, HOST, BenchError, _make_uscc, free_port, run_cli
from xinyong.webhooks import SigningKey, SigningSecret, signature_headers
from xinyong_gateway.credit.engine import project
from xinyong_gateway.credit.inbox import read_logged
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import Store, StoredEvent, open_store

START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
CATCH_UP_TIMEOUT = 120.0


# -- command line -------------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/crash.py",
        description=(
            "SIGKILL the gateway and the projector at random moments while signed events are sent, restart them, and"
            " check that every acknowledged event is stored exactly once and that the credit files equal a clean"
            " replay of the log."
        ),
        epilog="Figures and a verdict, not a timing. Everything runs on 127.0.0.1 and stops by itself.",
    )
    parser.add_argument("--events", type=_positive_int, default=6000, metavar="N", help="events to send (default 6000)")
    parser.add_argument(
        "--kills",
        type=_positive_int,
        default=6,
        metavar="K",
        help="SIGKILLs of the gateway, and of the projector (default 6 each)",
    )
    parser.add_argument(
        "--concurrency", "-c", type=_positive_int, default=16, metavar="C", help="requests in flight (default 16)"
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="a PostgreSQL server (postgresql://user@host:port/db): run on a scratch database created there and"
        " dropped at the end (default: a scratch SQLite file)",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="use the database --db names as it is (an empty SQLite file path or PostgreSQL schema): for tests",
    )
    parser.add_argument("--scratch-dir", type=Path, metavar="DIR", help="where the scratch folder is created")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (and a scratch database)")
    parser.add_argument("--seed", type=int, default=2018, help="seed for the events and the kill moments")
    parser.add_argument("--acks", type=Path, metavar="FILE", help="write every acknowledged event here (JSON lines)")
    parser.add_argument(
        "--fsync-check",
        action="store_true",
        help="SQLite: also run the gateway under strace and check that every 202 follows an fdatasync of the"
        " write-ahead log made after its request arrived; PostgreSQL: print the server's durability settings",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS", help="give up after this long (default 600)"
    )
    return parser


# -- the events ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    webhook_id: str
    body: bytes


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def plan_events(count: int, rng: random.Random) -> list[Planned]:
    """``count`` distinct, valid events (about 2 merchants in 3 reported more than once), dated over the past month."""
    merchants = [
        {"id_type": "uscc", "id": _make_uscc(rng), "name": f"连云港{n:04d}号网店"} for n in range(max(20, count // 12))
    ]
    couriers = [{"id_type": "uscc", "id": _make_uscc(rng), "name": f"快递{n}"} for n in range(4)]
    now = datetime.now(UTC)
    sent_at = _stamp(now - timedelta(seconds=5))
    planned = []
    for n in range(count):
        at = _stamp(now - timedelta(seconds=rng.randrange(60, 30 * 86400)))
        merchant = rng.choice(merchants)
        roll = rng.random()
        if roll < 0.55:
            status = rng.choices(["delivered", "empty_parcel", "lost", "damaged"], weights=[80, 12, 5, 3])[0]
            kind, event_type = "courier", "delivery.recorded"
            data: dict[str, Any] = {
                "waybill_no": f"YT{n:012d}",
                "courier": rng.choice(couriers),
                "merchant": merchant,
                "status": status,
                "occurred_at": at,
            }
        elif roll < 0.70:
            kind, event_type = "marketplace", "review.manipulation_detected"
            data = {
                "case_id": f"rm-{n}",
                "merchant": merchant,
                "kind": rng.choice(["fake_order", "malicious_review", "fake_traffic"]),
                "order_count": rng.randrange(0, 300),
                "confirmed": rng.random() < 0.8,
                "detected_at": at,
            }
        elif roll < 0.82:
            kind, event_type = "marketplace", "complaint.filed"
            data = {
                "complaint_id": f"cp-{n}",
                "merchant": merchant,
                "category": rng.choice(["counterfeit", "quality", "delivery", "service_default"]),
                "channel": rng.choice(["platform", "12315"]),
                "filed_at": at,
            }
        elif roll < 0.92:
            kind, event_type = "marketplace", "listing.violation"
            data = {
                "case_id": f"lv-{n}",
                "merchant": merchant,
                "listing_id": f"item-{n}",
                "kind": rng.choice(["counterfeit", "false_advertising", "price_fraud"]),
                "confirmed": rng.random() < 0.7,
                "found_at": at,
            }
        else:
            kind, event_type = "regulator", "penalty.imposed"
            data = {
                "decision_no": f"连市监罚〔2026〕{n}号",
                "subject": merchant,
                "authority": "连云港市市场监督管理局",
                "severity": rng.choice(["minor", "general", "serious"]),
                "violation": "虚假宣传",
                "decided_at": at,
            }
        document = {"type": event_type, "timestamp": sent_at, "data": data}
        body = json.dumps(document, ensure_ascii=False).encode()
        planned.append(Planned(kind, f"crash-{n:07d}", body))
    return planned


# -- the processes --------------------------------------------------------------------------------------------------
def _spawn(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


@dataclass
class Fleet:
    """The gateway (``serve``) and, in the second half, a separate projector (``project``), restarted after kills."""

    folder: Path
    env: dict[str, str]
    port: int
    serve: subprocess.Popen[bytes] | None = None
    projector: subprocess.Popen[bytes] | None = None
    projector_inside: bool = True
    kills: Counter[str] = field(default_factory=Counter)
    restart_s: list[float] = field(default_factory=list)
    """From a kill of the gateway to its serving again."""

    def _spawn(self, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
        return _spawn([str(BIN / "xinyong-gateway"), *argv], self.folder / f"{role}.log", self.env)

    def _log_tail(self, role: str) -> str:
        try:
            lines = (self.folder / f"{role}.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(line[:300] for line in lines[-8:])

    async def start_serve(self, session: aiohttp.ClientSession) -> None:
        argv = ["serve", "--port", str(self.port), "--log-format", "json"]
        if not self.projector_inside:
            argv.append("--no-projector")
        self.serve = self._spawn("serve", argv)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.serve.poll() is not None:
                raise BenchError(f"the gateway exited early:\n{self._log_tail('serve')}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(
                    f"http://{HOST}:{self.port}/readyz", timeout=aiohttp.ClientTimeout(total=2)
                ) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.02)
        raise BenchError(f"the gateway was not ready within {START_TIMEOUT:.0f} s:\n{self._log_tail('serve')}")

    def start_projector(self) -> None:
        self.projector = self._spawn("project", ["project"])

    @staticmethod
    def _kill(process: subprocess.Popen[bytes] | None) -> None:
        if process is None or process.poll() is not None:
            raise BenchError("a process to be killed is not running (see its log in the scratch folder)")
        process.send_signal(signal.SIGKILL)
        process.wait()

    async def kill_gateway(self, session: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        self._kill(self.serve)
        self.kills["gateway"] += 1
        await self.start_serve(session)
        self.restart_s.append(time.monotonic() - started)

    def kill_projector(self) -> None:
        self._kill(self.projector)
        self.kills["projector"] += 1
        self.start_projector()

    async def separate_the_projector(self, session: aiohttp.ClientSession) -> None:
        """From here on: ``serve --no-projector`` and a ``project`` process (the gateway stopped gracefully)."""
        self.stop("serve")
        self.projector_inside = False
        await self.start_serve(session)
        self.start_projector()

    def stop(self, role: str) -> None:
        process = self.serve if role == "serve" else self.projector
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        self.stop("project")
        self.stop("serve")


# -- sending --------------------------------------------------------------------------------------------------------
@dataclass
class Sending:
    sent: int = 0
    attempts: int = 0
    unanswered: int = 0
    """Attempts that got no answer: connection refused or reset, timeout (the gateway was being killed)."""
    answered_5xx: int = 0
    accepted: int = 0
    duplicate: int = 0
    """Events whose acknowledgement was a 200 duplicate: an earlier attempt was committed, its answer lost."""
    acks: dict[str, str] = field(default_factory=dict)
    """webhook id → the acknowledging answer (accepted | duplicate)."""


async def post_until_acknowledged(
    session: aiohttp.ClientSession,
    url: str,
    key: SigningSecret | SigningKey,
    event: Planned,
    counts: Sending,
    rng: random.Random,
) -> str:
    """Send ``event`` until a 2xx: re-signed at each attempt, the same webhook id. The acknowledging status."""
    delay = 0.02
    while True:
        counts.attempts += 1
        headers = signature_headers(key, event.webhook_id, event.body) | {"Content-Type": "application/json"}
        try:
            async with session.post(url, data=event.body, headers=headers) as response:
                text = await response.text()
                if response.status in (200, 202):
                    status: str = json.loads(text)["status"]
                    return status
                if response.status < 500:
                    raise BenchError(f"{event.webhook_id} answered {response.status}: {text[:300]}")
                counts.answered_5xx += 1
        except (aiohttp.ClientError, OSError, TimeoutError):
            counts.unanswered += 1
        await asyncio.sleep(delay * (0.5 + rng.random()))
        delay = min(delay * 2, 0.5)


async def run_load(
    fleet: Fleet,
    session: aiohttp.ClientSession,
    plan: Sequence[Planned],
    sources: dict[str, tuple[str, SigningSecret | SigningKey]],
    concurrency: int,
    kills: int,
    rng: random.Random,
) -> Sending:
    """Send the plan while the kills happen; returns when every event is acknowledged and every kill was made."""
    counts = Sending()
    total = len(plan)
    gateway_points = sorted(rng.sample(range(max(1, total // 20), max(2, total * 45 // 100)), kills))
    projector_points = sorted(
        rng.sample(range(total * 55 // 100, max(total * 55 // 100 + kills, total * 95 // 100)), kills)
    )
    schedule = (
        [(n, "gateway") for n in gateway_points]
        + [(total // 2, "separate")]
        + [(n, "projector") for n in projector_points]
    )
    schedule.sort()
    progress = asyncio.Condition()
    queue = list(reversed(plan))

    async def worker() -> None:
        while queue:
            event = queue.pop()
            counts.sent += 1
            source_id, key = sources[event.kind]
            url = f"http://{HOST}:{fleet.port}/v1/webhooks/{source_id}"
            status = await post_until_acknowledged(session, url, key, event, counts, rng)
            counts.acks[event.webhook_id] = status
            if status == "accepted":
                counts.accepted += 1
            else:
                counts.duplicate += 1
            async with progress:
                progress.notify_all()

    async def killer() -> None:
        for threshold, action in schedule:
            async with progress:
                await progress.wait_for(lambda t=threshold: len(counts.acks) >= t)
            await asyncio.sleep(rng.random() * 0.05)
            if action == "gateway":
                await fleet.kill_gateway(session)
            elif action == "projector":
                fleet.kill_projector()
            else:
                await fleet.separate_the_projector(session)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.gather(killer(), *workers)
    return counts


async def resend_all(
    session: aiohttp.ClientSession, port: int, plan: Sequence[Planned], sources: dict[str, Any], concurrency: int
) -> Counter[str]:
    """Every acknowledged event once more: the answers by status (each must be ``duplicate``)."""
    answers: Counter[str] = Counter()
    queue = list(plan)

    async def worker() -> None:
        while queue:
            event = queue.pop()
            source_id, key = sources[event.kind]
            headers = signature_headers(key, event.webhook_id, event.body) | {"Content-Type": "application/json"}
            url = f"http://{HOST}:{port}/v1/webhooks/{source_id}"
            async with session.post(url, data=event.body, headers=headers) as response:
                text = await response.text()
                answers[json.loads(text)["status"] if response.status in (200, 202) else str(response.status)] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


# -- checking ---------------------------------------------------------------------------------------------------------
@dataclass
class Figures:
    backend: str
    database: str
    events: int
    sent: int = 0
    attempts: int = 0
    unanswered: int = 0
    answered_5xx: int = 0
    acknowledged: int = 0
    acknowledged_as_duplicate: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    altered: int = 0
    unexpected_rows: int = 0
    resent: dict[str, int] = field(default_factory=dict)
    kills: dict[str, int] = field(default_factory=dict)
    restart_s_median: float = 0.0
    restart_s_max: float = 0.0
    subjects: int = 0
    projection_position_ok: bool = False
    projection_equals_replay: bool = False
    projection_mismatches: int = 0
    durability: dict[str, Any] = field(default_factory=dict)
    """With ``--fsync-check``: SQLite, the strace check; PostgreSQL, the server's settings."""
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.altered == 0
            and self.unexpected_rows == 0
            and self.acknowledged == self.events
            and set(self.resent) == {"duplicate"}
            and self.projection_position_ok
            and self.projection_equals_replay
            and self.durability.get("verdict", "pass") == "pass"
        )


async def _inbox(store: Store) -> list[StoredEvent]:
    rows, after = [], 0
    while batch := await store.read_inbox(after, 5000):
        rows += batch
        after = batch[-1].seq
    return rows


async def count_rows(url: str, plan: Sequence[Planned], counts: Sending, figures: Figures) -> None:
    """Rows per (source, webhook id), before anything is sent again: lost, duplicated, unexpected."""
    async with open_store(url) as store:
        per_id = Counter((row.source_id, row.webhook_id) for row in await _inbox(store))
    stored_ids = {webhook_id for _, webhook_id in per_id}
    figures.stored = len(per_id)
    figures.duplicated = sum(count - 1 for count in per_id.values())
    figures.lost = len(set(counts.acks) - stored_ids)
    figures.unexpected_rows = len(stored_ids - {event.webhook_id for event in plan})


async def check_store(url: str, master: MasterKey, plan: Sequence[Planned], figures: Figures) -> None:
    """After the re-sends: nothing new stored, every body as sent, the credit files against a clean replay."""
    sent = {event.webhook_id: event.body for event in plan}
    async with open_store(url) as store:
        rows = await _inbox(store)
        figures.unexpected_rows += len(rows) - figures.stored - figures.duplicated  # rows the re-sends added
        logged = []
        for row in rows:
            if row.sealed_body is None or master.open_body(row.source_id, row.webhook_id, row.sealed_body) != sent.get(
                row.webhook_id
            ):
                figures.altered += 1
            logged.append(read_logged(row, master))

        last = rows[-1].seq if rows else 0
        figures.projection_position_ok = await store.projector_position() == last
        files = project(logged, default_policy(), lambda subject: master.subject_key(subject.id_type, subject.id))
        stored = await store.load_subjects(list(files))
        figures.subjects = len(files)
        mismatches = 0
        for key, credit_file in files.items():
            row = stored.get(key)
            archived = [json.loads(text) for text in await store.archived_records(key)]
            if row is None or row.state != credit_file.to_json():
                mismatches += 1
            elif sorted(json.dumps(record, sort_keys=True) for record in archived) != sorted(
                json.dumps(record.to_json(), sort_keys=True) for record in credit_file.archived
            ):
                mismatches += 1
        figures.projection_mismatches = mismatches
        figures.projection_equals_replay = mismatches == 0 and len(stored) == len(files)


async def wait_for_projection(url: str) -> None:
    async with open_store(url) as store:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while True:
            rows = await store.read_inbox(await store.projector_position(), 1)
            if not rows:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"the projector did not catch up within {CATCH_UP_TIMEOUT:.0f} s")
            await asyncio.sleep(0.1)


# -- acknowledgements after fsync (SQLite, under strace) -------------------------------------------------------------
_SYSCALL = re.compile(r"^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\((\d+)?)(.*)$")


def acks_after_fsync(trace: Path, wal_name: str) -> dict[str, int]:
    """From an ``strace -f`` log: how many 202 answers there were, and how many of them were written after an
    ``fdatasync``/``fsync`` of the write-ahead log had completed since their request arrived on that connection.

    A call that strace splits (``<unfinished ...>`` ... ``<... resumed>``) counts where it completes for a sync, where
    it starts for an answer (it cannot start before the sync it waited for completed)."""
    wal_fds: set[str] = set()
    arrived: dict[str, int] = {}  # socket fd → line where its current request arrived
    unfinished: dict[str, tuple[str, str]] = {}  # pid → (call, fd) of a call strace split
    last_sync = -1
    syncs = answers = after_sync = 0
    for number, line in enumerate(trace.read_text(errors="replace").splitlines()):
        match = _SYSCALL.match(line)
        if match is None:
            continue
        pid, resumed, call, fd, rest = match.groups()
        if resumed is not None:
            call, fd = unfinished.pop(pid, (resumed, ""))
        elif "<unfinished" in rest:
            unfinished[pid] = (call, fd or "")
            if call in ("fdatasync", "fsync", "recvfrom"):
                continue  # counted where it completes
        data = rest.lstrip(", ")
        if call == "openat" and wal_name in rest and "= " in rest:
            wal_fds.add(rest.rsplit("= ", 1)[1].strip())
        elif call in ("fdatasync", "fsync") and fd in wal_fds and rest.strip().endswith("= 0"):
            last_sync, syncs = number, syncs + 1
        elif call == "recvfrom" and data.startswith('"POST '):
            arrived[fd or ""] = number
        elif call == "sendto" and data.startswith('"HTTP/1.1 202 '):
            answers += 1
            request = arrived.pop(fd or "", None)
            if request is not None and last_sync > request:
                after_sync += 1
    return {"answers_202": answers, "after_a_wal_sync": after_sync, "wal_syncs": syncs}


async def fsync_check(folder: Path, events: int, concurrency: int, seed: int) -> dict[str, int]:
    strace = shutil.which("strace")
    if strace is None:
        raise BenchError("--fsync-check needs strace on the PATH")
    url = f"sqlite:///{folder / 'fsync.db'}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
    env |= {
        "XINYONG_DATABASE_URL": url,
        "XINYONG_MASTER_KEY": MasterKey.generate_text(),
        "XINYONG_LOG_LEVEL": "warning",
    }
    run_cli("migrate", env=env)
    added = run_cli("sources", "add", "--kind", "marketplace", "--name", "fsync check", env=env)
    secret = SigningSecret.parse(added["secret"])
    plan = [event for event in plan_events(events * 3, random.Random(seed)) if event.kind == "marketplace"][:events]
    port = free_port()
    trace = folder / "strace.out"
    argv = [strace, "-f", "-e", "trace=openat,fdatasync,fsync,recvfrom,sendto", "-s", "16", "-o", str(trace)]
    argv += [str(BIN / "xinyong-gateway"), "serve", "--no-projector", "--port", str(port)]
    process = _spawn(argv, folder / "fsync-serve.log", env)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"http://{HOST}:{port}/readyz") as response:
                        if response.status == 200:
                            break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise BenchError("the gateway under strace did not become ready")
                await asyncio.sleep(0.05)
            counts = Sending()
            url_path = f"http://{HOST}:{port}/v1/webhooks/{added['source_id']}"
            rng = random.Random(seed)
            queue = list(plan)

            async def worker() -> None:
                while queue:
                    event = queue.pop()
                    if await post_until_acknowledged(session, url_path, secret, event, counts, rng) != "accepted":
                        raise BenchError("an event of the fsync check was not accepted as new")

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        _stop_traced(process)
    return acks_after_fsync(trace, "fsync.db-wal")


def _stop_traced(strace: subprocess.Popen[bytes]) -> None:
    """Stop the gateway strace runs (SIGTERM to strace would only detach it); strace ends with it."""
    for child in Path(f"/proc/{strace.pid}/task/{strace.pid}/children").read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), signal.SIGTERM)
    try:
        strace.wait(timeout=30)
    except subprocess.TimeoutExpired:
        strace.kill()
        raise


# -- a run ------------------------------------------------------------------------------------------------------------
async def crash_run(args: argparse.Namespace, url: str, folder: Path, backend: str, display: str) -> Figures:
    started = time.monotonic()
    master_text = os.environ.get("XINYONG_MASTER_KEY") or MasterKey.generate_text()
    env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
    env |= {"XINYONG_DATABASE_URL": url, "XINYONG_MASTER_KEY": master_text, "XINYONG_LOG_FORMAT": "json"}
    run_cli("migrate", env=env)
    courier_key = SigningKey.generate()
    sources: dict[str, tuple[str, SigningSecret | SigningKey]] = {}
    for kind in ("marketplace", "courier", "regulator"):
        extra = ["--public-key", str(courier_key.public_key)] if kind == "courier" else []
        added = run_cli("sources", "add", "--kind", kind, "--name", f"crash {kind}", *extra, env=env)
        sources[kind] = (added["source_id"], courier_key if kind == "courier" else SigningSecret.parse(added["secret"]))
    rng = random.Random(args.seed)
    plan = plan_events(args.events, rng)

    fleet = Fleet(folder, env, free_port())
    figures = Figures(backend, display, args.events)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        try:
            await fleet.start_serve(session)
            counts = await run_load(fleet, session, plan, sources, args.concurrency, args.kills, rng)
            await wait_for_projection(url)
            fleet.stop("project")
            await count_rows(url, plan, counts, figures)
            acknowledged = [event for event in plan if event.webhook_id in counts.acks]
            figures.resent = dict(await resend_all(session, fleet.port, acknowledged, sources, args.concurrency))
        finally:
            fleet.stop_all()
    figures.sent, figures.attempts = counts.sent, counts.attempts
    figures.unanswered, figures.answered_5xx = counts.unanswered, counts.answered_5xx
    figures.acknowledged, figures.acknowledged_as_duplicate = len(counts.acks), counts.duplicate
    figures.kills = dict(fleet.kills)
    figures.restart_s_median = round(statistics.median(fleet.restart_s), 3) if fleet.restart_s else 0.0
    figures.restart_s_max = round(max(fleet.restart_s, default=0.0), 3)
    await check_store(url, MasterKey.from_text(master_text), plan, figures)
    if args.acks is not None:
        with args.acks.open("w", encoding="utf-8") as out:
            for event in plan:
                if event.webhook_id in counts.acks:
                    source_id = sources[event.kind][0]
                    answer = counts.acks[event.webhook_id]
                    out.write(
                        json.dumps({"source_id": source_id, "webhook_id": event.webhook_id, "answer": answer}) + "\n"
                    )
    figures.elapsed_s = round(time.monotonic() - started, 1)
    return figures


def print_figures(figures: Figures) -> None:
    yes = {True: "yes", False: "NO"}
    print(f"\ncrash without loss: {figures.backend} ({figures.database})")
    print(
        f"  events sent           {figures.sent:>8,}   attempts {figures.attempts:,}: {figures.unanswered:,} without an"
        f" answer, {figures.answered_5xx:,} answered 5xx"
    )
    print(
        f"  acknowledged          {figures.acknowledged:>8,}   of which {figures.acknowledged_as_duplicate:,} first"
        ' answered "duplicate" (a kill came between the commit and the answer)'
    )
    print(f"  stored                {figures.stored:>8,}")
    print(f"  lost                  {figures.lost:>8,}   acknowledged but not stored (must be 0)")
    print(f"  duplicated            {figures.duplicated:>8,}   stored more than once (must be 0)")
    print(f"  altered               {figures.altered:>8,}   stored bodies that differ from what was sent (must be 0)")
    resent = ", ".join(f"{n:,} {status}" for status, n in sorted(figures.resent.items()))
    print(f"  re-sent               {resent}   (each must answer duplicate)")
    print(
        f"  kills                 gateway {figures.kills.get('gateway', 0)},"
        f" projector {figures.kills.get('projector', 0)}"
        f"   (gateway serving again after: median {figures.restart_s_median:.2f} s, max {figures.restart_s_max:.2f} s)"
    )
    print(
        f"  projection            equals a clean replay of the log: {yes[figures.projection_equals_replay]}"
        f" ({figures.subjects:,} subjects, {figures.projection_mismatches} differ); every event applied:"
        f" {yes[figures.projection_position_ok]}"
    )
    found = figures.durability
    if "answers_202" in found:
        print(
            f"  fsync before 202      {found['after_a_wal_sync']:,} of {found['answers_202']:,} answers written"
            " after an fdatasync of the write-ahead log since their request arrived"
            f" ({found['wal_syncs']:,} syncs; strace)"
        )
    elif found:
        print(
            f"  server durability     fsync {found['fsync']}, wal_sync_method {found['wal_sync_method']} (the gateway"
            " sets synchronous_commit = on on its connections)"
        )
    print(f"  verdict               {'PASS' if figures.ok else 'FAIL'}   ({figures.elapsed_s:.1f} s)")


def durability(args: argparse.Namespace, url: str, folder: Path, backend: str) -> dict[str, Any]:
    """SQLite: the strace check of ``acks_after_fsync``; PostgreSQL: the settings that make a commit survive a
    power loss (the gateway itself sets ``synchronous_commit = on`` on every connection)."""
    if backend == "sqlite":
        found: dict[str, Any] = asyncio.run(fsync_check(folder, 300, 8, args.seed))
        good = found["answers_202"] > 0 and found["after_a_wal_sync"] == found["answers_202"]
        return found | {"verdict": "pass" if good else "fail"}
    facts = _postgres.server_facts(url)
    good = facts.get("fsync") == "on" and facts.get("wal_sync_method") != "?"
    settings = {name: facts.get(name, "?") for name in ("version", "fsync", "wal_sync_method", "synchronous_commit")}
    return settings | {"verdict": "pass" if good else "fail"}


@contextlib.contextmanager
def scratch_folder(parent: Path | None, keep: bool) -> Iterator[Path]:
    base = parent or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="xinyong-crash-", dir=base))
    try:
        yield scratch
    finally:
        if keep:
            print(f"scratch folder kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    with scratch_folder(args.scratch_dir, args.keep) as folder:
        with contextlib.ExitStack() as stack:
            if args.db is None:
                url = f"sqlite:///{folder / 'gateway.db'}"
                backend, display = "sqlite", str(folder / "gateway.db")
            elif args.in_place:
                url = args.db
                backend = "postgresql" if _postgres.is_postgres(url) else "sqlite"
                display = url.split("@")[-1]
            elif _postgres.is_postgres(args.db):
                url, name = stack.enter_context(_postgres.scratch_database(args.db, keep=args.keep))
                backend, display = "postgresql", f"scratch database {name}"
            else:
                raise BenchError("--db takes a PostgreSQL URL (SQLite runs in a scratch folder by default).")
            figures = asyncio.run(asyncio.wait_for(crash_run(args, url, folder, backend, display), args.timeout))
            if args.fsync_check:
                figures.durability = durability(args, url, folder, backend)
    if args.json:
        print(json.dumps(asdict(figures) | {"ok": figures.ok}, ensure_ascii=False))
    else:
        print_figures(figures)
    return 0 if figures.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nbench/crash.py: ABORTED: {exc}", file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"\nbench/crash.py: ABORTED: not done within {args.timeout:.0f} s", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
