"""``GET /metrics`` on a listener of its own, and what the routes count when metrics are on.

``serve --metrics-port P`` (``XINYONG_METRICS_PORT``; off by default) starts a second aiohttp site, on
``--metrics-host`` (default ``127.0.0.1``), whose only route is ``/metrics`` in the Prometheus text format: the public
port never answers it (a 404 problem there, like any unknown path). Under ``--workers N`` worker 1 serves it, summing
every worker's instruments (``xinyong_gateway.metrics``, multiprocess mode).

A scrape renders the instruments, then the state read from the database (:func:`state_families`): projector lag per
partition, inbox and change-feed heads, credit files per list, active sources, objections and repairs open and overdue.
That read costs a few index lookups plus a pass over ``subjects`` and over the credit files with open cases, so it is
made at most once per :data:`STATE_INTERVAL` seconds and shared by the scrapes in between. Each process samples its
store's connection pool every :data:`POOL_INTERVAL` seconds.

The routes count (:func:`counted`) around the handler, inside the middleware: ingest by source kind and outcome, the
query side by scope and outcome. The outcome of a failed request is its problem type's name; label values come from
fixed sets only (a source id or a key id is never one).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from xinyong import problems
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.operations import OperationsReport, operations_report
from xinyong_gateway.errors import StoreError, StoreUnavailableError
from xinyong_gateway.metrics import STATE_FAMILIES, GatewayMetrics, LabelledChildren, outcome_label, scrape_registry
from xinyong_gateway.store import Store
from xinyong_gateway.web.middleware import LOG_FACTS
from xinyong_gateway.web.problems import ProblemError

__all__ = ["POOL_INTERVAL", "STATE_INTERVAL", "MetricsEndpoint", "counted", "sample_pool", "state_families"]

STATE_INTERVAL = 10.0
"""Seconds a read of the database state serves scrapes before the next scrape reads it again."""
POOL_INTERVAL = 1.0
"""Seconds between two samples of the store's connection pool."""

_log = structlog.get_logger("xinyong_gateway.metrics")


@functools.cache
def _label(outcome: str) -> str:
    return outcome_label(outcome) if ":" in outcome else outcome


def counted(
    handler: Handler, children: LabelledChildren, first: Callable[[web.Request], str], ok: Callable[[web.Request], str]
) -> Handler:
    """``handler``, counting each request in ``children(first(request), outcome)``: ``ok(request)`` when it answers,
    else the name of the problem it raised (the middleware, outside, turns it into the answer)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        outcome = problems.INTERNAL
        try:
            response = await handler(request)
            outcome = ok(request)
            return response
        except ProblemError as exc:
            outcome = exc.type
            raise
        except StoreUnavailableError:
            outcome = problems.STORE_UNAVAILABLE
            raise
        except ConnectionResetError:
            outcome = "client-disconnected"
            raise
        except web.HTTPException as exc:
            outcome = f"http-{exc.status}"
            raise
        finally:
            children(first(request), _label(outcome)).inc()

    return handle


def ingest_outcome(request: web.Request) -> str:
    """``accepted`` or ``duplicate`` (what the ingest handler put on the log line)."""
    return str(request[LOG_FACTS].get("outcome", "ok"))


def state_families(report: OperationsReport, read_seconds: float) -> list[Metric]:
    """The families read from the database (``xinyong_gateway.metrics.STATE_FAMILIES``), as of ``report``."""
    family = {spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels) for spec in STATE_FAMILIES}
    for partition, lag in report.projector_lag.items():
        family["xinyong_projector_lag_events"].add_metric([str(partition)], lag.events)
        family["xinyong_projector_lag_seconds"].add_metric([str(partition)], lag.seconds)
    family["xinyong_inbox_head_sequence"].add_metric([], report.state.inbox_head)
    family["xinyong_change_feed_head"].add_metric([], report.state.change_feed_head)
    for list_name, count in sorted(report.lists.items()):
        family["xinyong_subjects"].add_metric([list_name], count)
    for kind, count in sorted(report.state.active_sources.items()):
        family["xinyong_sources_active"].add_metric([kind], count)
    for kind, count in report.open_cases.items():
        family["xinyong_due_process_open_cases"].add_metric([kind], count)
    family["xinyong_due_process_overdue_cases"].add_metric(["objection"], report.overdue_objections)
    family["xinyong_state_read_seconds"].add_metric([], read_seconds)
    return list(family.values())


class _Families(Collector):
    """A collector of families computed beforehand (the state read is async; a collector is not)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return self.families


def _pool_sampler(metrics: GatewayMetrics, store: Store) -> Callable[[], None]:
    in_use, idle = metrics.pool.labels("in_use"), metrics.pool.labels("idle")

    def sample() -> None:
        usage = store.pool_usage()
        in_use.set(usage.in_use)
        idle.set(usage.idle)
        metrics.pool_max.set(usage.max_size)

    return sample


async def sample_pool(metrics: GatewayMetrics, store: Store, interval: float = POOL_INTERVAL) -> None:
    """Sample the store's connection pool into ``metrics`` now and every ``interval`` seconds, until cancelled."""
    sample = _pool_sampler(metrics, store)
    while True:
        sample()
        await asyncio.sleep(interval)


class MetricsEndpoint:
    """The ``/metrics`` listener: an aiohttp app of its own, started and stopped with the gateway's resources."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        store: Store,
        policies: PolicyInForce,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._policies = policies
        self._clock = clock
        self._state = _Families()
        self._read_at = float("-inf")
        self._reading: asyncio.Lock = asyncio.Lock()
        self._registry: CollectorRegistry | None = None

    async def _fresh_state(self) -> None:
        async with self._reading:
            if time.monotonic() - self._read_at < STATE_INTERVAL:
                return
            started = time.perf_counter()
            now = datetime.fromtimestamp(self._clock(), UTC)
            report = await operations_report(self._store, self._policies.policy, now)
            self._state.families = state_families(report, time.perf_counter() - started)
            self._read_at = time.monotonic()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            await self._fresh_state()
        except StoreError as exc:  # the instruments still answer; the state families keep their last reading
            _log.warning("metrics.state_unavailable", error=str(exc))
        instruments = generate_latest(scrape_registry(self._metrics))
        state = CollectorRegistry(auto_describe=False)
        state.register(self._state)
        body = instruments + generate_latest(state)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.handle)
        return app

    @contextlib.asynccontextmanager
    async def serving(self, host: str, port: int, sockets: Iterable[Any] | None = None) -> AsyncIterator[None]:
        """Serve ``/metrics`` on ``sockets`` (already bound: ``serve``) or on ``host:port`` while inside."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            if sockets is not None:
                for sock in sockets:
                    await web.SockSite(runner, sock).start()
            else:
                await web.TCPSite(runner, host, port).start()
            _log.info("metrics.serving", url=f"http://{host}:{port}/metrics")
            yield
        finally:
            await runner.cleanup()
