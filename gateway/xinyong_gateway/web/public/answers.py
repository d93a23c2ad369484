"""Answers of the public site reused for a moment (a micro-cache): a subject's page and its badge, by code.

The pages are public, the same for everyone, and already cacheable by anyone for a minute (``Cache-Control:
public, max-age=60``; the badge 300 s). A shop that many people look at is asked for over and over; each time the
gateway would read the same row and work out the same answer. :class:`AnswerCache` keeps the answer (its entity tag,
and its body once one was made) for at most ``ttl`` seconds of the site's clock, so a revalidation or a repeated
view of a popular subject costs a dictionary lookup. What the public may see lags the store by at most ``ttl``
(default 1 s, ``XINYONG_PUBLIC_CACHE_TTL``; 0 turns it off), far less than the minute the pages allow other caches.

:meth:`AnswerCache.keep` takes an answer's tag from its first view and its body too from the second within ``ttl``
on: most of a register is looked at once in a while, and keeping those bodies would cost memory and the
CPU's caches for nothing (bench/README.md, "public.py"). Bounded: at most ``entries`` answers
(``XINYONG_PUBLIC_CACHE_ENTRIES``); past that the one stored first goes (all expire after ``ttl`` anyway, so first
stored is least recently useful). An unknown subject is never kept: a flood of made-up codes pushes nothing out.
Each process keeps its own (one event loop: no locks).

Held equal to the slow path by ``tests/gateway/test_public_answers.py``: what a cached answer says is what the store
said at most ``ttl`` earlier.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import NamedTuple

__all__ = ["Answer", "AnswerCache"]


class Answer(NamedTuple):
    """An answer as kept: its entity tag, and its body (None while only a revalidation asked, answered 304)."""

    etag: str
    body: bytes | None


class AnswerCache:
    """Answers by key, each for ``ttl`` seconds of ``clock``, at most ``entries`` of them."""

    __slots__ = ("_clock", "_entries", "_limit", "_ttl")

    def __init__(self, *, ttl: float, entries: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._limit = entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, Answer]] = {}

    def get(self, key: Hashable) -> Answer | None:
        """The answer kept for ``key`` if it was stored less than ``ttl`` ago (by a clock that went back: not)."""
        found = self._entries.get(key)
        if found is None:
            return None
        stored_at, answer = found
        if stored_at <= self._clock() < stored_at + self._ttl:
            return answer
        del self._entries[key]
        return None

    def keep(self, key: Hashable, etag: str, body: bytes | None) -> None:
        """Note the answer worked out now for ``key`` (``body`` None: a 304 answered it): its tag is kept from its
        first view, its body too from the second view within ``ttl`` that finds the same tag kept."""
        found = self.get(key)
        if found is None or found.etag != etag:
            self.put(key, Answer(etag, None))
        elif found.body is None and body is not None:
            self.put(key, Answer(etag, body))

    def put(self, key: Hashable, answer: Answer) -> None:
        """Keep ``answer`` for ``key`` from now (nothing when the cache is off)."""
        if self._ttl <= 0:
            return
        entries = self._entries
        entries.pop(key, None)  # stored anew: goes to the end of the order of storing
        entries[key] = (self._clock(), answer)
        if len(entries) > self._limit:
            del entries[next(iter(entries))]

    def __len__(self) -> int:
        return len(self._entries)
