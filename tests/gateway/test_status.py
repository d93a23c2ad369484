"""``xinyong-gateway status`` on SQLite and PostgreSQL: one screen on a terminal, JSON when piped; the figures are
those of the database (sources, last events, projector lag, lists, objections and their deadlines this week)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import event, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway
from tests.gateway.test_screenings import screen
from xinyong_gateway import __version__
from xinyong_gateway.cli import main

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

WHO = {"id_type": "uscc", "id": make_uscc(random.Random(2331)), "name": "状态网店"}


def _days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def status(gateway: Gateway, capsys: pytest.CaptureFixture[str], *options: str) -> str:
    """``status`` run as the command line runs it (in a thread: it runs its own event loop)."""
    capsys.readouterr()  # what came before (the test gateway's log lines) is not the command's output
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
        assert await asyncio.to_thread(main, ["--db", gateway.settings.database_url, "status", *options]) == 0
    return capsys.readouterr().out


async def _populate(gateway: Gateway) -> None:
    """A black-listed merchant with two open objections: one whose reply is late, one due within the week."""
    regulator = await gateway.add_source("regulator")
    penalty = event("penalty.imposed", subject=WHO, decision_no="连市监罚〔2026〕99号", severity="serious")
    penalty["data"]["decided_at"] = _days_ago(60)
    await gateway.post_and_project([penalty], "penalty", source=regulator)
    (result,) = await screen(gateway, [{"id_type": "uscc", "id": WHO["id"]}])
    record_id = result["reasons"][0]["record_id"]
    filings = [
        event("objection.filed", objection_id=case_id, subject=WHO, record_id=record_id, filed_at=_days_ago(days))
        for case_id, days in (("O-late", 40), ("O-soon", 27))
    ]
    await gateway.post_and_project(filings, "filings", source=regulator)


async def test_status_as_json_shows_the_database_state(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    await _populate(gateway)
    await gateway.add_source("marketplace")
    shown: dict[str, Any] = json.loads(await status(gateway, capsys, "--json"))

    assert shown["version"] == __version__
    assert shown["migrations"]["pending"] == [] and shown["migrations"]["applied"] == shown["migrations"]["latest"]
    assert shown["sources_active"]["marketplace"] == 1 and shown["sources_active"]["regulator"] >= 1
    assert shown["last_event"]["regulator"] is not None and shown["last_event"]["courier"] is None
    assert shown["projector"]["lag_events"] == 0 and shown["projector"]["inbox_head"] >= 3
    assert shown["dispatcher"] == {"subscriptions_active": 0, "subscriptions_disabled": 0, "pending": 0, "failed": 0}
    assert shown["lists"]["black"] == 1 and set(shown["lists"]) == {"black", "watch", "red", "none"}
    assert (shown["open_cases"]["objection"], shown["overdue_objections"]) == (2, 1)
    due = shown["deadlines_this_week"]
    assert [(case["objection_id"], case["overdue"]) for case in due] == [("O-late", True), ("O-soon", False)]
    assert WHO["id"] in due[0]["subject"]  # a USCC is shown in full; a resident id would be masked

    marketplace = await gateway.add_source("marketplace")
    other = event("listing.violation", merchant={"id_type": "uscc", "id": WHO["id"]}, confirmed=True)
    assert (await gateway.post(marketplace, other, webhook_id="msg_status_unprojected")).status == 202
    behind = json.loads(await status(gateway, capsys, "--json"))["projector"]
    assert behind["lag_events"] >= 1 and behind["partitions_behind"] >= 1 and behind["lag_seconds"] >= 0


async def test_status_on_a_terminal_is_one_screen(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _populate(gateway)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    screen_text = await status(gateway, capsys)
    lines = screen_text.splitlines()
    assert lines[0] == f"xinyong-gateway {__version__}"
    assert len(lines) <= 24
    assert "projector   caught up" in screen_text
    assert "dispatcher  no subscriptions" in screen_text
    assert "black 1" in screen_text
    assert "2 open objections, 1 overdue" in screen_text
    assert "deadlines this week (2):" in screen_text
    late = next(line for line in lines if "O-late" in line)
    assert "OVERDUE" in late and "reply" in late
    assert not screen_text.lstrip().startswith("{")
