"""PostgreSQL's advisory locks and connections: the lock keys, the settings of every connection, how driver errors
read, and the projection claims (:class:`PostgresClaims`). The store (``postgresql.py``) uses the rest.

**Lock keys.** Advisory locks belong to a database, not to a schema, while a gateway's tables live in the first
schema of its search path (``?search_path=…`` in the URL). Every key is therefore the pair (oid of that schema,
a constant below): gateways on two schemas of one database neither wait for each other nor share projection
claims.

**Projection claims** are session advisory locks on a connection of their own: a member slot, so that live
projectors can count each other, and one lock per partition held. Each projector takes a fair share of the
partitions (16 divided by the live members, rounded up), gives back what it holds beyond that and takes over free
ones, at most once a second. A process that dies loses its connection, the server frees its locks, and the
survivors take its partitions at their next rebalance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import structlog

from xinyong_gateway.errors import ConfigError, StoreError, StoreUnavailableError
from xinyong_gateway.store.base import (
    PartitionClaims,
)
from xinyong_gateway.store.records import (
    PARTITIONS,
)

__all__ = ["PostgresClaims"]

_log = structlog.get_logger("xinyong_gateway.store")

SERVER_SETTINGS = {"synchronous_commit": "on"}
"""Sent on every connection; overrides the same setting given in the URL."""
CONNECT_TIMEOUT = 10.0
REBALANCE_INTERVAL = 1.0
"""Seconds between two rebalances of a projector's claims."""

# The second half of every advisory lock key (the first is the oid of the gateway's schema). 0x7879 is "xy".
LOCK_INBOX = 0x7879_0001
"""Held (per transaction) from before an inbox insert draws its seqs until it commits."""
LOCK_FEED = 0x7879_0002
"""Held (per transaction) from before status changes draw their ids until the commit."""
LOCK_MIGRATIONS = 0x7879_0003
"""Held (per session) for a whole ``migrate``: two runs at once take turns, and the second finds nothing to do."""
LOCK_AUDIT = 0x7879_0004
"""Held (per transaction) by an audit append from its read of the head to its commit: one chain, whoever writes."""
_LOCK_MEMBER = 0x7879_0100
"""Plus a slot number below ``_MEMBER_SLOTS``: held (per session) by each live projector's claims."""
_MEMBER_SLOTS = 256
_LOCK_PARTITION = 0x7879_0200
"""Plus a partition number: held (per session) by the projector that claims the partition."""

SCHEMA_OID = "SELECT oid FROM pg_namespace WHERE nspname = current_schema()"
XACT_LOCK = "SELECT pg_advisory_xact_lock($1, $2)"
LOCK = "SELECT pg_advisory_lock($1, $2)"
UNLOCK = "SELECT pg_advisory_unlock($1, $2)"
_TRY_LOCK = "SELECT pg_try_advisory_lock($1, $2)"
_COUNT_MEMBERS = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = $1::int4::oid AND objid BETWEEN $2::int4::oid AND $3::int4::oid"
)
"""Live projectors on this schema: the granted member locks (``objsubid = 2``: the two-key form)."""

DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)
"""What asyncpg raises: server errors, client-side errors, and the network's."""


def without_password(url: str) -> str:
    """``url`` without its password (in the user part or a ``password`` query parameter), for messages."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # the URL itself is not shown: it may hold a password
        raise ConfigError(f"The PostgreSQL database URL cannot be read: {reason(exc)}.") from exc
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hosts = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{hosts}"
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if "password" not in name]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/,"), parts.fragment))


def reason(exc: BaseException) -> str:
    """What went wrong, as the end of a sentence."""
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc).strip().rstrip(".") or type(exc).__name__


def lock_space(schema_oid: int) -> int:
    """The first advisory lock key of a schema: its oid, as the signed 32-bit integer the lock functions take."""
    return schema_oid - (1 << 32) if schema_oid >= 1 << 31 else schema_oid


class PostgresClaims(PartitionClaims):
    """A projector's claims on projection partitions: session advisory locks on a dedicated connection.

    The connection is opened on the first :meth:`acquire`; it takes a member slot (so that other projectors
    count this one) and then partition locks. Every ``rebalance_interval`` seconds at most, :meth:`acquire`
    counts the live members and moves towards a fair share; in between it answers from memory. When the
    connection breaks, the claims are gone: :meth:`acquire` answers 0 and reconnects on a later call.
    :meth:`release` closes the connection, which frees every lock at once."""

    def __init__(
        self, url: str, *, rebalance_interval: float = REBALANCE_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._display_url = without_password(url)
        self._interval = rebalance_interval
        self._clock = clock
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._space = 0
        self._offset = 0
        self._held: set[int] = set()
        self._next_rebalance = -math.inf

    async def acquire(self) -> int:
        now = self._clock()
        if now >= self._next_rebalance:
            self._next_rebalance = now + self._interval
            try:
                if self._conn is None:
                    self._conn = await self._connect()
                await self._rebalance(self._conn)
            except (*DRIVER_ERRORS, StoreError) as exc:
                _log.warning("projector.claims_lost", database=self._display_url, error=reason(exc))
                await self.release()
        return sum(1 << partition for partition in self._held)

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=CONNECT_TIMEOUT)
        except DRIVER_ERRORS:
            conn.terminate()

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record]:
        """A new connection holding a member slot."""
        conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT, server_settings=SERVER_SETTINGS)
        try:
            schema_oid = await conn.fetchval(SCHEMA_OID)
            if schema_oid is None:
                raise StoreUnavailableError(f"No schema of the search path of {self._display_url} exists.")
            self._space = lock_space(schema_oid)
            for slot in range(_MEMBER_SLOTS):
                if await conn.fetchval(_TRY_LOCK, self._space, _LOCK_MEMBER + slot):
                    break
            else:
                raise StoreUnavailableError(f"All {_MEMBER_SLOTS} projector slots of {self._display_url} are taken.")
        except BaseException:
            conn.terminate()
            raise
        # Projectors start their search for free partitions at different places (the slot's bits reversed
        # spread 0, 8, 4, 12, 2, …), so a newcomer does not contend with every other one for the same partitions.
        self._offset = int(f"{slot % PARTITIONS:04b}"[::-1], 2)
        return conn

    async def _rebalance(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        members = int(await conn.fetchval(_COUNT_MEMBERS, self._space, _LOCK_MEMBER, _LOCK_MEMBER + _MEMBER_SLOTS - 1))
        share = -(-PARTITIONS // max(members, 1))
        preference = [(self._offset + step) % PARTITIONS for step in range(PARTITIONS)]
        for partition in reversed(preference):  # give back the least preferred first
            if len(self._held) <= share:
                break
            if partition in self._held:
                await conn.execute(UNLOCK, self._space, _LOCK_PARTITION + partition)
                self._held.discard(partition)
        for partition in preference:
            if len(self._held) >= share:
                break
            if partition not in self._held and await conn.fetchval(_TRY_LOCK, self._space, _LOCK_PARTITION + partition):
                self._held.add(partition)
