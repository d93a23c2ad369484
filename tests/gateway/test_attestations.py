"""``POST /v1/attestations`` and ``/.well-known/jwks.json`` on each backend: a signed status that verifies offline with
the SDK, equal to what a screening answers at that instant; a person never unmasked; the signing keys sealed at
rest, rotated with the retired ones still verifying, and at most one current key whatever rotations race."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, assert_problem, at_rest_holding
from xinyong import UnknownKeyIdError, problems, ric_pseudonym, verify_attestation
from xinyong.attestations import ATTESTATION_TYPE, Jwks
from xinyong.subjects import mask_id
from xinyong_gateway.access import SigningKeyring, add_api_key, ensure_signing_key, rotate_signing_key
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import MasterKeyError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import open_store
from xinyong_gateway.web.app import API_KEYS, SIGNING_KEYS, STORE, create_app

RUN_PROJECTOR = False
"""These tests project the inbox themselves."""

SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(11)), "name": "假货旗舰店"}
PERSON_NAME = "王小明"
PERSON = {"id_type": "ric", "id": make_ric(random.Random(12)), "name": PERSON_NAME}


async def post_attestation(gateway: Gateway, body: Any, key: str, **headers: str) -> Any:
    data = io.BytesIO(body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode())
    return await gateway.client.post(
        "/v1/attestations",
        data=data,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
    )


async def attest(gateway: Gateway, subject: dict[str, Any], key: str) -> str:
    response = await post_attestation(gateway, {"subject": subject}, key)
    text = await response.text()
    assert response.status == 200, text
    token: str = json.loads(text)["attestation"]
    return token


async def jwks(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.get("/.well-known/jwks.json")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    document: dict[str, Any] = json.loads(await response.text())
    Jwks.model_validate(document)  # the wire model (and so the schema) holds
    return document


def app_of(gateway: Gateway) -> web.Application:
    app = gateway.client.app
    assert app is not None
    return app


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return header


def payload_text(token: str) -> str:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


async def test_an_attestation_verifies_offline_and_says_what_a_screening_says(gateway: Gateway) -> None:
    await gateway.post_and_project([event("listing.violation", merchant=SHOP, kind="counterfeit", confirmed=True)], "m")
    issued = await gateway.add_api_key(["attest", "screen"])
    before = int(datetime.now(UTC).timestamp())
    token = await attest(gateway, SHOP, issued.api_key)
    keys = await jwks(gateway.client)
    claims = verify_attestation(token, keys, issuer=gateway.settings.issuer)

    screened = await gateway.client.post(
        "/v1/screenings",
        json={"subjects": [SHOP]},
        headers={"Authorization": f"Bearer {issued.api_key}"},
    )
    [result] = json.loads(await screened.text())["results"]
    attested = json.loads(payload_text(token))  # as signed, beside the screening's JSON
    for member in ("list", "grade", "score", "measures", "reasons", "disputed", "policy_version"):
        assert attested[member] == result[member], member
    assert claims.list == "black"
    assert claims.subject.model_dump() == {**result["subject"], "pseudonym": None}
    assert claims.subject.id == SHOP["id"]  # a USCC in full
    assert (claims.sub, claims.aud, claims.iss) == (f"uscc:{SHOP['id']}", issued.record.key_id, "xinyong-gateway")
    assert before <= claims.iat <= int(datetime.now(UTC).timestamp())
    assert claims.jti.startswith("att_")
    header = header_of(token)
    assert header == {"alg": "EdDSA", "kid": keys["keys"][0]["kid"], "typ": ATTESTATION_TYPE}
    second = verify_attestation(await attest(gateway, SHOP, issued.api_key), keys)
    assert second.jti != claims.jti


async def test_a_person_is_attested_masked_with_the_asking_keys_pseudonym_never_in_clear(gateway: Gateway) -> None:
    body = event("review.manipulation_detected", merchant=PERSON, kind="fake_order", order_count=9, confirmed=True)
    await gateway.post_and_project([body], "p")
    issued = await gateway.add_api_key(["attest"])
    token = await attest(gateway, PERSON, issued.api_key)
    claims = verify_attestation(token, await jwks(gateway.client))
    pseudonym = ric_pseudonym(PERSON["id"], issued.lookup_secret)
    assert claims.subject.model_dump() == {
        "id_type": "ric",
        "id": mask_id("ric", PERSON["id"]),
        "name": PERSON_NAME[0] + "*" * (len(PERSON_NAME) - 1),
        "pseudonym": pseudonym,
    }
    assert (claims.sub, claims.list) == (f"ric:{pseudonym}", "watch")
    for text in (token, payload_text(token)):
        assert PERSON["id"] not in text
        assert PERSON_NAME not in text
    other = await gateway.add_api_key(["attest"])
    assert (
        verify_attestation(await attest(gateway, PERSON, other.api_key), await jwks(gateway.client)).sub != claims.sub
    )


async def test_a_subject_never_reported_is_attested_as_on_no_list(gateway: Gateway) -> None:
    issued = await gateway.add_api_key(["attest"])
    claims = verify_attestation(await attest(gateway, SHOP, issued.api_key), await jwks(gateway.client))
    assert (claims.list, claims.grade, claims.score, claims.reasons) == ("none", None, None, [])


async def test_without_the_scope_or_with_a_revoked_key_nothing_is_signed(gateway: Gateway) -> None:
    screen_only = await gateway.add_api_key(["screen", "changes"])
    response = await post_attestation(gateway, {"subject": SHOP}, screen_only.api_key)
    problem = await assert_problem(response, 403, problems.SCOPE_MISSING)
    assert "'attest'" in problem["detail"]
    revoked = await gateway.add_api_key(["attest"])
    await gateway.store.revoke_api_key(revoked.record.key_id, now=int(datetime.now(UTC).timestamp() * 1e6))
    await app_of(gateway)[API_KEYS].refresh()
    await assert_problem(
        await post_attestation(gateway, {"subject": SHOP}, revoked.api_key), 401, problems.API_KEY_INVALID
    )
    no_key = await gateway.client.post("/v1/attestations", json={"subject": SHOP})
    await assert_problem(no_key, 401, problems.API_KEY_INVALID)


async def test_bad_requests_have_their_problems_and_never_echo_the_subject(gateway: Gateway) -> None:
    key = (await gateway.add_api_key(["attest"])).api_key
    wrong = {"id_type": "ric", "id": PERSON["id"][:-1] + ("0" if PERSON["id"][-1] != "0" else "1")}
    response = await post_attestation(gateway, {"subject": wrong}, key)
    problem = await assert_problem(response, 422, problems.REQUEST_INVALID)
    assert [error["pointer"] for error in problem["errors"]] == ["/subject/id"]
    assert wrong["id"] not in await response.text()
    for body in ({"subjects": [SHOP]}, {"subject": SHOP, "extra": 1}, {}, [SHOP]):
        await assert_problem(await post_attestation(gateway, body, key), 422, problems.REQUEST_INVALID)
    await assert_problem(await post_attestation(gateway, b"{not json", key), 400, problems.BODY_NOT_JSON)
    response = await post_attestation(gateway, {"subject": SHOP}, key, **{"Content-Type": "text/plain"})
    await assert_problem(response, 415, problems.UNSUPPORTED_MEDIA_TYPE)
    response = await gateway.client.post(
        "/v1/attestations?id=1", json={"subject": SHOP}, headers={"Authorization": f"Bearer {key}"}
    )
    await assert_problem(response, 400, problems.QUERY_INVALID)
    big = json.dumps({"subject": {**SHOP, "name": "店" * 20_000}}).encode()
    await assert_problem(await post_attestation(gateway, big, key), 413, problems.BODY_TOO_LARGE)


async def test_after_a_rotation_new_attestations_use_the_new_key_and_old_ones_still_verify(gateway: Gateway) -> None:
    issued = await gateway.add_api_key(["attest"])
    old_token = await attest(gateway, SHOP, issued.api_key)
    old_kid = header_of(old_token)["kid"]
    new = await rotate_signing_key(gateway.store, gateway.master_key, now=datetime.now(UTC))
    keyring = SigningKeyring(gateway.store, gateway.master_key)
    await keyring.refresh()
    assert keyring.current_kid == new.kid != old_kid
    # The running gateway signs with the new key once it has reloaded (every 2 s; here at once).
    await app_of(gateway)[SIGNING_KEYS].refresh()
    new_token = await attest(gateway, SHOP, issued.api_key)
    assert header_of(new_token)["kid"] == new.kid
    keys = await jwks(gateway.client)
    assert [(k["kid"], k["status"]) for k in keys["keys"]] == [(old_kid, "retired"), (new.kid, "current")]
    for key in keys["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use", "status"}  # never "d", the private part
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert verify_attestation(old_token, keys).jti != verify_attestation(new_token, keys).jti
    only_new = {"keys": [k for k in keys["keys"] if k["kid"] == new.kid]}
    with pytest.raises(UnknownKeyIdError):
        verify_attestation(old_token, only_new)


async def test_without_a_signing_key_attesting_is_a_503_until_one_is_made(
    gateway_settings: GatewaySettings, aiohttp_client: Any
) -> None:
    """A database migrated without ``migrate``'s first key (``store.migrate`` alone): 503 and an empty JWKS, until a
    key is made; the gateway picks it up on the next request without a restart."""
    async with open_store(gateway_settings.database_url, create=True) as store:
        await store.migrate()
    client = await aiohttp_client(create_app(gateway_settings))
    store = client.app[STORE]
    master = MasterKey.from_text(TEST_MASTER_KEY)
    issued = await add_api_key(store, master, name="t", scopes=["attest"], rate_limit=None, now=datetime.now(UTC))
    headers = {"Authorization": f"Bearer {issued.api_key}"}
    response = await client.post("/v1/attestations", json={"subject": SHOP}, headers=headers)
    problem = await assert_problem(response, 503, problems.SIGNING_KEY_MISSING)
    assert "signing-keys rotate" in problem["detail"]
    assert await jwks(client) == {"keys": []}
    first = await ensure_signing_key(store, master, now=datetime.now(UTC))
    assert first is not None
    assert await ensure_signing_key(store, master, now=datetime.now(UTC)) is None  # migrate again: still one key
    response = await client.post("/v1/attestations", json={"subject": SHOP}, headers=headers)
    assert response.status == 200, await response.text()
    token = json.loads(await response.text())["attestation"]
    assert header_of(token)["kid"] == first.kid
    assert verify_attestation(token, await jwks(client)).subject.id == SHOP["id"]


async def test_racing_rotations_leave_exactly_one_current_key(gateway: Gateway) -> None:
    now = datetime.now(UTC)
    made = await asyncio.gather(*(rotate_signing_key(gateway.store, gateway.master_key, now=now) for _ in range(6)))
    records = await gateway.store.list_signing_keys()
    assert len(records) == 7
    assert {r.kid for r in records} >= {m.kid for m in made}
    current = [r for r in records if r.status == "current"]
    assert len(current) == 1
    assert all(r.retired_at is not None for r in records if r is not current[0])


async def test_private_keys_are_sealed_at_rest_and_bound_to_their_kid(gateway: Gateway) -> None:
    [record] = await gateway.store.list_signing_keys()
    seed = gateway.master_key.open_signing_key(record.kid, record.sealed_private_key)
    assert len(seed) == 32
    assert await at_rest_holding(gateway.settings.database_url, [seed, base64.urlsafe_b64encode(seed)]) == []
    with pytest.raises(MasterKeyError):
        gateway.master_key.open_signing_key("another-kid", record.sealed_private_key)
    with pytest.raises(MasterKeyError):
        MasterKey.from_bytes(bytes(32)).open_signing_key(record.kid, record.sealed_private_key)


async def test_the_log_line_names_the_key_and_the_attestation_never_the_subject(
    gateway: Gateway, gateway_log: io.StringIO
) -> None:
    issued = await gateway.add_api_key(["attest"])
    gateway_log.seek(0)
    gateway_log.truncate()
    token = await attest(gateway, PERSON, issued.api_key)
    text = gateway_log.getvalue()
    [line] = [json.loads(line) for line in text.splitlines() if '"/v1/attestations"' in line]
    claims = verify_attestation(token, await jwks(gateway.client))
    assert (line["key_id"], line["jti"], line["status"]) == (issued.record.key_id, claims.jti, 200)
    for secret in (PERSON["id"], mask_id("ric", PERSON["id"]), PERSON_NAME, claims.subject.pseudonym or "?", token):
        assert secret not in text
