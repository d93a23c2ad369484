"""Suite-wide settings: hypothesis profiles (``HYPOTHESIS_PROFILE=ci`` in CI); no silent skips under CI; logging
reset around every test (tests pass in any order: ``pytest-randomly`` shuffles them, ``-p no:randomly`` does not);
the databases every backend-agnostic test runs on (``database_url``: SQLite and PostgreSQL, see
``tests/postgres.py``)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests import postgres
from xinyong_gateway.logs import reset_logging
from xinyong_gateway.metrics import MULTIPROCESS_ENV

settings.register_profile("dev", max_examples=100, deadline=None)
# CI runs on 2 shared cores: fewer examples, no per-example deadline (timing is never asserted).
settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Under ``CI=true`` a skipped test fails: CI must run everything (start the service it needs instead)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Every test starts with structlog's defaults, no context variables and the standard library's loggers as they
    were, whatever the test before it configured (the gateway's ``configure_logging``, the SDK's command line); a
    test that reads log lines asks for ``log_sink`` (``tests/gateway/conftest.py``)."""
    reset_logging()
    yield
    reset_logging()


_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def pytest_configure(config: pytest.Config) -> None:
    """A test run started in the background by a non-interactive shell (``make test &``) inherits SIGINT ignored, as
    POSIX has it, and so would every command the tests start: the Ctrl-C tests' commands would never see their
    Ctrl-C. The run takes back Python's own handling, as it has in the foreground."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _signal_handlers_as_they_were() -> Iterator[None]:
    """Every test leaves SIGINT and SIGTERM handled as it found them: a handler left behind (SIGINT ignored, say) is
    inherited by the processes later tests start."""
    before = {signum: signal.getsignal(signum) for signum in _HANDLED_SIGNALS}
    yield
    for signum, handler in before.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


@pytest.fixture(autouse=True)
def _no_metrics_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test inherits ``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve --workers`` for its workers): an app started in
    the test's process measures in that process only, and a ``serve`` subprocess makes its own folder."""
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)


# -- databases ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL database for the session: ``XINYONG_TEST_POSTGRES_URL`` if set, else a throwaway
    cluster (``initdb``/``pg_ctl`` on the PATH) stopped at the end, else the test is skipped saying so.

    With pytest-xdist each worker has its own session (and its own throwaway cluster); schemas keep them apart."""
    if postgres.CONFIGURED_URL is not None:
        yield postgres.CONFIGURED_URL
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres.throwaway_cluster())
        except postgres.ClusterUnavailableError as exc:
            # The reason is the exception's message (no server configured, no initdb/pg_ctl, no postgres account);
            # under CI=true the hook above turns this skip into a failure.
            pytest.skip(str(exc))
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty schema on the PostgreSQL server, as the server URL with ``?search_path=t_<hex>``; the schema
    is dropped with everything in it after the test."""
    schema = f"t_{secrets.token_hex(8)}"
    postgres.execute(postgres_server, f"CREATE SCHEMA {schema}")
    try:
        yield postgres.with_search_path(postgres_server, schema)
    finally:
        postgres.execute(postgres_server, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend: a new SQLite file in ``tmp_path``, or a new PostgreSQL schema
    (``postgres_url``, asked for only here, so a run of the SQLite half needs no server)."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'gateway.db'}"
