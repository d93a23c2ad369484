"""Scale-out on PostgreSQL: two gateway processes and two projectors on one database, one of them killed.

Ten thousand signed events go to two ``xinyong-gateway serve --no-projector`` processes, with deliberate
duplicates (the same webhook sent twice to one gateway) and racing copies (the same webhook sent to both
gateways at the same moment). Two ``xinyong-gateway project`` processes share the projection; one is killed
with SIGKILL halfway. The survivor must take over its partitions, and the credit files at the end must equal
a single-process replay of the stored log: every event applied exactly once, each subject's events in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.factories import event, make_uscc
from tests.gateway.conftest import GATEWAY_SCRIPT, TEST_MASTER_KEY, _wait_ready, eventually, free_port, gateway_env
from xinyong.events import EVENT_TYPES
from xinyong.webhooks import SigningSecret, signature_headers
from xinyong_gateway.credit.engine import LoggedEvent, project
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import PARTITIONS, Store, open_store

pytestmark = pytest.mark.slow

EVENTS = 10_000
MERCHANTS = 400
COURIERS = 12


def _cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([str(GATEWAY_SCRIPT), "--json", *args], env=env, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(GATEWAY_SCRIPT), *args], stdout=out, stderr=subprocess.STDOUT, env=env)


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Started processes, stopped at the end whatever happened (SIGTERM, then SIGKILL)."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _events(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """(source kind, body): a city's mix, with a few couriers carrying a large share of the deliveries."""
    merchants = [{"id_type": "uscc", "id": make_uscc(rng), "name": f"网店{n}"} for n in range(MERCHANTS)]
    couriers = [{"id_type": "uscc", "id": make_uscc(rng), "name": f"快递{n}"} for n in range(COURIERS)]
    courier_weights = [2.0**-n for n in range(COURIERS)]
    out: list[tuple[str, dict[str, Any]]] = []
    for n in range(EVENTS):
        who = rng.choice(merchants)
        roll = rng.random()
        if roll < 0.55:
            status = rng.choices(["delivered", "empty_parcel", "lost"], weights=[85, 10, 5])[0]
            courier = rng.choices(couriers, weights=courier_weights)[0]
            out.append(("courier", event("delivery.recorded", rng, courier=courier, merchant=who, status=status)))
        elif roll < 0.70:
            out.append(("marketplace", event("review.manipulation_detected", rng, merchant=who, case_id=f"m{n}")))
        elif roll < 0.85:
            out.append(("marketplace", event("complaint.resolved", rng, merchant=who, outcome="upheld")))
        elif roll < 0.93:
            out.append(("marketplace", event("listing.violation", rng, merchant=who, case_id=f"l{n}")))
        else:
            severity = rng.choice(["minor", "general", "serious"])
            out.append(("regulator", event("penalty.imposed", rng, subject=who, severity=severity)))
    return out


async def _send_all(
    bases: list[str],
    sources: dict[str, tuple[str, SigningSecret]],
    plan: list[tuple[str, dict[str, Any]]],
    on_halfway: Any,
    rng: random.Random,
) -> Counter[str]:
    """Send every event once, some twice to one gateway, some to both at once; count the acknowledgements."""
    acks: Counter[str] = Counter()
    limit = asyncio.Semaphore(24)

    async with aiohttp.ClientSession() as session:

        async def post(base: str, kind: str, webhook_id: str, raw: bytes) -> None:
            source_id, secret = sources[kind]
            headers = signature_headers(secret, webhook_id, raw) | {"Content-Type": "application/json"}
            async with limit, session.post(f"{base}/v1/webhooks/{source_id}", data=raw, headers=headers) as answer:
                text = await answer.text()
                assert answer.status in (200, 202), text
                acks[json.loads(text)["status"]] += 1

        async def one(n: int, kind: str, body: dict[str, Any]) -> None:
            raw = json.dumps(body, ensure_ascii=False).encode()
            webhook_id = f"msg_{n:05d}"
            roll = rng.random()
            if roll < 0.10:  # a racing copy: the same webhook at both gateways at the same moment
                await asyncio.gather(*(post(base, kind, webhook_id, raw) for base in bases))
            elif roll < 0.20:  # a plain duplicate: the sender retried at the same gateway
                await post(bases[n % 2], kind, webhook_id, raw)
                await post(bases[n % 2], kind, webhook_id, raw)
            else:
                await post(bases[n % 2], kind, webhook_id, raw)

        half = len(plan) // 2
        await asyncio.gather(*(one(n, kind, body) for n, (kind, body) in enumerate(plan[:half])))
        on_halfway()
        await asyncio.gather(*(one(n + half, kind, body) for n, (kind, body) in enumerate(plan[half:])))
    return acks


async def _log(store: Store, master: MasterKey) -> list[LoggedEvent]:
    """The whole stored log, in order (seqs may have gaps: PostgreSQL sequences skip on conflicts)."""
    logged, after = [], 0
    while rows := await store.read_inbox(after, 5000):
        for row in rows:
            assert row.sealed_body is not None
            body = master.open_body(row.source_id, row.webhook_id, row.sealed_body)
            parsed = EVENT_TYPES[row.event_type].model_validate_json(body)
            logged.append(LoggedEvent(row.seq, row.source_id, row.webhook_id, parsed))
        after = rows[-1].seq
    return logged


async def test_two_gateways_and_two_projectors_one_killed_end_as_a_single_process_replay(
    postgres_url: str, tmp_path: Path
) -> None:
    env = gateway_env(
        XINYONG_MASTER_KEY=TEST_MASTER_KEY, XINYONG_DATABASE_URL=postgres_url, XINYONG_LOG_LEVEL="warning"
    )
    _cli(env, "migrate")
    sources = {}
    for kind in ("marketplace", "courier", "regulator"):
        added = _cli(env, "sources", "add", "--kind", kind, "--name", f"scale {kind}")
        sources[kind] = (added["source_id"], SigningSecret.parse(added["secret"]))
    rng = random.Random(5)
    plan = _events(rng)

    with _processes() as started:
        bases = []
        for n in range(2):
            port, log = free_port(), tmp_path / f"gateway{n}.log"
            started.append(_spawn(["serve", "--no-projector", "--port", str(port)], log, env))
            bases.append(f"http://127.0.0.1:{port}")
            _wait_ready(bases[-1], started[-1], log)
        projectors = [_spawn(["project"], tmp_path / f"projector{n}.log", env) for n in range(2)]
        started.extend(projectors)

        def kill_one_projector() -> None:
            projectors[0].send_signal(signal.SIGKILL)

        acks = await _send_all(bases, sources, plan, kill_one_projector, rng)
        assert projectors[0].wait(timeout=10) == -signal.SIGKILL
        assert acks["accepted"] == EVENTS, acks  # each webhook stored once, whichever gateway got it first

        master = MasterKey.from_text(TEST_MASTER_KEY)
        async with open_store(postgres_url) as store:
            logged = await _log(store, master)
            assert len(logged) == EVENTS
            last = logged[-1].seq

            async def caught_up() -> bool:
                return await store.projector_position() >= last

            await eventually(caught_up, within=120, interval=0.5)
            assert projectors[1].poll() is None, "the surviving projector kept running"
            states = await store.partition_states()
            assert len(states) == PARTITIONS and {s.position for s in states.values()} == {last}

            files = project(logged, default_policy(), lambda s: master.subject_key(s.id_type, s.id))
            expected = {key: credit_file.to_json() for key, credit_file in files.items()}
            stored = await store.load_subjects(list(expected))
            assert {key: row.state for key, row in stored.items()} == expected
