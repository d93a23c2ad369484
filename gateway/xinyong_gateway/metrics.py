"""The gateway's Prometheus metrics: every family's name, help and labels, and the instruments the hot paths hold.

Names follow Prometheus conventions: the ``xinyong_`` prefix, the unit in the name (``_seconds``, ``_events``),
``_total`` on counters, and labels whose values come from small fixed sets: a route template, a source kind, a problem
type, a scope, a partition number (0 to 15), a list name. Never a subject id, a source id, a key id or a webhook id.

Measured as things happen (:class:`GatewayMetrics`, created only when ``serve --metrics-port`` is given; otherwise
nothing on the hot path measures anything):

=============================================  =========  ==========================================================
``xinyong_http_request_duration_seconds``      histogram  ``route``: request latency, as the middleware times it
``xinyong_ingest_requests_total``              counter    ``source_kind``, ``outcome``: accepted, duplicate, or the
                                                          problem's type name (``signature-invalid``, …)
``xinyong_api_key_requests_total``             counter    ``scope``, ``outcome``: ``ok`` or the problem's type name
``xinyong_group_commit_batch_events``          histogram  appends per group commit of the inbox
``xinyong_group_commit_duration_seconds``      histogram  time from a batch's hand-off to its settlement
``xinyong_db_pool_connections``                gauge      ``state`` (in_use, idle): the store's connections
``xinyong_db_pool_max_connections``            gauge      the most the store's pool opens
``xinyong_build_info``                         gauge      ``version``; always 1
``xinyong_deliveries_total``                   counter    ``outcome``: what became of each delivery attempt of the
                                                          dispatcher running in this process (delivered, retry,
                                                          failed: given up, disabled)
=============================================  =========  ==========================================================

Read from the database at scrape time (``web.metrics``; every process shares one database, so these are not summed):
:data:`STATE_FAMILIES` (the outbox's backlog and the age of its oldest undelivered notification among them).

**Several processes** (``serve --workers N``): each worker's instruments write to memory-mapped files in the folder
``PROMETHEUS_MULTIPROC_DIR`` names (prometheus-client's multiprocess mode, which reads that variable when it is first
imported: ``serve`` sets it before it starts any worker, to a fresh folder of its own) and the one process serving
``/metrics`` sums every worker's files (:func:`scrape_registry`). Gauges count the live workers only (``livesum``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "MULTIPROCESS_ENV",
    "STATE_FAMILIES",
    "Family",
    "GatewayMetrics",
    "LabelledChildren",
    "multiprocess_dir",
    "scrape_registry",
]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that puts prometheus-client in multiprocess mode (read once, at its import)."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family the gateway exposes (or will): its name, type, help and label names."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()


STATE_FAMILIES = (
    Family(
        "xinyong_projector_lag_events",
        "gauge",
        "Inbox rows past the partition's projector position (how many events it has not applied yet).",
        ("partition",),
    ),
    Family(
        "xinyong_projector_lag_seconds",
        "gauge",
        "Age of the oldest inbox row the partition's projector has not applied (0 when caught up).",
        ("partition",),
    ),
    Family("xinyong_inbox_head_sequence", "gauge", "Seq of the last inbox row."),
    Family("xinyong_change_feed_head", "gauge", "Cursor (change id) of the last change-feed entry."),
    Family("xinyong_subjects", "gauge", "Credit files by the list their status names.", ("list",)),
    Family("xinyong_sources_active", "gauge", "Active sources by kind.", ("source_kind",)),
    Family(
        "xinyong_due_process_open_cases",
        "gauge",
        "Objections not yet ruled on and repair applications pending.",
        ("kind",),
    ),
    Family(
        "xinyong_due_process_overdue_cases",
        "gauge",
        "Objections whose reply is late (repairs carry no deadline in the policy).",
        ("kind",),
    ),
    Family(
        "xinyong_outbox_backlog_notifications",
        "gauge",
        "Notifications written to the outbox and not yet delivered, by their subscription's status.",
        ("subscription_state",),
    ),
    Family(
        "xinyong_outbox_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest undelivered notification, by its subscription's status (0 when none).",
        ("subscription_state",),
    ),
    Family("xinyong_state_read_seconds", "gauge", "Time the last read of this state from the database took."),
)
"""Families read from the database when ``/metrics`` is scraped (at most once per ``web.metrics.STATE_INTERVAL``)."""


class LabelledChildren:
    """A metric's children by label values, looked up in a dict after the first time (``labels()`` validates and
    locks on every call: too dear for the hot path)."""

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class GatewayMetrics:
    """The instruments of one gateway process, registered in a registry of their own (tests start many apps in one
    process; each has its own metrics)."""

    def __init__(self, version: str) -> None:
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._latency = Histogram(
            "xinyong_http_request_duration_seconds",
            "Request latency by route, from the request's arrival at the handler to its answer.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ingest = LabelledChildren(
            Counter(
                "xinyong_ingest_requests",
                "Ingest requests by source kind and outcome (accepted, duplicate, or the problem type's name).",
                ("source_kind", "outcome"),
                registry=registry,
            )
        )
        self.api_key = LabelledChildren(
            Counter(
                "xinyong_api_key_requests",
                "Query requests made with an API key, by scope and outcome (ok, or the problem type's name).",
                ("scope", "outcome"),
                registry=registry,
            )
        )
        batch = Histogram(
            "xinyong_group_commit_batch_events",
            "Appends committed together in one group commit of the inbox.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        commit = Histogram(
            "xinyong_group_commit_duration_seconds",
            "Time from a group commit's hand-off to the store until its appends are settled.",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self._batch_observe, self._commit_observe = batch.observe, commit.observe
        mode: dict[str, Any] = {"multiprocess_mode": "livesum"}
        self.pool = Gauge(
            "xinyong_db_pool_connections",
            "The store's database connections in this process, in use or idle (summed over live workers).",
            ("state",),
            registry=registry,
            **mode,
        )
        self.pool_max = Gauge(
            "xinyong_db_pool_max_connections",
            "The most connections the store's pool opens (summed over live workers).",
            registry=registry,
            **mode,
        )
        self.public_standings = Gauge(
            "xinyong_public_badge_standings",
            "Organisations whose badge standing this process holds in memory (web.public.standings; the least of the"
            " live workers; 0 without a book, as on PostgreSQL).",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.deliveries = LabelledChildren(
            Counter(
                "xinyong_deliveries",
                "Delivery attempts of notifications by the dispatcher in this process, by outcome (delivered, retry,"
                " failed: given up, disabled).",
                ("outcome",),
                registry=registry,
            )
        )
        Gauge(
            "xinyong_build_info",
            "The gateway's version; always 1.",
            ("version",),
            registry=registry,
            multiprocess_mode="max",
        ).labels(version).set(1)

    def route_latency(self, route: str) -> Callable[[float], None]:
        """The ``observe`` of one route's latency histogram (bound once per route, when the app is built)."""
        observe: Callable[[float], None] = self._latency.labels(route).observe
        return observe

    def delivery(self, outcome: str) -> None:
        """A dispatcher's ``on_outcome``: one delivery attempt and what became of it."""
        self.deliveries(outcome).inc()

    def group_commit(self, size: int, seconds: float) -> None:
        """A ``store.observe_commits`` observer."""
        self._batch_observe(size)
        self._commit_observe(seconds)


def multiprocess_dir() -> str | None:
    """The folder of prometheus-client's multiprocess mode, when the environment names one."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def scrape_registry(metrics: GatewayMetrics) -> CollectorRegistry:
    """What ``/metrics`` renders of the instruments: this process's registry, or, in multiprocess mode, a registry that
    sums the files of every worker (this process's included)."""
    folder = multiprocess_dir()
    if not metrics.multiprocess or folder is None:
        return metrics.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return registry
