"""Answers of the public site reused (a micro-cache): a subject's page and its badge, by code.

The pages are public, the same for everyone, and already cacheable by anyone for a minute (``Cache-Control:
public, max-age=60``; the badge 300 s). A shop that many people look at is asked for over and over; each time the
gateway would read the same row and work out the same answer. :class:`AnswerCache` keeps the answer (its entity tag,
and its body once one was made), so a revalidation or a repeated view of a popular subject costs a dictionary
lookup. What the public may see lags the store by at most ``ttl`` seconds of the site's clock (default 1 s,
``XINYONG_PUBLIC_CACHE_TTL``; 0 turns it off), far less than the minute the pages allow other caches.

Past its ``ttl`` an answer is still good when nothing can have changed it since it was worked out: the store has
committed nothing since (``Store.change_marker``, read before the store was; on SQLite its ``data_version``, which any
commit of any process moves; PostgreSQL cannot tell without a round trip and keeps answers for the ttl only), the
site's policy and sources are the ones it was worked out with, and its horizon has not come (the end of the China
Standard Time day it shows, the subject's ``next_change_at``). Such an answer is stamped anew and reused for another
``ttl``: one basis comparison per answer per ttl, however often it is asked for. On a store being written to, any
commit ends that, and answers are reused for the ttl only.

:meth:`AnswerCache.keep` takes an answer's tag from its first view and its body too from the next view that finds the
tag kept: most of a register is looked at once in a while, and keeping those bodies would cost memory and the CPU's
caches for nothing (bench/README.md, "public.py"). Bounded: at most ``entries`` answers
(``XINYONG_PUBLIC_CACHE_ENTRIES``) in two segments (a segmented LRU). An answer stored goes on probation; one asked
for again moves to the protected segment (at most four fifths of the entries, whose least recently asked for goes
back on probation). Past the bound, the answer on probation stored longest ago goes: a crawler walking the register,
or a run of one-off views, pushes out only answers nobody asked for twice, not a popular shop's. An unknown subject
is never kept: a flood of made-up codes pushes nothing out. Each process keeps its own (one event loop: no locks).

Held equal to the slow path by ``tests/gateway/test_public_answers.py``: what a kept answer says is what the slow path
says now or said at most ``ttl`` earlier.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import NamedTuple

__all__ = ["Answer", "AnswerCache"]


class Answer(NamedTuple):
    """An answer as kept: its entity tag, and its body (None while only a revalidation asked, answered 304)."""

    etag: str
    body: bytes | None


class _Kept(NamedTuple):
    stamped: float
    """When the answer was worked out, or last found still good (the site's clock)."""
    answer: Answer
    basis: object | None
    """What it was worked out from (``basis()`` read before the store was); None: good for the ttl only."""
    until: float
    """Its horizon: never good past this (the site's clock), whatever the basis says."""


def _none() -> None:
    return None


class AnswerCache:
    """Answers by key, each good for ``ttl`` seconds of ``clock`` (and past that while ``basis()`` is the one it was
    kept with, until its horizon), at most ``entries`` of them: a segmented LRU (see the module's docstring)."""

    __slots__ = ("_basis", "_clock", "_limit", "_probation", "_protected", "_protected_limit", "_ttl")

    def __init__(
        self,
        *,
        ttl: float,
        entries: int,
        clock: Callable[[], float],
        basis: Callable[[], object | None] = _none,
    ) -> None:
        self._ttl = ttl
        self._limit = entries
        self._protected_limit = max(1, entries * 4 // 5)
        self._clock = clock
        self._basis = basis
        self._probation: dict[Hashable, _Kept] = {}
        """Answers stored and not asked for since, oldest first: the first to go."""
        self._protected: dict[Hashable, _Kept] = {}
        """Answers asked for again, least recently first: at most four fifths of ``entries``."""

    def basis(self) -> object | None:
        """What an answer worked out from now is worked out from: read it before the store, pass it to :meth:`keep`
        (None when the cache is off, or the site cannot tell)."""
        return self._basis() if self._ttl > 0 else None

    def get(self, key: Hashable) -> Answer | None:
        """The answer kept for ``key`` if it was stamped less than ``ttl`` ago, or if it is still good (see the
        module's docstring: then it is stamped anew); a clock that went back makes it stale. An answer found is
        moved to the protected segment's most recent end."""
        segment = self._protected if key in self._protected else self._probation
        found = segment.pop(key, None)
        if found is None:
            return None
        now = self._clock()
        if not found.stamped <= now < found.stamped + self._ttl:
            if found.basis is None or not found.stamped <= now < found.until:
                return None  # gone
            basis = self._basis()
            if found.basis != basis:
                return None  # gone
            # Still the answer: good for another ttl. It is kept with the current basis from now on (equal, but
            # perhaps not the same object, such as sources reloaded unchanged): compared by identity next time.
            found = found._replace(stamped=now, basis=basis)
        protected = self._protected
        protected[key] = found
        if len(protected) > self._protected_limit:  # the least recently asked for goes back on probation
            demoted = next(iter(protected))
            self._probation[demoted] = protected.pop(demoted)
        return found.answer

    def keep(
        self, key: Hashable, etag: str, body: bytes | None, *, basis: object | None = None, until: float = 0.0
    ) -> None:
        """Note the answer worked out now for ``key`` (``body`` None: a 304 answered it) from ``basis`` (what
        :meth:`basis` said before the store was read), good at most until ``until``: its tag is kept from its first
        view, its body too from the next view that finds the same tag kept."""
        found = self.get(key)
        if found is None or found.etag != etag:
            self.put(key, Answer(etag, None), basis=basis, until=until)
        elif found.body is None and body is not None:
            self.put(key, Answer(etag, body), basis=basis, until=until)

    def put(self, key: Hashable, answer: Answer, *, basis: object | None = None, until: float = 0.0) -> None:
        """Keep ``answer`` for ``key`` from now (nothing when the cache is off): in the protected segment if it is
        there already, else on probation."""
        if self._ttl <= 0:
            return
        kept = _Kept(self._clock(), answer, basis, until)
        if self._protected.pop(key, None) is not None:
            self._protected[key] = kept
        else:
            self._probation.pop(key, None)  # stored anew: goes to the end of the order of storing
            self._probation[key] = kept
        while len(self._probation) + len(self._protected) > self._limit:
            segment = self._probation or self._protected
            del segment[next(iter(segment))]

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)
