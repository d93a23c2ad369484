"""``create_app(settings)``: the gateway's aiohttp application.

The resources are opened and closed in one ``cleanup_ctx``: the master key, the store (checked against the key), the
source registry and the API key registry (``access``), the policy in force (``credit.in_force``), a task refreshing
each of those three, and the projector unless ``settings.projector`` is off (with it, the retention job every
``settings.retention_interval`` seconds: ``credit.retention``). Typed app state uses ``web.AppKey``
(``STORE``, ``MASTER_KEY``, ``REGISTRY``, ``API_KEYS``, ``SIGNING_KEYS``). Routes:

- ``POST /v1/webhooks/{source_id}``  signed event ingest (``web.ingest``)
- ``POST /v1/screenings``            screen 1 to 1000 subjects (API key, scope ``screen``; ``web.query``)
- ``GET /v1/lists/changes``          the change feed (API key, scope ``changes``; ``web.query``)
- ``POST /v1/attestations``          a signed attestation of one subject's status (API key, scope ``attest``;
                                     ``web.attestations``)
- ``GET /.well-known/jwks.json``     the attestation signing keys, current and retired (``web.attestations``)
- ``/v1/subscriptions[/{id}[/rotate-secret|/replay]]`` notifications of changes (scope ``subscribe``;
  ``web.subscriptions``); the dispatcher that delivers them runs here unless ``settings.dispatcher`` is off
- ``GET /openapi.json``              the OpenAPI 3.1 document (``xinyong.openapi``, as in ``schemas/openapi.json``)
- ``GET /public/…``                  the public disclosure site and the credit badge (``web.public``; POST too for
                                     ``/public/search``)
- ``GET /healthz``                   the process is alive
- ``GET /readyz``                    the store is reachable and every migration is applied

With ``settings.metrics_port`` set, the routes are measured (``xinyong_gateway.metrics``: latency per route, ingest and
API-key requests by outcome, group commits, the store's pool) and ``GET /metrics`` is served on a listener of its own
(``web.metrics``), never on this application's port.

Any other method on these paths is a 405 problem, any other path a 404 problem, through routes of the application's
own (``expect_continue`` explains why).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import HttpVersion11, hdrs, web

from xinyong import problems
from xinyong.openapi import build_openapi
from xinyong.schemas import render
from xinyong_gateway import audit
from xinyong_gateway.access import ApiKeyRegistry, SigningKeyring, SourceRegistry, refresh_every
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.policy import Policy, policy_from
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.credit.retention import RetentionResult, run_retention
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import StoreError, StoreUnavailableError
from xinyong_gateway.keyring import unlock
from xinyong_gateway.metrics import GatewayMetrics
from xinyong_gateway.notify import OutboundGuard, dispatcher_for, parse_networks
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import Store, open_store
from xinyong_gateway.web.attestations import AttestationHandler
from xinyong_gateway.web.ingest import IngestHandler
from xinyong_gateway.web.metrics import MetricsEndpoint, route_measure, sample_pool
from xinyong_gateway.web.middleware import Measure, answered
from xinyong_gateway.web.problems import ProblemError
from xinyong_gateway.web.public import PublicSite
from xinyong_gateway.web.query import QueryHandler
from xinyong_gateway.web.subscriptions import SubscriptionsHandler

__all__ = [
    "API_KEYS",
    "GC_FIRST_GENERATION_THRESHOLD",
    "MASTER_KEY",
    "REGISTRY",
    "SIGNING_KEYS",
    "STORE",
    "create_app",
    "settle_heap",
]

STORE = web.AppKey("store", Store)
MASTER_KEY = web.AppKey("master_key", MasterKey)
REGISTRY = web.AppKey("registry", SourceRegistry)
API_KEYS = web.AppKey("api_keys", ApiKeyRegistry)
SIGNING_KEYS = web.AppKey("signing_keys", SigningKeyring)

_log = structlog.get_logger("xinyong_gateway.app")


async def _retention_pass(
    store: Store, master: MasterKey, policy: Policy, clock: Callable[[], float]
) -> RetentionResult:
    """One run of the retention job inside ``serve`` (``credit/retention.py``); what it erased goes to the audit
    log as the actor ``serve``, and its counts to the log."""
    result = await run_retention(store, master, policy, datetime.fromtimestamp(clock(), UTC))
    if result.erased or result.subjects_forgotten:
        await audit.record(store, master, "serve", "retention.run", store.display_url, result.audit_details)
    _log.info("retention.run", erased=result.erased, forgotten=result.subjects_forgotten, events=result.events)
    return result


def create_app(
    settings: GatewaySettings,
    *,
    clock: Callable[[], float] = time.time,
    serve_metrics: bool = True,
    metrics_sockets: Sequence[socket.socket] | None = None,
) -> web.Application:
    """The gateway application; opening it resolves the master key and opens the store.

    With ``settings.metrics_port`` set, its routes are measured and, when ``serve_metrics`` (``serve --workers``: worker
    1 only), ``/metrics`` is served on ``metrics_sockets`` (bound by ``serve``) or on the configured host and port."""
    app = web.Application(client_max_size=settings.body_limit)  # the middleware wraps each route (``answered``)
    from xinyong_gateway import __version__  # the package imports this module first

    metrics = GatewayMetrics(__version__) if settings.metrics_port is not None else None
    ingest = IngestHandler(body_limit=settings.body_limit, body_timeout=settings.body_timeout, clock=clock)
    query = QueryHandler(body_timeout=settings.body_timeout, clock=clock)
    attestations = AttestationHandler(query, issuer=settings.issuer, body_timeout=settings.body_timeout, clock=clock)
    public = PublicSite(
        clock=clock,
        cache_ttl=settings.public_cache_ttl,
        cache_entries=settings.public_cache_entries,
        badge_book=settings.public_badge_book,
        page_book=settings.public_page_book,
    )
    public.setup(app)
    subscriptions = SubscriptionsHandler(body_timeout=settings.body_timeout, clock=clock)
    guard = OutboundGuard(parse_networks(settings.outbound_allowed_networks))
    configured_policy = policy_from(settings.policy_file)  # a bad policy file fails here, before serving
    openapi_document = render(build_openapi()).encode()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = open_store(settings.database_url)
        await store.open()  # first: a missing database is that, not a missing key (and nothing is created)
        try:
            master = await unlock(store, settings)
            registry = SourceRegistry(
                store,
                master,
                tolerance=settings.timestamp_tolerance,
                default_rate=settings.default_source_rate,
                refresh_interval=settings.source_refresh_interval,
                clock=clock,
            )
            await registry.refresh()
            api_keys = ApiKeyRegistry(
                store,
                master,
                default_rate=settings.default_key_rate,
                refresh_interval=settings.api_key_refresh_interval,
            )
            await api_keys.refresh()
            policies = PolicyInForce(store, configured_policy)
            await policies.refresh()
            keyring = SigningKeyring(store, master)
            await keyring.refresh()
            app[STORE] = store
            app[MASTER_KEY] = master
            app[REGISTRY] = registry
            app[API_KEYS] = api_keys
            app[SIGNING_KEYS] = keyring
            ingest.attach(store, master, registry)
            query.attach(store, master, api_keys, policies)
            attestations.attach(api_keys, keyring)
            public.attach(store, master, policies, registry)
            subscriptions.attach(store, master, api_keys, guard)
            tasks = [
                asyncio.create_task(registry.run(), name="xinyong-source-refresh"),
                asyncio.create_task(api_keys.run(), name="xinyong-api-key-refresh"),
                asyncio.create_task(
                    refresh_every(settings.api_key_refresh_interval, policies.refresh, _log, "policy.refresh_failed"),
                    name="xinyong-policy-refresh",
                ),
                asyncio.create_task(
                    refresh_every(
                        settings.api_key_refresh_interval, keyring.refresh, _log, "signing_keys.refresh_failed"
                    ),
                    name="xinyong-signing-key-refresh",
                ),
            ]
            if public.follows_standings:
                if metrics is not None:
                    public.measure_standings(metrics.public_standings.set)
                tasks.append(asyncio.create_task(public.follow_standings(), name="xinyong-public-standings"))
            if settings.projector:
                projector = Projector(store, master, configured_policy, claims=store.claim_partitions(), clock=clock)
                tasks.append(asyncio.create_task(projector.run(), name="xinyong-projector"))
                if settings.retention_interval > 0:  # where the projector runs: one pass per interval, logged
                    retention = functools.partial(_retention_pass, store, master, configured_policy, clock)
                    tasks.append(
                        asyncio.create_task(
                            refresh_every(settings.retention_interval, retention, _log, "retention.failed"),
                            name="xinyong-retention",
                        )
                    )
            async with contextlib.AsyncExitStack() as stack:
                if metrics is not None:
                    store.observe_commits(metrics.group_commit)
                    tasks.append(asyncio.create_task(sample_pool(metrics, store), name="xinyong-pool-sample"))
                    if serve_metrics:
                        endpoint = MetricsEndpoint(metrics, store, policies, clock=clock)
                        port = settings.metrics_port or 0
                        await stack.enter_async_context(endpoint.serving(settings.metrics_host, port, metrics_sockets))
                if settings.dispatcher:
                    on_outcome = metrics.delivery if metrics is not None else None
                    dispatcher = dispatcher_for(store, master, settings, on_outcome=on_outcome)
                    tasks.append(asyncio.create_task(dispatcher.run(), name="xinyong-dispatcher"))
                yield
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await store.close()

    app.cleanup_ctx.append(resources)

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_document, content_type="application/json")

    # Each path answers its methods (GET also HEAD); every other method there, and every other path, goes through
    # routes of ours rather than aiohttp's system routes, whose Expect handling cannot be replaced: a 405 or 404
    # problem, never a 500.
    router = app.router
    measures: dict[str, Measure] = {}
    if metrics is not None:

        def source_kind(request: web.Request, facts: dict[str, Any]) -> str:
            source = request.app[REGISTRY].get(facts.get("source_id", ""))
            return source.kind if source is not None else "unknown"

        measures["/v1/webhooks/{source_id}"] = route_measure(
            metrics, "/v1/webhooks/{source_id}", metrics.ingest, source_kind
        )
        for route, scope in (
            ("/v1/screenings", "screen"),
            ("/v1/lists/changes", "changes"),
            ("/v1/objections/{case_id}", "cases"),
            ("/v1/repairs/{case_id}", "cases"),
            ("/v1/attestations", "attest"),
            ("/v1/subscriptions", "subscribe"),
            ("/v1/subscriptions/{subscription_id}", "subscribe"),
            ("/v1/subscriptions/{subscription_id}/rotate-secret", "subscribe"),
            ("/v1/subscriptions/{subscription_id}/replay", "subscribe"),
        ):
            measures[route] = route_measure(metrics, route, metrics.api_key, functools.partial(_constant, scope))
    routes: list[tuple[str, dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]] = [
        ("/v1/webhooks/{source_id}", {hdrs.METH_POST: ingest.handle}),
        ("/v1/screenings", {hdrs.METH_POST: query.screen}),
        ("/v1/lists/changes", {hdrs.METH_GET: query.changes}),
        ("/v1/objections/{case_id}", {hdrs.METH_GET: query.objection}),
        ("/v1/repairs/{case_id}", {hdrs.METH_GET: query.repair}),
        ("/v1/attestations", {hdrs.METH_POST: attestations.attest}),
        ("/.well-known/jwks.json", {hdrs.METH_GET: attestations.jwks}),
        ("/v1/subscriptions", {hdrs.METH_POST: subscriptions.create, hdrs.METH_GET: subscriptions.list}),
        (
            "/v1/subscriptions/{subscription_id}",
            {hdrs.METH_GET: subscriptions.show, hdrs.METH_DELETE: subscriptions.delete},
        ),
        ("/v1/subscriptions/{subscription_id}/rotate-secret", {hdrs.METH_POST: subscriptions.rotate}),
        ("/v1/subscriptions/{subscription_id}/replay", {hdrs.METH_POST: subscriptions.replay}),
        ("/openapi.json", {hdrs.METH_GET: openapi}),
        ("/healthz", {hdrs.METH_GET: healthz}),
        ("/readyz", {hdrs.METH_GET: readyz}),
        # The home page's form posts its search, so a name typed there stays out of URLs.
        *(
            (path, {hdrs.METH_GET: h, **({hdrs.METH_POST: h} if path == "/public/search" else {})})
            for path, h in public.routes()
        ),
    ]
    for path, handlers in routes:
        if hdrs.METH_GET in handlers:
            handlers[hdrs.METH_HEAD] = handlers[hdrs.METH_GET]
        methods = list(handlers)
        resource = router.add_resource(path)
        measure = measures.get(path) or (route_measure(metrics, path) if metrics is not None else None)
        for allowed, handler in handlers.items():
            resource.add_route(allowed, answered(handler, measure), expect_handler=expect_continue)
        refuse = answered(_method_not_allowed(sorted(methods)), measure)
        resource.add_route(hdrs.METH_ANY, refuse, expect_handler=expect_continue)
    other = route_measure(metrics, "other") if metrics is not None else None
    router.add_route(
        hdrs.METH_GET, "/public/{path:.*}", answered(public.not_found, other), expect_handler=expect_continue
    )
    router.add_route(hdrs.METH_ANY, "/{path:.*}", answered(not_found, other), expect_handler=expect_continue)
    return app


def _public_methods(
    path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A public page answers GET; the search answers the home page's form too (POST), so a name typed there stays
    out of URLs."""
    return {hdrs.METH_GET: handler, **({hdrs.METH_POST: handler} if path == "/public/search" else {})}


GC_FIRST_GENERATION_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (CPython's default is 700)."""


def settle_heap(app: web.Application) -> web.Application:
    """Tune the garbage collector for serving, once ``app`` has started (its resources open): for ``serve`` and
    its workers, not for apps that tests start by the hundred in one process.

    Everything allocated until then (modules, the pydantic validators, the OpenAPI document, registries) is frozen
    out of the collector's reach (``gc.freeze``), and the youngest generation is collected every
    ``GC_FIRST_GENERATION_THRESHOLD`` allocations instead of 700, so that a full collection does not walk the whole
    start-up heap every few large screenings and pause the loop (what it does to screening latency: bench/README.md,
    screening)."""

    async def settle(_: web.Application) -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, *gc.get_threshold()[1:])

    app.on_startup.append(settle)  # after the resources' cleanup context has started (aiohttp runs it first)
    return app


def _constant(value: str, *_: object) -> str:
    return value


async def expect_continue(request: web.Request) -> None:
    """``Expect`` for every route: ``100-continue`` is answered as aiohttp does; any other expectation is ignored, as
    RFC 9110 (10.1.1) allows. aiohttp's own handler answers it with a 417 whose text quotes the header, and a header
    that is not UTF-8 cannot be encoded there: the client got a 500."""
    if request.version == HttpVersion11 and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        with contextlib.suppress(ConnectionResetError):  # the client left: reading its body says so, to the middleware
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the interim answer is no part of the response


def _method_not_allowed(allowed: list[str]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, allowed)

    return refuse


async def not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        status = await request.app[STORE].schema_status()
    except StoreError as exc:
        raise StoreUnavailableError(str(exc)) from exc  # logged by the middleware, answered 503 without details
    if not status.ready:
        raise ProblemError(
            problems.STORE_UNAVAILABLE,
            f"Migrations pending: {', '.join(status.pending)}.",
            title="Not ready",
        )
    return web.json_response({"status": "ready", "schema_version": status.current})
