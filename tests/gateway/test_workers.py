"""``xinyong-gateway serve --workers N``: a supervisor and N gateway processes on one port (PostgreSQL).

The real script in a subprocess, on a fresh PostgreSQL schema: signed webhooks over new connections (so the
kernel spreads them over the workers), the JSON log read back to see which worker answered each one (every
line carries ``worker`` and ``pid``), SIGKILL to one worker, SIGTERM to the supervisor. The supervisor's
restart and give-up rules are also driven in this process with worker bodies that fail on purpose."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.gateway.conftest import GATEWAY_SCRIPT, TEST_MASTER_KEY, admin, free_port, gateway_env
from xinyong.webhooks import SigningSecret, signature_headers
from xinyong_gateway.errors import ServeError
from xinyong_gateway.logs import _whole_line_pieces
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import open_store
from xinyong_gateway.web.workers import MAX_START_FAILURES, Supervisor

pytestmark = pytest.mark.slow

DEADLINE = 60.0
"""Seconds any awaited condition may take on a loaded 2-core machine (a deadline, never a measurement)."""


# -- helpers ----------------------------------------------------------------------------------------------------


def wait_for(condition: Any, what: str, *, within: float = DEADLINE) -> Any:
    """Poll ``condition()`` until it returns something true, and return that; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {within} s")


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (workers, multiprocessing's resource tracker), from /proc."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(child) for child in (task / "children").read_text().split()}
            except OSError:
                continue
            pending.extend(children - found)
            found |= children
    return found


@dataclass
class Served:
    """``serve --workers 2`` in a subprocess on a migrated PostgreSQL schema with one marketplace source."""

    database_url: str
    port: int
    source_id: str
    secret: SigningSecret
    log_path: Path
    process: subprocess.Popen[bytes]
    sent: int = 0

    def log(self) -> list[dict[str, Any]]:
        """The complete JSON lines written so far (a line still being written is left for the next read)."""
        text = self.log_path.read_text(errors="replace")
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.log() if line.get("event") == name]

    def worker_pids(self) -> dict[int, int]:
        """Worker number → pid of its latest process that reported ready."""
        return {line["worker"]: line["pid"] for line in self.events("worker.ready")}

    def post_webhooks(self, count: int) -> list[str]:
        """``count`` signed webhooks, each on a new connection; every answer must be 202. Their ids."""
        ids = []
        for _ in range(count):
            self.sent += 1
            webhook_id = f"workers-{self.sent}"
            body = json.dumps(
                {
                    "type": "commitment.published",
                    "timestamp": "2026-11-27T10:00:00+08:00",
                    "data": {
                        "merchant": {"id_type": "uscc", "id": "91320706MA1Y2N6Q47"},
                        "commitment_id": webhook_id,
                        "items": ["正品保障"],
                        "published_at": "2026-11-27T09:00:00+08:00",
                    },
                },
                ensure_ascii=False,
            ).encode()
            headers = {**signature_headers(self.secret, webhook_id, body), "Content-Type": "application/json"}
            request = (
                f"POST /v1/webhooks/{self.source_id} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode() + body
            with socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            status_line = answer.split(b"\r\n", 1)[0].decode()
            assert status_line.split()[1] == "202", answer.decode(errors="replace")
            ids.append(webhook_id)
        return ids

    def served_by(self, webhook_ids: list[str]) -> dict[str, int]:
        """webhook id → pid of the worker whose canonical log line reports it, once every one is logged."""

        def lines() -> dict[str, int] | None:
            found = {
                line["webhook_id"]: line["pid"]
                for line in self.events("request")
                if line.get("webhook_id") in webhook_ids and line.get("status") == 202
            }
            return found if len(found) == len(webhook_ids) else None

        found: dict[str, int] = wait_for(lines, "every webhook's request line in the log")
        return found

    def pids_serving(self, wanted: set[int], *, batches: int = 10, batch: int = 20) -> set[int]:
        """Post batches of webhooks on new connections until each pid in ``wanted`` has answered one (the
        kernel hashes each connection to a worker: 20 connections all missing one of two workers is a 2**-20
        event, ten such batches in a row never happen); the pids that answered."""
        seen: set[int] = set()
        for _ in range(batches):
            seen |= set(self.served_by(self.post_webhooks(batch)).values())
            if wanted <= seen:
                break
        return seen

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=DEADLINE)


@pytest.fixture
def served(postgres_url: str, tmp_path: Path) -> Iterator[Served]:
    (source,) = admin(postgres_url, ("sources", "add", "--kind", "marketplace", "--name", "workers"))
    port = free_port()
    log_path = tmp_path / "gateway.log"
    argv = [str(GATEWAY_SCRIPT), "--db", postgres_url, "serve", "--workers", "2", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--log-format", "json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=gateway_env(XINYONG_MASTER_KEY=TEST_MASTER_KEY),
        )
    gateway = Served(postgres_url, port, source["source_id"], SigningSecret.parse(source["secret"]), log_path, process)
    try:

        def serving() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the gateway exited early:\n{log_path.read_text(errors='replace')}")
            # The supervisor logs "serving" once every worker reported ready; each worker logs its own line.
            return bool(gateway.events("serving")) and len(gateway.worker_pids()) == 2

        wait_for(serving, "both workers ready")
        yield gateway
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _inbox_count(database_url: str) -> int:
    async with open_store(database_url) as store:
        return await store.inbox_count()


# -- the real server ------------------------------------------------------------------------------------------


def test_two_workers_answer_on_one_port_and_all_exit_0_on_sigterm(served: Served) -> None:
    workers = served.worker_pids()
    assert sorted(workers) == [1, 2]
    assert len(set(workers.values())) == 2
    supervisor_children = descendants(served.process.pid)
    assert set(workers.values()) <= supervisor_children

    assert served.pids_serving(set(workers.values())) == set(workers.values())
    assert asyncio.run(_inbox_count(served.database_url)) == served.sent

    assert served.stop() == 0
    wait_for(lambda: not any(running(pid) for pid in supervisor_children), "every process of the gateway gone")
    exits = {line["pid"]: line["status"] for line in served.events("worker.exit")}
    assert exits == dict.fromkeys(workers.values(), 0)
    assert [line["clean"] for line in served.events("workers.stopped")] == [True]
    assert all(isinstance(line, dict) for line in served.log())  # every line of the shared log is whole JSON


def test_a_worker_killed_with_sigkill_is_restarted_while_the_other_keeps_answering(served: Served) -> None:
    workers = served.worker_pids()
    killed, survivor = workers[1], workers[2]
    os.kill(killed, signal.SIGKILL)
    # Gone from /proc, not merely a zombie: a killed process's leader can be a zombie while its other threads are
    # still exiting, and until the last one has, its SO_REUSEPORT socket still takes connections, which it resets.
    wait_for(lambda: not Path(f"/proc/{killed}").exists(), "the killed worker gone and reaped")

    answered_by = set(served.served_by(served.post_webhooks(20)).values())
    assert killed not in answered_by
    assert answered_by <= {survivor, *served.worker_pids().values()}

    exited = wait_for(lambda: served.events("worker.exited"), "the supervisor noticing")
    assert (exited[0]["worker"], exited[0]["worker_pid"], exited[0]["error"]) == (1, killed, "killed by signal SIGKILL")
    replacement = wait_for(lambda: served.worker_pids()[1] != killed and served.worker_pids()[1], "a new worker 1")
    assert running(replacement)
    assert served.pids_serving({replacement, survivor}) == {replacement, survivor}
    assert asyncio.run(_inbox_count(served.database_url)) == served.sent

    assert served.stop() == 0
    assert not running(replacement) and not running(survivor)


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(served: Served) -> None:
    workers = set(served.worker_pids().values())
    everything = descendants(served.process.pid)
    served.process.kill()
    served.process.wait(timeout=DEADLINE)
    wait_for(lambda: not any(running(pid) for pid in everything), "no orphaned worker left running")
    reasons = {line["pid"]: line["reason"] for line in served.events("worker.stopping")}
    assert reasons == dict.fromkeys(workers, "supervisor exited")


def test_two_workers_on_a_port_in_use_exit_with_one_sentence(postgres_url: str) -> None:
    env = gateway_env(XINYONG_MASTER_KEY=TEST_MASTER_KEY)
    migrated = subprocess.run(
        [str(GATEWAY_SCRIPT), "--db", postgres_url, "migrate"], env=env, capture_output=True, check=False, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(GATEWAY_SCRIPT), "--db", postgres_url, "serve", "--workers", "2", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == (
        f"xinyong-gateway: error: Port {port} on 127.0.0.1 is in use — is another gateway running? (--port)\n"
    )


def test_two_workers_on_an_unmigrated_database_exit_with_one_sentence_before_starting_any(postgres_url: str) -> None:
    done = subprocess.run(
        [str(GATEWAY_SCRIPT), "--db", postgres_url, "serve", "--workers", "2", "--port", str(free_port())],
        env=gateway_env(XINYONG_MASTER_KEY=TEST_MASTER_KEY),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("xinyong-gateway: error: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert "xinyong-gateway migrate" in done.stderr


# -- the supervisor's rules, with worker bodies that fail on purpose ----------------------------------------------


def _worker_refusing_to_start(settings: GatewaySettings, index: int, conn: Connection) -> None:
    conn.send(("failed", "The database is on fire."))
    raise SystemExit(1)


def _worker_dying_silently(settings: GatewaySettings, index: int, conn: Connection) -> None:
    os._exit(3)


def _supervisor(target: Any) -> Supervisor:
    settings = GatewaySettings(database_url="postgresql://127.0.0.1:1/unused", master_key=TEST_MASTER_KEY)
    return Supervisor(settings, 2, display_url="test", target=target, first_backoff=0.01, max_backoff=0.05)


@pytest.mark.parametrize(
    ("target", "reason"),
    [(_worker_refusing_to_start, "The database is on fire"), (_worker_dying_silently, "exit status 3")],
)
def test_workers_that_keep_failing_right_after_start_make_the_supervisor_give_up_with_the_reason(
    target: Any, reason: str
) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ServeError) as failure:
        _supervisor(target).run()
    message = str(failure.value)
    assert f"failed {MAX_START_FAILURES} times in a row right after starting" in message
    assert f"the last time with: {reason}." in message
    assert "\n" not in message
    assert signal.getsignal(signal.SIGTERM) is previous  # its handlers are gone with it


# -- whole lines from several processes ---------------------------------------------------------------------------


@given(
    lines=st.lists(st.binary(min_size=0, max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=40),
    limit=st.integers(min_value=1, max_value=512),
)
def test_a_shared_log_batch_is_cut_only_at_line_ends_within_the_limit(lines: list[bytes], limit: int) -> None:
    data = b"".join(lines)
    pieces = list(_whole_line_pieces(data, limit))
    assert b"".join(pieces) == data
    for piece in pieces:
        assert piece.endswith(b"\n")
        assert len(piece) <= limit or piece.count(b"\n") == 1
