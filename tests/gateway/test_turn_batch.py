"""``TurnBatch``: what is added during one turn of the loop is processed once, together, after that turn."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from xinyong_gateway.web.turn_batch import TurnBatch, fail_futures


@dataclass
class Item:
    name: str
    future: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


async def test_items_added_in_one_turn_are_processed_once_together_after_it() -> None:
    batches: list[list[str]] = []

    def process(items: list[Item]) -> None:
        batches.append([item.name for item in items])
        for item in items:
            item.future.set_result(item.name.upper())

    batch: TurnBatch[Item] = TurnBatch(process)
    first = [Item("a"), Item("b"), Item("c")]
    for item in first:
        batch.add(item)
    assert batches == []  # nothing runs during the turn that adds
    assert await asyncio.gather(*(item.future for item in first)) == ["A", "B", "C"]
    later = Item("d")
    batch.add(later)
    assert await later.future == "D"
    assert batches == [["a", "b", "c"], ["d"]]


async def test_items_added_by_requests_woken_in_the_same_turn_share_a_batch() -> None:
    sizes: list[int] = []

    def process(items: list[Item]) -> None:
        sizes.append(len(items))
        for item in items:
            item.future.set_result(item.name)

    batch: TurnBatch[Item] = TurnBatch(process)

    async def request(name: str) -> str:
        item = Item(name)
        batch.add(item)
        return await item.future

    assert await asyncio.gather(*(request(str(n)) for n in range(20))) == [str(n) for n in range(20)]
    assert sizes == [20]


async def test_a_batch_that_breaks_as_a_whole_answers_every_item_with_the_error() -> None:
    def process(items: list[Item]) -> None:
        items[0].future.set_result("done before the bug")
        raise RuntimeError("a bug in the batch")

    batch: TurnBatch[Item] = TurnBatch(process, fail_futures)
    items = [Item("a"), Item("b")]
    for item in items:
        batch.add(item)
    assert await items[0].future == "done before the bug"
    with pytest.raises(RuntimeError, match="a bug in the batch"):
        await items[1].future
