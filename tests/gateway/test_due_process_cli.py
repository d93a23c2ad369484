"""The operator's ``objections`` and ``repairs`` commands, on SQLite and PostgreSQL: they write ordinary events
under the operator source that ``migrate`` creates, the projector applies them, and list/show/decide read the
subjects' files through the projector's index of case ids."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from tests.factories import event, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway
from tests.gateway.test_screenings import screen
from xinyong_gateway.cli import main as cli_main

RUN_PROJECTOR = False
"""The gateway without its built-in projector: these tests drive projection themselves."""

WHO = {"id_type": "uscc", "id": make_uscc(random.Random(1802)), "name": "异议网店"}


@pytest.fixture
def cli(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    url = gateway.settings.database_url

    async def run(*argv: str) -> tuple[int, Any, str]:
        capsys.readouterr()
        status = await asyncio.to_thread(cli_main, ["--db", url, "--json", *argv])
        captured = capsys.readouterr()
        return status, json.loads(captured.out) if captured.out.strip() else None, captured.err

    return run


async def _record(gateway: Gateway, cli: Any) -> str:
    assert (await cli("migrate"))[0] == 0  # creates the operator source
    regulator = await gateway.add_source("regulator")
    body = event("penalty.imposed", subject=WHO, decision_no="连市监罚〔2026〕99号", severity="serious")
    await gateway.post_and_project([body], "penalty", source=regulator)
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    record_id: str = result["reasons"][0]["record_id"]
    return record_id


async def test_file_list_decide_through_the_command_line(gateway: Gateway, cli: Any) -> None:
    record_id = await _record(gateway, cli)
    status, filed, _ = await cli(
        "objections",
        "file",
        "uscc",
        WHO["id"],
        "--record",
        record_id,
        "--grounds",
        "处罚已撤销",
        "--objection-id",
        "O-9",
    )
    assert status == 0 and filed["objection_id"] == "O-9"
    await gateway.project()
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert (result["list"], result["disputed"]) == ("black", True)
    status, listed, _ = await cli("objections", "list", "--open")
    assert status == 0 and [(o["objection_id"], o["state"], o["record_id"]) for o in listed] == [
        ("O-9", "open", record_id)
    ]
    assert listed[0]["reply_due"] and listed[0]["subject"] == f"uscc {WHO['id']}"
    status, _, _ = await cli("objections", "decide", "O-9", "--outcome", "upheld", "--note", "经核查属实，予以更正")
    assert status == 0
    await gateway.project()
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert (result["list"], result["disputed"]) == ("none", False)
    status, shown, _ = await cli("objections", "show", "O-9")
    assert status == 0 and (shown["state"], shown["publish_due"] is not None) == ("upheld", True)
    assert (await cli("objections", "list", "--open"))[1] == []
    status, entries, _ = await cli("audit", "list")
    actions = {entry["action"]: entry for entry in entries}
    assert {"objections.file", "objections.decide"} <= set(actions)
    assert actions["objections.decide"]["target"].startswith("O-9 (uscc ")
    assert actions["objections.decide"]["details"]["outcome"] == "upheld"
    assert (await cli("audit", "verify"))[0] == 0
    assert "src_operator" not in {source["source_id"] for source in (await cli("sources", "list"))[1]}
    assert "src_operator" in {source["source_id"] for source in (await cli("sources", "list", "--all"))[1]}


async def test_a_ruling_on_an_unknown_objection_is_refused_in_one_sentence(gateway: Gateway, cli: Any) -> None:
    await _record(gateway, cli)
    status, out, err = await cli("objections", "decide", "NOPE", "--outcome", "rejected", "--note", "无")
    assert status == 2 and out is None
    assert "No objection NOPE is known" in err and "Traceback" not in err


async def test_a_repair_applied_too_early_is_listed_as_refused_with_the_date(gateway: Gateway, cli: Any) -> None:
    record_id = await _record(gateway, cli)
    status, applied, _ = await cli("repairs", "apply", "uscc", WHO["id"], "--record", record_id, "--grounds", "已整改")
    assert status == 0
    await gateway.project()
    status, listed, _ = await cli("repairs", "list")
    assert status == 0 and [r["repair_id"] for r in listed] == [applied["repair_id"]]
    assert listed[0]["state"] == "refused" and listed[0]["reason"].startswith("too early: possible from ")
    status, _, err = await cli("repairs", "decide", applied["repair_id"], "--outcome", "granted", "--note", "准予")
    assert status == 2 and "is refused (too early: possible from" in err and "would change nothing" in err
    await gateway.project()
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    assert result["list"] == "black"  # the record stands
