"""A marketplace receives the gateway's notifications of list changes and closes a black-listed merchant's store
the moment the change is written, instead of at its next poll of the change feed.

The gateway POSTs each change that matches the marketplace's subscription, signed with the subscription's secret
(Standard Webhooks). This receiver verifies the signature and the timestamp on the raw body, reads the change,
answers a retry of a message it already handled without acting twice, and, when the sequence numbers jump (a
notification lost or still being retried), catches up from the change feed, which has every change the missing
notifications carried. Its "shop system" is standard output: ``close store …`` is where a real marketplace would
close the store.

    export XINYONG_NOTIFICATION_SECRET=whsec_…          # printed once when the subscription was made
    export XINYONG_URL=http://127.0.0.1:8080 XINYONG_API_KEY=xyk_…   # the subscribing key (scope changes): catch-up
    .venv/bin/python examples/notification_receiver.py --port 8090   # the subscription's URL: http://…:8090/notifications

Answers: 204 handled (a duplicate too: the gateway stops retrying), 400 malformed headers or not a notification,
401 a signature that does not verify or a timestamp outside ±5 minutes, 503 when the catch-up failed (the message
is not acknowledged, so the gateway's retry is handled in full). The receiver's state (the last sequence number
and feed cursor handled) lives in memory here: a real one stores it with its shop records, and after a restart its
first notification shows the numbers before it as missed, which the catch-up covers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from aiohttp import web

from xinyong import (
    Client,
    InvalidNotificationError,
    ListChange,
    MalformedHeadersError,
    NotificationReceiver,
    UnknownNotificationTypeError,
    WebhookVerificationError,
    XinyongError,
)

RECEIVER = web.AppKey("receiver", NotificationReceiver)
STATE = web.AppKey("state", dict[str, int])


def say(line: str) -> None:
    print(line, flush=True)


def act(change: ListChange) -> str:
    """What the marketplace does about one change (here: says it)."""
    subject = change.subject
    if subject.id_type == "uscc":
        who = f"uscc {subject.id} {subject.name or ''}".rstrip()
    else:
        who = f"person {subject.pseudonym[:12]}…"  # a sole trader: matched to the marketplace's records by pseudonym
    why = ", ".join(dict.fromkeys(reason.code for reason in change.reasons)) or "no negative record"
    if "close_store" in change.measures:
        return f"close store of {who} ({change.list} list: {why})"
    return f"{who}: {change.list} list, measures {', '.join(change.measures) or 'none'}"


async def catch_up(state: dict[str, int]) -> int:
    """Handle every change of the feed after the last one handled; returns how many."""
    handled = 0
    async with Client(os.environ.get("XINYONG_URL", "http://127.0.0.1:8080"), os.environ["XINYONG_API_KEY"]) as client:
        async for change in client.changes(after=str(state["cursor"]) if state["cursor"] else None):
            say(f"  feed {change.cursor}: {act(change)}")
            state["cursor"] = int(change.cursor)
            handled += 1
    return handled


async def notification(request: web.Request) -> web.Response:
    receiver, state = request.app[RECEIVER], request.app[STATE]
    body = await request.read()  # the raw bytes: the signature covers them, not the parsed JSON
    try:
        received = receiver.receive(request.headers, body)
    except MalformedHeadersError as exc:
        say(f"refused (400): {exc}")
        return web.Response(status=400, text=str(exc))
    except WebhookVerificationError as exc:
        say(f"refused (401): {exc}")
        return web.Response(status=401, text=str(exc))
    except UnknownNotificationTypeError as exc:
        say(f"ignored: {exc}")  # a newer gateway's type: acknowledged, so it is not retried for days
        return web.Response(status=204)
    except InvalidNotificationError as exc:
        say(f"refused (400): {exc}")
        return web.Response(status=400, text=str(exc))
    change, tag = received.change, f"{received.webhook_id} #{received.sequence}"
    if received.duplicate:
        say(f"{tag}: duplicate, already handled")
        return web.Response(status=204)
    if received.missed:
        first, last = received.missed[0], received.missed[-1]
        numbers = str(first) if first == last else f"{first}-{last}"
        say(f"{tag}: notification {numbers} missed: catching up from the change feed after cursor {state['cursor']}")
        try:
            await catch_up(state)
        except XinyongError as exc:
            say(f"{tag}: catch-up failed ({exc}); not acknowledged, the gateway will retry")
            return web.Response(status=503, text="catch-up failed; retry later")
    if int(change.cursor) > state["cursor"]:
        say(f"{tag}: {act(change)}")
        state["cursor"] = int(change.cursor)
    else:
        say(f"{tag}: already handled from the feed")
    receiver.acknowledge(received)
    return web.Response(status=204)


def create_app(secrets: list[str]) -> web.Application:
    app = web.Application()
    app[RECEIVER] = NotificationReceiver(secrets)
    app[STATE] = {"cursor": 0}
    app.router.add_post("/notifications", notification)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        say(f"listening on http://{host}:{runner.addresses[0][1]}/notifications")
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description="Receive the credit gateway's notifications of list changes.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0: any free port (the one taken is printed)")
    args = parser.parse_args()
    # Space-separated: the new and the old secret while the subscription's secret rotates.
    secrets = os.environ["XINYONG_NOTIFICATION_SECRET"].split()
    asyncio.run(serve(create_app(secrets), args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
