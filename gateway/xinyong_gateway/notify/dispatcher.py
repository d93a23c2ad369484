"""The dispatcher: delivers the outbox to subscribers as signed Standard Webhooks POSTs, with retries.

Runs inside ``serve`` (unless ``--no-dispatcher``) or alone (``xinyong-gateway dispatch``); on PostgreSQL any number
share the work. It leases due messages from the store (``Store.claim_deliveries``: a lease of
:data:`LEASE_SECONDS`, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends each, and records the outcomes in batches
(``Store.finish_deliveries``). A dispatcher killed mid-way loses nothing: its leases run out and the messages are
sent again (delivery is at least once; the ``webhook-id`` is the same, so a receiver can drop the copy).

**A message.** ``POST`` to the subscription's URL; headers ``webhook-id`` (``msg_<subscription>_<sequence>``, the same
on every retry), ``webhook-timestamp`` (now, at each attempt) and ``webhook-signature`` (``v1,`` HMAC-SHA256 under the
subscription's secret, by the SDK's own ``SigningSecret``; during a rotation's grace period a second ``v1`` entry
under the previous secret); body ``{"type": "list.changed", "timestamp": <when the change was committed>, "data":
<the change-feed entry as the subscribing key's feed shows it> + {"sequence": n}}``.

**Outcomes.** A 2xx delivers. A 410 disables the subscription (``gone``). Anything else (another status, a timeout
— connect 5 s, 15 s in all —, a refused connection, an address the SSRF guard refuses at connect time) is retried
on the Standard Webhooks schedule (:data:`RETRY_SCHEDULE`: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h),
each delay with ±10 % jitter, or later when the answer's ``Retry-After`` asks for more (at most 10 h); after the last
attempt the message is given up (``failed``; a replay sends it again). A subscription whose endpoint has failed
without a single success for :data:`DISABLE_AFTER_SECONDS` (5 days) is disabled (``failing``) with a warning log line,
as is one whose API key was revoked. Redirects are never followed; at most 64 KiB of a response is read.

**Ordering.** Messages are sent in the order they fall due, concurrently (at most ``concurrency`` at a time, and
``per_subscription`` to one subscription), and a message waiting for its retry does not hold back the later ones of
its subscription: a receiver orders and de-duplicates by ``sequence``, and sees a gap while a retry is pending.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import structlog

from xinyong.retries import retry_after_seconds
from xinyong.subscriptions import NOTIFICATION_TYPE
from xinyong.webhooks import SigningSecret
from xinyong_gateway.credit.feed import feed_entry
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import OutboundRefusedError, StoreError
from xinyong_gateway.notify.ssrf import GuardedResolver, OutboundGuard, parse_networks
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import Delivery, DeliveryOutcome, Store, from_micros

__all__ = [
    "DISABLE_AFTER_SECONDS",
    "LEASE_SECONDS",
    "RESPONSE_READ_LIMIT",
    "RETRY_SCHEDULE",
    "Dispatcher",
    "dispatcher_for",
    "next_delay",
    "notification_body",
    "notification_document",
]

_log = structlog.get_logger("xinyong_gateway.dispatcher")

RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
"""Seconds before each attempt after the one before (Standard Webhooks): the first at once, the last 10 h after the
seventh; then the message is given up."""
MAX_RETRY_AFTER = 36000.0
"""The longest a ``Retry-After`` may push an attempt back (10 h, the schedule's longest step)."""
JITTER = 0.1
DISABLE_AFTER_SECONDS = 5 * 24 * 3600
LEASE_SECONDS = 60.0
"""How long a claimed message is a dispatcher's own: longer than an attempt can take (15 s) and its wait for a slot."""
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
RESPONSE_READ_LIMIT = 64 * 1024
_ERROR_LENGTH = 200


def next_delay(
    attempts: int, retry_after: float | None, rng: random.Random, schedule: Sequence[float] = RETRY_SCHEDULE
) -> float | None:
    """Seconds until the next attempt after ``attempts`` attempts have failed; None when the schedule is spent.
    The schedule's step with ±10 % jitter, or ``retry_after`` when that is longer (capped at 10 h)."""
    if attempts >= len(schedule):
        return None
    delay = schedule[attempts] * (1 + rng.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


class Dispatcher:
    """Delivers the outbox until cancelled (:meth:`run`)."""

    def __init__(
        self,
        store: Store,
        master: MasterKey,
        guard: OutboundGuard,
        *,
        concurrency: int = 64,
        per_subscription: int = 16,
        schedule: Sequence[float] = RETRY_SCHEDULE,
        idle_interval: float = 0.05,
        timeout: float = TOTAL_TIMEOUT,
        lease: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        """``on_outcome``: told ``delivered``, ``retry``, ``failed`` (given up) or ``disabled`` for every attempt
        recorded (the ``xinyong_deliveries_total`` counter of ``/metrics``)."""
        self._store = store
        self._on_outcome = on_outcome
        self._master = master
        self._guard = guard
        self._concurrency = concurrency
        self._per_subscription = per_subscription
        self._schedule = tuple(schedule)
        self._idle_interval = idle_interval
        self._timeout = timeout
        self._lease = max(lease, timeout + 1)
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        self._slots = asyncio.Semaphore(concurrency)
        self._subscription_slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(per_subscription)
        )
        self._outcomes: list[DeliveryOutcome] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._opened: dict[bytes, bytes] = {}
        self._checked_urls: dict[str, bool] = {}
        """URLs whose form and literal address the guard accepted (a name is checked again at each connection)."""
        self._entries: dict[tuple[int, str], str] = {}
        """Feed entries (JSON) as each key sees them: one change goes to every subscription it concerns, in a burst."""
        self.delivered = 0
        """Messages delivered by this dispatcher (for benches and tests)."""
        self.recorded = 0
        """Attempts whose outcome this dispatcher recorded."""

    # -- the loop ------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Claim, send and record until cancelled; outcomes in hand are recorded before it returns."""
        _log.info("dispatcher.started", concurrency=self._concurrency)
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._guard), limit=self._concurrency, limit_per_host=0, use_dns_cache=False
        )
        timeout = aiohttp.ClientTimeout(total=self._timeout, connect=min(CONNECT_TIMEOUT, self._timeout))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
            flusher = asyncio.create_task(self._flush_every(0.02), name="xinyong-dispatch-flush")
            try:
                while True:
                    claimed = await self._claim()
                    for delivery in claimed:
                        task = asyncio.create_task(self._deliver(session, delivery))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    if not claimed:
                        await asyncio.sleep(self._idle_interval)
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
                await asyncio.shield(self._flush())

    async def _claim(self) -> list[Delivery]:
        room = 2 * self._concurrency - len(self._tasks)
        if room < self._concurrency and self._tasks:
            # Claim in batches of at least ``concurrency``: each claim is a transaction (on SQLite a sync of the
            # log), so topping up a few slots at a time would cost a commit per handful of messages.
            await asyncio.sleep(0.005)
            return []
        now = self._clock()
        try:
            return await self._store.claim_deliveries(_us(now), _us(now + self._lease), room)
        except StoreError as exc:
            _log.warning("dispatcher.store_error", error=str(exc))
            await asyncio.sleep(1.0)
            return []

    async def _flush_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._flush()

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        now = self._clock()
        try:
            disabled = await self._store.finish_deliveries(
                outcomes, now=_us(now), disable_failing_since=_us(now - DISABLE_AFTER_SECONDS)
            )
        except StoreError as exc:  # the leases run out and the messages are sent again: at least once
            _log.warning("dispatcher.store_error", error=str(exc), outcomes=len(outcomes))
            return
        self.delivered += sum(outcome.delivered for outcome in outcomes)
        self.recorded += len(outcomes)
        if self._on_outcome is not None:
            for outcome in outcomes:
                self._on_outcome(outcome_name(outcome))
        for subscription_id, reason in disabled:
            _log.warning(
                "subscription.disabled",
                subscription_id=subscription_id,
                reason=reason,
                notice="the subscription's endpoint no longer receives notifications; "
                "`xinyong-gateway subscriptions enable` resumes it",
            )

    # -- one message ---------------------------------------------------------------------------------------------
    async def _deliver(self, session: aiohttp.ClientSession, delivery: Delivery) -> None:
        async with self._slots, self._subscription_slots[delivery.subscription_id]:
            outcome = await self._attempt(session, delivery)
        self._outcomes.append(outcome)
        if len(self._outcomes) >= 500:
            await self._flush()

    def _open(self, sealed: bytes, opener: Callable[[], bytes]) -> bytes:
        opened = self._opened.get(sealed)
        if opened is None:
            if len(self._opened) > 10_000:
                self._opened.clear()
            opened = self._opened[sealed] = opener()
        return opened

    def body_of(self, delivery: Delivery) -> bytes:
        """The message body of ``delivery`` (the feed entry as the subscribing key sees it, and its sequence)."""
        lookup = self._open(
            delivery.sealed_lookup_secret,
            lambda: self._master.open_lookup_secret(delivery.key_id, delivery.sealed_lookup_secret),
        )
        cache_key = (delivery.change.change_id, delivery.key_id)
        entry_text = self._entries.get(cache_key)
        if entry_text is None:
            if len(self._entries) > 10_000:
                self._entries.clear()
            entry = feed_entry(delivery.change, self._master, lookup)
            entry_text = self._entries[cache_key] = json.dumps(entry, ensure_ascii=False)
        return notification_body(entry_text, delivery.sequence, from_micros(delivery.created_at).isoformat())

    def signature_of(self, delivery: Delivery, msg_id: str, timestamp: int, body: bytes, now: float) -> str:
        subscription_id = delivery.subscription_id
        key = self._open(
            delivery.sealed_secret,
            lambda: self._master.open_subscription_secret(subscription_id, delivery.sealed_secret),
        )
        signature = SigningSecret(key).sign(msg_id, timestamp, body)
        previous = delivery.sealed_previous_secret
        if (
            previous is not None
            and delivery.previous_expires_at is not None
            and _us(now) < delivery.previous_expires_at
        ):
            old = self._open(previous, lambda: self._master.open_subscription_secret(subscription_id, previous))
            signature += " " + SigningSecret(old).sign(msg_id, timestamp, body)
        return signature

    async def _attempt(self, session: aiohttp.ClientSession, delivery: Delivery) -> DeliveryOutcome:
        if delivery.key_revoked:
            return self._outcome(delivery, None, "the subscribing API key was revoked", None, disable="key-revoked")
        try:
            if delivery.url not in self._checked_urls:
                self._guard.parse_url(delivery.url)  # a literal address is checked here; a name by the resolver
                if len(self._checked_urls) > 10_000:
                    self._checked_urls.clear()
                self._checked_urls[delivery.url] = True
            body = self.body_of(delivery)
        except OutboundRefusedError as exc:
            return self._outcome(delivery, None, f"refused by the outbound guard: {exc}", None)
        msg_id = f"msg_{delivery.subscription_id}_{delivery.sequence}"
        now = self._clock()
        timestamp = int(now)
        headers = {
            "content-type": "application/json",
            "user-agent": "xinyong-gateway",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature_of(delivery, msg_id, timestamp, body, now),
        }
        try:
            async with session.post(delivery.url, data=body, headers=headers, allow_redirects=False) as response:
                await _drain(response)
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except OutboundRefusedError as exc:
            return self._outcome(delivery, None, f"refused by the outbound guard at connect time: {exc}", None)
        except TimeoutError:
            return self._outcome(delivery, None, "timed out", None)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return self._outcome(delivery, None, f"{type(exc).__name__}: {exc}"[:_ERROR_LENGTH], None)
        if 200 <= status < 300:
            return DeliveryOutcome(delivery.message_id, delivery.subscription_id, True, status, None, None)
        if status == 410:
            return self._outcome(delivery, status, "410 Gone: the endpoint asked to stop", None, disable="gone")
        return self._outcome(delivery, status, f"answered {status}", retry_after)

    def _outcome(
        self,
        delivery: Delivery,
        status: int | None,
        error: str,
        retry_after: float | None,
        *,
        disable: str | None = None,
    ) -> DeliveryOutcome:
        delay = None if disable else next_delay(delivery.attempts + 1, retry_after, self._rng, self._schedule)
        next_at = _us(self._clock() + delay) if delay is not None else None
        return DeliveryOutcome(delivery.message_id, delivery.subscription_id, False, status, error, next_at, disable)


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read at most :data:`RESPONSE_READ_LIMIT` bytes of the answer (it is not needed; a longer one is cut off and
    its connection closed)."""
    read = 0
    while read < RESPONSE_READ_LIMIT:
        chunk = await response.content.read(RESPONSE_READ_LIMIT - read)
        if not chunk:
            return
        read += len(chunk)
    if not response.content.at_eof():
        response.close()


def notification_document(entry: dict[str, Any], sequence: int, timestamp: str) -> bytes:
    """The body of a ``list.changed`` message: the feed entry plus its ``sequence`` (the plain way)."""
    document = {"type": NOTIFICATION_TYPE, "timestamp": timestamp, "data": {**entry, "sequence": sequence}}
    return json.dumps(document, ensure_ascii=False).encode()


def notification_body(entry_text: str, sequence: int, timestamp: str) -> bytes:
    """:func:`notification_document` from the entry's JSON text (``json.dumps(entry, ensure_ascii=False)`` of an
    object with members, none named ``sequence``), spliced instead of serialised again: a change that goes to several
    subscriptions of one key is serialised once (a property test holds the two byte for byte equal)."""
    return (
        f'{{"type": {json.dumps(NOTIFICATION_TYPE)}, "timestamp": {json.dumps(timestamp, ensure_ascii=False)}, "data": '
        f'{entry_text[:-1]}, "sequence": {sequence}}}}}'
    ).encode()


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


def outcome_name(outcome: DeliveryOutcome) -> str:
    """What became of a delivery attempt, as ``/metrics`` counts it."""
    if outcome.delivered:
        return "delivered"
    if outcome.disable is not None:
        return "disabled"
    return "retry" if outcome.next_attempt_at is not None else "failed"


def dispatcher_for(
    store: Store, master: MasterKey, settings: GatewaySettings, *, on_outcome: Callable[[str], None] | None = None
) -> Dispatcher:
    """The dispatcher ``serve`` and ``dispatch`` run, as the settings say (its guard allows the operator's networks)."""
    return Dispatcher(
        store,
        master,
        OutboundGuard(parse_networks(settings.outbound_allowed_networks)),
        concurrency=settings.dispatch_concurrency,
        per_subscription=max(1, settings.dispatch_concurrency // 4),
        schedule=settings.retry_schedule,
        timeout=settings.dispatch_timeout,
        lease=settings.dispatch_lease,
        on_outcome=on_outcome,
    )
