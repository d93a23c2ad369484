"""Personal information (a resident id number, a natural person's name) never lands in plain form on disk, in a
problem answer or in the log (SECURITY.md; docs/architecture.md, "Security model, in short").

The gateway here runs as in production, on each backend: on SQLite its master key is the key file that
``xinyong-gateway migrate`` creates beside the database, on PostgreSQL it comes from ``XINYONG_MASTER_KEY``; its
log is the production JSON log.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stdnum.cn import ric as stdnum_ric

from tests.factories import RIC_CHECK_ALPHABET, encode, event, make_ric, person, with_wrong_check
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, assert_problem, at_rest_holding, is_sqlite
from xinyong import problems
from xinyong_gateway.cli import main
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import MasterKeyError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.web.app import create_app

NAME = "王小明"


@pytest.fixture
def ric() -> str:
    return make_ric(random.Random(20260301))


@pytest.fixture
async def gateway(
    database_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    gateway_log: io.StringIO,
) -> Gateway:
    """A gateway on a database migrated by the CLI, logging JSON; keyed by the key file beside a SQLite database,
    by ``XINYONG_MASTER_KEY`` on PostgreSQL (which has no key file)."""
    if is_sqlite(database_url):
        monkeypatch.delenv("XINYONG_MASTER_KEY", raising=False)
    else:
        monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    assert await asyncio.to_thread(main, ["--db", database_url, "migrate"]) == 0
    settings = GatewaySettings(database_url=database_url, source_refresh_interval=0.2, log_format="json")
    client = await aiohttp_client(create_app(settings))
    return Gateway(client, settings, tmp_path)


def forms_of(*values: str) -> list[bytes]:
    """The ways a value can appear in bytes: UTF-8, and JSON-escaped ASCII (``\\u738b...``)."""
    forms = []
    for value in values:
        forms.append(value.encode())
        forms.append(json.dumps(value).strip('"').encode())
    return forms


def file_names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def log_records(log: io.StringIO) -> list[dict[str, Any]]:
    """The canonical request lines of the log (other lines, such as the projector's, are left out)."""
    return [record for line in log.getvalue().splitlines() if (record := json.loads(line))["event"] == "request"]


# -- at rest ------------------------------------------------------------------------------------------------------


async def test_resident_id_and_name_are_nowhere_in_the_stored_database(gateway: Gateway, ric: str) -> None:
    """On SQLite in no byte of the database, its write-ahead log or its key file; on PostgreSQL in no row of any
    table (see ``at_rest_holding``)."""
    source = await gateway.add_source("marketplace")
    body = event("merchant.registered", merchant=person(name=NAME) | {"id": ric})
    assert (await gateway.post(source, body, webhook_id="msg_person")).status == 202
    assert (await gateway.post(source, body, webhook_id="msg_person")).status == 200
    assert await gateway.store.inbox_count() == 1
    needles = forms_of(ric, NAME)
    url = gateway.settings.database_url
    if gateway.sqlite_path is not None:  # the scan must cover the write-ahead log and the key file
        assert {"gateway.db", "gateway.db-wal", "gateway.db.key"} <= file_names(gateway.sqlite_path.parent)

    assert await at_rest_holding(url, [b"msg_person"]) != [], "control: the scan sees the row's plain columns"
    assert await at_rest_holding(url, needles) == [], "while the gateway runs"
    await gateway.client.close()  # the store closes (on SQLite the log is checkpointed into the database file)
    assert await at_rest_holding(url, needles) == [], "after the gateway stopped"


async def test_body_digest_is_keyed_so_a_body_cannot_be_confirmed_by_hashing_a_guess(
    gateway: Gateway, ric: str
) -> None:
    source = await gateway.add_source("marketplace")
    raw = encode(event("merchant.registered", merchant=person(name=NAME) | {"id": ric}))
    assert (await gateway.post(source, raw, webhook_id="msg_person")).status == 202
    (row,) = await gateway.store.read_inbox()
    assert row.body_digest != hashlib.sha256(raw).digest()
    assert row.body_digest == gateway.master_key.body_digest(raw)


async def test_stored_body_opens_to_the_exact_raw_bytes_with_the_master_key(gateway: Gateway, ric: str) -> None:
    source = await gateway.add_source("marketplace")
    body = event("merchant.registered", merchant=person(name=NAME) | {"id": ric})
    raw = json.dumps(body, ensure_ascii=True, indent=3, sort_keys=True).encode() + b"\n\t "
    assert (await gateway.post(source, raw, webhook_id="msg_person")).status == 202
    (row,) = await gateway.store.read_inbox()
    assert row.sealed_body != raw
    assert gateway.master_key.open_body(source.source_id, "msg_person", row.sealed_body) == raw


async def test_stored_body_does_not_open_under_another_rows_identity(gateway: Gateway) -> None:
    one = await gateway.add_source("marketplace")
    other = await gateway.add_source("marketplace")
    assert (await gateway.post(one, event("merchant.registered"), webhook_id="msg_1")).status == 202
    assert (await gateway.post(one, event("merchant.registered"), webhook_id="msg_2")).status == 202
    assert (await gateway.post(other, event("merchant.registered"), webhook_id="msg_1")).status == 202
    first, second, third = await gateway.store.read_inbox()
    master = gateway.master_key
    for source_id, webhook_id in [(second.source_id, second.webhook_id), (third.source_id, third.webhook_id)]:
        with pytest.raises(MasterKeyError):
            master.open_body(source_id, webhook_id, first.sealed_body)
    master.open_body(first.source_id, first.webhook_id, first.sealed_body)


async def test_stored_body_does_not_open_with_another_master_key(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    assert (await gateway.post(source, event("merchant.registered"), webhook_id="msg_1")).status == 202
    (row,) = await gateway.store.read_inbox()
    other = MasterKey.from_text(MasterKey.generate_text())
    with pytest.raises(MasterKeyError):
        other.open_body(row.source_id, row.webhook_id, row.sealed_body)


# -- in the log and in problem answers ---------------------------------------------------------------------------


async def test_log_has_one_json_line_per_request_with_its_facts_and_no_personal_data(
    gateway: Gateway, gateway_log: io.StringIO, ric: str
) -> None:
    source = await gateway.add_source("marketplace")
    body = event("merchant.registered", merchant=person(name=NAME) | {"id": ric})
    wrong = with_wrong_check(ric, RIC_CHECK_ALPHABET)
    invalid = event("merchant.registered", merchant=person(name=NAME) | {"id": wrong})
    statuses = [
        (await gateway.post(source, body, webhook_id="msg_1")).status,
        (await gateway.post(source, body, webhook_id="msg_1")).status,
        (await gateway.post(source, invalid, webhook_id="msg_2")).status,
    ]
    assert statuses == [202, 200, 422]

    records = log_records(gateway_log)
    assert [record["event"] for record in records] == ["request"] * 3
    facts = [(r["source_id"], r["webhook_id"], r["type"], r["status"]) for r in records]
    assert facts == [
        (source.source_id, "msg_1", "merchant.registered", 202),
        (source.source_id, "msg_1", "merchant.registered", 200),
        (source.source_id, "msg_2", "merchant.registered", 422),
    ]
    assert records[2]["problem"] == "schema-invalid"
    text = gateway_log.getvalue()
    for needle in forms_of(ric, wrong, NAME):
        assert needle.decode() not in text


def _wrong_check_digit(ric: str) -> dict[str, Any]:
    return event("merchant.registered", merchant={"id_type": "ric", "id": with_wrong_check(ric, RIC_CHECK_ALPHABET)})


def _born_in_the_future(ric: str) -> dict[str, Any]:
    first17 = ric[:6] + "29990101" + ric[14:17]
    return event(
        "merchant.registered", merchant={"id_type": "ric", "id": first17 + stdnum_ric.calc_check_digit(first17)}
    )


def _ric_in_a_number_field(ric: str) -> dict[str, Any]:
    return event("review.manipulation_detected", merchant=person(name=NAME), order_count=ric)


def _ric_with_an_unknown_id_type(ric: str) -> dict[str, Any]:
    return event("merchant.registered", merchant={"id_type": "passport", "id": ric, "name": NAME})


def _name_too_long(ric: str) -> dict[str, Any]:
    return event("merchant.registered", merchant={"id_type": "ric", "id": ric, "name": NAME * 70})


@pytest.mark.parametrize(
    ("make_body", "pointer"),
    [
        (_wrong_check_digit, "/data/merchant/id"),
        (_born_in_the_future, "/data/merchant/id"),
        (_ric_in_a_number_field, "/data/order_count"),
        (_ric_with_an_unknown_id_type, "/data/merchant/id_type"),
        (_name_too_long, "/data/merchant/name"),
    ],
    ids=["wrong-check-digit", "born-in-the-future", "ric-as-order-count", "unknown-id-type", "name-too-long"],
)
async def test_invalid_personal_data_is_422_with_a_pointer_and_never_echoed(
    gateway: Gateway,
    gateway_log: io.StringIO,
    ric: str,
    make_body: Callable[[str], dict[str, Any]],
    pointer: str,
) -> None:
    source = await gateway.add_source("marketplace")
    body = make_body(ric)
    response = await gateway.post(source, body, webhook_id="msg_invalid")
    problem = await assert_problem(response, 422, problems.SCHEMA_INVALID)
    assert pointer in [error["pointer"] for error in problem["errors"]], problem

    sent = body["data"].get("merchant", {}).get("id") or ric
    answer = json.dumps(problem, ensure_ascii=False)
    log = gateway_log.getvalue()
    for needle in forms_of(sent, ric, NAME):
        assert needle.decode() not in answer
        assert needle.decode() not in log
    (record,) = log_records(gateway_log)
    assert (record["webhook_id"], record["status"]) == ("msg_invalid", 422)
