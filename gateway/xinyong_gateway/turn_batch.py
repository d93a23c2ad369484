"""Work gathered during one turn of the event loop and done together at the end of the turn.

Under load, one turn of the loop wakes many requests at once (every connection whose bytes arrived). Each request
hands its item to a :class:`TurnBatch` and awaits the answer; at the end of the turn the batch's ``process`` runs
once over all of them. Nobody waits longer for it (the items would have been processed in the same turn anyway),
but the same code runs many times in a row instead of once between the server's other work per request, so its
instructions and data stay in the CPU's caches: on the ingest path that halves the cost of verifying and
validating an event (bench/README.md, "Where an event's CPU goes").

Used by ingest (signature, schema, rate limit and sealing: ``web_ingest``) and by the access log
(``web_middlewares``). ``process`` must settle every item itself and never raise: an item's failure is that
item's answer, not the batch's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["TurnBatch"]

T = TypeVar("T")


class TurnBatch(Generic[T]):
    """Collects items during a turn of the running loop; ``process(items)`` runs once at the end of the turn."""

    __slots__ = ("_items", "_process")

    def __init__(self, process: Callable[[list[T]], None]) -> None:
        self._process = process
        self._items: list[T] = []

    def add(self, item: T) -> None:
        """(Event loop) Queue ``item`` for this turn's batch."""
        if not self._items:
            asyncio.get_running_loop().call_soon(self._run)
        self._items.append(item)

    def _run(self) -> None:
        items, self._items = self._items, []
        self._process(items)
