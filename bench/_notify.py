"""What ``notify.py`` and ``notify_crash.py`` share: a scratch gateway (processes of ``xinyong-gateway`` on a fresh
database), subscriptions made through the API, the receiver (``_receiver.py``) in a process of its own, events that
change a subject's status, and reading the receiver's log. Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from stdnum.cn import uscc as stdnum_uscc

import _postgres
from xinyong.webhooks import SigningSecret, signature_headers

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
RECEIVER = Path(__file__).resolve().parent / "_receiver.py"
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
START_TIMEOUT = 60.0


class BenchError(Exception):
    """The run could not be carried out (exit status 2)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database(folder: Path, server: str | None, *, keep: bool = False) -> Iterator[str]:
    """A fresh database: a SQLite file in ``folder``, or a scratch database on the PostgreSQL ``server``."""
    if server is None:
        yield f"sqlite:///{folder / 'gateway.db'}"
        return
    with _postgres.scratch_database(server, keep=keep) as (url, _):
        yield url


_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def uscc(rng: random.Random) -> str:
    """A valid USCC (check characters computed as tests/factories.py computes them)."""
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    check = 11 - sum(_ORG_VALUES[c] * w for c, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    first17 = "91320706" + body + ("X" if check == 10 else "0" if check == 11 else str(check))
    return first17 + stdnum_uscc.calc_check_digit(first17)


def violation(merchant: str, n: int, *, confirmed: bool = True, case: str | None = None) -> bytes:
    """A confirmed counterfeit listing (puts the merchant on the black list), or its withdrawal (``confirmed``
    false, the same case, a later timestamp: the merchant leaves the list)."""
    now = datetime.now(UTC)
    sent = now if confirmed else now + timedelta(seconds=1)
    document = {
        "type": "listing.violation",
        "timestamp": sent.isoformat(),
        "data": {
            "case_id": case or f"case-{n}",
            "merchant": {"id_type": "uscc", "id": merchant, "name": f"店铺{n}"},
            "listing_id": f"L{n}",
            "kind": "counterfeit",
            "confirmed": confirmed,
            "found_at": (now - timedelta(minutes=1)).isoformat(),
        },
    }
    return json.dumps(document, ensure_ascii=False).encode()


def filler(n: int, merchant: str) -> bytes:
    """An event that changes no status: one more published commitment of a merchant that is on no list."""
    now = datetime.now(UTC)
    document = {
        "type": "commitment.published",
        "timestamp": now.isoformat(),
        "data": {
            "merchant": {"id_type": "uscc", "id": merchant, "name": "守信小店"},
            "commitment_id": f"c-{n}",
            "items": ["正品保障"],
            "published_at": (now - timedelta(minutes=5)).isoformat(),
        },
    }
    return json.dumps(document, ensure_ascii=False).encode()


@dataclass
class Fleet:
    """``xinyong-gateway`` processes on one database, and the receiver; each restartable after a kill."""

    folder: Path
    url: str
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    receiver_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
        self.env |= {
            "XINYONG_DATABASE_URL": self.url,
            "XINYONG_MASTER_KEY": MASTER_KEY,
            "XINYONG_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32",
            "XINYONG_LOG_FORMAT": "json",
            **self.env_extra(),
        }

    def env_extra(self) -> dict[str, str]:
        return {}

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [str(BIN / "xinyong-gateway"), "--json", *args], env=self.env, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"xinyong-gateway {' '.join(args)}: {done.stderr.decode(errors='replace')}")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def spawn(self, role: str, *argv: str) -> subprocess.Popen[bytes]:
        with (self.folder / f"{role}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(BIN / "xinyong-gateway"), *argv], stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        self.processes[role] = process
        return process

    def spawn_receiver(self, secrets: dict[str, str], *args: str) -> None:
        (self.folder / "secrets.json").write_text(json.dumps(secrets))
        with (self.folder / "receiver.out").open("ab") as log:
            self.processes["receiver"] = subprocess.Popen(
                [
                    sys.executable,
                    str(RECEIVER),
                    "--port",
                    str(self.receiver_port),
                    "--secrets",
                    str(self.folder / "secrets.json"),
                    "--log",
                    str(self.folder / "arrivals.ndjson"),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.receiver_port), timeout=1):
                return
            time.sleep(0.05)
        raise BenchError("the receiver did not start")

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            serve = self.processes.get("serve")
            if serve is not None and serve.poll() is not None:
                raise BenchError(f"the gateway exited early; see {self.folder / 'serve.log'}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(f"http://{HOST}:{self.port}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise BenchError("the gateway was not ready in time")

    def kill(self, role: str) -> None:
        process = self.processes[role]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def subscribe(
    session: aiohttp.ClientSession, fleet: Fleet, api_key: str, lists: list[str], subjects: list[Any] | None = None
) -> tuple[str, str]:
    """A subscription of the receiver, through the API: ``(subscription_id, secret)``."""
    body: dict[str, Any] = {"url": f"http://{HOST}:{fleet.receiver_port}/hook", "lists": lists}
    if subjects is not None:
        body["subjects"] = subjects
    async with session.post(
        f"http://{HOST}:{fleet.port}/v1/subscriptions", json=body, headers={"Authorization": f"Bearer {api_key}"}
    ) as response:
        document = await response.json()
        if response.status != 201:
            raise BenchError(f"subscribing answered {response.status}: {document}")
        return document["subscription_id"], document["secret"]


async def post(
    session: aiohttp.ClientSession, fleet: Fleet, source_id: str, secret: SigningSecret, webhook_id: str, body: bytes
) -> float:
    """Post one event until it is acknowledged (re-signed at each attempt, the same webhook id); the time of the
    acknowledging answer (``time.time()``)."""
    delay = 0.02
    while True:
        headers = signature_headers(secret, webhook_id, body) | {"Content-Type": "application/json"}
        try:
            async with session.post(
                f"http://{HOST}:{fleet.port}/v1/webhooks/{source_id}", data=body, headers=headers
            ) as response:
                await response.read()
                if response.status in (200, 202):
                    return time.time()
                if response.status < 500:
                    raise BenchError(f"{webhook_id} answered {response.status}")
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


def arrivals(folder: Path) -> list[dict[str, Any]]:
    """The receiver's log so far (a line cut short by a kill is skipped)."""
    path = folder / "arrivals.ndjson"
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            found.append(json.loads(line))
    return found
