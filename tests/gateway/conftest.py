"""A real gateway for each test: the aiohttp app on a localhost port, on a fresh database of each backend.

``gateway_settings`` takes ``database_url`` (``tests/conftest.py``), so every test that uses the ``gateway`` fixture
runs twice: on a new SQLite file (``[sqlite]``) and on a new PostgreSQL schema (``[postgresql]``). Helpers that
look at the database behind the store's back (``inbox_refuses_inserts``, ``database_rows``, ``at_rest_holding``)
know both backends.

Also: ``assert_problem`` (status, problem ``type`` and ``application/problem+json`` in one check),
``eventually`` (poll a condition with a deadline instead of sleeping a fixed time) and ``served_gateway``
(the real ``xinyong-gateway serve`` in a subprocess on SQLite, once per module, for synchronous clients such as
hypothesis tests)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from xinyong.events import SourceKind
from xinyong.subscriptions import SubscriptionRequest
from xinyong.webhooks import SigningKey, SigningSecret, signature_headers
from xinyong_gateway import cli
from xinyong_gateway.access import IssuedApiKey, add_api_key, add_source, ensure_signing_key
from xinyong_gateway.credit.policy import DEFAULT_POLICY_FILE, default_policy
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.logs import configure_logging
from xinyong_gateway.notify import OutboundGuard, parse_networks, subscribe
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import ApiScope, Store, SubscriptionRecord, open_store, sqlite_path_from_url
from xinyong_gateway.web.app import API_KEYS, MASTER_KEY, REGISTRY, STORE, create_app

TEST_MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
DEFAULT_POLICY_TEXT = (resources.files("xinyong_gateway.credit") / DEFAULT_POLICY_FILE).read_text(encoding="utf-8")
"""The shipped policy file, as installed (tests derive other policies from it)."""
PROBLEM_JSON = "application/problem+json"
GATEWAY_SCRIPT = Path(sys.executable).parent / "xinyong-gateway"


async def assert_problem(response: ClientResponse, status: int, type_uri: str) -> dict[str, Any]:
    """Check that ``response`` is the problem ``type_uri`` with ``status``; return the problem document."""
    text = await response.text()
    assert (response.status, response.content_type) == (status, PROBLEM_JSON), text
    problem: dict[str, Any] = json.loads(text)
    assert problem["type"] == type_uri, text
    assert problem["status"] == status
    return problem


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 5.0, interval: float = 0.05) -> None:
    """Poll ``check`` until it returns true; fail after ``within`` seconds (a deadline, not a measurement)."""
    try:
        async with asyncio.timeout(within):
            # The condition lives in another component (the registry's refresh task): poll, there is no event.
            while True:
                if await check():
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        pytest.fail(f"condition not met within {within} s")


class ShiftedClock:
    """Wall time plus an offset a test moves (forward, or back): a clock for ``create_app(clock=...)`` that two
    gateways share, so one can be held to the other at the same moment."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Source:
    source_id: str
    key: SigningSecret | SigningKey
    kind: SourceKind


@dataclass
class Gateway:
    """A running gateway and helpers to talk to it the way a sender would."""

    client: TestClient[Any, Any]
    settings: GatewaySettings
    folder: Path
    """A folder of the test's own for the files it writes (policy files, say); the SQLite database lives here."""

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the backend is SQLite; None on PostgreSQL."""
        url = self.settings.database_url
        return sqlite_path_from_url(url) if is_sqlite(url) else None

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    @property
    def store(self) -> Store:
        """The running app's store (the same one ingest appends to)."""
        app = self.client.app
        assert app is not None
        return app[STORE]

    @property
    def master_key(self) -> MasterKey:
        app = self.client.app
        assert app is not None
        return app[MASTER_KEY]

    async def add_source(
        self,
        kind: SourceKind = "marketplace",
        *,
        ed25519: bool = False,
        rate: float | None = None,
        uscc: str | None = None,
    ) -> Source:
        """Register a source through the running app's store; it is known to the gateway on return.

        The registry is reloaded at once, so a test does not wait for the gateway's reload of unknown ids
        (throttled to one per 0.2 s); ``test_ingest`` covers a source appearing without that reload."""
        app = self.client.app
        assert app is not None
        signing_key = SigningKey.generate() if ed25519 else None
        record, secret = await add_source(
            app[STORE],
            app[MASTER_KEY],
            kind=kind,
            name=f"test {kind}",
            uscc=uscc,
            public_key=signing_key.public_key if signing_key else None,
            rate_limit=rate,
            now=datetime.now(UTC),
        )
        key = signing_key or secret
        assert key is not None
        await app[REGISTRY].refresh()
        return Source(record.source_id, key, kind)

    async def add_api_key(
        self,
        scopes: Sequence[ApiScope] = ("screen", "changes"),
        *,
        rate: float | None = None,
        sources: Sequence[str] = (),
    ) -> IssuedApiKey:
        """Issue an API key through the running app's store; the gateway knows it on return (its key registry is
        reloaded at once; ``test_api_keys`` covers a key appearing without that reload)."""
        app = self.client.app
        assert app is not None
        issued = await add_api_key(
            app[STORE],
            app[MASTER_KEY],
            name="test key",
            scopes=scopes,
            rate_limit=rate,
            now=datetime.now(UTC),
            sources=sources,
        )
        await app[API_KEYS].refresh()
        return issued

    async def add_subscription(
        self, url: str, *, allowed: str = "127.0.0.1/32", lists: Sequence[str] = ("black",)
    ) -> tuple[SubscriptionRecord, str, IssuedApiKey]:
        """Subscribe ``url`` through the store, as ``POST /v1/subscriptions`` does (the guard allowing ``allowed``),
        for a new API key of scope ``subscribe``: the subscription, its secret and the key."""
        issued = await self.add_api_key(("subscribe",))
        record, secret = await subscribe(
            self.store,
            self.master_key,
            OutboundGuard(parse_networks(allowed)),
            issued.record.key_id,
            SubscriptionRequest(url=url, lists=list(lists)),
            datetime.now(UTC),
        )
        return record, secret, issued

    async def post_and_project(
        self, bodies: Sequence[Mapping[str, Any]], prefix: str, *, source: Source | None = None
    ) -> None:
        """Post ``bodies`` from ``source`` (a new marketplace if none), the n-th as webhook id ``{prefix}_{n}``, each
        accepted; then project everything under the default policy, as the gateway's projector would."""
        source = source or await self.add_source("marketplace")
        for n, body in enumerate(bodies):
            response = await self.post(source, body, webhook_id=f"{prefix}_{n}")
            assert response.status == 202, await response.text()
        await self.project()

    async def project(self) -> None:
        """Apply every stored event under the default policy, as the gateway's projector would."""
        await Projector(self.store, self.master_key, default_policy()).catch_up()

    async def post(
        self,
        source: Source,
        body: Mapping[str, Any] | bytes,
        *,
        webhook_id: str = "msg_test_1",
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> ClientResponse:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        signed = signature_headers(source.key, webhook_id, raw, timestamp=timestamp or int(time.time()))
        if content_type is not None:
            signed["Content-Type"] = content_type
        signed.update(headers or {})
        return await self.client.post(f"/v1/webhooks/{source.source_id}", data=raw, headers=signed)

    def sign(
        self,
        source: Source,
        body: Mapping[str, Any] | bytes,
        *,
        webhook_id: str = "msg_test_1",
        timestamp: int | None = None,
    ) -> dict[str, str]:
        """The webhook headers (and ``Content-Type: application/json``) a sender would attach to ``body``."""
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        signed = signature_headers(source.key, webhook_id, raw, timestamp=timestamp or int(time.time()))
        return {**signed, "Content-Type": "application/json"}

    async def post_raw(
        self,
        source_id: str,
        data: bytes | AsyncIterable[bytes],
        headers: Mapping[str, str],
        *,
        skip_auto_headers: tuple[str, ...] = (),
    ) -> ClientResponse:
        """Post exactly ``data`` with exactly ``headers`` (no signing): for requests a sender gets wrong.

        An async iterable is sent chunked, without ``Content-Length``."""
        return await self.client.post(
            f"/v1/webhooks/{source_id}", data=data, headers=dict(headers), skip_auto_headers=skip_auto_headers
        )


@pytest.fixture
def gateway_settings(database_url: str, request: pytest.FixtureRequest) -> GatewaySettings:
    """Settings of the test gateway, on each backend; a module that drives projection itself sets
    ``RUN_PROJECTOR = False``. The public site reuses no answer (``public_cache_ttl=0``): these tests look at a page
    right after changing what it shows; ``test_public_answers.py`` tests the reuse."""
    return GatewaySettings(
        database_url=database_url,
        master_key=TEST_MASTER_KEY,
        source_refresh_interval=0.2,
        public_cache_ttl=0,
        log_format="json",
        projector=getattr(request.module, "RUN_PROJECTOR", True),
    )


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings, aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[Gateway]:
    """The app on a migrated database with its first attestation signing key, as ``migrate`` leaves it."""
    async with open_store(gateway_settings.database_url, create=True) as store:
        await store.migrate()
        await ensure_signing_key(store, MasterKey.from_text(TEST_MASTER_KEY), now=datetime.now(UTC))
    client = await aiohttp_client(create_app(gateway_settings))
    yield Gateway(client, gateway_settings, tmp_path)


# -- the database behind the store's back ---------------------------------------------------------------------


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite:")


def backend_of(database_url: str) -> Literal["sqlite", "postgresql"]:
    return "sqlite" if is_sqlite(database_url) else "postgresql"


def migration_names(backend: Literal["sqlite", "postgresql"]) -> list[str]:
    """The names of the migrations packaged for ``backend``, in the order they apply."""
    folder = resources.files("xinyong_gateway.store") / "migrations" / backend
    return sorted(item.name for item in folder.iterdir() if item.name.endswith(".sql"))


@contextlib.asynccontextmanager
async def inbox_refuses_inserts(database_url: str, table: str = "inbox") -> AsyncIterator[None]:
    """Make every insert into the inbox (or ``table``) fail, set up from another connection (the gateway's code is
    untouched).

    Stands in for a database that cannot commit (disk full, I/O error): the failure reaches the store as its
    driver's error inside its write transaction, as those do: on SQLite a trigger that aborts (a
    ``sqlite3.Error``), on PostgreSQL a trigger that raises SQLSTATE 53100 ``disk_full``."""
    trigger = f"test_refuse_{table}"
    if is_sqlite(database_url):
        with contextlib.closing(sqlite3.connect(sqlite_path_from_url(database_url), isolation_level=None)) as conn:
            conn.execute(
                f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
            )
            try:
                yield
            finally:
                conn.execute(f"DROP TRIGGER {trigger}")
        return
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'disk is full' USING ERRCODE = 'disk_full'; END $$;"
            f" CREATE TRIGGER {trigger} BEFORE INSERT ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {trigger}()"
        )
        try:
            yield
        finally:
            await connection.execute(f"DROP TRIGGER {trigger} ON {table}; DROP FUNCTION {trigger}()")
    finally:
        await connection.close()


async def database_rows(database_url: str) -> dict[str, list[str]]:
    """Every row of every table (the migration bookkeeping included), each as text, sorted; read from a
    connection of the test's own. On PostgreSQL: the tables of the test's schema, rows as ``t::text``."""
    if is_sqlite(database_url):
        with contextlib.closing(sqlite3.connect(sqlite_path_from_url(database_url))) as conn:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {
                table: sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))  # noqa: S608 -- names from sqlite_master
                for table in tables
            }
    connection = await asyncpg.connect(database_url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        rows = {}
        for (table,) in tables:
            texts = await connection.fetch(f'SELECT t::text FROM "{table}" t')  # noqa: S608 -- names from the catalogue
            rows[table] = sorted(text for (text,) in texts)
        return rows
    finally:
        await connection.close()


async def at_rest_holding(database_url: str, needles: Sequence[bytes]) -> list[str]:
    """Where any of ``needles`` is stored in plain form, as ``"place: needle"`` lines (empty: nowhere).

    SQLite: the bytes of every file of the database (the database, its write-ahead log and shared memory, its
    key file), free pages and stale log frames included. PostgreSQL has no files of ours to read: every row of
    every table of the test's schema, as text, where a ``bytea`` column shows as hex (both forms are searched)."""
    if is_sqlite(database_url):
        path = sqlite_path_from_url(database_url)
        files = sorted(item for item in path.parent.iterdir() if item.name.startswith(path.name) and item.is_file())
        assert path in files, f"no database file at {path}"
        return [f"{item.name}: {needle!r}" for item in files for needle in needles if needle in item.read_bytes()]
    return [
        f"{table} row: {needle!r}"
        for table, rows in (await database_rows(database_url)).items()
        for row in rows
        for needle in needles
        if needle.decode(errors="replace") in row or needle.hex() in row  # a binary needle: its hex form counts
    ]


# -- the gateway's log ------------------------------------------------------------------------------------------


LogSinkFactory = Callable[..., io.StringIO]


@pytest.fixture
def log_sink() -> LogSinkFactory:
    """Configure the gateway's logging into a new buffer: ``log_sink(log_format="json", level="info", *, fields=None)``
    returns the buffer the lines are written to (each at once). The suite resets logging after every test."""

    def configure(
        log_format: Literal["auto", "json", "console"] = "json",
        level: Literal["debug", "info", "warning", "error"] = "info",
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(log_format, level, stream=buffer, fields=fields)
        return buffer

    return configure


@pytest.fixture
def gateway_log(log_sink: LogSinkFactory) -> io.StringIO:
    """The gateway's log lines (JSON, as in production) written during the test."""
    return log_sink()


@pytest.fixture
async def peer_server() -> AsyncIterator[Callable[[str, Callable[[web.Request], Awaitable[web.StreamResponse]]], Any]]:
    """Start a stand-in for the gateway that answers ``POST route`` with ``handle`` (a scripted peer for the SDK's
    retry paths); returns its base URL. Every server started is closed at the end of the test."""
    servers: list[TestServer] = []

    async def start(route: str, handle: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application()
        app.router.add_post(route, handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


# -- the real server in a subprocess ----------------------------------------------------------------


@dataclass
class ServedGateway:
    """``xinyong-gateway serve`` running in a subprocess, with one marketplace source registered."""

    base_url: str
    source_id: str
    secret: SigningSecret
    log_path: Path
    process: subprocess.Popen[bytes]


def gateway_env(**extra: str) -> dict[str, str]:
    """The environment for a ``xinyong-gateway`` subprocess: no ``XINYONG_*`` setting leaks in from outside."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the gateway exited early:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:  # noqa: S310 -- our localhost URL
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    pytest.fail(f"the gateway did not become ready within {timeout} s:\n{log_path.read_text(errors='replace')}")


def cli_json(*args: str) -> Any:
    """Run ``xinyong-gateway --json ARGS`` in this process and return its JSON output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["--json", *args])
    assert status == 0, args
    return json.loads(out.getvalue())


def admin(url: str, *commands: tuple[str, ...]) -> list[Any]:
    """Run ``xinyong-gateway --db URL migrate`` and then each command in this process, with ``XINYONG_MASTER_KEY``
    as the only ``XINYONG_*`` setting; return the commands' JSON outputs."""
    with pytest.MonkeyPatch.context() as patch:  # the in-process CLI reads its settings from the environment
        for name in list(os.environ):
            if name.startswith("XINYONG_"):
                patch.delenv(name)
        patch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
        cli_json("--db", url, "migrate")
        return [cli_json("--db", url, *command) for command in commands]


@contextlib.contextmanager
def serving(
    url: str, log_path: Path, *serve_args: str, ready: bool = True, **env: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``xinyong-gateway --db URL serve`` on a free localhost port (JSON log to ``log_path``, ``XINYONG_*`` settings
    from ``env`` only): ``(port, process)``, awaited at ``/readyz`` unless ``ready`` is false; SIGTERM at the end
    (SIGKILL after 15 s)."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(GATEWAY_SCRIPT), "--db", url, "serve", "--port", str(port), *serve_args, "--log-format", "json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=gateway_env(XINYONG_MASTER_KEY=TEST_MASTER_KEY, **env),
        )
    try:
        if ready:
            _wait_ready(f"http://127.0.0.1:{port}", process, log_path)
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def served_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    """The real server on a free localhost port, started once per module (migrated, one marketplace source)."""
    folder = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{folder / 'gateway.db'}"
    (source,) = admin(url, ("sources", "add", "--kind", "marketplace", "--name", "fuzz"))
    log_path = folder / "gateway.log"
    with serving(url, log_path) as (port, process):
        secret = SigningSecret.parse(source["secret"])
        yield ServedGateway(f"http://127.0.0.1:{port}", source["source_id"], secret, log_path, process)


BENCH_FOLDER = Path(__file__).resolve().parents[2] / "bench"
BENCH_DEADLINE = 240.0
"""Seconds a bounded crash bench may take on a loaded 2-core machine (a deadline, never a measurement)."""


async def run_bench_json(script: str, *args: str) -> dict[str, Any]:
    """Run ``bench/<script>`` with ``args`` and ``--json`` under the test master key; its figures, once it exits 0
    within :data:`BENCH_DEADLINE` (its output in the failure otherwise)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH_FOLDER / script),
        *args,
        "--json",
        env=gateway_env(XINYONG_MASTER_KEY=TEST_MASTER_KEY),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(BENCH_DEADLINE):
        out, err = await process.communicate()
    assert process.returncode == 0, out.decode() + err.decode()
    figures: dict[str, Any] = json.loads(out)
    return figures
