"""API keys of the query side: issuing them, and the gateway's in-memory view of them.

An API key is ``xyk_<16 base32 characters>_<64 hex digits>``: the first part names the key (its id is
``key_<the same 16 characters>``), the second is a 256-bit secret. The database keeps only an HMAC-SHA256 of the
secret under a key derived from the master key (``MasterKey.api_key_digest``), the key's scopes (``screen``,
``changes``), its own rate limit if any, and its **lookup secret** (``xyls_…``, 256 bits) sealed under the master
key: the change feed names a RIC subject by the HMAC-SHA256 of the number under that secret, so each marketplace
gets pseudonyms of its own that it can compute for its merchants offline (``xinyong.ric_pseudonym``). The key and
its lookup secret are shown once, by ``xinyong-gateway keys add``.

:class:`ApiKeyRegistry` keeps the active keys in memory and reloads them every ``refresh_interval`` seconds
(``XINYONG_API_KEY_REFRESH_INTERVAL``, 2 s by default), and at once (coalesced, at most every 0.2 s) when a request
presents a key id it does not know: a key added from the command line works on its first request, a **revoked key
stops working within one refresh interval**, and a flood of unknown keys costs the database five small queries a
second.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from xinyong.queries import LOOKUP_SECRET_PREFIX
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import StoreError
from xinyong_gateway.ratelimit import TokenBucket
from xinyong_gateway.store import ApiKeyRecord, Store
from xinyong_gateway.store.base import ApiScope

__all__ = [
    "API_KEY_PREFIX",
    "ActiveApiKey",
    "ApiKeyRegistry",
    "IssuedApiKey",
    "add_api_key",
    "parse_api_key",
]

_log = structlog.get_logger("xinyong_gateway.api_keys")

API_KEY_PREFIX = "xyk_"
_KEY_ID_PREFIX = "key_"
_TOKEN = re.compile(r"xyk_([a-z2-7]{16})_([0-9a-f]{64})")
_MISS_RELOAD_INTERVAL = 0.2
"""Unknown key ids reload the table at most this often (seconds)."""


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A key just created: its record, and the two secrets that are shown this once and never stored."""

    record: ApiKeyRecord
    api_key: str
    lookup_secret: str


def parse_api_key(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed ``xyk_…`` key, else None (a ``whsec_`` secret, garbage, …)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return _KEY_ID_PREFIX + match.group(1), match.group(2)


async def add_api_key(
    store: Store,
    master: MasterKey,
    *,
    name: str,
    scopes: Sequence[ApiScope],
    rate_limit: float | None,
    now: datetime,
) -> IssuedApiKey:
    """Issue a key: store its digest and sealed lookup secret; return it with the key and lookup secret."""
    suffix = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    key_id = _KEY_ID_PREFIX + suffix
    secret = secrets.token_hex(32)
    lookup = secrets.token_bytes(32)
    record = await store.create_api_key(
        ApiKeyRecord(
            key_id=key_id,
            name=name,
            scopes=tuple(dict.fromkeys(scopes)),
            rate_limit=rate_limit,
            secret_digest=master.api_key_digest(key_id, secret),
            sealed_lookup_secret=master.seal_lookup_secret(key_id, lookup),
            created_at=now,
            revoked_at=None,
        )
    )
    return IssuedApiKey(record, f"{API_KEY_PREFIX}{suffix}_{secret}", LOOKUP_SECRET_PREFIX + lookup.hex())


@dataclass(slots=True)
class ActiveApiKey:
    """What a request needs of a working key, ready to use."""

    key_id: str
    scopes: frozenset[str]
    secret_digest: bytes
    lookup_key: bytes
    """The lookup secret's 32 bytes (the feed's RIC pseudonyms are HMAC-SHA256 under it)."""
    bucket: TokenBucket

    def verifies(self, master: MasterKey, secret: str) -> bool:
        """Whether ``secret`` is this key's (constant-time comparison of the digests)."""
        return hmac.compare_digest(master.api_key_digest(self.key_id, secret), self.secret_digest)


class ApiKeyRegistry:
    """The active API keys, kept in memory and refreshed from the store."""

    def __init__(
        self,
        store: Store,
        master: MasterKey,
        *,
        default_rate: float,
        refresh_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: monotonic seconds, for the rate buckets."""
        self._store = store
        self._master = master
        self._default_rate = default_rate
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._records: dict[str, ApiKeyRecord] = {}
        self._active: dict[str, ActiveApiKey] = {}
        self._last_refresh = float("-inf")
        self._refresh_lock = asyncio.Lock()

    @property
    def master(self) -> MasterKey:
        return self._master

    def _build(self, record: ApiKeyRecord, previous: ActiveApiKey | None) -> ActiveApiKey:
        rate = record.rate_limit or self._default_rate
        if previous is not None and previous.bucket.rate == rate:
            bucket = previous.bucket
        else:
            bucket = TokenBucket(rate, now=self._clock())
        return ActiveApiKey(
            key_id=record.key_id,
            scopes=frozenset(record.scopes),
            secret_digest=record.secret_digest,
            lookup_key=self._master.open_lookup_secret(record.key_id, record.sealed_lookup_secret),
            bucket=bucket,
        )

    async def refresh(self) -> None:
        """Reload every key from the store (one query)."""
        async with self._refresh_lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        started = time.monotonic()
        records = await self._store.list_api_keys()
        active: dict[str, ActiveApiKey] = {}
        for record in records:
            if record.revoked_at is not None:
                continue
            previous = self._active.get(record.key_id)
            if previous is not None and self._records.get(record.key_id) == record:
                active[record.key_id] = previous  # unchanged: keep it (and its bucket)
            else:
                active[record.key_id] = self._build(record, previous)
        self._records = {record.key_id: record for record in records}
        self._active = active
        self._last_refresh = started

    def get(self, key_id: str) -> ActiveApiKey | None:
        """The active key with this id, from memory (no I/O)."""
        return self._active.get(key_id)

    async def lookup(self, key_id: str) -> ActiveApiKey | None:
        """Like :meth:`get`, but an unknown id reloads the table first, unless a reload started since this call
        (coalesced, at most every 0.2 s)."""
        key = self._active.get(key_id)
        if key is not None:
            return key
        asked_at = time.monotonic()
        async with self._refresh_lock:
            if self._last_refresh < asked_at:
                delay = self._last_refresh + _MISS_RELOAD_INTERVAL - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._refresh_locked()
        return self._active.get(key_id)

    async def run(self) -> None:
        """Reload the table every ``refresh_interval`` seconds until cancelled; store errors are retried."""
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except StoreError as exc:
                _log.warning("api_keys.refresh_failed", error=str(exc))
