"""The benchmark's baseline: the most trivial aiohttp server that still reads every request body.

``python bench/_baseline_server.py --port P`` serves ``POST /v1/webhooks/{source_id}`` with a handler that
awaits ``request.read()`` and answers an empty 200, plus ``GET /healthz`` for start-up. No middleware, no
logging, no access log: it is what the gateway's per-request cost is compared against, on the same
aiohttp version, in its own process, pinned (by ``bench/ingest.py``) to the same CPU as the gateway.
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(status=200)


def main() -> None:
    parser = argparse.ArgumentParser(description="Trivial aiohttp baseline for bench/ingest.py.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application(client_max_size=256 * 1024)
    app.router.add_post("/v1/webhooks/{source_id}", receive)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, shutdown_timeout=5)


if __name__ == "__main__":
    main()
