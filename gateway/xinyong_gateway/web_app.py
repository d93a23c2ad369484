"""``create_app(settings)``: the gateway's aiohttp application.

Resources (store, master key, source registry and its refresher) are opened and closed in one
``cleanup_ctx``; typed app state uses ``web.AppKey``. Routes:

- ``POST /v1/webhooks/{source_id}``  signed event ingest (``web_ingest``)
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

__all__ = ["MASTER_KEY", "REGISTRY", "STORE", "create_app"]

STORE = web.AppKey("store", Store)
MASTER_KEY = web.AppKey("master_key", MasterKey)
REGISTRY = web.AppKey("registry", SourceRegistry)


def create_app(settings: GatewaySettings, *, clock: Callable[[], float] = time.time) -> web.Application:
    """The gateway application; opening it resolves the master key and opens the store."""
    app = web.Application(middlewares=[request_middleware], client_max_size=settings.body_limit)
    ingest = IngestHandler(body_limit=settings.body_limit, clock=clock)

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
            app[STORE] = store
            app[MASTER_KEY] = master
            app[REGISTRY] = registry
            ingest.attach(store, master, registry)
            tasks = [asyncio.create_task(registry.run(), name="xinyong-source-refresh")]
            if settings.projector:
                projector = Projector(
                    store, master, policy_from(settings.policy_file), claims=store.claim_partitions(), clock=clock
                )
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
