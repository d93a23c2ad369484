"""Intermediaries through a real gateway, on SQLite and PostgreSQL (涉审中介机构): an agency declares about itself
only (403 ``subject-not-own`` otherwise, over HTTP and in bulk import), screening answers with the kind and the
tier, the SDK's ``check_selection`` allows a well-evaluated agency and denies it after its practitioner's false
report, a practitioner moves between agencies, ``subjects show`` shows the file, and a replay reproduces it all."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, assert_problem
from tests.gateway.test_screenings import screen
from xinyong import Client, SyncClient, problems
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.credit.report import report_lines

POLICY = default_policy()
RUN_PROJECTOR = False
"""These tests project the inbox themselves."""

FIRM = {"id_type": "uscc", "id": make_uscc(random.Random(2201)), "name": "海州工程咨询有限公司"}
OTHER_FIRM = {"id_type": "uscc", "id": make_uscc(random.Random(2202)), "name": "连云检测技术有限公司"}
ALICE = {"id_type": "ric", "id": make_ric(random.Random(2203)), "name": "王小明"}


def _at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


def _declaration(firm: dict[str, Any] = FIRM, *, valid_until: str = "2030-12-31", minutes_ago: float = 60) -> Any:
    return event(
        "intermediary.declared",
        agency=firm,
        practitioners=[{"person": ALICE, "certificate_no": "ZJ-0001"}],
        qualifications=[{"name": "工程咨询甲级资信", "certificate_no": "ZX-001", "valid_until": valid_until}],
        declared_at=_at(minutes_ago),
    )


async def _inbox_size(gateway: Gateway) -> int:
    return len(await gateway.store.read_inbox(0, 1000))


async def test_an_agency_declares_about_itself_only(gateway: Gateway) -> None:
    agency = await gateway.add_source("intermediary", uscc=FIRM["id"])
    assert (await gateway.post(agency, _declaration(), webhook_id="own")).status == 202
    for n, body in enumerate(
        [
            _declaration(OTHER_FIRM),
            event("intermediary.practitioner_joined", agency=OTHER_FIRM, practitioner=ALICE, certificate_no="ZJ-1"),
            event("objection.filed", subject=OTHER_FIRM, record_id="rec_" + "0" * 24),
            event("repair.applied", subject=ALICE, record_id="rec_" + "0" * 24),
        ]
    ):
        response = await gateway.post(agency, body, webhook_id=f"other_{n}")
        problem = await assert_problem(response, 403, problems.SUBJECT_NOT_OWN)
        assert OTHER_FIRM["id"] not in problem["detail"] and ALICE["id"] not in problem["detail"]
    regulator = await gateway.add_source("regulator")
    refused = await gateway.post(regulator, _declaration(), webhook_id="regulator_declares")
    await assert_problem(refused, 403, problems.EVENT_NOT_ALLOWED)  # a declaration is the agency's own
    assert await _inbox_size(gateway) == 1  # nothing refused was stored


async def test_an_intermediary_source_without_its_own_code_can_post_nothing_about_anyone(gateway: Gateway) -> None:
    agency = await gateway.add_source("intermediary")  # the store allows it; `sources add` refuses it (below)
    await assert_problem(await gateway.post(agency, _declaration()), 403, problems.SUBJECT_NOT_OWN)


async def _seed(gateway: Gateway) -> None:
    agency = await gateway.add_source("intermediary", uscc=FIRM["id"])
    regulator = await gateway.add_source("regulator")
    await gateway.post_and_project([_declaration()], "declare", source=agency)
    evaluation = event("intermediary.evaluated", subject=FIRM, grade="A", period="2026", evaluated_at=_at(30))
    await gateway.post_and_project([evaluation], "evaluate", source=regulator)


async def test_selection_allows_a_well_evaluated_agency_and_denies_it_after_a_false_report(gateway: Gateway) -> None:
    await _seed(gateway)
    key = await gateway.add_api_key(["screen"])
    async with Client(gateway.base_url, key.api_key) as client:
        before = await client.check_selection(FIRM)
        assert (before.decision, before.reasons) == ("allow", ())
        assert before.measures == ("green_channel", "procurement_preference")
        assert before.status.intermediary is not None and before.status.intermediary.practitioners == 1

        regulator = await gateway.add_source("regulator")
        violation = event("intermediary.violation", agency=FIRM, practitioners=[ALICE], kind="false_report",
                          severity="serious", confirmed=True, found_at=_at(5))  # fmt: skip
        await gateway.post_and_project([violation], "violation", source=regulator)

        after = await client.check_selection(FIRM)
        assert after.decision == "deny"
        assert after.reasons == ("BLACK_LIST", "ACCESS_RESTRICTION", "SPOT_CHECK_INCREASE")
        standing = after.status.intermediary
        assert standing is not None and standing.tier is not None
        assert (standing.tier.grade, standing.tier.evaluation, standing.tier.lowered_by) == ("D", "A", "black")
        person = await client.screen_one(ALICE)
        assert person.list == "black" and person.subject.id != ALICE["id"]  # masked
        assert person.intermediary is not None and person.intermediary.tier is not None
        assert (person.intermediary.kind, person.intermediary.tier.measures) == ("practitioner", ["practice_ban"])
        assert (await client.check_selection(ALICE)).decision == "deny"  # a practitioner is no agency to choose
    feed = [json.loads(change.snapshot) for change in await gateway.store.read_changes(0, 100)]
    tiers = [
        (c["subject"]["id"], c["intermediary"]["tier"]["grade"]) for c in feed if c.get("intermediary", {}).get("tier")
    ]
    assert (FIRM["id"], "A") in tiers and (FIRM["id"], "D") in tiers  # the feed followed the tier


async def test_the_sync_client_checks_a_selection_too(gateway: Gateway) -> None:
    await _seed(gateway)
    key = await gateway.add_api_key(["screen"])

    def approval_department() -> tuple[str, tuple[str, ...]]:
        with SyncClient(gateway.base_url, key.api_key) as client:
            choice = client.check_selection(FIRM)
        return choice.decision, choice.measures

    assert await asyncio.to_thread(approval_department) == ("allow", ("green_channel", "procurement_preference"))


async def test_an_expired_qualification_sends_the_selection_to_review(gateway: Gateway) -> None:
    agency = await gateway.add_source("intermediary", uscc=FIRM["id"])
    yesterday = (date.today() - timedelta(days=2)).isoformat()
    await gateway.post_and_project([_declaration(valid_until=yesterday)], "expired", source=agency)
    key = await gateway.add_api_key(["screen"])
    async with Client(gateway.base_url, key.api_key) as client:
        choice = await client.check_selection(FIRM)
    assert choice.decision == "review"
    assert choice.reasons == ("QUALIFICATION_EXPIRED", "NOT_EVALUATED")


async def test_a_practitioner_moving_between_agencies_and_the_files_on_show(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _seed(gateway)
    regulator = await gateway.add_source("regulator")
    moves = [
        event(
            "intermediary.practitioner_left", agency=FIRM, practitioner=ALICE, certificate_no="ZJ-0001", left_at=_at(10)
        ),
        event(
            "intermediary.practitioner_joined",
            agency=OTHER_FIRM,
            practitioner=ALICE,
            certificate_no="ZJ-0001",
            joined_at=_at(9),
        ),
    ]
    await gateway.post_and_project(moves, "move", source=regulator)
    firm, other, person = await screen(gateway, [FIRM, OTHER_FIRM, ALICE])
    assert (firm["intermediary"]["practitioners"], other["intermediary"]["practitioners"]) == (0, 1)
    assert (person["intermediary"]["kind"], person["intermediary"]["agencies"]) == ("practitioner", 1)

    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()
    url = gateway.settings.database_url
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "subjects", "show", "ric", ALICE["id"]]) == 0
    shown = json.loads(capsys.readouterr().out)["intermediary"]
    assert [(a["uscc"], a["certificate_no"]) for a in shown["agencies"]] == [(OTHER_FIRM["id"], "ZJ-0001")]
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "subjects", "show", "uscc", FIRM["id"]]) == 0
    text = "\n".join(report_lines(json.loads(capsys.readouterr().out)))  # as a person reads it
    assert "intermediary (intermediary): tier A" in text and "qualification 工程咨询甲级资信 ZX-001" in text
    assert ALICE["id"] not in text

    keys = [gateway.master_key.subject_key(s["id_type"], s["id"]) for s in (FIRM, OTHER_FIRM, ALICE)]
    before = {k: row.state for k, row in (await gateway.store.load_subjects(keys)).items()}
    await Projector(gateway.store, gateway.master_key, POLICY).reproject(POLICY, None)
    after = {k: row.state for k, row in (await gateway.store.load_subjects(keys)).items()}
    assert after == before and len(after) == 3  # a replay gives the same files


async def test_sources_add_wants_an_intermediarys_own_code_and_import_keeps_it_to_itself(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    url = gateway.settings.database_url
    capsys.readouterr()
    add = ["--db", url, "--json", "sources", "add", "--kind", "intermediary", "--name", "海州工程咨询"]
    assert await asyncio.to_thread(cli_main, add) != 0
    assert "--uscc" in capsys.readouterr().err
    assert await asyncio.to_thread(cli_main, [*add, "--uscc", FIRM["id"]]) == 0
    source = json.loads(capsys.readouterr().out)
    assert (source["kind"], source["uscc"]) == ("intermediary", FIRM["id"])

    lines = [_declaration(), _declaration(OTHER_FIRM)]
    path = tmp_path / "declarations.ndjson"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    code = await asyncio.to_thread(
        cli_main, ["--db", url, "--json", "import", str(path), "--source", source["source_id"]]
    )
    capsys.readouterr()
    assert code != 0  # a line was rejected
    rejected = await asyncio.to_thread(Path(f"{path}.import-rejected.ndjson").read_text, encoding="utf-8")
    rejects = [json.loads(line) for line in rejected.splitlines()]
    assert [(r["line"], r["problem"]) for r in rejects] == [(2, problems.SUBJECT_NOT_OWN)]
    assert await _inbox_size(gateway) == 1
