"""``create_app(settings)``: the gateway's aiohttp application.

Resources (store, master key, source registry and its refresher) are opened and closed in one
``cleanup_ctx``; typed app state uses ``web.AppKey``. Routes:

- ``POST /v1/webhooks/{source_id}``  signed event ingest (``web_ingest``)
- ``POST /v1/screenings``            screen 1 to 1000 subjects (API key, scope ``screen``; ``web_query``)
- ``GET /v1/lists/changes``          the change feed (API key, scope ``changes``; ``web_query``)
- ``GET /openapi.json``              the OpenAPI 3.1 document (``xinyong.openapi``, as in ``schemas/openapi.json``)
- ``GET /healthz``                   the process is alive
- ``GET /readyz``                    the store is reachable and every migration is applied

Unless ``settings.projector`` is off, the projector runs beside the server, keeping credit files current.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from xinyong import problems
from xinyong.openapi import build_openapi
from xinyong.schemas import render
from xinyong_gateway.api_keys import ApiKeyRegistry
from xinyong_gateway.credit.policy import policy_from
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.crypto import MasterKey, master_key_for
from xinyong_gateway.errors import StoreError, StoreUnavailableError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.sources import SourceRegistry
from xinyong_gateway.store import Store, open_store
from xinyong_gateway.web_ingest import IngestHandler
from xinyong_gateway.web_middlewares import request_middleware
from xinyong_gateway.web_problems import ProblemError
from xinyong_gateway.web_query import PolicyInForce, QueryHandler

__all__ = ["API_KEYS", "MASTER_KEY", "REGISTRY", "STORE", "create_app"]

STORE = web.AppKey("store", Store)
MASTER_KEY = web.AppKey("master_key", MasterKey)
REGISTRY = web.AppKey("registry", SourceRegistry)
API_KEYS = web.AppKey("api_keys", ApiKeyRegistry)


def create_app(settings: GatewaySettings, *, clock: Callable[[], float] = time.time) -> web.Application:
    """The gateway application; opening it resolves the master key and opens the store."""
    app = web.Application(middlewares=[request_middleware], client_max_size=settings.body_limit)
    ingest = IngestHandler(body_limit=settings.body_limit, clock=clock)
    query = QueryHandler(clock=clock)
    configured_policy = policy_from(settings.policy_file)  # a bad policy file fails here, before serving
    openapi_document = render(build_openapi()).encode()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        env_key = settings.master_key.get_secret_value() if settings.master_key else None
        master = master_key_for(settings.database_url, env_key)
        store = open_store(settings.database_url)
        await store.open()
        try:
            await store.check_master_key(master.check_value)
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
            policies = PolicyInForce(store, configured_policy, refresh_interval=settings.api_key_refresh_interval)
            await policies.refresh()
            app[STORE] = store
            app[MASTER_KEY] = master
            app[REGISTRY] = registry
            app[API_KEYS] = api_keys
            ingest.attach(store, master, registry)
            query.attach(store, master, api_keys, policies)
            tasks = [
                asyncio.create_task(registry.run(), name="xinyong-source-refresh"),
                asyncio.create_task(api_keys.run(), name="xinyong-api-key-refresh"),
                asyncio.create_task(policies.run(), name="xinyong-policy-refresh"),
            ]
            if settings.projector:
                projector = Projector(store, master, configured_policy, claims=store.claim_partitions(), clock=clock)
                tasks.append(asyncio.create_task(projector.run(), name="xinyong-projector"))
            yield
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await store.close()

    app.cleanup_ctx.append(resources)
    app.router.add_post("/v1/webhooks/{source_id}", ingest.handle)
    app.router.add_post("/v1/screenings", query.screen)
    app.router.add_get("/v1/lists/changes", query.changes)

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_document, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


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
