"""Objections and repairs through a real gateway, on SQLite and PostgreSQL: ordinary signed events, projected into
the subject's file; a status says ``disputed`` while an objection is open (screening, feed), an upheld objection
corrects the record, a replay reproduces every outcome, and ``subjects show`` lists them with their deadlines."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import event, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway
from tests.gateway.test_screenings import screen
from xinyong.subjects import CHINA_STANDARD_TIME
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.credit.projector import Projector

POLICY = default_policy()
RUN_PROJECTOR = False
"""The gateway without its built-in projector: these tests drive projection themselves."""

WHO = {"id_type": "uscc", "id": make_uscc(random.Random(1801)), "name": "异议网店"}


async def _penalty_record(gateway: Gateway) -> str:
    body = event("penalty.imposed", subject=WHO, decision_no="连市监罚〔2026〕88号", severity="serious")
    regulator = await gateway.add_source("regulator")
    await gateway.post_and_project([body], "penalty", source=regulator)
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert result["list"] == "black" and not result["disputed"]
    record_id: str = result["reasons"][0]["record_id"]
    return record_id


def _at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


async def test_an_objection_disputes_the_status_until_upheld_then_the_record_is_corrected(gateway: Gateway) -> None:
    record_id = await _penalty_record(gateway)
    regulator = await gateway.add_source("regulator")
    filed = event("objection.filed", objection_id="O-1", subject=WHO, record_id=record_id, filed_at=_at(10))
    await gateway.post_and_project([filed], "objection", source=regulator)
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert (result["list"], result["disputed"], result["reasons"][0]["disputed"]) == ("black", True, True)
    feed = await gateway.store.read_changes(0, 100)
    assert json.loads(feed[-1].snapshot)["disputed"] is True  # the feed learns of the dispute

    ruling = event("objection.decided", objection_id="O-1", subject=WHO, outcome="upheld", decided_at=_at(1))
    await gateway.post_and_project([ruling], "ruling", source=regulator)
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert (result["list"], result["disputed"], result["reasons"]) == ("none", False, [])
    last = json.loads((await gateway.store.read_changes(0, 100))[-1].snapshot)
    assert (last["list"], last["disputed"]) == ("none", False)

    key = gateway.master_key.subject_key("uscc", WHO["id"])
    before = (await gateway.store.load_subjects([key]))[key].state
    await Projector(gateway.store, gateway.master_key, POLICY).reproject(POLICY, None)
    assert (await gateway.store.load_subjects([key]))[key].state == before  # a replay reproduces the outcome


async def test_a_ruling_that_arrives_before_its_objection_is_applied_when_the_objection_comes(gateway: Gateway) -> None:
    record_id = await _penalty_record(gateway)
    regulator = await gateway.add_source("regulator")
    ruling = event("objection.decided", objection_id="O-2", subject=WHO, outcome="upheld", decided_at=_at(1))
    await gateway.post_and_project([ruling], "early_ruling", source=regulator)
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert result["list"] == "black"  # a ruling on an objection never filed changes nothing
    filed = event("objection.filed", objection_id="O-2", subject=WHO, record_id=record_id, filed_at=_at(10))
    await gateway.post_and_project([filed], "late_filing", source=regulator)
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert (result["list"], result["disputed"]) == ("none", False)


async def test_a_marketplace_may_file_but_not_rule(gateway: Gateway) -> None:
    record_id = await _penalty_record(gateway)
    market = await gateway.add_source("marketplace")
    filed = event("objection.filed", objection_id="O-3", subject=WHO, record_id=record_id)
    assert (await gateway.post(market, filed, webhook_id="m_file")).status == 202
    ruling = event("objection.decided", objection_id="O-3", subject=WHO, outcome="upheld")
    assert (await gateway.post(market, ruling, webhook_id="m_rule")).status == 403


async def test_subjects_show_lists_objections_and_repairs_with_deadlines(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record_id = await _penalty_record(gateway)
    regulator = await gateway.add_source("regulator")
    bodies: list[dict[str, Any]] = [
        event("objection.filed", objection_id="O-4", subject=WHO, record_id=record_id, filed_at=_at(10)),
        event("objection.filed", objection_id="O-5", subject=WHO, record_id="rec_" + "9" * 24, filed_at=_at(9)),
        event("repair.applied", repair_id="R-1", subject=WHO, record_id=record_id, applied_at=_at(5)),
    ]
    await gateway.post_and_project(bodies, "show", source=regulator)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()
    url = gateway.settings.database_url
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "subjects", "show", "uscc", WHO["id"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    states = {o["objection_id"]: (o["state"], o["reason"]) for o in shown["objections"]}
    assert states == {"O-4": ("open", None), "O-5": ("invalid", "no such record in the subject's file")}
    (open_objection,) = [o for o in shown["objections"] if o["objection_id"] == "O-4"]
    filed_day = datetime.fromisoformat(open_objection["filed_at"]).astimezone(CHINA_STANDARD_TIME).date()
    assert open_objection["reply_due"] == (filed_day + timedelta(days=30)).isoformat()
    (repair,) = shown["repairs"]
    assert repair["state"] == "refused" and repair["reason"].startswith("too early: possible from ")
    assert [r["disputed"] for r in shown["records"]] == [True]
