"""Every organisation's badge standing in memory, by USCC, following the store: a badge without a read (and most
subject pages too).

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

With ``pages`` (``XINYONG_PUBLIC_PAGE_BOOK``) the book also keeps, for every organisation whose subject page shows
its summary and published commitments alone (migration 0018: no reason in publicity, no objection, no agency
section), its :class:`SummaryPage`: the name, the :class:`Summary` (list, grade, score, measures, policy version;
shared by all who show the same) and whether it has commitments (read with the page: a merchant may have
hundreds). ``web.public.summaries`` answers such a page from it, under the same conditions as the badge.

Memory: about 80 bytes per organisation for the badge (its code and a slot; standings without a
``next_change_at`` share one object per list and grade), some 80 MiB for a million organisations, in each process
that serves; about 170 bytes more for each summary-only page (its name above all). PostgreSQL hands
out sequence numbers in the order transactions ask, not the order they commit, so it cannot list what was written
since: there the store answers None and every badge reads the store. ``XINYONG_PUBLIC_BADGE_BOOK=false`` turns the
book off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

from xinyong_gateway.store import OrganisationStanding, Standing

__all__ = ["CHUNK", "StandingsBook", "Summary", "SummaryPage"]

CHUNK = 2_000
"""Standings read at most at once: a few milliseconds of the loop's time."""

_NEVER = object()
"""The marker of a book that has never been current (equal to no store's marker)."""

ReadAfter = Callable[[int, int], "list[OrganisationStanding] | None"]


class Summary(NamedTuple):
    """What a summary-only subject page shows besides the organisation's name and code (its stored status's), shared
    by every organisation that shows the same."""

    list: str
    grade: str | None
    score: int | None
    measures: tuple[str, ...]
    policy_version: str | None


class SummaryPage(NamedTuple):
    """An organisation whose public page is its summary and published commitments alone
    (``OrganisationStanding.summary_only``)."""

    standing: Standing
    summary: Summary
    name: str | None
    committed: bool
    """Whether it has published commitments (the page reads them: ``Store.public_commitments``)."""


class StandingsBook:
    """Standings by USCC, read from ``read(seq, limit)`` (``Store.standings_after``); with ``pages``, also the
    summary of every organisation whose page shows nothing more than it and its commitments (and whether it has
    any)."""

    def __init__(self, read: ReadAfter, *, chunk: int = CHUNK, pages: bool = False) -> None:
        self._read = read
        self._chunk = chunk
        self._pages = pages
        self._entries: dict[str, Standing | SummaryPage] = {}
        self._shared: dict[tuple[str, str | None], Standing] = {}
        self._summaries: dict[tuple[object, ...], Summary] = {}
        self._seq = 0
        self._marker: object = _NEVER
        self.followable = True
        """False once the store said it cannot list standings in commit order: the book stays empty."""

    def __len__(self) -> int:
        return len(self._entries)

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
        entries, pages = self._entries, self._pages
        for row in rows:
            standing = self._standing(row)
            if pages and row.summary_only:
                entries[row.code] = SummaryPage(standing, self._summary(row), row.name, row.committed)
            else:
                entries[row.code] = standing
        if rows:
            self._seq = rows[-1].seq
        if len(rows) < self._chunk:
            self._marker = marker
            return True
        return False

    def _standing(self, row: OrganisationStanding) -> Standing:
        if row.next_change_at is not None:
            return Standing(row.list, row.grade, row.next_change_at)
        pair = (row.list, row.grade)
        standing = self._shared.get(pair)
        if standing is None:
            standing = self._shared[pair] = Standing(row.list, row.grade, None)
        return standing

    def _summary(self, row: OrganisationStanding) -> Summary:
        key = (row.list, row.grade, row.score, row.measures, row.policy_version)
        summary = self._summaries.get(key)
        if summary is None:
            measures = tuple(json.loads(row.measures)) if row.measures else ()
            summary = self._summaries[key] = Summary(row.list, row.grade, row.score, measures, row.policy_version)
        return summary

    def get(self, code: str) -> Standing | None:
        """The standing of the organisation with USCC ``code`` as last read; None when the book holds none (only a
        current book's answer is the store's)."""
        entry = self._entries.get(code)
        return entry.standing if isinstance(entry, SummaryPage) else entry

    def page(self, code: str) -> SummaryPage | None:
        """The organisation with USCC ``code`` as last read, when its page shows its summary and commitments alone
        (and the book keeps pages); else None."""
        entry = self._entries.get(code)
        return entry if isinstance(entry, SummaryPage) else None
