"""Signature attacks on ``POST /v1/webhooks/{source_id}``, one table: each is refused with its problem, stores nothing,
and echoes neither the signature nor a secret; the untouched event, signed afresh, is then accepted as new.

Every row starts from a genuine request (a marketplace's HMAC-signed ``complaint.filed``, or a courier's Ed25519-signed
``delivery.recorded``), forges the attack from it, and sends it to a real gateway on each backend whose clock the
test moves (replays and key expiry without waiting). That the genuine request is afterwards answered 202 ``accepted``
(not 200 duplicate, not 409) shows that the refusal came from the attack and that nothing was stored under its id.
Where the genuine request cannot follow (a replay of one already stored, a disabled source), the row says so.

Precedence between these answers and the other checks is ``test_ingest.py``'s; random signature headers and bodies
are ``test_hostile_http.py``'s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import encode, event
from tests.gateway.conftest import Gateway, Source, assert_problem
from xinyong import problems
from xinyong.webhooks import SigningKey, SigningSecret, signature_headers
from xinyong_gateway.access import rotate_source
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import open_store, to_micros
from xinyong_gateway.web.app import REGISTRY, create_app

RUN_PROJECTOR = False
"""Nothing here needs credit files."""


class FakeClock:
    """The gateway's clock: real time plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings, aiohttp_client: Any, tmp_path: Path, clock: FakeClock) -> Gateway:
    """The ``gateway`` of ``conftest.py``, on the test's clock."""
    async with open_store(gateway_settings.database_url, create=True) as store:
        await store.migrate()
    return Gateway(await aiohttp_client(create_app(gateway_settings, clock=clock)), gateway_settings, tmp_path)


@dataclass(frozen=True)
class Sent:
    """A request as it goes on the wire."""

    source_id: str
    body: bytes
    headers: dict[str, str]

    def with_header(self, name: str, value: str) -> Sent:
        return replace(self, headers={**self.headers, name: value})

    @property
    def signature(self) -> str:
        return self.headers["webhook-signature"]

    @property
    def encoded(self) -> str:
        """The base64 of the first signature entry."""
        return self.signature.split(",", 1)[1]


@dataclass
class Scene:
    """The gateway, its clock, the target source with its current key, and the genuine request."""

    gateway: Gateway
    clock: FakeClock
    source: Source
    webhook_id: str = "msg_genuine"
    body: bytes = field(default=b"")

    def sign(self, key: SigningSecret | SigningKey, body: bytes | None = None, *, at: float | None = None) -> Sent:
        """The request carrying ``body`` (the genuine one by default) signed with ``key`` at ``at`` (now)."""
        raw = self.body if body is None else body
        timestamp = int(self.clock() if at is None else at)
        headers = signature_headers(key, self.webhook_id, raw, timestamp=timestamp)
        return Sent(self.source.source_id, raw, {**headers, "Content-Type": "application/json"})

    def genuine(self) -> Sent:
        return self.sign(self.source.key)

    async def send(self, sent: Sent) -> Any:
        return await self.gateway.post_raw(sent.source_id, sent.body, sent.headers)

    async def refresh(self) -> None:
        """Let the gateway see a change made in the store at once (it would within 0.2 s on its own)."""
        app = self.gateway.client.app
        assert app is not None
        await app[REGISTRY].refresh()


Forge = Callable[[Scene], Awaitable[Sent]]


@dataclass(frozen=True)
class Attack:
    id: str
    forge: Forge
    status: int
    problem: str
    ed25519: bool = False
    """The target source is a courier with a registered Ed25519 public key (else a marketplace with a secret)."""
    genuine_after: bool = True
    """The genuine request, signed afresh with the source's current key, is accepted afterwards."""


# -- the forgeries --------------------------------------------------------------------------------------------------


async def tampered_body(scene: Scene) -> Sent:
    genuine = scene.genuine()
    return replace(genuine, body=genuine.body.replace(b'"quality"', b'"privacy"'))


async def reformatted_body(scene: Scene) -> Sent:
    """The same JSON document in other bytes: the signature covers bytes, not meaning."""
    genuine = scene.genuine()
    return replace(genuine, body=genuine.body + b"\n")


async def tampered_id(scene: Scene) -> Sent:
    return scene.genuine().with_header("webhook-id", "msg_other")


async def tampered_timestamp(scene: Scene) -> Sent:
    genuine = scene.genuine()
    return genuine.with_header("webhook-timestamp", str(int(genuine.headers["webhook-timestamp"]) + 1))


async def replayed_after_the_window(scene: Scene) -> Sent:
    """The genuine request, accepted once, sent again byte for byte 301 s later."""
    genuine = scene.genuine()
    response = await scene.send(genuine)
    assert response.status == 202, await response.text()
    scene.clock.offset += 301
    return genuine


async def signed_6_minutes_ago(scene: Scene) -> Sent:
    return scene.sign(scene.source.key, at=scene.clock() - 360)


async def signed_6_minutes_ahead(scene: Scene) -> Sent:
    return scene.sign(scene.source.key, at=scene.clock() + 360)


async def another_sources_signature(scene: Scene) -> Sent:
    """Another marketplace signs the same request with its own (registered, valid) secret."""
    other = await scene.gateway.add_source("marketplace")
    return scene.sign(other.key)


async def unregistered_secret(scene: Scene) -> Sent:
    return scene.sign(SigningSecret.generate())


async def unregistered_ed25519_key(scene: Scene) -> Sent:
    return scene.sign(SigningKey.generate())


async def v1a_against_a_symmetric_source(scene: Scene) -> Sent:
    return scene.sign(SigningKey.generate())


async def v1_against_an_ed25519_source(scene: Scene) -> Sent:
    return scene.sign(SigningSecret.generate())


async def hmac_value_labelled_v1a(scene: Scene) -> Sent:
    genuine = scene.genuine()
    return genuine.with_header("webhook-signature", f"v1a,{genuine.encoded}")


async def ed25519_value_labelled_v1(scene: Scene) -> Sent:
    genuine = scene.genuine()
    return genuine.with_header("webhook-signature", f"v1,{genuine.encoded}")


async def empty_signature(scene: Scene) -> Sent:
    return scene.genuine().with_header("webhook-signature", "v1,")


async def truncated_signature(scene: Scene) -> Sent:
    genuine = scene.genuine()
    return genuine.with_header("webhook-signature", genuine.signature[:-8])


async def half_a_signature(scene: Scene) -> Sent:
    """Valid base64 of the first 16 bytes of the real HMAC."""
    genuine = scene.genuine()
    half = base64.b64encode(base64.b64decode(genuine.encoded)[:16]).decode()
    return genuine.with_header("webhook-signature", f"v1,{half}")


async def unknown_version_only(scene: Scene) -> Sent:
    genuine = scene.genuine()
    return genuine.with_header("webhook-signature", f"v2,{genuine.encoded}")


async def no_version(scene: Scene) -> Sent:
    genuine = scene.genuine()
    return genuine.with_header("webhook-signature", genuine.encoded)


async def not_base64(scene: Scene) -> Sent:
    return scene.genuine().with_header("webhook-signature", "v1,not*base64!")


async def valid_signature_behind_ten_junk_ones(scene: Scene) -> Sent:
    """A receiver tries at most 10 entries (bounding the work of an unauthenticated request): the 11th is unread."""
    genuine = scene.genuine()
    junk = " ".join("v1," + base64.b64encode(bytes([n]) * 32).decode() for n in range(10))
    return genuine.with_header("webhook-signature", f"{junk} {genuine.signature}")


async def hmac_of_the_body_alone(scene: Scene) -> Sent:
    """A MAC over the body without ``{id}.{timestamp}.``, as a naive signer would compute it."""
    assert isinstance(scene.source.key, SigningSecret)
    mac = base64.b64encode(hmac.digest(scene.source.key.key, scene.body, hashlib.sha256)).decode()
    return scene.genuine().with_header("webhook-signature", f"v1,{mac}")


async def the_secret_itself(scene: Scene) -> Sent:
    assert isinstance(scene.source.key, SigningSecret)
    return scene.genuine().with_header("webhook-signature", f"v1,{base64.b64encode(scene.source.key.key).decode()}")


async def _rotate(scene: Scene, grace: timedelta) -> SigningSecret:
    gateway = scene.gateway
    moment = datetime.fromtimestamp(scene.clock(), UTC)
    _, secret = await rotate_source(gateway.store, gateway.master_key, scene.source.source_id, grace=grace, now=moment)
    assert secret is not None
    await scene.refresh()
    return secret


async def rotated_out_after_its_grace_period(scene: Scene) -> Sent:
    """Rotated with 10 minutes of grace; 11 minutes later the old secret signs (expiry is enforced from memory,
    between two reloads of the source table)."""
    old = scene.source.key
    scene.source = replace(scene.source, key=await _rotate(scene, timedelta(minutes=10)))
    scene.clock.offset += 11 * 60
    return scene.sign(old)


async def rotated_out_without_grace(scene: Scene) -> Sent:
    old = scene.source.key
    scene.source = replace(scene.source, key=await _rotate(scene, timedelta(0)))
    return scene.sign(old)


async def disabled_source(scene: Scene) -> Sent:
    """A correct signature of a source disabled since: 404, as if it had never existed."""
    now = datetime.fromtimestamp(scene.clock(), UTC)
    await scene.gateway.store.disable_source(scene.source.source_id, now=to_micros(now))
    await scene.refresh()
    return scene.genuine()


INVALID, STALE, UNKNOWN = problems.SIGNATURE_INVALID, problems.TIMESTAMP_OUT_OF_TOLERANCE, problems.SOURCE_NOT_FOUND
ATTACKS = [
    Attack("tampered-body", tampered_body, 401, INVALID),
    Attack("same-json-other-bytes", reformatted_body, 401, INVALID),
    Attack("tampered-id", tampered_id, 401, INVALID),
    Attack("tampered-timestamp", tampered_timestamp, 401, INVALID),
    Attack("replayed-after-the-window", replayed_after_the_window, 401, STALE, genuine_after=False),
    Attack("signed-6-minutes-ago", signed_6_minutes_ago, 401, STALE),
    Attack("signed-6-minutes-ahead", signed_6_minutes_ahead, 401, STALE),
    Attack("another-sources-signature", another_sources_signature, 401, INVALID),
    Attack("unregistered-secret", unregistered_secret, 401, INVALID),
    Attack("unregistered-ed25519-key", unregistered_ed25519_key, 401, INVALID, ed25519=True),
    Attack("v1a-against-a-symmetric-source", v1a_against_a_symmetric_source, 401, INVALID),
    Attack("v1-against-an-ed25519-source", v1_against_an_ed25519_source, 401, INVALID, ed25519=True),
    Attack("hmac-labelled-v1a", hmac_value_labelled_v1a, 401, INVALID),
    Attack("ed25519-labelled-v1", ed25519_value_labelled_v1, 401, INVALID, ed25519=True),
    Attack("empty-signature", empty_signature, 401, INVALID),
    Attack("truncated-signature", truncated_signature, 401, INVALID),
    Attack("half-a-signature", half_a_signature, 401, INVALID),
    Attack("unknown-version-only", unknown_version_only, 401, INVALID),
    Attack("no-version", no_version, 401, INVALID),
    Attack("not-base64", not_base64, 401, INVALID),
    Attack("valid-behind-ten-junk-signatures", valid_signature_behind_ten_junk_ones, 401, INVALID),
    Attack("hmac-of-the-body-alone", hmac_of_the_body_alone, 401, INVALID),
    Attack("the-secret-itself", the_secret_itself, 401, INVALID),
    Attack("rotated-out-after-its-grace-period", rotated_out_after_its_grace_period, 401, INVALID),
    Attack("rotated-out-without-grace", rotated_out_without_grace, 401, INVALID),
    Attack("disabled-source", disabled_source, 404, UNKNOWN, genuine_after=False),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.id for attack in ATTACKS])
async def test_signature_attack_is_refused_and_stores_nothing(
    gateway: Gateway, clock: FakeClock, attack: Attack
) -> None:
    kind = "courier" if attack.ed25519 else "marketplace"
    source = await gateway.add_source(kind, ed25519=attack.ed25519)
    body = event("delivery.recorded") if attack.ed25519 else event("complaint.filed", category="quality")
    scene = Scene(gateway, clock, source, body=encode(body))
    forged = await attack.forge(scene)
    stored = await gateway.store.inbox_count()

    response = await scene.send(forged)
    problem = await assert_problem(response, attack.status, attack.problem)
    assert await gateway.store.inbox_count() == stored
    text = str(problem)
    for entry in forged.signature.split():
        encoded = entry.partition(",")[2] or entry
        assert len(encoded) < 8 or encoded not in text, "the answer echoes the signature"
    assert str(source.key).split("_", 1)[1] not in text

    if attack.genuine_after:
        again = await scene.send(scene.genuine())
        assert again.status == 202, await again.text()
        assert (await again.json())["status"] == "accepted"
