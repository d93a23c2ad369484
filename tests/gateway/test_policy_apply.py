"""`policy apply`: adopt a policy by replaying the whole log, in one transaction, with its version on record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.factories import event, make_uscc
from tests.gateway.conftest import DEFAULT_POLICY_TEXT, TEST_MASTER_KEY, Gateway
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.credit.policy import default_policy, parse_policy
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.store import PolicyText

RUN_PROJECTOR = False
"""These tests decide when projection happens."""


def _stricter(tmp_path: Path, version: str = "lyg-2026.3") -> Path:
    """Two empty parcels in 90 days already put a merchant on watch."""
    text = DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', f'version = "{version}"')
    text = text.replace(
        'where = { status = "empty_parcel" }\ncount = 3', 'where = { status = "empty_parcel" }\ncount = 2'
    )
    path = tmp_path / f"{version}.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _setup(gateway: Gateway) -> dict[str, str]:
    courier = await gateway.add_source("courier")
    merchant = {"id_type": "uscc", "id": make_uscc(), "name": "空包商行"}
    for i in range(2):
        body = event("delivery.recorded", merchant=merchant, waybill_no=f"W{i}", status="empty_parcel")
        assert (await gateway.post(courier, body, webhook_id=f"w{i}")).status == 202
    await Projector(gateway.store, gateway.master_key, default_policy()).catch_up()
    return merchant


async def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = await asyncio.to_thread(cli_main, list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def _status(gateway: Gateway, merchant: dict[str, str]) -> dict[str, Any]:
    key = gateway.master_key.subject_key("uscc", merchant["id"])
    return json.loads((await gateway.store.load_subjects([key]))[key].status)


async def test_apply_replays_the_log_and_every_change_carries_the_new_version(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    merchant = await _setup(gateway)
    assert (await _status(gateway, merchant))["list"] == "none"
    feed_before = len(await gateway.store.read_changes(0, 1000))
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    url = gateway.settings.database_url
    status, out, _ = await _cli(capsys, "--db", url, "--json", "policy", "apply", str(_stricter(tmp_path)))
    assert status == 0
    result = json.loads(out)
    assert (result["version"], result["previous_version"], result["events"]) == ("lyg-2026.3", None, 2)
    assert result["subjects_changed"] == 1
    assert [(h["version"], h["active"]) for h in result["history"]] == [("lyg-2026.3", True)]
    now = await _status(gateway, merchant)
    assert (now["list"], now["policy_version"]) == ("watch", "lyg-2026.3")
    changes = (await gateway.store.read_changes(0, 1000))[feed_before:]
    assert [json.loads(c.snapshot)["policy_version"] for c in changes] == ["lyg-2026.3"]
    assert await gateway.store.active_policy() == PolicyText(
        "lyg-2026.3", _stricter(tmp_path).read_text(encoding="utf-8")
    )


async def test_applying_the_same_policy_again_changes_nothing(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    merchant = await _setup(gateway)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    url = gateway.settings.database_url
    path = str(_stricter(tmp_path))
    assert (await _cli(capsys, "--db", url, "--json", "policy", "apply", path))[0] == 0
    key = gateway.master_key.subject_key("uscc", merchant["id"])
    state = (await gateway.store.load_subjects([key]))[key].state
    status, out, _ = await _cli(capsys, "--db", url, "--json", "policy", "apply", path)
    assert status == 0
    assert json.loads(out)["subjects_changed"] == 0
    assert (await gateway.store.load_subjects([key]))[key].state == state


async def test_a_version_reused_with_another_text_is_refused_and_nothing_is_written(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    merchant = await _setup(gateway)
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    url = gateway.settings.database_url
    assert (await _cli(capsys, "--db", url, "--json", "policy", "apply", str(_stricter(tmp_path))))[0] == 0
    other = tmp_path / "other.toml"
    other.write_text(DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', 'version = "lyg-2026.3"'), encoding="utf-8")
    before = await _status(gateway, merchant)
    status, _, err = await _cli(capsys, "--db", url, "policy", "apply", str(other))
    assert status == 1
    assert "already on record with another text" in err
    assert await _status(gateway, merchant) == before


async def test_a_running_projector_switches_to_the_adopted_policy(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _setup(gateway)
    projector = Projector(gateway.store, gateway.master_key, default_policy())
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    url = gateway.settings.database_url
    assert (await _cli(capsys, "--db", url, "--json", "policy", "apply", str(_stricter(tmp_path))))[0] == 0
    await projector.step()
    assert projector.policy.version == "lyg-2026.3"


async def test_an_invalid_policy_is_refused_with_its_line(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _setup(gateway)
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_POLICY_TEXT.replace('list = "watch"', 'list = "grey"', 1), encoding="utf-8")
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    status, _, err = await _cli(capsys, "--db", gateway.settings.database_url, "policy", "apply", str(bad))
    assert status == 1
    assert "line" in err and "list" in err
    assert await gateway.store.active_policy() is None


async def test_a_policy_that_changes_only_a_lists_measures_puts_each_subject_on_that_list_in_the_feed(
    gateway: Gateway,
) -> None:
    """Same list and grade, other measures: a change a platform must apply, so a feed entry; a subject on a list whose
    measures stay the same gets none, although its policy version changes."""
    market = await gateway.add_source("marketplace")
    fake = {"id_type": "uscc", "id": make_uscc(), "name": "假货旗舰店"}
    shop = {"id_type": "uscc", "id": make_uscc(), "name": "刷单小店"}
    bodies = [
        event("listing.violation", merchant=fake, kind="counterfeit", confirmed=True),
        event("review.manipulation_detected", merchant=shop, kind="fake_order", order_count=12, confirmed=True),
    ]
    await gateway.post_and_project(bodies, "msg_measures", source=market)
    before = len(await gateway.store.read_changes(0, 1000))
    black = 'black = ["refuse_onboarding", "close_store", "freeze_account", "public_exposure"]'
    assert black in DEFAULT_POLICY_TEXT
    text = DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', 'version = "lyg-2026.3"').replace(
        black, black.replace("]", ', "deposit_forfeit"]')
    )
    policy = parse_policy(text)
    _, changed = await Projector(gateway.store, gateway.master_key, default_policy()).reproject(policy, text)
    entries = [json.loads(c.snapshot) for c in (await gateway.store.read_changes(0, 1000))[before:]]
    assert changed == 1
    assert [(e["subject"]["id"], e["list"], e["grade"], e["measures"]) for e in entries] == [
        (fake["id"], "black", "D", [*default_policy().measures.black, "deposit_forfeit"])
    ]
    assert (await _status(gateway, shop))["policy_version"] == "lyg-2026.3"
