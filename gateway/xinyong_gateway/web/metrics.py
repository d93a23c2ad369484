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

The middleware tells each route's :func:`route_measure` of every answered request: its latency, and for ingest its count
by source kind and outcome, for the query side by scope and outcome. The outcome is the one on the log line (a failed
request's is its problem type's name), so the counts and the log agree; label values come from fixed sets only (a
source id or a key id is never one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.operations import OperationsReport, operations_report
from xinyong_gateway.errors import StoreError
from xinyong_gateway.metrics import STATE_FAMILIES, GatewayMetrics, LabelledChildren, scrape_registry
from xinyong_gateway.store import Store
from xinyong_gateway.web.middleware import Measure

__all__ = ["POOL_INTERVAL", "STATE_INTERVAL", "MetricsEndpoint", "route_measure", "sample_pool", "state_families"]

STATE_INTERVAL = 10.0
"""Seconds a read of the database state serves scrapes before the next scrape reads it again."""
POOL_INTERVAL = 1.0
"""Seconds between two samples of the store's connection pool."""

_log = structlog.get_logger("xinyong_gateway.metrics")


def route_measure(
    metrics: GatewayMetrics,
    route: str,
    outcomes: LabelledChildren | None = None,
    first: Callable[[web.Request, dict[str, Any]], str] | None = None,
) -> Measure:
    """What the middleware tells of each request of ``route``: its latency, and with ``outcomes``, a count under
    ``(first(request, facts), outcome)``. The outcome is the log line's: ``accepted`` or ``duplicate`` (ingest),
    ``client_disconnected``, the problem type's name, or ``ok``."""
    observe = metrics.route_latency(route)
    if outcomes is None:

        def timed(request: web.Request, elapsed: float, facts: dict[str, Any]) -> None:
            observe(elapsed)

        return timed
    label = first or (lambda request, facts: "")

    def counted(request: web.Request, elapsed: float, facts: dict[str, Any]) -> None:
        observe(elapsed)
        outcomes(label(request, facts), facts.get("outcome") or facts.get("problem") or "ok").inc()

    return counted


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
    now_us = time.time() * 1_000_000
    for state in ("active", "disabled"):
        count, oldest = report.state.outbox_pending.get(state, (0, None))
        family["xinyong_outbox_backlog_notifications"].add_metric([state], count)
        age = max(0.0, (now_us - oldest) / 1e6) if oldest is not None else 0.0
        family["xinyong_outbox_oldest_pending_age_seconds"].add_metric([state], age)
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
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

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
