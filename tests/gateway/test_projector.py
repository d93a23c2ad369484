"""The projector on a real store: exactly once across restarts, one file per subject, feed, time, privacy."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway, at_rest_holding, eventually
from xinyong.events import EVENT_TYPES
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.credit.engine import LoggedEvent, project
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.errors import ProjectionConflictError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import (
    ALL_PARTITIONS,
    PartitionAdvance,
    PartitionClaims,
    PartitionState,
    ProjectionCommit,
    partition_of,
)

POLICY = default_policy()


RUN_PROJECTOR = False
"""The gateway without its built-in projector: these tests drive projection themselves."""


def merchant(n: int) -> dict[str, Any]:
    import random

    return {"id_type": "uscc", "id": make_uscc(random.Random(n)), "name": f"商户{n}"}


async def _post_mix(gateway: Gateway) -> None:
    market = await gateway.add_source("marketplace")
    regulator = await gateway.add_source("regulator")
    courier = await gateway.add_source("courier")
    bodies = [
        (market, event("listing.violation", merchant=merchant(1), case_id="L1", kind="counterfeit", confirmed=True)),
        (market, event("review.manipulation_detected", merchant=merchant(2), case_id="M1", confirmed=True)),
        (market, event("listing.violation", merchant=merchant(1), case_id="L1", kind="counterfeit", confirmed=False)),
        (regulator, event("penalty.imposed", subject=merchant(2), decision_no="P1", severity="general")),
        (market, event("merchant.registered", merchant=merchant(3))),
        (market, event("commitment.published", merchant=merchant(3))),
    ]
    for i in range(4):
        bodies.append(
            (courier, event("delivery.recorded", merchant=merchant(4), waybill_no=f"W{i}", status="empty_parcel"))
        )
    for n, (source, body) in enumerate(bodies):
        response = await gateway.post(source, body, webhook_id=f"msg_{n}")
        assert response.status == 202, await response.text()


async def _replay(gateway: Gateway) -> dict[str, str]:
    """A clean, single-pass replay of the inbox with the pure engine."""
    master = gateway.master_key
    logged = []
    for row in await gateway.store.read_inbox(0, 10_000):
        body = master.open_body(row.source_id, row.webhook_id, row.sealed_body)
        parsed = EVENT_TYPES[row.event_type].model_validate_json(body)
        logged.append(LoggedEvent(row.seq, row.source_id, row.webhook_id, parsed))
    files = project(logged, POLICY, lambda s: master.subject_key(s.id_type, s.id))
    return {key: credit_file.to_json() for key, credit_file in files.items()}


async def _stored_states(gateway: Gateway) -> dict[str, str]:
    replay_keys = list(await _replay(gateway))
    rows = await gateway.store.load_subjects(replay_keys)
    return {key: row.state for key, row in rows.items()}


async def test_projector_applies_every_event_once_also_across_restarts(gateway: Gateway) -> None:
    await _post_mix(gateway)
    first = Projector(gateway.store, gateway.master_key, POLICY, batch_size=3)
    assert await first.step() == 3
    assert await first.step() == 3
    restarted = Projector(gateway.store, gateway.master_key, POLICY, batch_size=3)  # as after a crash
    assert await restarted.catch_up() == 4
    assert await restarted.catch_up() == 0
    assert await gateway.store.projector_position() == (await gateway.store.read_inbox(0, 100))[-1].seq
    assert await _stored_states(gateway) == await _replay(gateway)


async def test_a_commit_from_a_stale_position_writes_nothing(gateway: Gateway) -> None:
    await _post_mix(gateway)
    await Projector(gateway.store, gateway.master_key, POLICY).catch_up()
    states = await gateway.store.partition_states()
    stale = ProjectionCommit(
        partitions=(PartitionAdvance(0, PartitionState(), 1),), subjects=(), changes=(), recorded_at=0
    )
    with pytest.raises(ProjectionConflictError):
        await gateway.store.commit_projection(stale)
    assert await gateway.store.partition_states() == states


class FixedClaims(PartitionClaims):
    """A projector's claim on a fixed set of partitions (what the PostgreSQL claims hand out, held still)."""

    def __init__(self, mask: int) -> None:
        self.mask = mask

    async def acquire(self) -> int:
        return self.mask

    async def release(self) -> None:
        self.mask = 0


EVEN = sum(1 << p for p in range(0, 16, 2))


async def test_projectors_on_disjoint_partitions_share_the_work_and_equal_a_single_replay(gateway: Gateway) -> None:
    await _post_mix(gateway)
    keys = [gateway.master_key.subject_key("uscc", merchant(n)["id"]) for n in (1, 2, 3, 4)]
    assert {partition_of(key) % 2 for key in keys} == {0, 1}, "the mix must span both halves"
    even = Projector(gateway.store, gateway.master_key, POLICY, claims=FixedClaims(EVEN), batch_size=2)
    odd = Projector(gateway.store, gateway.master_key, POLICY, claims=FixedClaims(ALL_PARTITIONS ^ EVEN), batch_size=3)
    while await even.step() + await odd.step():  # interleaved, as two processes would
        pass
    assert await _stored_states(gateway) == await _replay(gateway)
    last = (await gateway.store.read_inbox(0, 100))[-1].seq
    assert {state.position for state in (await gateway.store.partition_states()).values()} == {last}
    changes = await gateway.store.read_changes(0, 1000)
    firsts = [c.subject_key for c in changes if json.loads(c.snapshot)["list"] == "black"]
    assert len(firsts) == len(set(firsts)), "no event applied twice"


async def test_a_projector_holding_no_partition_does_nothing(gateway: Gateway) -> None:
    await _post_mix(gateway)
    idle = Projector(gateway.store, gateway.master_key, POLICY, claims=FixedClaims(0))
    assert (await idle.step(), await idle.sweep()) == (0, 0)
    assert await gateway.store.projector_position() == 0


async def test_ingest_stores_the_partition_of_each_subject_and_projectors_skip_other_rows_unopened(
    gateway: Gateway,
) -> None:
    market = await gateway.add_source("marketplace")
    who = merchant(11)
    await gateway.post(market, event("merchant.registered", merchant=who), webhook_id="r1")
    partition = partition_of(gateway.master_key.subject_key("uscc", who["id"]))
    (row,) = await gateway.store.read_inbox()
    assert row.partitions == 1 << partition
    (elsewhere,) = await gateway.store.read_inbox(partitions=ALL_PARTITIONS ^ (1 << partition))
    assert (elsewhere.seq, elsewhere.sealed_body) == (row.seq, None)


async def test_one_credit_file_per_subject_whoever_reports_it(gateway: Gateway) -> None:
    market = await gateway.add_source("marketplace")
    regulator = await gateway.add_source("regulator")
    same = merchant(7)
    await gateway.post(market, event("complaint.resolved", merchant=same, outcome="upheld"), webhook_id="a")
    await gateway.post(regulator, event("penalty.imposed", subject=same, severity="minor"), webhook_id="b")
    await Projector(gateway.store, gateway.master_key, POLICY).catch_up()
    key = gateway.master_key.subject_key("uscc", same["id"])
    (row,) = (await gateway.store.load_subjects([key])).values()
    status = json.loads(row.status)
    assert (status["list"], status["score"]) == ("none", 90)
    assert sorted(r["code"] for r in status["reasons"]) == ["COMPLAINT_UPHELD", "PENALTY_MINOR"]


async def test_every_change_of_list_grade_or_measures_is_in_the_feed_in_order(gateway: Gateway) -> None:
    await _post_mix(gateway)
    projector = Projector(gateway.store, gateway.master_key, POLICY, batch_size=1)
    await projector.catch_up()
    changes = await gateway.store.read_changes(0, 1000)
    assert [c.change_id for c in changes] == sorted(c.change_id for c in changes)
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_subject.setdefault(change.subject_key, []).append(json.loads(change.snapshot))
    counterfeit = by_subject[gateway.master_key.subject_key("uscc", merchant(1)["id"])]
    assert [(s["list"], s["grade"]) for s in counterfeit] == [("black", "D"), ("none", "A")]
    assert counterfeit[0]["measures"] == list(POLICY.measures.black)
    assert counterfeit[0]["reasons"][0]["source_events"]
    parcels = by_subject[gateway.master_key.subject_key("uscc", merchant(4)["id"])]
    assert [s["list"] for s in parcels] == ["none", "watch"]
    page = await gateway.store.read_changes(changes[1].change_id, 2)
    assert [c.change_id for c in page] == [c.change_id for c in changes[2:4]]


async def _decisions(gateway: Gateway, who: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(list, grade, measures) of each feed entry about ``who``, in order."""
    history = await gateway.store.subject_changes(gateway.master_key.subject_key("uscc", who["id"]))
    return [(s["list"], s["grade"], s["measures"]) for s in (json.loads(c.snapshot) for c in history)]


async def test_a_change_of_grade_alone_is_in_the_feed_and_of_score_alone_is_not(gateway: Gateway) -> None:
    """Minor penalties lower the score without listing: 95 (A), 90 (still A: no entry), 85 (B: an entry). When
    they end, time alone brings the grade back to A: the sweep writes that entry too."""
    regulator = await gateway.add_source("regulator")
    who = merchant(41)
    now = time.time()
    projector = Projector(gateway.store, gateway.master_key, POLICY, clock=lambda: now)
    for n in range(3):
        body = event("penalty.imposed", subject=who, decision_no=f"连市监罚〔2026〕{n}号", severity="minor")
        assert (await gateway.post(regulator, body, webhook_id=f"msg_minor_{n}")).status == 202
        await projector.catch_up()
    assert await _decisions(gateway, who) == [("none", "A", []), ("none", "B", [])]
    later = Projector(gateway.store, gateway.master_key, POLICY, clock=lambda: now + 100 * 86400)
    assert await later.sweep() == 1
    assert await _decisions(gateway, who) == [("none", "A", []), ("none", "B", []), ("none", "A", [])]


async def test_time_alone_ends_a_record_and_the_feed_says_exactly_when(gateway: Gateway) -> None:
    regulator = await gateway.add_source("regulator")
    who = merchant(9)
    body = event("penalty.imposed", subject=who, severity="general")
    await gateway.post(regulator, body, webhook_id="pen")
    now = time.time()
    await Projector(gateway.store, gateway.master_key, POLICY, clock=lambda: now).catch_up()
    later = Projector(gateway.store, gateway.master_key, POLICY, clock=lambda: now + 400 * 86400)
    assert await later.sweep() == 1
    key = gateway.master_key.subject_key("uscc", who["id"])
    history = await gateway.store.subject_changes(key)
    assert [json.loads(c.snapshot)["list"] for c in history] == ["watch", "none"]
    decided = datetime.fromisoformat(body["data"]["decided_at"])
    assert history[-1].effective_at == int((decided + timedelta(days=365)).timestamp() * 1_000_000)
    assert await later.sweep() == 0


async def test_resident_ids_stay_out_of_the_database_and_the_log_after_projection(
    gateway_log: io.StringIO, gateway: Gateway
) -> None:
    """The stored database (SQLite: its files; PostgreSQL: every row of every table) and the gateway's log, after
    ingest and projection (run as in `serve`)."""
    market = await gateway.add_source("marketplace")
    ric = make_ric()
    person = {"id_type": "ric", "id": ric, "name": "王小明"}
    await gateway.post(market, event("complaint.resolved", merchant=person, outcome="upheld"), webhook_id="p")
    running = asyncio.create_task(Projector(gateway.store, gateway.master_key, POLICY).run(idle_interval=0.05))
    key = gateway.master_key.subject_key("ric", ric)

    async def projected() -> bool:
        return key in await gateway.store.load_subjects([key])

    try:
        await eventually(projected)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    (row,) = (await gateway.store.load_subjects([key])).values()
    assert (row.display_id, row.display_name) == (f"{ric[:6]}********{ric[-4:]}", "王**")
    assert ric not in row.status and "王小明" not in row.status
    url = gateway.settings.database_url
    assert await at_rest_holding(url, [b"complaint.resolved"]) != [], "control: the scan sees the inbox row"
    assert await at_rest_holding(url, [ric.encode(), "王小明".encode()]) == []
    log = gateway_log.getvalue()
    assert "projector.started" in log and '"status":202' in log.replace(" ", "")
    assert ric not in log and "王小明" not in log


async def test_subjects_show_masks_unless_revealed(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    market = await gateway.add_source("marketplace")
    ric = make_ric()
    await gateway.post(
        market, event("complaint.resolved", merchant={"id_type": "ric", "id": ric, "name": "王小明"}, outcome="upheld")
    )
    await Projector(gateway.store, gateway.master_key, POLICY).catch_up()
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()  # what the gateway logged so far is not the command's output
    url = gateway.settings.database_url
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "subjects", "show", "ric", ric.lower()]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["subject"]["id"] == f"{ric[:6]}********{ric[-4:]}"
    assert shown["status"]["reasons"][0]["code"] == "COMPLAINT_UPHELD"
    assert shown["records"][0]["state"] == "active"
    assert len(shown["history"]) == 1
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "subjects", "show", "ric", ric, "--reveal"]) == 0
    revealed = json.loads(capsys.readouterr().out)
    assert (revealed["subject"]["id"], revealed["subject"]["name"]) == (ric, "王小明")
    assert await asyncio.to_thread(cli_main, ["--db", url, "subjects", "show", "uscc", make_uscc()]) == 2
    assert "No credit file for this subject" in capsys.readouterr().err


async def test_project_once_catches_up_from_the_command_line(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _post_mix(gateway)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()  # what the gateway logged so far is not the command's output
    assert (
        await asyncio.to_thread(cli_main, ["--db", gateway.settings.database_url, "--json", "project", "--once"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["applied"] == 10
    assert result["policy_version"] == POLICY.version
    assert await _stored_states(gateway) == await _replay(gateway)


async def test_serve_runs_the_projector_by_default(aiohttp_client: Any, database_url: str, tmp_path: Path) -> None:
    from xinyong_gateway.store import open_store
    from xinyong_gateway.web.app import create_app

    settings = GatewaySettings(database_url=database_url, master_key=TEST_MASTER_KEY, source_refresh_interval=0.2)
    async with open_store(settings.database_url, create=True) as store:
        await store.migrate()
    gateway = Gateway(await aiohttp_client(create_app(settings)), settings, tmp_path)
    market = await gateway.add_source("marketplace")
    who = merchant(11)
    await gateway.post(market, event("listing.violation", merchant=who, kind="counterfeit", confirmed=True))
    key = gateway.master_key.subject_key("uscc", who["id"])

    async def listed() -> bool:
        rows = await gateway.store.load_subjects([key])
        return key in rows and json.loads(rows[key].status)["list"] == "black"

    await eventually(listed, within=10.0)


async def test_archived_records_are_kept_and_shown(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    market = await gateway.add_source("marketplace")
    who = merchant(13)
    old = (datetime.now(UTC) - timedelta(days=600)).isoformat()
    await gateway.post(
        market, event("complaint.resolved", merchant=who, outcome="upheld", resolved_at=old), webhook_id="o"
    )
    await gateway.post(market, event("complaint.resolved", merchant=who, outcome="upheld"), webhook_id="n")
    await Projector(gateway.store, gateway.master_key, POLICY).catch_up()
    key = gateway.master_key.subject_key("uscc", who["id"])
    assert len(await gateway.store.archived_records(key)) == 1
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()
    url = gateway.settings.database_url
    assert await asyncio.to_thread(cli_main, ["--db", url, "--json", "subjects", "show", "uscc", who["id"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [record["state"] for record in shown["records"]] == ["expired", "active"]
