"""``POST /v1/webhooks/{source_id}`` through a real gateway: every answer of the wire contract and their order.

docs/wire-contract.md, "Answers, in the order they are checked": 404 unknown source → 413 too large → 415 not
JSON → 400 webhook headers → 401 signature, then timestamp → 400 body not JSON → 422 unknown type → 403 type not
allowed for the kind → 422 schema → 429 rate limit → 503 store → 202 accepted | 200 duplicate | 409 conflict.

Requests go over real HTTP to the aiohttp app on localhost (``gateway`` fixture: each test runs on a fresh SQLite
file and on a fresh PostgreSQL schema); the hypothesis tests use the real ``xinyong-gateway serve`` in a subprocess
on SQLite (``served_gateway``). Signature attacks are one table in ``test_signature_attacks.py``; hostile HTTP
(framing, slow and huge bodies, random requests at every endpoint) is ``test_hostile_http.py``.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import JSON_VALUES, encode, event, make_uscc, mutated_event_bodies, with_wrong_check
from tests.gateway.conftest import (
    PROBLEM_JSON,
    TEST_MASTER_KEY,
    Gateway,
    ServedGateway,
    Source,
    assert_problem,
    eventually,
    inbox_refuses_inserts,
)
from xinyong import problems
from xinyong.events import ALLOWED_EVENT_TYPES, EVENT_TYPES, OWN_SUBJECT_FIELDS, SOURCE_KINDS
from xinyong.webhooks import SigningSecret, signature_headers
from xinyong_gateway.access import add_source, rotate_source
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import open_store, to_micros

# A limit no test can refill during its run: one token, then one more every ~17 minutes. (A limit of 1/s would
# make "the second request is refused" depend on the two requests arriving within a second of each other.)
TINY_RATE = 0.001

ALLOWED_PAIRS = [(kind, event_type) for kind in SOURCE_KINDS for event_type in sorted(ALLOWED_EVENT_TYPES[kind])]
DISALLOWED_PAIRS = [
    (kind, event_type)
    for kind in SOURCE_KINDS
    for event_type in EVENT_TYPES
    if event_type not in ALLOWED_EVENT_TYPES[kind]
]


def now() -> int:
    return int(time.time())


async def accepted(response: Any, webhook_id: str) -> None:
    text = await response.text()
    assert response.status == 202, text
    assert response.content_type == "application/json"
    assert json.loads(text) == {"status": "accepted", "webhook_id": webhook_id}


async def in_chunks(raw: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """``raw`` as an async iterable: aiohttp sends it with ``Transfer-Encoding: chunked``, no Content-Length."""
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def padded_to(body: dict[str, Any], size: int) -> bytes:
    """A valid JSON body of exactly ``size`` bytes (trailing whitespace is insignificant in JSON)."""
    raw = encode(body)
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


# -- 202 accepted, 200 duplicate, 409 conflict ---------------------------------------------------------------


async def test_signed_event_is_accepted_with_202_and_its_webhook_id(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    response = await gateway.post(source, event("review.manipulation_detected"), webhook_id="msg_a")
    await accepted(response, "msg_a")
    assert await gateway.store.inbox_count() == 1


async def test_same_webhook_id_and_body_again_is_a_200_duplicate_stored_once(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = event("review.manipulation_detected")
    await accepted(await gateway.post(source, body, webhook_id="msg_a"), "msg_a")
    again = await gateway.post(source, body, webhook_id="msg_a")
    assert again.status == 200
    assert await again.json() == {"status": "duplicate", "webhook_id": "msg_a"}
    assert await gateway.store.inbox_count() == 1


async def test_retry_resigned_with_a_fresh_timestamp_is_still_a_duplicate(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = event("complaint.filed")
    await accepted(await gateway.post(source, body, webhook_id="msg_a", timestamp=now() - 120), "msg_a")
    retry = await gateway.post(source, body, webhook_id="msg_a", timestamp=now())
    assert retry.status == 200
    assert (await retry.json())["status"] == "duplicate"


async def test_same_webhook_id_with_another_body_is_a_409_conflict_and_keeps_the_first(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    first = encode(event("listing.violation"))
    await accepted(await gateway.post(source, first, webhook_id="msg_a"), "msg_a")
    response = await gateway.post(source, event("listing.violation"), webhook_id="msg_a")
    await assert_problem(response, 409, problems.DUPLICATE_CONFLICT)
    (row,) = await gateway.store.read_inbox()
    assert gateway.master_key.open_body(row.source_id, row.webhook_id, row.sealed_body) == first


async def test_same_webhook_id_from_two_sources_is_two_events(gateway: Gateway) -> None:
    one = await gateway.add_source("marketplace")
    other = await gateway.add_source("marketplace")
    await accepted(await gateway.post(one, event("complaint.filed"), webhook_id="msg_a"), "msg_a")
    await accepted(await gateway.post(other, event("complaint.filed"), webhook_id="msg_a"), "msg_a")
    assert await gateway.store.inbox_count() == 2


async def test_body_of_exactly_the_limit_is_accepted(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    raw = padded_to(event("complaint.filed"), gateway.settings.body_limit)
    await accepted(await gateway.post(source, raw, webhook_id="msg_full"), "msg_full")


async def test_chunked_body_without_content_length_is_accepted(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    raw = encode(event("complaint.filed"))
    headers = gateway.sign(source, raw, webhook_id="msg_chunked")
    response = await gateway.post_raw(source.source_id, in_chunks(raw, 100), headers)
    await accepted(response, "msg_chunked")


@pytest.mark.parametrize(("kind", "event_type"), ALLOWED_PAIRS)
async def test_every_catalogue_event_is_accepted_from_a_kind_that_may_send_it(
    gateway: Gateway, kind: Any, event_type: str
) -> None:
    body = event(event_type)
    own = OWN_SUBJECT_FIELDS.get(kind, {}).get(event_type)  # an intermediary posts about itself only
    source = await gateway.add_source(kind, uscc=body["data"][own]["id"] if own else None)
    await accepted(await gateway.post(source, body, webhook_id="msg_1"), "msg_1")
    (row,) = await gateway.store.read_inbox()
    assert (row.source_id, row.webhook_id, row.event_type) == (source.source_id, "msg_1", event_type)


async def test_ed25519_signed_event_is_accepted_and_its_signature_header_is_stored(gateway: Gateway) -> None:
    source = await gateway.add_source("courier", ed25519=True)
    raw = encode(event("delivery.recorded"))
    headers = gateway.sign(source, raw, webhook_id="msg_v1a")
    await accepted(await gateway.post_raw(source.source_id, raw, headers), "msg_v1a")
    (row,) = await gateway.store.read_inbox()
    assert row.signature == headers["webhook-signature"]
    assert row.signature.startswith("v1a,")
    assert row.webhook_timestamp == int(headers["webhook-timestamp"])


async def test_a_valid_signature_among_unknown_and_invalid_ones_is_accepted(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    raw = encode(event("complaint.filed"))
    headers = gateway.sign(source, raw, webhook_id="msg_multi")
    junk = "v1," + base64.b64encode(bytes(32)).decode()
    headers["webhook-signature"] = f"v2,abc {junk} v1a,{'A' * 88} {headers['webhook-signature']}"
    await accepted(await gateway.post_raw(source.source_id, raw, headers), "msg_multi")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
async def test_json_content_type_variants_are_accepted(gateway: Gateway, content_type: str) -> None:
    source = await gateway.add_source("marketplace")
    response = await gateway.post(source, event("complaint.filed"), webhook_id="msg_ct", content_type=content_type)
    await accepted(response, "msg_ct")


async def test_charset_name_is_case_insensitive(gateway: Gateway) -> None:
    """RFC 9110 8.3.2: charset names are case-insensitive, so ``charset=UTF-8`` is UTF-8 JSON."""
    source = await gateway.add_source("marketplace")
    response = await gateway.post(
        source, event("complaint.filed"), webhook_id="msg_ct", content_type="application/json; charset=UTF-8"
    )
    await accepted(response, "msg_ct")


# -- 404 unknown source --------------------------------------------------------------------------------------


async def test_unknown_source_is_404(gateway: Gateway) -> None:
    source = Source("src_doesnotexist00000", SigningSecret.generate(), "marketplace")
    response = await gateway.post(source, event("complaint.filed"))
    await assert_problem(response, 404, problems.SOURCE_NOT_FOUND)


async def test_disabled_source_is_404_once_the_registry_refreshes(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = event("complaint.filed")
    await accepted(await gateway.post(source, body, webhook_id="msg_a"), "msg_a")
    await gateway.store.disable_source(source.source_id, now=to_micros(datetime.now(UTC)))

    async def refused() -> bool:
        return (await gateway.post(source, body, webhook_id="msg_a")).status == 404

    await eventually(refused)
    await assert_problem(await gateway.post(source, body, webhook_id="msg_b"), 404, problems.SOURCE_NOT_FOUND)


async def test_source_added_by_another_process_is_accepted_on_its_first_request(gateway: Gateway) -> None:
    """Like ``xinyong-gateway sources add`` while the gateway runs: another connection, no restart."""
    async with open_store(gateway.settings.database_url) as admin:
        record, secret = await add_source(
            admin, MasterKey.from_text(TEST_MASTER_KEY), kind="regulator", name="late", now=datetime.now(UTC)
        )
    assert secret is not None
    source = Source(record.source_id, secret, "regulator")
    await accepted(await gateway.post(source, event("penalty.imposed"), webhook_id="msg_first"), "msg_first")


# -- key rotation --------------------------------------------------------------------------------------------


async def rotate(gateway: Gateway, source: Source, grace: timedelta) -> Source:
    _, secret = await rotate_source(
        gateway.store, gateway.master_key, source.source_id, grace=grace, now=datetime.now(UTC)
    )
    assert secret is not None
    return Source(source.source_id, secret, source.kind)


async def wait_until_accepted(gateway: Gateway, source: Source, body: dict[str, Any], webhook_id: str) -> None:
    async def ok() -> bool:
        return (await gateway.post(source, body, webhook_id=webhook_id)).status in (200, 202)

    await eventually(ok)


async def test_rotated_secret_is_accepted_at_once(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_old"), "msg_old")
    new = await rotate(gateway, source, timedelta(hours=24))
    await accepted(await gateway.post(new, event("complaint.filed"), webhook_id="msg_new"), "msg_new")


async def test_old_secret_keeps_working_during_the_grace_period(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    new = await rotate(gateway, source, timedelta(hours=1))
    await wait_until_accepted(gateway, new, event("complaint.filed"), "msg_new")
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_old"), "msg_old")


# -- 413 over the body limit ---------------------------------------------------------------------------------


async def test_body_over_the_limit_with_content_length_is_413(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    raw = padded_to(event("complaint.filed"), gateway.settings.body_limit + 1)
    response = await gateway.post(source, raw)
    await assert_problem(response, 413, problems.BODY_TOO_LARGE)
    assert await gateway.store.inbox_count() == 0


async def test_chunked_body_over_the_limit_is_413(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    raw = padded_to(event("complaint.filed"), gateway.settings.body_limit + 1024)
    response = await gateway.post_raw(source.source_id, in_chunks(raw), gateway.sign(source, raw))
    await assert_problem(response, 413, problems.BODY_TOO_LARGE)


# -- 415 not JSON --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/json; charset=latin-1", "application/x-www-form-urlencoded"],
    ids=["none", "text-plain", "json-latin-1", "form"],
)
async def test_body_not_declared_as_utf8_json_is_415(gateway: Gateway, content_type: str | None) -> None:
    source = await gateway.add_source("marketplace")
    raw = encode(event("complaint.filed"))
    headers = gateway.sign(source, raw)
    del headers["Content-Type"]
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await gateway.post_raw(source.source_id, raw, headers, skip_auto_headers=("Content-Type",))
    await assert_problem(response, 415, problems.UNSUPPORTED_MEDIA_TYPE)


# -- 400 missing or malformed webhook headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-id", None),
        ("webhook-timestamp", None),
        ("webhook-signature", None),
        ("webhook-id", ""),
        ("webhook-timestamp", ""),
        ("webhook-signature", ""),
        ("webhook-id", "msg with spaces"),
        ("webhook-id", "m" * 257),
        ("webhook-id", "msg_é"),
        ("webhook-timestamp", "soon"),
        ("webhook-timestamp", "-1700000000"),
        ("webhook-timestamp", "+1700000000"),
        ("webhook-timestamp", "01700000000"),
        ("webhook-timestamp", "1700000000.5"),
        ("webhook-timestamp", "1" * 13),
    ],
    ids=[
        "id-missing",
        "timestamp-missing",
        "signature-missing",
        "id-empty",
        "timestamp-empty",
        "signature-empty",
        "id-with-spaces",
        "id-too-long",
        "id-not-ascii",
        "timestamp-not-digits",
        "timestamp-negative",
        "timestamp-plus-sign",
        "timestamp-leading-zero",
        "timestamp-fraction",
        "timestamp-too-many-digits",
    ],
)
async def test_missing_or_malformed_webhook_header_is_400(gateway: Gateway, header: str, value: str | None) -> None:
    source = await gateway.add_source("marketplace")
    raw = encode(event("complaint.filed"))
    headers = gateway.sign(source, raw)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    response = await gateway.post_raw(source.source_id, raw, headers)
    problem = await assert_problem(response, 400, problems.MALFORMED_HEADERS)
    assert header in problem["detail"]


# -- 401 no valid signature, or timestamp outside the window (the attacks: test_signature_attacks.py) -----------


@pytest.mark.parametrize("skew", [-240, 240], ids=["older", "ahead"])
async def test_validly_signed_timestamp_within_five_minutes_is_accepted(gateway: Gateway, skew: int) -> None:
    source = await gateway.add_source("marketplace")
    response = await gateway.post(source, event("complaint.filed"), webhook_id="msg_skew", timestamp=now() + skew)
    await accepted(response, "msg_skew")


# -- 400 body not JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"type": "complaint.filed", ', b'{"type": "complaint.filed\xff"}', b"", b"\xef\xbb\xbf{}", b"{'type': 1}"],
    ids=["truncated-json", "invalid-utf8", "empty", "utf8-bom", "single-quotes"],
)
async def test_signed_body_that_is_not_json_is_400(gateway: Gateway, raw: bytes) -> None:
    source = await gateway.add_source("marketplace")
    response = await gateway.post(source, raw)
    await assert_problem(response, 400, problems.BODY_NOT_JSON)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"type": "merchant.registered", "data": {"merchant": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}",
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    ],
    ids=["nested-arrays", "nested-inside-data", "nested-objects"],
)
async def test_deeply_nested_json_within_the_limit_is_a_client_error(gateway: Gateway, raw: bytes) -> None:
    source = await gateway.add_source("marketplace")
    assert len(raw) <= gateway.settings.body_limit
    response = await gateway.post(source, raw)
    assert 400 <= response.status < 500, await response.text()
    assert response.content_type == PROBLEM_JSON


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_body_that_does_not_decode_with_its_content_encoding_is_a_client_error(
    gateway: Gateway, encoding: str
) -> None:
    source = await gateway.add_source("marketplace")
    raw = encode(event("complaint.filed"))
    headers = {**gateway.sign(source, raw), "Content-Encoding": encoding}
    response = await gateway.post_raw(source.source_id, raw, headers)
    assert 400 <= response.status < 500, await response.text()
    assert response.content_type == PROBLEM_JSON


# -- 422 unknown event type, 403 not allowed for the kind, 422 schema ----------------------------------------


async def test_unknown_event_type_is_422_pointing_at_type(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = {**event("complaint.filed"), "type": "merchant.deleted"}
    problem = await assert_problem(await gateway.post(source, body), 422, problems.UNKNOWN_EVENT_TYPE)
    assert [error["pointer"] for error in problem["errors"]] == ["/type"]
    assert "merchant.deleted" not in json.dumps(problem)


@pytest.mark.parametrize(("kind", "event_type"), DISALLOWED_PAIRS)
async def test_event_type_not_allowed_for_the_source_kind_is_403(gateway: Gateway, kind: Any, event_type: str) -> None:
    source = await gateway.add_source(kind)
    response = await gateway.post(source, event(event_type))
    await assert_problem(response, 403, problems.EVENT_NOT_ALLOWED)
    assert await gateway.store.inbox_count() == 0


def _invalid_uscc_body() -> dict[str, Any]:
    merchant = {"id_type": "uscc", "id": with_wrong_check(make_uscc()), "name": "示例网店有限公司"}
    return event("complaint.filed", merchant=merchant)


def _missing_type_body() -> dict[str, Any]:
    body = event("complaint.filed")
    del body["type"]
    return body


def _future_body() -> dict[str, Any]:
    return event("review.manipulation_detected", detected_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())


def _missing_field_body() -> dict[str, Any]:
    body = event("review.manipulation_detected")
    del body["data"]["case_id"]
    return body


@pytest.mark.parametrize(
    ("make_body", "pointer"),
    [
        (lambda: event("review.manipulation_detected", confirmd=True), "/data/confirmd"),
        (_invalid_uscc_body, "/data/merchant/id"),
        (_missing_type_body, "/type"),
        (lambda: {**event("complaint.filed"), "type": 5}, "/type"),
        (_missing_field_body, "/data/case_id"),
        (lambda: event("review.manipulation_detected", order_count="12"), "/data/order_count"),
        (_future_body, "/data/detected_at"),
        (lambda: {**event("complaint.filed"), "timestamp": "2026-01-01T08:00:00"}, "/timestamp"),
    ],
    ids=[
        "unknown-field",
        "invalid-uscc",
        "missing-type",
        "type-not-a-string",
        "missing-field",
        "number-as-string",
        "fact-in-the-future",
        "time-without-offset",
    ],
)
async def test_schema_error_is_422_with_a_json_pointer(gateway: Gateway, make_body: Any, pointer: str) -> None:
    source = await gateway.add_source("marketplace")
    problem = await assert_problem(await gateway.post(source, make_body()), 422, problems.SCHEMA_INVALID)
    assert pointer in [error["pointer"] for error in problem["errors"]], problem
    assert all(set(error) == {"pointer", "detail"} for error in problem["errors"])
    assert await gateway.store.inbox_count() == 0


@pytest.mark.parametrize(
    "raw", [b"[]", b'"complaint.filed"', b"42", b"null"], ids=["array", "string", "number", "null"]
)
async def test_body_that_is_not_an_object_is_422_pointing_at_the_whole_document(gateway: Gateway, raw: bytes) -> None:
    """The pointer must resolve in the body: ``""`` (the document), as the SDK's own ``parse_event`` reports it."""
    source = await gateway.add_source("marketplace")
    problem = await assert_problem(await gateway.post(source, raw), 422, problems.SCHEMA_INVALID)
    assert [error["pointer"] for error in problem["errors"]] == [""]


# -- 429 rate limit ------------------------------------------------------------------------------------------


async def test_source_over_its_rate_limit_gets_429_with_retry_after(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace", rate=TINY_RATE)
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_1"), "msg_1")
    response = await gateway.post(source, event("complaint.filed"), webhook_id="msg_2")
    await assert_problem(response, 429, problems.RATE_LIMITED)
    assert int(response.headers["Retry-After"]) >= 1
    assert await gateway.store.inbox_count() == 1


async def test_rate_limit_of_one_source_does_not_affect_others(gateway: Gateway) -> None:
    limited = await gateway.add_source("marketplace", rate=TINY_RATE)
    also_limited = await gateway.add_source("marketplace", rate=TINY_RATE)
    unlimited = await gateway.add_source("marketplace")
    await accepted(await gateway.post(limited, event("complaint.filed"), webhook_id="msg_1"), "msg_1")
    assert (await gateway.post(limited, event("complaint.filed"), webhook_id="msg_2")).status == 429
    await accepted(await gateway.post(also_limited, event("complaint.filed"), webhook_id="msg_1"), "msg_1")
    for n in range(5):
        await accepted(await gateway.post(unlimited, event("complaint.filed"), webhook_id=f"msg_{n}"), f"msg_{n}")


async def test_unverified_requests_do_not_count_against_the_rate_limit(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace", rate=TINY_RATE)
    raw = encode(event("complaint.filed"))
    for n in range(5):
        unsigned = await gateway.post_raw(source.source_id, raw, {"Content-Type": "application/json"})
        assert unsigned.status == 400
        forged = await gateway.post(Source(source.source_id, SigningSecret.generate(), "marketplace"), raw)
        assert forged.status == 401
        stale = await gateway.post(source, raw, webhook_id=f"msg_stale_{n}", timestamp=now() - 3600)
        assert stale.status == 401
        wrong_type = await gateway.post(source, raw, content_type="text/plain")
        assert wrong_type.status == 415
    await accepted(await gateway.post(source, raw, webhook_id="msg_ok"), "msg_ok")
    assert (await gateway.post(source, event("complaint.filed"), webhook_id="msg_next")).status == 429


async def test_requests_refused_before_the_rate_limit_do_not_consume_it(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace", rate=TINY_RATE)
    for n in range(3):
        assert (await gateway.post(source, b"not json", webhook_id=f"msg_a{n}")).status == 400
        unknown = {**event("complaint.filed"), "type": "merchant.deleted"}
        assert (await gateway.post(source, unknown, webhook_id=f"msg_b{n}")).status == 422
        assert (await gateway.post(source, event("penalty.imposed"), webhook_id=f"msg_c{n}")).status == 403
        invalid = event("review.manipulation_detected", confirmd=True)
        assert (await gateway.post(source, invalid, webhook_id=f"msg_d{n}")).status == 422
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_ok"), "msg_ok")
    assert (await gateway.post(source, event("complaint.filed"), webhook_id="msg_next")).status == 429


# -- 503 store cannot commit ---------------------------------------------------------------------------------


async def test_store_that_cannot_commit_is_503_with_retry_after_and_the_retry_is_accepted(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = event("complaint.filed")
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_before"), "msg_before")
    async with inbox_refuses_inserts(gateway.settings.database_url):
        response = await gateway.post(source, body, webhook_id="msg_a")
        await assert_problem(response, 503, problems.STORE_UNAVAILABLE)
        assert int(response.headers["Retry-After"]) >= 1
    assert await gateway.store.inbox_count() == 1
    await accepted(await gateway.post(source, body, webhook_id="msg_a"), "msg_a")


# -- precedence: a request wrong in two ways gets the earlier answer -----------------------------------------


async def test_unknown_source_wins_over_a_garbage_body_and_missing_headers(gateway: Gateway) -> None:
    response = await gateway.post_raw("src_unknown", b"\x00\xff garbage", {"Content-Type": "text/plain"})
    await assert_problem(response, 404, problems.SOURCE_NOT_FOUND)


async def test_unknown_source_wins_over_an_oversize_body(gateway: Gateway) -> None:
    response = await gateway.post_raw("src_unknown", b" " * (gateway.settings.body_limit + 1), {})
    await assert_problem(response, 404, problems.SOURCE_NOT_FOUND)


async def test_too_large_wins_over_a_wrong_content_type(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    raw = b"x" * (gateway.settings.body_limit + 1)
    response = await gateway.post(source, raw, content_type="text/plain")
    await assert_problem(response, 413, problems.BODY_TOO_LARGE)


async def test_chunked_too_large_wins_over_a_wrong_content_type_and_missing_headers(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    chunks = in_chunks(b"x" * (gateway.settings.body_limit + 1024))
    response = await gateway.post_raw(source.source_id, chunks, {"Content-Type": "text/plain"})
    await assert_problem(response, 413, problems.BODY_TOO_LARGE)


async def test_wrong_content_type_wins_over_missing_webhook_headers(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    response = await gateway.post_raw(source.source_id, b"not json", {"Content-Type": "text/plain"})
    await assert_problem(response, 415, problems.UNSUPPORTED_MEDIA_TYPE)


async def test_malformed_headers_win_over_a_bad_signature(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    headers = {"webhook-id": "msg_a", "webhook-timestamp": "yesterday", "webhook-signature": "v1,Zm9yZ2Vk"}
    response = await gateway.post_raw(source.source_id, b"{}", {**headers, "Content-Type": "application/json"})
    await assert_problem(response, 400, problems.MALFORMED_HEADERS)


async def test_bad_signature_wins_over_a_non_json_body(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    headers = gateway.sign(Source(source.source_id, SigningSecret.generate(), "marketplace"), b"not json")
    response = await gateway.post_raw(source.source_id, b"not json", headers)
    await assert_problem(response, 401, problems.SIGNATURE_INVALID)


async def test_stale_timestamp_wins_over_a_non_json_body(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    response = await gateway.post(source, b"not json", timestamp=now() - 3600)
    await assert_problem(response, 401, problems.TIMESTAMP_OUT_OF_TOLERANCE)


async def test_non_json_body_wins_over_an_exhausted_rate_limit(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace", rate=TINY_RATE)
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_1"), "msg_1")
    response = await gateway.post(source, b"not json", webhook_id="msg_2")
    await assert_problem(response, 400, problems.BODY_NOT_JSON)


async def test_unknown_event_type_wins_over_the_kind_check(gateway: Gateway) -> None:
    source = await gateway.add_source("courier")
    body = {**event("delivery.recorded"), "type": "merchant.deleted"}
    await assert_problem(await gateway.post(source, body), 422, problems.UNKNOWN_EVENT_TYPE)


async def test_kind_check_wins_over_schema_errors(gateway: Gateway) -> None:
    source = await gateway.add_source("courier")
    body = event("penalty.imposed", confirmd=True, severity="apocalyptic")
    await assert_problem(await gateway.post(source, body), 403, problems.EVENT_NOT_ALLOWED)


async def test_schema_errors_win_over_an_exhausted_rate_limit(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace", rate=TINY_RATE)
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_1"), "msg_1")
    invalid = event("review.manipulation_detected", confirmd=True)
    await assert_problem(await gateway.post(source, invalid, webhook_id="msg_2"), 422, problems.SCHEMA_INVALID)


async def test_rate_limit_wins_over_a_duplicate(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace", rate=TINY_RATE)
    body = event("complaint.filed")
    await accepted(await gateway.post(source, body, webhook_id="msg_1"), "msg_1")
    await assert_problem(await gateway.post(source, body, webhook_id="msg_1"), 429, problems.RATE_LIMITED)


async def test_store_failure_wins_over_a_conflict(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    await accepted(await gateway.post(source, event("complaint.filed"), webhook_id="msg_1"), "msg_1")
    async with inbox_refuses_inserts(gateway.settings.database_url):
        response = await gateway.post(source, event("complaint.filed"), webhook_id="msg_1")
    await assert_problem(response, 503, problems.STORE_UNAVAILABLE)


# -- racing copies -------------------------------------------------------------------------------------------


async def test_thirty_concurrent_copies_of_one_webhook_store_one_row(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = event("complaint.filed")
    responses = await asyncio.gather(*(gateway.post(source, body, webhook_id="msg_race") for _ in range(30)))
    statuses = sorted(response.status for response in responses)
    assert statuses == [200] * 29 + [202]
    for response in responses:
        assert (await response.json())["webhook_id"] == "msg_race"
    rows = await gateway.store.read_inbox()
    assert [(row.source_id, row.webhook_id) for row in rows] == [(source.source_id, "msg_race")]


async def test_concurrent_posts_of_one_id_with_different_bodies_accept_one_and_conflict_the_rest(
    gateway: Gateway,
) -> None:
    source = await gateway.add_source("marketplace")
    bodies = [encode(event("complaint.filed")) for _ in range(10)]
    responses = await asyncio.gather(*(gateway.post(source, raw, webhook_id="msg_race") for raw in bodies))
    assert sorted(response.status for response in responses) == [202] + [409] * 9
    for response in responses:
        if response.status == 409:
            await assert_problem(response, 409, problems.DUPLICATE_CONFLICT)
    winner = next(raw for raw, response in zip(bodies, responses, strict=True) if response.status == 202)
    (row,) = await gateway.store.read_inbox()
    assert gateway.master_key.open_body(row.source_id, row.webhook_id, row.sealed_body) == winner


# -- other routes --------------------------------------------------------------------------------------------


async def test_unknown_route_is_a_404_problem(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/nothing-here")
    await assert_problem(response, 404, problems.NOT_FOUND)


async def test_get_on_the_webhook_route_is_a_405_problem_naming_post(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    response = await gateway.client.get(f"/v1/webhooks/{source.source_id}")
    await assert_problem(response, 405, "about:blank")
    assert response.headers["Allow"] == "POST"


async def test_healthz_answers_200(gateway: Gateway) -> None:
    response = await gateway.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_answers_200_with_the_schema_version(gateway: Gateway) -> None:
    response = await gateway.client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "schema_version": (await gateway.store.schema_status()).latest}


async def test_every_problem_quotes_the_request_id_of_its_response(gateway: Gateway) -> None:
    response = await gateway.post_raw("src_unknown", b"{}", {"Content-Type": "application/json"})
    problem = await assert_problem(response, 404, problems.SOURCE_NOT_FOUND)
    assert problem["request_id"] == response.headers["X-Request-Id"]


# -- hostile input never gives a 5xx (the real server in a subprocess, plain http.client) --------------------

_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=64) | st.text(
    st.characters(min_codepoint=0xA0, max_codepoint=0xFF), max_size=8
)


def post_plain(served: ServedGateway, body: bytes, headers: dict[str, str], source_id: str | None = None) -> None:
    """Post with a plain ``http.client`` and check the answer: never 5xx, every error a problem document."""
    url = urlsplit(served.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request("POST", f"/v1/webhooks/{source_id or served.source_id}", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    hypothesis.event(f"HTTP {response.status}")
    assert response.status < 500, payload
    if response.status >= 400:
        assert response.getheader("Content-Type") == PROBLEM_JSON, payload
        assert json.loads(payload)["status"] == response.status


@given(
    hostile=st.sampled_from(["headers", "signature", "body"]),
    body=st.binary(max_size=1024) | JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    webhook_id=_HEADER_TEXT,
    timestamp=_HEADER_TEXT | st.integers(min_value=-(10**13), max_value=10**13).map(str),
    signature=_HEADER_TEXT,
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8"]) | _HEADER_TEXT,
)
def test_hostile_bytes_and_header_values_never_cause_a_server_error(
    served_gateway: ServedGateway,
    hostile: str,
    body: bytes,
    webhook_id: str,
    timestamp: str,
    signature: str,
    content_type: str,
) -> None:
    """Arbitrary header values; or well-formed headers with an arbitrary signature; or a validly signed
    arbitrary body: each stage of the checks sees hostile input."""
    if hostile != "headers":
        webhook_id, timestamp, content_type = f"msg_{uuid.uuid4().hex}", str(now()), "application/json"
    if hostile == "body":
        signature = served_gateway.secret.sign(webhook_id, int(timestamp), body)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
        "Content-Type": content_type,
    }
    post_plain(served_gateway, body, headers)


@given(raw=mutated_event_bodies())
def test_validly_signed_mutated_events_never_cause_a_server_error(served_gateway: ServedGateway, raw: bytes) -> None:
    headers = signature_headers(served_gateway.secret, f"msg_{uuid.uuid4().hex}", raw)
    post_plain(served_gateway, raw, {**headers, "Content-Type": "application/json"})
