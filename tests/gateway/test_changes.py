"""``GET /v1/lists/changes``: the ordered feed of status changes, paged by cursor; persons only by pseudonym."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import Gateway, assert_problem
from xinyong import ListChangesPage, problems, ric_pseudonym
from xinyong.subjects import mask_id

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

PERSON_NAME = "李秀英"
PERSON = {"id_type": "ric", "id": make_ric(random.Random(11)), "name": PERSON_NAME}
SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(12)), "name": "刷单小店"}
FAKE = {"id_type": "uscc", "id": make_uscc(random.Random(13)), "name": "假货旗舰店"}


async def seed(gateway: Gateway) -> None:
    await gateway.post_and_project(
        [
            event("review.manipulation_detected", merchant=SHOP, kind="fake_order", order_count=12, confirmed=True),
            event("review.manipulation_detected", merchant=PERSON, kind="fake_traffic", order_count=3, confirmed=True),
            event("listing.violation", merchant=FAKE, kind="counterfeit", confirmed=True),
        ],
        "msg_seed",
    )


async def page(gateway: Gateway, key: str, **query: str) -> tuple[dict[str, Any], str]:
    response = await gateway.client.get("/v1/lists/changes", params=query, headers={"Authorization": f"Bearer {key}"})
    text = await response.text()
    assert response.status == 200, text
    ListChangesPage.model_validate_json(text)  # the wire model (and so the schema) holds
    document: dict[str, Any] = json.loads(text)
    return document, text


async def test_pages_follow_the_cursor_in_feed_order_and_end_at_the_head(gateway: Gateway) -> None:
    await seed(gateway)
    key = (await gateway.add_api_key(["changes"])).api_key
    stored = await gateway.store.read_changes(0, 1000)
    assert len(stored) == 3
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": "2"} | ({"after": cursor} if cursor is not None else {})
        document, _ = await page(gateway, key, **query)
        seen += document["changes"]
        if not document["changes"]:
            assert document["next"] == cursor  # an empty page hands the same cursor back
            break
        assert document["next"] == document["changes"][-1]["cursor"]
        cursor = document["next"]
    assert [entry["cursor"] for entry in seen] == [str(change.change_id) for change in stored]
    assert [int(entry["cursor"]) for entry in seen] == sorted(int(entry["cursor"]) for entry in seen)
    for entry, change in zip(seen, stored, strict=True):
        snapshot = json.loads(change.snapshot)
        assert {k: entry[k] for k in ("list", "grade", "score", "measures", "reasons", "policy_version")} == {
            k: snapshot[k] for k in ("list", "grade", "score", "measures", "reasons", "policy_version")
        }
        assert entry["effective_at"].endswith("+00:00")
    assert [entry["list"] for entry in seen] == ["watch", "watch", "black"]


async def test_without_after_the_feed_starts_at_the_beginning_and_later_changes_follow_the_cursor(
    gateway: Gateway,
) -> None:
    key = (await gateway.add_api_key(["changes"])).api_key
    empty, _ = await page(gateway, key)
    assert empty == {"changes": [], "next": "0"}
    await seed(gateway)
    first, _ = await page(gateway, key)
    assert len(first["changes"]) == 3
    head = first["next"]
    assert (await page(gateway, key, after=head))[0] == {"changes": [], "next": head}
    penalty = event("penalty.imposed", subject=SHOP, severity="serious", decision_no="连市监罚〔2026〕9号")
    source = await gateway.add_source("regulator")
    assert (await gateway.post(source, penalty, webhook_id="msg_later")).status == 202
    await gateway.project()
    later, _ = await page(gateway, key, after=head)
    assert [(entry["subject"]["id"], entry["list"]) for entry in later["changes"]] == [(SHOP["id"], "black")]


async def test_a_business_is_named_by_code_and_a_person_only_by_the_keys_pseudonym(gateway: Gateway) -> None:
    await seed(gateway)
    one = await gateway.add_api_key(["changes"])
    other = await gateway.add_api_key(["changes"])
    document, text = await page(gateway, one.api_key)
    subjects = [entry["subject"] for entry in document["changes"]]
    assert subjects[0] == {"id_type": "uscc", "id": SHOP["id"], "name": "刷单小店"}
    assert subjects[1] == {"id_type": "ric", "pseudonym": ric_pseudonym(PERSON["id"], one.lookup_secret)}
    for needle in (PERSON["id"], mask_id("ric", PERSON["id"]), PERSON_NAME, PERSON_NAME[0] + "**"):
        assert needle not in text
    other_document, _ = await page(gateway, other.api_key)
    assert other_document["changes"][1]["subject"]["pseudonym"] == ric_pseudonym(PERSON["id"], other.lookup_secret)
    assert other_document["changes"][1]["subject"] != subjects[1]  # each marketplace has pseudonyms of its own


async def test_limit_bounds_a_page(gateway: Gateway) -> None:
    await seed(gateway)
    key = (await gateway.add_api_key(["changes"])).api_key
    assert len((await page(gateway, key, limit="1"))[0]["changes"]) == 1
    assert len((await page(gateway, key, limit="1000"))[0]["changes"]) == 3
    assert len((await page(gateway, key))[0]["changes"]) == 3


@pytest.mark.parametrize(
    "query",
    [
        {"after": ""},
        {"after": "-1"},
        {"after": "abc"},
        {"after": "1.5"},
        {"after": "0x10"},
        {"after": " 1"},
        {"after": "1" * 19},
        {"after": "١٢"},  # Arabic-Indic digits: int() would take them, the cursor does not
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "-5"},
        {"limit": "abc"},
        {"limit": ""},
        {"limit": "1e3"},
        {"limit": "99999999999999999999"},
    ],
)
async def test_a_bad_cursor_or_limit_is_a_400_never_a_500(gateway: Gateway, query: dict[str, str]) -> None:
    key = (await gateway.add_api_key(["changes"])).api_key
    response = await gateway.client.get("/v1/lists/changes", params=query, headers={"Authorization": f"Bearer {key}"})
    problem = await assert_problem(response, 400, problems.QUERY_INVALID)
    assert next(iter(query)) in problem["detail"]


@pytest.mark.parametrize(
    "query",
    ["afer=1", "after=1&after=2", "limit=5&limit=5", "after=0&cursor=9", "=1"],
    ids=["misspelt-after", "repeated-after", "repeated-limit", "unknown-parameter", "nameless-parameter"],
)
async def test_an_unknown_or_repeated_parameter_is_a_400_not_a_page_from_the_start(
    gateway: Gateway, query: str
) -> None:
    """A follower's typo (``afer=42``) would otherwise read the feed from the beginning as if it were new."""
    key = (await gateway.add_api_key(["changes"])).api_key
    response = await gateway.client.get(f"/v1/lists/changes?{query}", headers={"Authorization": f"Bearer {key}"})
    problem = await assert_problem(response, 400, problems.QUERY_INVALID)
    assert problem["detail"] == "Only 'after' and 'limit' may be given, each at most once."
