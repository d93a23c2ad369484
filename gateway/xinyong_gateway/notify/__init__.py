"""Notifications to platforms: subscriptions, the dispatcher that delivers the outbox, and the SSRF guard.

    subscriptions.py  create, show, rotate the secret of and replay a subscription (the API and the CLI use them)
    dispatcher.py     signed Standard Webhooks POSTs of the outbox, retries on the spec's schedule, disabling
    ssrf.py           which addresses outbound webhooks may reach, at subscription time and at connect time

Which changes reach which subscription is decided when the projector commits them (``credit.subscribers``): the
outbox rows are written in the projector's transaction, so this package only ever delivers what happened.
"""

from __future__ import annotations

from xinyong_gateway.notify.dispatcher import (
    DISABLE_AFTER_SECONDS,
    RETRY_SCHEDULE,
    Dispatcher,
    dispatcher_for,
    next_delay,
    notification_body,
    notification_document,
    outcome_name,
)
from xinyong_gateway.notify.ssrf import GuardedResolver, OutboundGuard, parse_networks
from xinyong_gateway.notify.subscriptions import MAX_REPLAY, replay, rotate_secret, subscribe, subscription_document

__all__ = [
    "DISABLE_AFTER_SECONDS",
    "MAX_REPLAY",
    "RETRY_SCHEDULE",
    "Dispatcher",
    "GuardedResolver",
    "OutboundGuard",
    "dispatcher_for",
    "next_delay",
    "notification_body",
    "notification_document",
    "outcome_name",
    "parse_networks",
    "replay",
    "rotate_secret",
    "subscribe",
    "subscription_document",
]
