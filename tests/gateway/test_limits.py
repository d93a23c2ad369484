"""Rate limits hold under concurrent load, per source and per API key, and a noisy client starves no other.

Each limit here is one request and then one more every ~17 minutes (``TINY_RATE``), so that what a burst of concurrent
requests gets is a count that does not depend on timing: exactly one accepted, every other one a 429 with
``Retry-After``. Meanwhile a second source and a second key, sending as many requests concurrently and interleaved
with the noisy ones, get no 429 at all and every event accepted. Limits are per process (with ``serve --workers N``
a source gets its limit from each worker: README, "Scaling out"). ``bench/limits.py`` measures the rates.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from tests.factories import event
from tests.gateway.conftest import Gateway, assert_problem
from xinyong import problems

RUN_PROJECTOR = False
"""Nothing here needs credit files."""

TINY_RATE = 0.001
BURST = 60
"""Concurrent requests of each client."""
SCREENING = {"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}]}


async def answers(responses: list[Any]) -> Counter[int]:
    """Statuses of ``responses``; every 429 must be the rate-limit problem with a ``Retry-After`` of whole seconds."""
    statuses: Counter[int] = Counter()
    for response in responses:
        statuses[response.status] += 1
        if response.status == 429:
            await assert_problem(response, 429, problems.RATE_LIMITED)
            assert int(response.headers["Retry-After"]) >= 1
        else:
            await response.read()
    return statuses


async def test_a_noisy_source_gets_429_with_retry_after_and_a_quiet_one_gets_every_event_in(gateway: Gateway) -> None:
    noisy = await gateway.add_source("marketplace", rate=TINY_RATE)
    quiet = await gateway.add_source("marketplace")
    sends = [(noisy, n) for n in range(BURST)] + [(quiet, n) for n in range(BURST)]
    random.Random(7).shuffle(sends)  # interleaved: the quiet source's requests queue among the noisy ones
    responses = await asyncio.gather(
        *(gateway.post(source, event("complaint.filed"), webhook_id=f"msg_{n}") for source, n in sends)
    )
    by_source: dict[str, list[Any]] = {noisy.source_id: [], quiet.source_id: []}
    for (source, _), response in zip(sends, responses, strict=True):
        by_source[source.source_id].append(response)
    assert await answers(by_source[noisy.source_id]) == {202: 1, 429: BURST - 1}
    assert await answers(by_source[quiet.source_id]) == {202: BURST}
    assert await gateway.store.inbox_count() == 1 + BURST


async def test_a_noisy_api_key_gets_429_with_retry_after_and_a_quiet_one_is_answered_every_time(
    gateway: Gateway,
) -> None:
    noisy = await gateway.add_api_key(["screen"], rate=TINY_RATE)
    quiet = await gateway.add_api_key(["screen"])
    keys = [noisy.api_key] * BURST + [quiet.api_key] * BURST
    random.Random(8).shuffle(keys)
    responses = await asyncio.gather(
        *(
            gateway.client.post("/v1/screenings", json=SCREENING, headers={"Authorization": f"Bearer {key}"})
            for key in keys
        )
    )
    noisy_answers = [response for key, response in zip(keys, responses, strict=True) if key == noisy.api_key]
    quiet_answers = [response for key, response in zip(keys, responses, strict=True) if key == quiet.api_key]
    assert await answers(noisy_answers) == {200: 1, 429: BURST - 1}
    assert await answers(quiet_answers) == {200: BURST}
