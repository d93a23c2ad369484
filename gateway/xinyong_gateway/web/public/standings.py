"""Every organisation's badge standing in memory, by USCC, following the store: a badge without a read.

The badge (``/public/badge/{USCC}.svg``) is what marketplaces put on every shop page: the site's most asked-for
answer, for any organisation of the register, mostly ones nobody asked for a moment ago, so kept answers
(``web.public.answers``) seldom hold it. What it shows is a function of the organisation's *standing* (its stored
status's list and grade, and ``next_change_at``, when time alone may change them), the day and the site's address.
:class:`StandingsBook` keeps every organisation's standing in memory:

- The store lists the standings written after a sequence number, in the order written
  (``Store.standings_after``; on SQLite, triggers write them in the transaction that writes the status, migration
  0017, and one writer commits at a time, so the rows after ``seq`` are all that was committed since a reader saw
  ``seq``).
- The book reads them from 0 at start-up, a chunk at a time between the loop's turns (``PublicSite
  .follow_standings``), then again whenever the store's change marker moves (``Store.change_marker``), on the first
  badge of a turn.
- It is **current** only when it has read everything committed up to the marker read this turn (the marker is read
  first: a commit after it moves the next one). Only a current book answers, and only for an organisation it holds
  whose ``next_change_at`` has not come. Otherwise (still loading, a backlog longer than a chunk, an unknown or
  malformed code, a standing due to change by time) the badge reads the store as before.

So a badge from the book is the badge the store's read gives at that moment: no lag, no ttl.
``tests/gateway/test_public_standings.py`` holds it to the read through random changes, revalidations and time
passing.

Memory: about 80 bytes per organisation (its code and a slot; standings without a ``next_change_at`` share one
object per list and grade), some 80 MiB for a million organisations, in each process that serves. PostgreSQL hands
out sequence numbers in the order transactions ask, not the order they commit, so it cannot list what was written
since: there the store answers None and every badge reads the store. ``XINYONG_PUBLIC_BADGE_BOOK=false`` turns the
book off.
"""

from __future__ import annotations

from collections.abc import Callable

from xinyong_gateway.store import OrganisationStanding, Standing

__all__ = ["CHUNK", "StandingsBook"]

CHUNK = 2_000
"""Standings read at most at once: a few milliseconds of the loop's time."""

_NEVER = object()
"""The marker of a book that has never been current (equal to no store's marker)."""

ReadAfter = Callable[[int, int], "list[OrganisationStanding] | None"]


class StandingsBook:
    """Standings by USCC, read from ``read(seq, limit)`` (``Store.standings_after``)."""

    def __init__(self, read: ReadAfter, *, chunk: int = CHUNK) -> None:
        self._read = read
        self._chunk = chunk
        self._standings: dict[str, Standing] = {}
        self._shared: dict[tuple[str, str | None], Standing] = {}
        self._seq = 0
        self._marker: object = _NEVER
        self.followable = True
        """False once the store said it cannot list standings in commit order: the book stays empty."""

    def __len__(self) -> int:
        return len(self._standings)

    def current(self, marker: object | None) -> bool:
        """Whether the book holds everything the store committed up to ``marker`` (``Store.change_marker``)."""
        return marker is not None and marker == self._marker

    def catch_up(self, marker: object | None) -> bool:
        """True when the book holds everything committed up to ``marker`` (``Store.change_marker``, read by the caller
        before): at once when it is :meth:`current`, else after reading up to a chunk of the standings written since
        it last read (None: the store cannot tell; nothing is read).

        Raises the store's ``StoreError`` when it cannot read: the book is unchanged."""
        if self.current(marker):
            return True
        if marker is None or not self.followable:
            return False
        rows = self._read(self._seq, self._chunk)
        if rows is None:
            self.followable = False
            return False
        standings, shared = self._standings, self._shared
        for row in rows:
            if row.next_change_at is None:
                pair = (row.list, row.grade)
                standing = shared.get(pair)
                if standing is None:
                    standing = shared[pair] = Standing(row.list, row.grade, None)
            else:
                standing = Standing(row.list, row.grade, row.next_change_at)
            standings[row.code] = standing
        if rows:
            self._seq = rows[-1].seq
        if len(rows) < self._chunk:
            self._marker = marker
            return True
        return False

    def get(self, code: str) -> Standing | None:
        """The standing of the organisation with USCC ``code`` as last read; None when the book holds none (only a
        current book's answer is the store's)."""
        return self._standings.get(code)
