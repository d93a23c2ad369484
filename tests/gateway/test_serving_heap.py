"""``web.app.settle_heap``: a served gateway freezes its start-up heap and collects garbage less often."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from tests.gateway.conftest import TEST_MASTER_KEY
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import open_store
from xinyong_gateway.web.app import GC_FIRST_GENERATION_THRESHOLD, create_app, settle_heap


async def _settings(tmp_path: Path) -> GatewaySettings:
    settings = GatewaySettings(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}", master_key=TEST_MASTER_KEY, projector=False
    )
    async with open_store(settings.database_url, create=True) as store:
        await store.migrate()
    return settings


async def test_a_served_app_freezes_its_start_up_heap_and_collects_less_often(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = await _settings(tmp_path)
    threshold = gc.get_threshold()
    try:
        client = await aiohttp_client(settle_heap(create_app(settings)))
        assert gc.get_freeze_count() > 10_000  # modules, validators, the OpenAPI document, the open resources
        assert gc.get_threshold() == (GC_FIRST_GENERATION_THRESHOLD, *threshold[1:])
        assert (await client.get("/readyz")).status == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_an_app_that_is_not_served_leaves_the_collector_alone(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = await _settings(tmp_path)
    frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/readyz")).status == 200
    assert (gc.get_freeze_count(), gc.get_threshold()) == (frozen, threshold)
