"""API keys of the query side: issuing them, and the gateway's in-memory view of them.

An API key is ``xyk_<16 base32 characters>_<64 hex digits>``: the first part names the key (its id is
``key_<the same 16 characters>``), the second is a 256-bit secret. The database keeps only an HMAC-SHA256 of the
secret under a key derived from the master key (``MasterKey.api_key_digest``), the key's scopes (``screen``,
``changes``, ``cases``), the sources it speaks for (whose objections and repair applications it may read), its own
rate limit if any, and its **lookup secret** (``xyls_…``, 256 bits) sealed under the master
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

import base64
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from xinyong.queries import LOOKUP_SECRET_PREFIX
from xinyong_gateway.access.ratelimit import TokenBucket
from xinyong_gateway.access.registry import Registry
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import ApiKeyRecord, ApiScope, Store, to_micros

__all__ = [
    "API_KEY_PREFIX",
    "ActiveApiKey",
    "ApiKeyRegistry",
    "IssuedApiKey",
    "add_api_key",
    "parse_api_key",
]

_log = structlog.get_logger("xinyong_gateway.access.api_keys")

API_KEY_PREFIX = "xyk_"
_KEY_ID_PREFIX = "key_"
_TOKEN = re.compile(r"xyk_([a-z2-7]{16})_([0-9a-f]{64})")


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
    sources: Sequence[str] = (),
) -> IssuedApiKey:
    """Issue a key: store its digest and sealed lookup secret; return it with the key and lookup secret.
    ``sources``: the sources the key speaks for (the objections and repairs it may read with ``cases``)."""
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
            created_at=to_micros(now),
            revoked_at=None,
            sources=tuple(dict.fromkeys(sources)),
        )
    )
    return IssuedApiKey(record, f"{API_KEY_PREFIX}{suffix}_{secret}", LOOKUP_SECRET_PREFIX + lookup.hex())


@dataclass(slots=True)
class ActiveApiKey:
    """What a request needs of a working key, ready to use."""

    key_id: str
    scopes: frozenset[str]
    sources: frozenset[str]
    """The sources the key speaks for (``cases``: whose filings it may read)."""
    secret_digest: bytes
    lookup_key: bytes
    """The lookup secret's 32 bytes (the feed's RIC pseudonyms are HMAC-SHA256 under it)."""
    bucket: TokenBucket
    verified: str | None = field(default=None, repr=False, compare=False)
    """The last secret that verified, so that the next request with it is checked with one comparison instead of
    an HMAC. It lives as long as this object: the registry drops the object when the key is revoked."""

    def verifies(self, master: MasterKey, secret: str) -> bool:
        """Whether ``secret`` is this key's (constant-time comparisons: with the last verified secret, else of the
        digests)."""
        if self.verified is not None and hmac.compare_digest(secret, self.verified):
            return True
        if hmac.compare_digest(master.api_key_digest(self.key_id, secret), self.secret_digest):
            self.verified = secret
            return True
        return False


class ApiKeyRegistry(Registry[ApiKeyRecord, ActiveApiKey]):
    """The active API keys, kept in memory and refreshed from the store."""

    _log = _log
    _refresh_failed_event = "api_keys.refresh_failed"

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
        super().__init__(refresh_interval=refresh_interval)
        self._store = store
        self._master = master
        self._default_rate = default_rate
        self._clock = clock

    @property
    def master(self) -> MasterKey:
        return self._master

    async def _list(self) -> Sequence[ApiKeyRecord]:
        return await self._store.list_api_keys()

    def _id(self, record: ApiKeyRecord) -> str:
        return record.key_id

    def _is_active(self, record: ApiKeyRecord) -> bool:
        return record.revoked_at is None

    def _build(self, record: ApiKeyRecord, previous: ActiveApiKey | None) -> ActiveApiKey:
        rate = record.rate_limit or self._default_rate
        if previous is not None and previous.bucket.rate == rate:
            bucket = previous.bucket
        else:
            bucket = TokenBucket(rate, now=self._clock())
        return ActiveApiKey(
            key_id=record.key_id,
            scopes=frozenset(record.scopes),
            sources=frozenset(record.sources),
            secret_digest=record.secret_digest,
            lookup_key=self._master.open_lookup_secret(record.key_id, record.sealed_lookup_secret),
            bucket=bucket,
        )
