"""Work gathered during one turn of the event loop and done together at the end of the turn.

Under load, one turn of the loop wakes many requests at once (every connection whose bytes arrived). Each request
hands its item to a :class:`TurnBatch` and awaits the answer; at the end of the turn the batch's ``process`` runs
once over all of them. Nobody waits longer for it (the items would have been processed one after another in that
turn anyway), but the same code runs many times in a row instead of once between the server's other work per
request, so its instructions and data stay in the CPU's caches (what that saves on the ingest path: bench/README.md,
"Where an event's CPU goes").

Used by ingest (signature, schema, rate limit and sealing: ``web.ingest``), by screening (validation, then one
store lookup for the turn's subjects: ``web.query``), by the access log (``web.middleware``) and by the public site,
which reads the store's change marker once a turn and forgets it at the turn's end (``web.public.site``). ``process``
must settle every item itself and never raise: an item's failure is that item's answer, not the batch's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["TurnBatch", "fail_futures"]

T = TypeVar("T")


class _Awaited(Protocol):
    @property
    def future(self) -> asyncio.Future[Any]: ...


def fail_futures(items: Sequence[_Awaited], error: BaseException) -> None:
    """Fail every still-pending future of ``items`` with ``error`` (a batch that broke as a whole)."""
    for item in items:
        if not item.future.done():
            item.future.set_exception(error)


class TurnBatch(Generic[T]):
    """Collects items during a turn of the running loop; ``process(items)`` runs once at the end of the turn.

    Should ``process`` raise all the same (a bug), ``fail(items, error)`` answers the batch's items, so that no
    request waits for ever (:func:`fail_futures` for items that carry the future their request awaits); without
    ``fail`` the error goes to the loop's exception handler."""

    __slots__ = ("_fail", "_items", "_process")

    def __init__(
        self, process: Callable[[list[T]], None], fail: Callable[[list[T], Exception], None] | None = None
    ) -> None:
        self._process = process
        self._fail = fail
        self._items: list[T] = []

    def add(self, item: T) -> None:
        """(Event loop) Queue ``item`` for this turn's batch."""
        if not self._items:
            asyncio.get_running_loop().call_soon(self._run)
        self._items.append(item)

    def _run(self) -> None:
        items, self._items = self._items, []
        try:
            self._process(items)
        except Exception as exc:
            if self._fail is None:
                raise
            self._fail(items, exc)
