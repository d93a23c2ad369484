"""The applicant sees its case: ``GET /v1/objections/{id}`` and ``GET /v1/repairs/{id}`` (scope ``cases``), on
SQLite and PostgreSQL, through HTTP and the SDK's ``Client`` / ``SyncClient``.

A key reads the cases filed by the sources it was issued for (``keys add --sources``) and nobody else's: another
source's case answers exactly as an unknown id. An upheld objection and a granted repair show ``published_at``, the
moment the projector wrote the change to the feed, beside their deadlines."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, Source, assert_problem
from tests.gateway.test_screenings import screen
from xinyong import Client, NotFoundError, ObjectionCase, RepairCase, SyncClient, problems, ric_pseudonym
from xinyong.subjects import CHINA_STANDARD_TIME
from xinyong_gateway.access import IssuedApiKey
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.credit.report import case_line

RUN_PROJECTOR = False
"""The gateway without its built-in projector: these tests project themselves."""

SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(1901)), "name": "申诉网店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(1902)), "name": "李雷"}


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def _record(gateway: Gateway, regulator: Source, subject: dict[str, str], *, days_ago: float = 0.01) -> str:
    """A general penalty of ``days_ago`` against ``subject``: its record id, from a screening."""
    body = event("penalty.imposed", subject=subject, decision_no=f"连市监罚〔2026〕{random.randrange(10**6)}号")
    body["data"]["decided_at"] = _ago(days=days_ago)
    await gateway.post_and_project([body], f"penalty_{subject['id'][-4:]}", source=regulator)
    (result,) = await screen(gateway, [{"id_type": subject["id_type"], "id": subject["id"]}])
    record_id: str = result["reasons"][0]["record_id"]
    return record_id


async def _get(gateway: Gateway, key: IssuedApiKey, path: str) -> Any:
    response = await gateway.client.get(path, headers={"Authorization": f"Bearer {key.api_key}"})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_marketplace_follows_its_objection_from_filing_to_the_published_correction(gateway: Gateway) -> None:
    regulator = await gateway.add_source("regulator")
    market = await gateway.add_source("marketplace")
    key = await gateway.add_api_key(["cases"], sources=[market.source_id])
    record_id = await _record(gateway, regulator, SHOP)
    filed = event("objection.filed", objection_id="OBJ-1", subject=SHOP, record_id=record_id, filed_at=_ago(hours=2))
    await gateway.post_and_project([filed], "file", source=market)

    case = await _get(gateway, key, "/v1/objections/OBJ-1")
    assert (case["state"], case["record_id"], case["filed_by"]) == ("open", record_id, market.source_id)
    assert case["subject"] == {"id_type": "uscc", "id": SHOP["id"], "name": SHOP["name"]}
    filed_day = datetime.fromisoformat(filed["data"]["filed_at"]).astimezone(CHINA_STANDARD_TIME).date()
    assert date.fromisoformat(case["reply_due"]) == filed_day + timedelta(days=30)
    assert (case["decided_at"], case["publish_due"], case["published_at"], case["overdue"]) == (None, None, None, False)
    ObjectionCase.model_validate_json(json.dumps(case))

    before = datetime.now(UTC).replace(microsecond=0)
    ruling = event("objection.decided", objection_id="OBJ-1", subject=SHOP, outcome="upheld", decided_at=_ago(hours=1))
    await gateway.post_and_project([ruling], "rule", source=regulator)
    case = await _get(gateway, key, "/v1/objections/OBJ-1")
    assert (case["state"], case["outcome"]) == ("upheld", "upheld")
    published = datetime.fromisoformat(case["published_at"])
    assert before <= published <= datetime.now(UTC)  # written when the projector applied the ruling
    assert published.astimezone(CHINA_STANDARD_TIME).date() <= date.fromisoformat(case["publish_due"])
    await gateway.project()  # a later projection keeps the first publication time
    assert (await _get(gateway, key, "/v1/objections/OBJ-1"))["published_at"] == case["published_at"]


async def test_a_key_never_sees_another_sources_case_and_cannot_tell_it_from_an_unknown_one(gateway: Gateway) -> None:
    regulator = await gateway.add_source("regulator")
    mine, theirs = await gateway.add_source("marketplace"), await gateway.add_source("marketplace")
    record_id = await _record(gateway, regulator, SHOP)
    filed = event("objection.filed", objection_id="OBJ-THEIRS", subject=SHOP, record_id=record_id)
    await gateway.post_and_project([filed], "theirs", source=theirs)
    key = await gateway.add_api_key(["cases"], sources=[mine.source_id])
    unlinked = await gateway.add_api_key(["cases"])  # a key issued for no source reads nothing
    answers = []
    for who, path in (
        (key, "/v1/objections/OBJ-THEIRS"),
        (key, "/v1/objections/OBJ-NONE"),
        (unlinked, "/v1/objections/OBJ-THEIRS"),
    ):
        response = await gateway.client.get(path, headers={"Authorization": f"Bearer {who.api_key}"})
        problem = await assert_problem(response, 404, problems.NOT_FOUND)
        answers.append({name: value for name, value in problem.items() if name not in ("request_id", "instance")})
    assert answers[0] == answers[1] == answers[2]
    owner = await gateway.add_api_key(["cases"], sources=[mine.source_id, theirs.source_id])
    assert (await _get(gateway, owner, "/v1/objections/OBJ-THEIRS"))["filed_by"] == theirs.source_id


async def test_a_repair_reads_pending_then_granted_with_its_publication_and_a_person_only_by_pseudonym(
    gateway: Gateway,
) -> None:
    regulator = await gateway.add_source("regulator")
    market = await gateway.add_source("marketplace")
    key = await gateway.add_api_key(["cases"], sources=[market.source_id])
    record_id = await _record(gateway, regulator, PERSON, days_ago=120)  # a general record repairable after 90 days
    applied = event("repair.applied", repair_id="REP-1", subject=PERSON, record_id=record_id, applied_at=_ago(hours=3))
    await gateway.post_and_project([applied], "apply", source=market)
    case = await _get(gateway, key, "/v1/repairs/REP-1")
    assert (case["state"], case["published_at"], case["filed_by"]) == ("pending", None, market.source_id)
    assert case["subject"] == {"id_type": "ric", "pseudonym": ric_pseudonym(PERSON["id"], key.lookup_secret)}
    assert PERSON["id"] not in json.dumps(case, ensure_ascii=False) and PERSON["name"] not in json.dumps(case)
    ruling = event("repair.decided", repair_id="REP-1", subject=PERSON, outcome="granted", decided_at=_ago(hours=1))
    await gateway.post_and_project([ruling], "grant", source=regulator)
    case = await _get(gateway, key, "/v1/repairs/REP-1")
    assert (case["state"], case["outcome"]) == ("granted", "granted")
    assert case["published_at"] is not None
    RepairCase.model_validate_json(json.dumps(case))


async def test_too_early_a_repair_is_refused_at_once_with_the_day_it_becomes_possible(gateway: Gateway) -> None:
    regulator = await gateway.add_source("regulator")
    market = await gateway.add_source("marketplace")
    key = await gateway.add_api_key(["cases"], sources=[market.source_id])
    record_id = await _record(gateway, regulator, SHOP, days_ago=10)
    applied = event(
        "repair.applied", repair_id="REP-EARLY", subject=SHOP, record_id=record_id, applied_at=_ago(hours=1)
    )
    await gateway.post_and_project([applied], "early", source=market)
    case = await _get(gateway, key, "/v1/repairs/REP-EARLY")
    assert case["state"] == "refused" and case["reason"].startswith("too early: possible from ")
    assert case["possible_from"] is not None and case["published_at"] is None


@pytest.mark.parametrize(
    ("path", "status", "problem_type"),
    [
        ("/v1/objections/" + "x" * 129, 400, problems.QUERY_INVALID),
        ("/v1/objections/OBJ-1?verbose=1", 400, problems.QUERY_INVALID),
        ("/v1/repairs/OBJ%2F1", 404, problems.NOT_FOUND),
    ],
)
async def test_a_malformed_case_request_gets_a_problem_never_a_500(
    gateway: Gateway, path: str, status: int, problem_type: str
) -> None:
    market = await gateway.add_source("marketplace")
    key = await gateway.add_api_key(["cases"], sources=[market.source_id])
    response = await gateway.client.get(path, headers={"Authorization": f"Bearer {key.api_key}"})
    await assert_problem(response, status, problem_type)


async def test_the_sdk_reads_cases_async_and_sync_and_raises_not_found_for_anyone_elses(gateway: Gateway) -> None:
    regulator = await gateway.add_source("regulator")
    market = await gateway.add_source("marketplace")
    key = await gateway.add_api_key(["cases"], sources=[market.source_id])
    record_id = await _record(gateway, regulator, SHOP)
    filed = event("objection.filed", objection_id="OBJ/2026/7", subject=SHOP, record_id=record_id)
    await gateway.post_and_project([filed], "sdk", source=market)
    async with Client(gateway.base_url, key.api_key) as client:
        case = await client.objection("OBJ/2026/7")  # an id with a slash travels percent-encoded
        assert (case.objection_id, case.state, case.record_id) == ("OBJ/2026/7", "open", record_id)
        with pytest.raises(NotFoundError):
            await client.repair("REP-NONE")
        with pytest.raises(ValueError, match="1 to 128"):
            await client.objection("")

    def back_end() -> str:
        with SyncClient(gateway.base_url, key.api_key) as client:
            return client.objection("OBJ/2026/7").state

    assert await asyncio.to_thread(back_end) == "open"


async def test_the_operator_sees_published_at_beside_publish_due(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    regulator = await gateway.add_source("regulator")
    record_id = await _record(gateway, regulator, SHOP)
    bodies = [
        event("objection.filed", objection_id="OBJ-CLI", subject=SHOP, record_id=record_id, filed_at=_ago(hours=2)),
        event("objection.decided", objection_id="OBJ-CLI", subject=SHOP, outcome="upheld", decided_at=_ago(hours=1)),
    ]
    await gateway.post_and_project(bodies, "cli", source=regulator)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()
    url = gateway.settings.database_url
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "objections", "show", "OBJ-CLI"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["published_at"] is not None and shown["publish_due"] is not None
    assert f"published {shown['published_at']}" in case_line(shown)  # the command's line on a terminal
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "subjects", "show", "uscc", SHOP["id"]]) == 0
    (objection,) = json.loads(capsys.readouterr().out)["objections"]
    assert objection["published_at"] == shown["published_at"]
