"""A platform's notification endpoint for the benches (``notify.py``, ``notify_crash.py``): verifies every message with
the SDK's own ``xinyong.webhooks.WebhookVerifier`` under its subscription's secret, and appends one JSON line per
verified message to ``--log`` (``{"id", "subscription_id", "sequence", "cursor", "subject", "at"}``, ``at`` its
arrival in Unix seconds). ``--fail-rate`` answers that share of messages 500 and ``--timeout-rate`` holds that share
longer than the gateway waits (``--hold`` seconds) before answering, both at random: they are logged as ``"failed"``
/ ``"held"`` and do not count as delivered. A message that does not verify is answered 401 and logged as
``"forged"``.

    .venv/bin/python bench/_receiver.py --port 9000 --secrets secrets.json --log arrivals.ndjson

``--secrets`` is a JSON object ``{subscription_id: "whsec_…"}``; the subscription of a message is read from its
``webhook-id`` (``msg_<subscription>_<sequence>``) and the secret looked up there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from xinyong.errors import WebhookVerificationError
from xinyong.webhooks import WebhookVerifier


def build_app(secrets: dict[str, str], log: Any, fail_rate: float, timeout_rate: float, hold: float) -> web.Application:
    verifiers = {subscription: WebhookVerifier([secret]) for subscription, secret in secrets.items()}
    rng = random.Random()
    lines: list[str] = []

    def write(record: dict[str, Any]) -> None:
        lines.append(json.dumps(record))
        if len(lines) >= 200:
            flush()

    def flush() -> None:
        if lines:
            log.write("\n".join(lines) + "\n")
            log.flush()
            lines.clear()

    async def flush_every() -> None:
        while True:
            await asyncio.sleep(0.1)
            flush()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        at = time.time()
        msg_id = request.headers.get("webhook-id", "")
        subscription = msg_id.removeprefix("msg_").rsplit("_", 1)[0]
        verifier = verifiers.get(subscription)
        try:
            if verifier is None:
                raise WebhookVerificationError("unknown subscription")
            verifier.verify(request.headers, body)
        except WebhookVerificationError:
            write({"id": msg_id, "forged": True, "at": at})
            return web.Response(status=401)
        roll = rng.random()
        if roll < fail_rate:
            write({"id": msg_id, "failed": True, "at": at})
            return web.Response(status=500)
        if roll < fail_rate + timeout_rate:
            write({"id": msg_id, "held": True, "at": at})
            await asyncio.sleep(hold)
            return web.Response(status=204)
        data = json.loads(body)["data"]
        write(
            {
                "id": msg_id,
                "subscription_id": subscription,
                "sequence": data["sequence"],
                "cursor": data["cursor"],
                "subject": data["subject"].get("id") or data["subject"].get("pseudonym"),
                "list": data["list"],
                "at": at,
            }
        )
        return web.Response(status=204)

    async def background(app: web.Application) -> Any:
        task = asyncio.create_task(flush_every())
        yield
        task.cancel()
        flush()

    app = web.Application()
    app.router.add_post("/hook", handle)
    app.cleanup_ctx.append(background)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--timeout-rate", type=float, default=0.0)
    parser.add_argument("--hold", type=float, default=3.0)
    args = parser.parse_args()
    secrets = json.loads(args.secrets.read_text())
    with args.log.open("a", encoding="utf-8") as log:
        app = build_app(secrets, log, args.fail_rate, args.timeout_rate, args.hold)
        web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
