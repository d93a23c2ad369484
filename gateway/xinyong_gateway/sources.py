"""Sources: who may post webhooks, with which keys, and the gateway's in-memory view of them.

A source is one sender (a marketplace, a courier company, a regulator) with a kind that decides which
event types it may post, one or more keys (a ``whsec_`` secret, or a registered ``whpk_`` Ed25519 public key;
during a rotation the old key stays valid for a grace period) and an optional rate limit.

Secrets are stored sealed under the master key and are shown once, when created or rotated.
:class:`SourceRegistry` keeps the active sources and ready-made verifiers in memory; it reloads the table
every few seconds, and at once (throttled) when a request names a source it does not know yet, so a source
added from the command line works within milliseconds without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from xinyong.events import SourceKind
from xinyong.webhooks import SigningSecret, VerifyingKey, WebhookVerifier
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import StoreError
from xinyong_gateway.ratelimit import TokenBucket
from xinyong_gateway.store import NewSourceKey, SourceKey, SourceRecord, Store

__all__ = [
    "ActiveSource",
    "SourceRegistry",
    "add_source",
    "new_source_id",
    "rotate_source",
]

_log = structlog.get_logger("xinyong_gateway.sources")

_MISS_RELOAD_INTERVAL = 0.2
"""Unknown source ids reload the table at most this often (seconds)."""


def new_source_id() -> str:
    """``src_`` and 16 random base32 characters (80 bits)."""
    return "src_" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def _fingerprint(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()[:12]


def _new_key(
    master: MasterKey, source_id: str, public_key: VerifyingKey | None
) -> tuple[NewSourceKey, SigningSecret | None]:
    if public_key is not None:
        return NewSourceKey("v1a", public_key.raw, _fingerprint(public_key.raw)), None
    secret = SigningSecret.generate()
    sealed = master.seal_secret(source_id, secret.key)
    return NewSourceKey("v1", sealed, _fingerprint(secret.key)), secret


async def add_source(
    store: Store,
    master: MasterKey,
    *,
    kind: SourceKind,
    name: str,
    uscc: str | None = None,
    public_key: VerifyingKey | None = None,
    rate_limit: float | None = None,
    now: datetime,
) -> tuple[SourceRecord, SigningSecret | None]:
    """Register a source; returns it and, for a symmetric source, its new secret (shown once)."""
    source_id = new_source_id()
    key, secret = _new_key(master, source_id, public_key)
    record = await store.create_source(
        source_id=source_id, kind=kind, name=name, uscc=uscc, rate_limit=rate_limit, key=key, now=now
    )
    return record, secret


async def rotate_source(
    store: Store,
    master: MasterKey,
    source_id: str,
    *,
    public_key: VerifyingKey | None = None,
    grace: timedelta,
    now: datetime,
) -> tuple[SourceRecord, SigningSecret | None]:
    """Give a source a new current key (a new secret, or the given public key); its other keys stay
    valid for ``grace``."""
    key, secret = _new_key(master, source_id, public_key)
    record = await store.rotate_source_key(source_id, key, now=now, grace_until=now + grace)
    return record, secret


@dataclass(slots=True)
class ActiveSource:
    """What the ingest path needs of a source, ready to use."""

    source_id: str
    kind: SourceKind
    verifier: WebhookVerifier
    bucket: TokenBucket
    rebuild_at: float
    """Unix time at which a key in grace expires and the verifier must be rebuilt (inf: never)."""


class SourceRegistry:
    """The active sources, kept in memory and refreshed from the store."""

    def __init__(
        self,
        store: Store,
        master: MasterKey,
        *,
        tolerance: int,
        default_rate: float,
        refresh_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._master = master
        self._tolerance = tolerance
        self._default_rate = default_rate
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._records: dict[str, SourceRecord] = {}
        self._active: dict[str, ActiveSource] = {}
        self._last_refresh = float("-inf")
        self._refresh_lock = asyncio.Lock()

    def _build(self, record: SourceRecord, previous: ActiveSource | None) -> ActiveSource | None:
        now = self._clock()
        moment = datetime.fromtimestamp(now, UTC)
        keys: list[SigningSecret | VerifyingKey] = []
        rebuild_at = float("inf")
        for key in record.keys:
            if not key.valid_at(moment):
                continue
            keys.append(self._open_key(record.source_id, key))
            if key.expires_at is not None:
                rebuild_at = min(rebuild_at, key.expires_at.timestamp())
        if not keys:
            return None
        rate = record.rate_limit or self._default_rate
        if previous is not None and previous.bucket.rate == rate:
            bucket = previous.bucket
        else:
            bucket = TokenBucket(rate, now=time.monotonic())
        return ActiveSource(
            source_id=record.source_id,
            kind=record.kind,
            verifier=WebhookVerifier(keys, tolerance=self._tolerance, clock=self._clock),
            bucket=bucket,
            rebuild_at=rebuild_at,
        )

    def _open_key(self, source_id: str, key: SourceKey) -> SigningSecret | VerifyingKey:
        if key.scheme == "v1":
            return SigningSecret(self._master.open_secret(source_id, key.material))
        return VerifyingKey(key.material)

    async def refresh(self) -> None:
        """Reload every source from the store (one query)."""
        async with self._refresh_lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        started = time.monotonic()
        records = await self._store.list_sources()
        active: dict[str, ActiveSource] = {}
        for record in records:
            if record.status != "active":
                continue
            previous = self._active.get(record.source_id)
            if previous is not None and self._records.get(record.source_id) == record:
                active[record.source_id] = previous  # unchanged: keep its verifier (and bucket)
                continue
            built = self._build(record, previous)
            if built is not None:
                active[record.source_id] = built
        self._records = {record.source_id: record for record in records}
        self._active = active
        self._last_refresh = started

    def get(self, source_id: str) -> ActiveSource | None:
        """The active source with this id, from memory (no I/O)."""
        source = self._active.get(source_id)
        if source is not None and self._clock() >= source.rebuild_at:
            rebuilt = self._build(self._records[source_id], source)
            if rebuilt is None:
                del self._active[source_id]
            else:
                self._active[source_id] = rebuilt
            source = rebuilt
        return source

    async def lookup(self, source_id: str) -> ActiveSource | None:
        """Like :meth:`get`, but an unknown id reloads the table first (see :meth:`reload`)."""
        source = self.get(source_id)
        if source is not None:
            return source
        return await self.reload(source_id)

    async def reload(self, source_id: str) -> ActiveSource | None:
        """Reload the table, unless a reload started since this call, and return the source afresh.

        Used when a request names an unknown source, or when its signature matches none of the keys held
        in memory: a source added, or a key rotated in, from the command line works on its first
        request. Reloads are coalesced and run at most every 0.2 s, so a flood of unknown ids or bad
        signatures costs the database five small queries a second (and each such request waits for it).
        """
        asked_at = time.monotonic()
        async with self._refresh_lock:
            if self._last_refresh < asked_at:
                delay = self._last_refresh + _MISS_RELOAD_INTERVAL - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._refresh_locked()
        return self.get(source_id)

    async def run(self) -> None:
        """Reload the table every ``refresh_interval`` seconds until cancelled; store errors are retried."""
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except StoreError as exc:
                _log.warning("sources.refresh_failed", error=str(exc))
