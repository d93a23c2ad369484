"""Sources: who may post webhooks, with which keys, and the gateway's in-memory view of them.

A source is one sender (a marketplace, a courier company, a regulator, an intermediary agency) with a kind that
decides which event types it may post (an intermediary about itself only), one or more keys (a ``whsec_`` secret,
or a registered ``whpk_`` Ed25519 public key; during a rotation the old key stays valid for a grace period) and an
optional rate limit.

Secrets are stored sealed under the master key and are shown once, when created or rotated.
:class:`SourceRegistry` keeps the active sources and ready-made verifiers in memory; it reloads the table
every few seconds, and at once (throttled) when a request names a source it does not know yet, so a source
added from the command line works within milliseconds without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from xinyong.events import SourceKind
from xinyong.webhooks import SigningSecret, VerifyingKey, WebhookVerifier
from xinyong_gateway.access.ratelimit import TokenBucket
from xinyong_gateway.access.registry import Registry
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import NewSourceKey, SourceKey, SourceRecord, Store, to_micros

__all__ = [
    "OPERATOR_SOURCE_ID",
    "ActiveSource",
    "SourceRegistry",
    "add_source",
    "ensure_operator_source",
    "new_source_id",
    "rotate_source",
]

_log = structlog.get_logger("xinyong_gateway.access.sources")


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


OPERATOR_SOURCE_ID = "src_operator"
"""The gateway's own source: the operator's objection and repair commands write their events under it. Its secret is
never shown, so nothing can post as it over HTTP; only the command line (with the database and the master key)
writes its events."""


async def ensure_operator_source(store: Store, master: MasterKey, *, now: datetime) -> SourceRecord:
    """The operator source, created (as a regulator) when it does not exist yet; ``migrate`` calls this."""
    existing = await store.get_source(OPERATOR_SOURCE_ID)
    if existing is not None:
        return existing
    key, _ = _new_key(master, OPERATOR_SOURCE_ID, None)
    return await store.create_source(
        source_id=OPERATOR_SOURCE_ID,
        kind="regulator",
        name="xinyong-gateway operator",
        uscc=None,
        rate_limit=None,
        key=key,
        now=to_micros(now),
    )


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
        source_id=source_id, kind=kind, name=name, uscc=uscc, rate_limit=rate_limit, key=key, now=to_micros(now)
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
    record = await store.rotate_source_key(source_id, key, now=to_micros(now), grace_until=to_micros(now + grace))
    return record, secret


@dataclass(slots=True)
class ActiveSource:
    """What the ingest path needs of a source, ready to use."""

    source_id: str
    kind: SourceKind
    uscc: str | None
    """The sender's own code: a source of kind ``intermediary`` posts about it only."""
    verifier: WebhookVerifier
    bucket: TokenBucket
    rebuild_at: float
    """Unix time at which a key in grace expires and the verifier must be rebuilt (inf: never)."""


class SourceRegistry(Registry[SourceRecord, ActiveSource]):
    """The active sources, kept in memory and refreshed from the store.

    :meth:`reload` is also used when a request's signature matches none of the keys held in memory: a key
    rotated in from the command line works on its first request."""

    _log = _log
    _refresh_failed_event = "sources.refresh_failed"

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
        super().__init__(refresh_interval=refresh_interval)
        self._store = store
        self._master = master
        self._tolerance = tolerance
        self._default_rate = default_rate
        self._clock = clock

    async def _list(self) -> Sequence[SourceRecord]:
        return await self._store.list_sources()

    def _id(self, record: SourceRecord) -> str:
        return record.source_id

    def _is_active(self, record: SourceRecord) -> bool:
        return record.status == "active"

    def _build(self, record: SourceRecord, previous: ActiveSource | None) -> ActiveSource | None:
        now = self._clock()
        now_us = int(now * 1_000_000)
        keys: list[SigningSecret | VerifyingKey] = []
        rebuild_at = float("inf")
        for key in record.keys:
            if not key.valid_at(now_us):
                continue
            keys.append(self._open_key(record.source_id, key))
            if key.expires_at is not None:
                rebuild_at = min(rebuild_at, key.expires_at / 1_000_000)
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
            uscc=record.uscc,
            verifier=WebhookVerifier(keys, tolerance=self._tolerance, clock=self._clock),
            bucket=bucket,
            rebuild_at=rebuild_at,
        )

    def _open_key(self, source_id: str, key: SourceKey) -> SigningSecret | VerifyingKey:
        if key.scheme == "v1":
            return SigningSecret(self._master.open_secret(source_id, key.material))
        return VerifyingKey(key.material)

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
