"""``serve --workers N``: one supervisor process and N gateway processes sharing one port.

::

    supervisor (the `serve` process)                     worker k = 1..N (multiprocessing "spawn")
      check the port can be bound, then open the store once
      (master key, migrations, policy; ``web.startup``):
      one sentence and exit status 1 when something is wrong
      start N workers  ─────────────────────────────────▶ create_app(settings) on host:port with SO_REUSEPORT
                                                          (the kernel spreads new connections over the workers);
      ◀─────── "ready" | "failed", <one sentence> ──────── its own projector unless --no-projector
      SIGTERM / SIGINT: SIGTERM to every worker ─────────▶ graceful aiohttp shutdown (in-flight requests finish)
      a worker exits unasked: log it, start it again after   the supervisor's end of the pipe closing (it died)
      a back-off (0.5 s, doubling, at most 10 s); give up    is a stop too: no worker outlives it
      when one fails MAX_START_FAILURES times in a row
      right after starting (one sentence, exit status 1)

Projectors in several workers share the 16 projection partitions through ``Store.claim_partitions()`` (on
PostgreSQL: advisory locks, rebalanced as projectors come and go); every projection commit checks the state of
the partitions it writes, so two projectors never apply an event twice. Each worker keeps its own source
registry and rate limiter: a source's rate limit holds per worker process.

With ``--metrics-port``, worker 1 serves ``/metrics`` for all of them: every worker's instruments write to a fresh
folder the supervisor names in ``PROMETHEUS_MULTIPROC_DIR`` before starting any (``metrics_folder``), and the
supervisor takes a dead worker's gauges out of the sums (``mark_process_dead``); its counters stay counted.

Every log line of a worker carries ``worker`` (1..N; a restarted worker keeps its number) and ``pid``; the
supervisor's lines name the worker they are about (``worker``, ``worker_pid``). All processes write whole lines
to the one inherited stderr (``configure_logging(shared=True)``).

``--workers 1`` does not come here: it is the plain single-process ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from xinyong.errors import XinyongError
from xinyong_gateway.errors import GatewayError, ServeError
from xinyong_gateway.metrics import MULTIPROCESS_ENV
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.web.startup import METRICS_OPTIONS, bind_error, check_port, preflight

__all__ = [
    "KEEPALIVE_TIMEOUT",
    "MAX_START_FAILURES",
    "SHUTDOWN_TIMEOUT",
    "Supervisor",
    "WorkerTarget",
    "metrics_folder",
    "run_worker",
    "serve_workers",
]

SHUTDOWN_TIMEOUT = 10.0
"""Seconds a worker's aiohttp shutdown waits for in-flight requests (as the single-process ``serve``)."""
KEEPALIVE_TIMEOUT = 75.0
"""Seconds an idle connection, or one that never completes its request head, stays open: what the single-process
``serve`` gets from ``web.run_app`` (a bare ``AppRunner`` would keep it for an hour)."""
MAX_START_FAILURES = 5
"""Consecutive failed starts of one worker after which the supervisor gives up."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

WorkerTarget = Callable[[GatewaySettings, int, Connection], None]
"""A worker process's body: ``(settings, worker number, its end of the pipe to the supervisor)``."""

_CLEAR_ERRORS = (GatewayError, XinyongError, ValueError, OSError)
"""Errors whose message is a sentence for the operator (as ``xinyong-gateway`` reports them)."""


def serve_workers(settings: GatewaySettings, workers: int) -> int:
    """``xinyong-gateway serve --workers N`` (N > 1): check, then supervise N workers until a stop signal.

    Returns the exit status (0 after a clean stop); raises :class:`ServeError` (port taken, workers that keep
    failing) or the preflight's error, each one sentence."""
    from xinyong_gateway.logs import configure_logging

    check_port(settings.host, settings.port)  # first: a port in use is that, whatever else is wrong
    if settings.metrics_port is not None:
        check_port(settings.metrics_host, settings.metrics_port, METRICS_OPTIONS)
    display_url = asyncio.run(preflight(settings))
    configure_logging(settings.log_format, settings.log_level, shared=True)
    with metrics_folder(settings.metrics_port is not None):
        return Supervisor(settings, workers, display_url=display_url).run()


@contextlib.contextmanager
def metrics_folder(wanted: bool) -> Iterator[None]:
    """When ``wanted``: a fresh folder for prometheus-client's multiprocess files, named in ``PROMETHEUS_MULTIPROC_DIR``
    for the workers to inherit (each worker's instruments write there; worker 1's ``/metrics`` sums them all), and
    removed with the variable at the end. A folder of a previous run is never reused: its counts would be summed in."""
    if not wanted:
        yield
        return
    folder = tempfile.mkdtemp(prefix="xinyong-metrics-")
    previous = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


# -- the worker process ---------------------------------------------------------------------------------------
def run_worker(settings: GatewaySettings, index: int, conn: Connection) -> None:
    """The body of worker ``index`` (in a spawned process): serve until told to stop, then exit 0.

    A failure to start is sent to the supervisor as one sentence (exit status 1); the supervisor reports it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the event loop handles it: Ctrl-C is the supervisor's
    from xinyong_gateway.logs import configure_logging

    flush = configure_logging(
        settings.log_format, settings.log_level, fields={"worker": index, "pid": os.getpid()}, shared=True
    )
    log = structlog.get_logger("xinyong_gateway.worker")
    status = 0
    try:
        asyncio.run(_serve(settings, index, conn, log))
    except _CLEAR_ERRORS as exc:
        _send(conn, ("failed", _worker_error(settings, exc)))
        status = 1
    except Exception as exc:
        log.exception("worker.crashed")
        _send(conn, ("failed", f"An unexpected {type(exc).__name__}; the traceback is in its log line worker.crashed."))
        status = 1
    finally:
        log.info("worker.exit", status=status)
        flush()  # a multiprocessing child ends with os._exit: no atexit handler writes the last lines
        conn.close()
    if status:
        raise SystemExit(status)


async def _serve(settings: GatewaySettings, index: int, conn: Connection, log: Any) -> None:
    from aiohttp import web

    from xinyong_gateway.web.app import create_app, settle_heap

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reasons: list[str] = []

    def stop_for(reason: str) -> None:
        reasons.append(reason)
        stop.set()  # a second signal changes nothing: the graceful shutdown already under way goes on

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop_for, signal.Signals(signum).name)

    def supervisor_gone() -> None:  # it never writes: readable means its end closed
        loop.remove_reader(conn.fileno())
        stop_for("supervisor exited")

    loop.add_reader(conn.fileno(), supervisor_gone)
    runner = web.AppRunner(
        settle_heap(create_app(settings, serve_metrics=index == 1)),  # worker 1 serves /metrics for all
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    await runner.setup()  # opens the store, starts the source registry and the projector
    try:
        await web.TCPSite(runner, settings.host, settings.port, reuse_port=True).start()
        _send(conn, ("ready",))
        log.info("worker.ready", url=f"http://{settings.host}:{settings.port}")
        await stop.wait()
        log.info("worker.stopping", reason=reasons[0])
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(conn.fileno())
        await runner.cleanup()  # stops accepting, lets in-flight requests finish, closes the store


def _worker_error(settings: GatewaySettings, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return bind_error(settings.host, settings.port, exc)
    return " ".join(str(exc).split()) or type(exc).__name__


def _send(conn: Connection, message: tuple[str, ...]) -> None:
    with contextlib.suppress(OSError, ValueError):  # the supervisor is gone: nobody to tell
        conn.send(message)


# -- the supervisor -------------------------------------------------------------------------------------------
@dataclass
class _Slot:
    """Worker number ``index`` and its current process (None while waiting to restart)."""

    index: int
    process: BaseProcess | None = None
    conn: Connection | None = None
    started_at: float = 0.0
    ready_at: float | None = None
    failure: str | None = None
    """The sentence the current process sent when it failed."""
    failures: int = 0
    """Consecutive exits right after starting."""
    restart_at: float | None = None
    stopping: bool = False


class Supervisor:
    """Starts ``workers`` processes running ``target``, restarts those that die, stops them all on a signal.

    Call :meth:`run` from the main thread (it installs SIGTERM and SIGINT handlers for its duration).
    A worker exit counts as "right after starting" when the worker never reported ready or ran less than
    ``stable_after`` seconds after it did; ``max_failures`` such exits in a row of one worker make the
    supervisor stop the others and raise :class:`ServeError` with the last reason. The delay before a restart
    starts at ``first_backoff`` and doubles with each consecutive failure, up to ``max_backoff``."""

    def __init__(
        self,
        settings: GatewaySettings,
        workers: int,
        *,
        display_url: str,
        target: WorkerTarget = run_worker,
        first_backoff: float = 0.5,
        max_backoff: float = 10.0,
        stable_after: float = 10.0,
        max_failures: int = MAX_START_FAILURES,
        stop_timeout: float = SHUTDOWN_TIMEOUT + 15.0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._settings = settings
        self._slots = [_Slot(index) for index in range(1, workers + 1)]
        self._display_url = display_url
        self._target = target
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._stable_after = stable_after
        self._max_failures = max_failures
        self._stop_timeout = stop_timeout
        self._context = multiprocessing.get_context("spawn")
        self._log = structlog.get_logger("xinyong_gateway.supervisor")
        self._serving = False

    @property
    def url(self) -> str:
        return f"http://{self._settings.host}:{self._settings.port}"

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT, then stop every worker gracefully; the exit status (0 when every
        worker stopped cleanly). Raises :class:`ServeError` when it gives up."""
        received: list[int] = []
        wake_reader, wake_writer = socket.socketpair()
        wake_reader.setblocking(False)
        wake_writer.setblocking(False)

        def on_signal(signum: int, _frame: object) -> None:
            received.append(signum)

        previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
        previous_wakeup = signal.set_wakeup_fd(wake_writer.fileno(), warn_on_full_buffer=False)
        try:
            try:
                self._supervise(wake_reader, received)
            except BaseException:
                self._stop_all("error")
                raise
            return self._stop_all(signal.Signals(received[0]).name)
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            wake_reader.close()
            wake_writer.close()

    # -- running ---------------------------------------------------------------------------------------------
    def _supervise(self, wake: socket.socket, received: list[int]) -> None:
        self._log.info("workers.starting", workers=len(self._slots), url=self.url, database=self._display_url)
        for slot in self._slots:
            self._start(slot)
        while not received:
            now = time.monotonic()
            for slot in self._slots:
                if slot.process is None and slot.restart_at is not None and slot.restart_at <= now:
                    self._start(slot)
            due = [
                slot.restart_at - now for slot in self._slots if slot.process is None and slot.restart_at is not None
            ]
            ready = set(wait(self._waitables(wake), timeout=max(0.0, min(due)) if due else None))
            if wake in ready:
                _drain(wake)
            for slot in self._slots:
                if slot.conn is not None and slot.conn in ready:
                    self._read(slot, slot.conn)
            for slot in self._slots:
                if slot.process is not None and slot.process.sentinel in ready:
                    self._exited(slot, slot.process)

    def _waitables(self, wake: socket.socket) -> list[Any]:
        objects: list[Any] = [wake]
        for slot in self._slots:
            if slot.conn is not None:
                objects.append(slot.conn)
            if slot.process is not None:
                objects.append(slot.process.sentinel)
        return objects

    def _start(self, slot: _Slot) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=self._target,
            args=(self._settings, slot.index, theirs),
            name=f"xinyong-worker-{slot.index}",
            daemon=True,  # should the supervisor itself fail, multiprocessing's exit handler stops its workers
        )
        process.start()
        theirs.close()
        slot.process, slot.conn = process, ours
        slot.started_at, slot.ready_at, slot.failure, slot.restart_at = time.monotonic(), None, None, None
        self._log.info("worker.started", worker=slot.index, worker_pid=process.pid, restarts=slot.failures)

    def _read(self, slot: _Slot, conn: Connection) -> None:
        try:
            while conn.poll():
                message = conn.recv()
                if message[0] == "ready":
                    slot.ready_at = time.monotonic()
                    self._announce()
                elif message[0] == "failed":
                    slot.failure = str(message[1])
        except (EOFError, OSError):  # the worker's end closed: it is exiting
            conn.close()
            slot.conn = None

    def _announce(self) -> None:
        if not self._serving and all(slot.ready_at is not None for slot in self._slots):
            self._serving = True
            self._log.info("serving", url=self.url, database=self._display_url, workers=len(self._slots))

    def _exited(self, slot: _Slot, process: BaseProcess) -> None:
        process.join()
        if os.environ.get(MULTIPROCESS_ENV) and process.pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]  # its gauges leave the sums; its counters stay counted
        if slot.conn is not None:
            self._read(slot, slot.conn)  # a last message sent just before it exited
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn = None, None
        now = time.monotonic()
        stable = slot.ready_at is not None and now - slot.ready_at >= self._stable_after
        slot.failures = 1 if stable else slot.failures + 1
        reason = slot.failure or _describe_exit(process.exitcode)
        if slot.failures >= self._max_failures:
            self._log.error(
                "workers.giving_up", worker=slot.index, worker_pid=process.pid, failures=slot.failures, error=reason
            )
            raise ServeError(
                f"Worker {slot.index} failed {slot.failures} times in a row right after starting, the last time"
                f" with: {reason.rstrip('.')}."
            )
        delay = min(self._first_backoff * 2 ** (slot.failures - 1), self._max_backoff)
        slot.restart_at = now + delay
        self._log.warning(
            "worker.exited",
            worker=slot.index,
            worker_pid=process.pid,
            exitcode=process.exitcode,
            error=reason,
            restart_in_s=delay,
        )

    # -- stopping --------------------------------------------------------------------------------------------
    def _stop_all(self, reason: str) -> int:
        """SIGTERM to every running worker, wait for them (SIGKILL after ``stop_timeout``); the exit status."""
        running = [(slot, slot.process) for slot in self._slots if slot.process is not None]
        self._log.info("workers.stopping", reason=reason, workers=len(running))
        for _, process in running:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        clean = True
        deadline = time.monotonic() + self._stop_timeout
        for slot, process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                self._log.error("worker.kill", worker=slot.index, worker_pid=process.pid, after_s=self._stop_timeout)
                process.kill()
                process.join()
                clean = False
            elif process.exitcode not in (0, -signal.SIGTERM):  # SIGTERM before it could handle signals: fine
                self._log.warning("worker.stopped_badly", worker=slot.index, worker_pid=process.pid, error=slot.failure)
                clean = False
            if slot.conn is not None:
                slot.conn.close()
            slot.process, slot.conn = None, None
        self._log.info("workers.stopped", clean=clean)
        return 0 if clean else 1


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by signal {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while sock.recv(512):
            pass
