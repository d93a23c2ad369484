"""A real gateway for each test: the aiohttp app on a localhost port, on a fresh SQLite file."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from xinyong.events import SourceKind
from xinyong.webhooks import SigningKey, SigningSecret, signature_headers
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.sources import add_source
from xinyong_gateway.store import open_store
from xinyong_gateway.web_app import MASTER_KEY, STORE, create_app

TEST_MASTER_KEY = base64.b64encode(bytes(range(32))).decode()


@dataclass
class Source:
    source_id: str
    key: SigningSecret | SigningKey
    kind: SourceKind


@dataclass
class Gateway:
    """A running gateway and helpers to talk to it the way a sender would."""

    client: TestClient[Any, Any]
    settings: GatewaySettings
    db_path: Path

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def add_source(
        self, kind: SourceKind = "marketplace", *, ed25519: bool = False, rate: float | None = None
    ) -> Source:
        app = self.client.app
        assert app is not None
        signing_key = SigningKey.generate() if ed25519 else None
        record, secret = await add_source(
            app[STORE],
            app[MASTER_KEY],
            kind=kind,
            name=f"test {kind}",
            public_key=signing_key.public_key if signing_key else None,
            rate_limit=rate,
            now=datetime.now(UTC),
        )
        key = signing_key or secret
        assert key is not None
        return Source(record.source_id, key, kind)

    async def post(
        self,
        source: Source,
        body: Mapping[str, Any] | bytes,
        *,
        webhook_id: str = "msg_test_1",
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> ClientResponse:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        signed = signature_headers(source.key, webhook_id, raw, timestamp=timestamp or int(time.time()))
        if content_type is not None:
            signed["Content-Type"] = content_type
        signed.update(headers or {})
        return await self.client.post(f"/v1/webhooks/{source.source_id}", data=raw, headers=signed)


@pytest.fixture
def gateway_settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
        master_key=TEST_MASTER_KEY,
        source_refresh_interval=0.2,
        log_format="json",
    )


@pytest.fixture
async def gateway(
    gateway_settings: GatewaySettings, aiohttp_client: Any, tmp_path: Path
) -> AsyncIterator[Gateway]:
    async with open_store(gateway_settings.database_url) as store:
        await store.migrate()
    client = await aiohttp_client(create_app(gateway_settings))
    yield Gateway(client, gateway_settings, tmp_path / "gateway.db")
