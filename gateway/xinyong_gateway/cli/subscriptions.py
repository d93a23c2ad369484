"""``xinyong-gateway subscriptions list|show|disable|enable``: the operator's view of the platforms' subscriptions
(created through ``POST /v1/subscriptions``; ``notify``). A subscription the dispatcher disabled (its endpoint answered
410, failed for 5 days, or its API key was revoked) shows its reason here; ``enable`` resumes it, and its pending
messages are sent at once. Disabling and enabling are recorded in the audit log."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from xinyong_gateway.cli._common import Output, add_command, iso, open_resources
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import OutboxState, SubscriptionRecord, to_micros

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    group = add_command(
        commands,
        "subscriptions",
        "platforms' subscriptions to list changes",
        "xinyong-gateway subscriptions list",
        description="The platforms' subscriptions to list changes (POST /v1/subscriptions) and their deliveries.",
    )
    actions = group.add_subparsers(dest="subscriptions_command", metavar="ACTION", required=True)
    listing = add_command(actions, "list", "every subscription and its status", "xinyong-gateway subscriptions list")
    listing.set_defaults(handler=_list)
    show = add_command(
        actions, "show", "one subscription and its messages", "xinyong-gateway subscriptions show sub_..."
    )
    show.add_argument("subscription_id", metavar="ID")
    show.set_defaults(handler=_show)
    disable = add_command(
        actions, "disable", "stop delivering to a subscription", "xinyong-gateway subscriptions disable sub_..."
    )
    disable.add_argument("subscription_id", metavar="ID")
    disable.set_defaults(handler=_disable)
    enable = add_command(
        actions,
        "enable",
        "resume a disabled subscription",
        "xinyong-gateway subscriptions enable sub_...",
    )
    enable.add_argument("subscription_id", metavar="ID")
    enable.set_defaults(handler=_enable)


def _json(record: SubscriptionRecord, state: OutboxState | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "subscription_id": record.subscription_id,
        "key_id": record.key_id,
        "url": record.url,
        "lists": list(record.lists),
        "subjects": "all" if record.subjects is None else "some",
        "status": record.status,
        "disabled_reason": record.disabled_reason,
        "disabled_at": iso(record.disabled_at),
        "failing_since": iso(record.failing_since),
        "last_sequence": record.last_sequence,
        "created_at": iso(record.created_at),
    }
    if state is not None:
        document |= {
            "pending": state.pending,
            "delivered": state.delivered,
            "failed": state.failed,
            "last_error": state.last_error,
        }
    return document


def _line(record: SubscriptionRecord) -> str:
    status = record.status if record.status == "active" else f"disabled ({record.disabled_reason})"
    failing = f"  failing since {iso(record.failing_since)}" if record.failing_since else ""
    return (
        f"{record.subscription_id}  {status:<20}  {','.join(record.lists):<16}  key {record.key_id}"
        f"  #{record.last_sequence}  {record.url}{failing}"
    )


def _list(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def list_all() -> list[SubscriptionRecord]:
        async with open_resources(settings) as opened:
            return await opened.store.list_subscriptions()

    records = asyncio.run(list_all())
    out.emit([_json(r) for r in records], "\n".join(map(_line, records)) if records else "No subscriptions yet.")
    return 0


def _show(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    async def show() -> tuple[SubscriptionRecord, OutboxState]:
        async with open_resources(settings) as opened:
            record = await opened.store.get_subscription(args.subscription_id)
            if record is None:
                from xinyong_gateway.errors import SubscriptionNotFoundError

                raise SubscriptionNotFoundError(f"No subscription {args.subscription_id}.")
            return record, await opened.store.outbox_state(record.subscription_id)

    record, state = asyncio.run(show())
    document = _json(record, state)
    error = f"\n  last error: {state.last_error}" if state.last_error else ""
    out.emit(
        document,
        f"{_line(record)}\n  messages: {state.pending} pending, {state.delivered} delivered, {state.failed} given up"
        + error,
    )
    return 0


def _set(settings: GatewaySettings, subscription_id: str, *, active: bool, out: Output) -> int:
    async def change() -> SubscriptionRecord:
        async with open_resources(settings) as opened:
            record = await opened.store.set_subscription_status(
                subscription_id,
                active=active,
                reason=None if active else "operator",
                now=to_micros(datetime.now(UTC)),
            )
            await opened.audit("subscriptions.enable" if active else "subscriptions.disable", subscription_id)
            return record

    record = asyncio.run(change())
    done = "Enabled" if active else "Disabled"
    out.emit(_json(record), f"{done} subscription {record.subscription_id}.")
    return 0


def _disable(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    return _set(settings, args.subscription_id, active=False, out=out)


def _enable(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    return _set(settings, args.subscription_id, active=True, out=out)
