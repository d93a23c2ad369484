"""Receiving the gateway's notifications: verify, parse, and notice duplicates and gaps (docs/wire-contract.md,
"Notifications").

A subscription (``POST /v1/subscriptions`` at the gateway) makes the gateway POST each matching change of the lists
to the platform's URL as a Standard Webhooks message signed with the subscription's ``whsec_`` secret::

    webhook-id: <stable across retries>    webhook-timestamp: <unix seconds>    webhook-signature: v1,<base64> …
    {"type": "list.changed", "timestamp": "<RFC 3339>", "data": {<one change-feed entry>, "sequence": 7}}

``data`` is the change-feed entry exactly as ``GET /v1/lists/changes`` gives it to the subscribing API key (a
business by its USCC, a person only by the key's pseudonym), plus ``sequence``: 1, 2, 3 … per subscription.

    receiver = NotificationReceiver("whsec_…")             # one receiver per subscription
    received = receiver.receive(request.headers, raw_body)  # WebhookVerificationError, InvalidNotificationError
    if not received.duplicate:
        if received.missed:                                 # sequence numbers never acknowledged: sync the feed
            await mirror.sync()
        await mirror.apply(received.change)                 # or act on received.change yourself
    receiver.acknowledge(received)                          # only once it has been acted on
    # answer 2xx (a duplicate too: the gateway then stops retrying it)

**Duplicates.** The gateway retries a message under the same ``webhook-id`` until it gets a 2xx, so a message can
arrive more than once (a 2xx lost on the way back). The receiver remembers the ids it *acknowledged* (the newest
``remember`` of them, in memory): a message whose processing failed is not acknowledged, so its retry is processed
again rather than dropped as a duplicate. Acting on a change twice must be harmless anyway (a restart forgets the
ids; :meth:`ListMirror.apply <xinyong.ListMirror.apply>` is idempotent): the remembered ids spare work, they are not
what makes a receiver correct.

**Gaps.** ``received.missed`` are the sequence numbers between the highest acknowledged one and this message's that
were never acknowledged: lost, still being retried by the gateway, or in flight at the same moment. Whatever the
cause, **fetch the changes from the change feed**: ``await mirror.sync()``, or page
``client.changes(after=<your saved cursor>)``. Every notification is a full status snapshot that is also in the feed,
so the feed has everything the missing messages carried; those that arrive later change nothing
(``received.late``). A receiver that starts with no state (``last_sequence=0``) sees the numbers before its first
message as missed, once: a sync then covers whatever happened while it was away. Persist
:attr:`NotificationReceiver.last_sequence` and pass it back to carry the count across restarts.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from pydantic import Field, ValidationError

from xinyong.errors import InvalidNotificationError, UnknownNotificationTypeError
from xinyong.events import error_pointers
from xinyong.queries import ListChange
from xinyong.webhooks import DEFAULT_TOLERANCE, SigningSecret, WebhookVerifier
from xinyong.wire import WireModel

__all__ = [
    "LIST_CHANGED",
    "NOTIFICATION_TYPES",
    "ListChangedNotification",
    "NotificationReceiver",
    "NotifiedChange",
    "ReceivedNotification",
    "parse_notification",
]

LIST_CHANGED: Final = "list.changed"
NOTIFICATION_TYPES: Final = (LIST_CHANGED,)
"""The notification types this SDK knows."""


class NotifiedChange(ListChange):
    """The ``data`` of a ``list.changed`` notification: one change-feed entry, plus its number in the subscription."""

    sequence: int = Field(
        ge=1, description="1, 2, 3 … per subscription, in the order the changes were written: a jump is a gap."
    )


class ListChangedNotification(WireModel):
    """A ``list.changed`` notification: the body the gateway POSTs to a subscription's URL."""

    type: Literal["list.changed"]
    timestamp: datetime = Field(description="When the gateway wrote the notification (RFC 3339).")
    data: NotifiedChange


def parse_notification(body: bytes | str) -> ListChangedNotification:
    """Validate a notification body (after its signature was verified).

    Raises :class:`~xinyong.errors.UnknownNotificationTypeError` for a ``type`` this SDK does not know (a newer
    gateway), :class:`~xinyong.errors.InvalidNotificationError` for anything else that is not a notification; the
    message and ``errors`` name the fields at fault (JSON Pointers), never their values."""
    try:
        return ListChangedNotification.model_validate_json(body)
    except ValidationError as exc:
        pointers = error_pointers(exc)
        if any(error["pointer"] == "/type" for error in pointers):
            kind = _type_of(body)
            if kind is not None:
                raise UnknownNotificationTypeError(
                    f"notification type {kind!r} is not one this SDK knows ({', '.join(NOTIFICATION_TYPES)}):"
                    " acknowledge it and upgrade the SDK",
                    errors=pointers,
                    type=kind,
                ) from None
        problems = "; ".join(f"{error['pointer'] or '/'}: {error['detail']}" for error in pointers[:5])
        if len(pointers) > 5:
            problems += f"; and {len(pointers) - 5} more"
        raise InvalidNotificationError(f"not a notification: {problems}", errors=pointers) from None


def _type_of(body: bytes | str) -> str | None:
    """The body's ``type`` when it is a short string, for the message of an unknown type (never a value of ``data``)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    kind = document.get("type") if isinstance(document, dict) else None
    if isinstance(kind, str) and 0 < len(kind) <= 64 and kind.isascii() and kind.isprintable():
        return kind
    return None


@dataclass(frozen=True, slots=True)
class ReceivedNotification:
    """A verified, parsed notification, and what the receiver knew of it when it arrived."""

    webhook_id: str
    notification: ListChangedNotification
    duplicate: bool
    """This ``webhook-id`` was acknowledged before: answer 2xx and do nothing else."""
    missed: range
    """Sequence numbers after the highest acknowledged one and before this one (empty: no gap). Sync the feed."""
    late: bool
    """The sequence number is at or below the highest acknowledged one, under an id not remembered: a message that
    arrives after a later one (a retry), or one whose id the receiver forgot. Its change is in the feed: a mirror that
    synced since ignores it."""

    @property
    def change(self) -> NotifiedChange:
        """The change-feed entry the notification carries."""
        return self.notification.data

    @property
    def sequence(self) -> int:
        return self.notification.data.sequence


class NotificationReceiver:
    """Verifies and reads the notifications of **one** subscription (sequence numbers count per subscription).

    ``secrets``: the subscription's ``whsec_…`` secret, as a string or :class:`~xinyong.SigningSecret`; during a
    rotation give the new and the old one (a message then carries a signature for each, and one matching is enough).
    ``last_sequence``: the highest sequence number acknowledged before (0: none), to carry the count across restarts.
    ``remember``: how many acknowledged ``webhook-id`` values are kept to recognise duplicates. ``tolerance`` (seconds)
    and ``clock`` are those of :class:`~xinyong.WebhookVerifier`, which does the verifying.

    Not thread-safe: use one from one thread or one event loop (an aiohttp handler calls it between awaits).
    """

    __slots__ = ("_acknowledged", "_last_sequence", "_remember", "_verifier")

    def __init__(
        self,
        secrets: SigningSecret | str | Iterable[SigningSecret | str],
        *,
        last_sequence: int = 0,
        remember: int = 10_000,
        tolerance: int = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secrets, SigningSecret | str):
            secrets = [secrets]
        keys = [secret if isinstance(secret, SigningSecret) else SigningSecret.parse(secret) for secret in secrets]
        if not keys:
            raise ValueError("give the subscription's secret (whsec_…)")
        if last_sequence < 0:
            raise ValueError("last_sequence must not be negative")
        if remember < 1:
            raise ValueError("remember must be at least 1")
        self._verifier = WebhookVerifier(keys, tolerance=tolerance, clock=clock)
        self._last_sequence = last_sequence
        self._remember = remember
        self._acknowledged: OrderedDict[str, None] = OrderedDict()

    @property
    def last_sequence(self) -> int:
        """The highest sequence number acknowledged (0: none yet): persist it to resume the count after a restart."""
        return self._last_sequence

    def receive(self, headers: Mapping[str, str], body: bytes) -> ReceivedNotification:
        """Verify the signature over the raw ``body`` and the timestamp, then parse; say whether it is a duplicate,
        late, or follows a gap. Records nothing: call :meth:`acknowledge` once the change has been acted on.

        Raises (all :class:`~xinyong.XinyongError`): :class:`~xinyong.MalformedHeadersError` (answer 400),
        :class:`~xinyong.SignatureMismatchError` or :class:`~xinyong.TimestampOutOfToleranceError` (answer 401),
        then :class:`~xinyong.InvalidNotificationError` (answer 400; its subclass
        :class:`~xinyong.UnknownNotificationTypeError` may be acknowledged with a 2xx and ignored)."""
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError("give the raw body bytes, as received: a signature covers the bytes, not parsed JSON")
        body = bytes(body)
        webhook_id = self._verifier.verify(headers, body).id
        notification = parse_notification(body)
        sequence = notification.data.sequence
        duplicate = webhook_id in self._acknowledged
        if duplicate:
            self._acknowledged.move_to_end(webhook_id)
        gap = range(self._last_sequence + 1, sequence) if not duplicate else range(0)
        return ReceivedNotification(
            webhook_id=webhook_id,
            notification=notification,
            duplicate=duplicate,
            missed=gap,
            late=not duplicate and sequence <= self._last_sequence,
        )

    def acknowledge(self, received: ReceivedNotification) -> None:
        """Record a notification as acted on: its ``webhook-id`` is a duplicate from now on, and its sequence number
        counts towards :attr:`last_sequence`. Idempotent."""
        acknowledged = self._acknowledged
        acknowledged[received.webhook_id] = None
        acknowledged.move_to_end(received.webhook_id)
        while len(acknowledged) > self._remember:
            acknowledged.popitem(last=False)
        self._last_sequence = max(self._last_sequence, received.sequence)
