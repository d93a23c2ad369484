"""The benchmark's reference point: an aiohttp handler that verifies and validates each event and stores nothing.

``XINYONG_BENCH_SECRET=whsec_… python bench/_reference_server.py --port P`` serves
``POST /v1/webhooks/{source_id}`` with a handler that awaits ``request.read()``, checks the signature and timestamp
with the SDK's ``WebhookVerifier`` (the secret comes from the environment, never the command line), runs the
gateway's own body checks (``validation.check_body``: JSON, type, kind, schema) for a marketplace, and answers an
empty 202. A failed check answers 400. No middleware, no logging, no access log, no store: it is the issue's
context figure ("an aiohttp handler that only verifies and validates, storing nothing"), measured by
``bench/ingest.py --reference`` on the same core as the gateway and the baseline, so that the gateway's cost can be
split into the checks the contract asks of every event and everything else (sealing, the durable commit, logs).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

from aiohttp import web

from xinyong.errors import WebhookVerificationError
from xinyong.webhooks import SigningSecret, WebhookVerifier
from xinyong_gateway.errors import EventRejectedError
from xinyong_gateway.validation import check_body


def make_app(secret: SigningSecret) -> web.Application:
    verifier = WebhookVerifier([secret])

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verifier.verify(request.headers, body)
            check_body(body, "marketplace", now=datetime.fromtimestamp(time.time(), UTC))
        except (WebhookVerificationError, EventRejectedError):
            return web.Response(status=400)
        return web.Response(status=202)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application(client_max_size=256 * 1024)
    app.router.add_post("/v1/webhooks/{source_id}", receive)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Verify-and-validate reference handler for bench/ingest.py.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ.get("XINYONG_BENCH_SECRET")
    if not secret:
        parser.error("set XINYONG_BENCH_SECRET to the source's whsec_ secret")
    app = make_app(SigningSecret.parse(secret))
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, shutdown_timeout=5)


if __name__ == "__main__":
    main()
