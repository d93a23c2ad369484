"""Policy tooling: every rule explained in one line, `policy check`, and the `policy diff` dry run over the inbox."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import DEFAULT_POLICY_TEXT, TEST_MASTER_KEY, Gateway, database_rows
from xinyong.events import EVENT_TYPES
from xinyong.subjects import Subject
from xinyong_gateway.cli import main as cli_main
from xinyong_gateway.credit.engine import LoggedEvent
from xinyong_gateway.credit.policy import default_policy, parse_policy
from xinyong_gateway.credit.policy_tools import (
    LISTS,
    ReasonKey,
    Replay,
    diff_statuses,
    dry_run,
    explain_policy,
    explain_rule,
)
from xinyong_gateway.credit.projector import Projector

POLICY = default_policy()


def _variant(version: str, *replacements: tuple[str, str]) -> str:
    """The default policy text under another version, with each ``(old, new)`` replaced once."""
    text = DEFAULT_POLICY_TEXT.replace('version = "lyg-2026.4"', f'version = "{version}"', 1)
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# Two empty parcels in 90 days already put a merchant on the watch list.
STRICTER = _variant("strict-1", ('count = 3\nwithin = "90d"', 'count = 2\nwithin = "90d"'))
# A counterfeit listing puts a merchant on the watch list, no longer on the black list.
LENIENT = _variant(
    "lenient-1", ('reason = "LISTING_COUNTERFEIT"\nlist = "black"', 'reason = "LISTING_COUNTERFEIT"\nlist = "watch"')
)


# -- explanations -------------------------------------------------------------------------------------------


def test_every_default_rule_is_one_line_naming_its_id_event_list_days_severity_and_reason() -> None:
    for rule in POLICY.rules:
        line = explain_rule(rule, POLICY)
        assert "\n" not in line
        assert line.startswith(f"{rule.id}: ")
        assert f" {rule.event} " in line
        assert f"about the {rule.subject_field}" in line
        assert f"for {POLICY.publicity.of(rule.severity).days} days" in line
        assert line.endswith(f"({rule.severity}, {rule.reason})")
        if rule.list == "none":
            verb = "lowers" if rule.count == 1 else "lower"  # "3 … within 180 days lower the score"
            assert f"{verb} the score by 5 for 90 days without listing it" in line
        else:
            assert f"on the {rule.list} list" in line
        if rule.within is not None:
            assert f"within {rule.within.days} days" in line


@pytest.mark.parametrize(
    ("rule_id", "sentence"),
    [
        (
            "counterfeit-listing",
            "counterfeit-listing: a confirmed listing.violation of kind counterfeit about the merchant puts it on the"
            " black list for 1095 days (serious, LISTING_COUNTERFEIT)",
        ),
        (
            "empty-parcels-watch",
            "empty-parcels-watch: 3 delivery.recorded with status empty_parcel about the merchant within 90 days put it"
            " on the watch list for 365 days (general, EMPTY_PARCELS)",
        ),
        (
            "courier-loss-rate",
            "courier-loss-rate: lost or damaged at least 2% of at least 200 delivery.recorded about the courier within"
            " 90 days puts it on the watch list for 365 days (general, COURIER_LOSS_RATE)",
        ),
        (
            "mass-fake-orders",
            "mass-fake-orders: a confirmed review.manipulation_detected of kind fake_order with order_count at least"
            " 100 about the merchant puts it on the black list for 1095 days (serious, FAKE_ORDERS_MASS)",
        ),
        (
            "upheld-complaint",
            "upheld-complaint: a complaint.resolved with outcome upheld about the merchant lowers the score by 5 for"
            " 90 days without listing it (minor, COMPLAINT_UPHELD)",
        ),
        (
            "commitment-breached",
            "commitment-breached: a commitment.breached about the merchant puts it on the watch list for 365 days"
            " (general, COMMITMENT_BREACHED)",
        ),
    ],
)
def test_default_rules_read_as_plain_sentences(rule_id: str, sentence: str) -> None:
    rule = next(rule for rule in POLICY.rules if rule.id == rule_id)
    assert explain_rule(rule, POLICY) == sentence


def test_explanations_follow_the_policy_numbers_and_read_false_and_several_values() -> None:
    text = _variant(
        "custom-1",
        (
            'where = { confirmed = true, kind = "counterfeit" }',
            'where = { confirmed = false, kind = ["counterfeit", "price_fraud"] }',
        ),
        ('serious = "1095d"', 'serious = "730d"'),
        ("weights = { minor = 5,", "weights = { minor = 7,"),
    )
    policy = parse_policy(text)
    lines = {rule.id: explain_rule(rule, policy) for rule in policy.rules}
    assert lines["counterfeit-listing"] == (
        "counterfeit-listing: an unconfirmed listing.violation of kind counterfeit or price_fraud about the merchant"
        " puts it on the black list for 730 days (serious, LISTING_COUNTERFEIT)"
    )
    assert "lowers the score by 7 for 90 days" in lines["minor-penalty"]


def test_the_whole_policy_is_explained_one_line_per_part_then_per_rule() -> None:
    lines = explain_policy(POLICY)
    assert len(lines) == 5 + len(POLICY.rules)
    publicity, score, measures, red, retention = lines[:5]
    assert retention.startswith("retention: a raw body keeps the persons it names for 2920 days (the default")
    assert publicity == (
        "publicity: a record is effective for 90 days if minor, 365 days if general, 1095 days if serious"
    )
    assert score.startswith("score: 100 minus 5 per effective minor record, 15 per general and 40 per serious")
    assert "grade A from 90, B from 75, C from 60, D below" in score
    assert measures.startswith("measures: black list refuse_onboarding, close_store")
    assert "red list search_boost, traffic_priority, green_channel" in measures
    assert red == (
        "red: a subject goes on the red list once it has been registered (merchant.registered, with a verified real"
        " name) for at least 180 days, has published a commitment and has had no negative record effective in the"
        " last 365 days (pending complaints do not count)"
    )
    assert lines[5:] == [explain_rule(rule, POLICY) for rule in POLICY.rules]


# -- policy check --------------------------------------------------------------------------------------------


@pytest.fixture
def no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XINYONG_DATABASE_URL", "XINYONG_MASTER_KEY", "XINYONG_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # earlier output (the gateway's log) is not the command's
    status = cli_main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.usefixtures("no_gateway_environment")
def test_policy_check_prints_every_rule_explained_as_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = tmp_path / "strict.toml"
    file.write_text(STRICTER, encoding="utf-8")
    status, out, _ = _run(capsys, "policy", "check", str(file))
    assert status == 0
    checked = json.loads(out)
    policy = parse_policy(STRICTER)
    assert (checked["file"], checked["version"], checked["valid"]) == (str(file), "strict-1", True)
    assert [rule["id"] for rule in checked["rules"]] == [rule.id for rule in policy.rules]
    parcels = next(rule for rule in checked["rules"] if rule["id"] == "empty-parcels-watch")
    assert parcels["explanation"].startswith("empty-parcels-watch: 2 delivery.recorded with status empty_parcel")
    parts = ("publicity", "score", "measures", "red", "retention")
    assert [checked[part] for part in parts] == explain_policy(policy)[:5]


@pytest.mark.usefixtures("no_gateway_environment")
def test_policy_check_on_a_terminal_prints_one_line_per_part_and_rule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    capsys.readouterr()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli_main(["policy", "check"]) == 0  # no FILE: the current policy, here the shipped one
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"the shipped default policy is valid: policy lyg-2026.4, {len(POLICY.rules)} rules."
    rules_at = lines.index("rules:")
    assert lines[1:rules_at] == explain_policy(POLICY)[: rules_at - 1]
    assert lines[rules_at + 1 :] == [f"  {explain_rule(rule, POLICY)}" for rule in POLICY.rules]


@pytest.mark.usefixtures("no_gateway_environment")
def test_policy_check_on_an_invalid_file_names_line_and_key_and_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = DEFAULT_POLICY_TEXT.replace(
        'where = { confirmed = true, kind = "counterfeit" }', "whre = { confirmed = true }", 1
    )
    line = next(n for n, content in enumerate(text.splitlines(), start=1) if content.startswith("whre ="))
    file = tmp_path / "broken.toml"
    file.write_text(text, encoding="utf-8")
    status, out, err = _run(capsys, "policy", "check", str(file))
    assert status == 1
    assert err.startswith("xinyong-gateway: error: ")
    assert f"{file}: line {line}, rule[0].whre: unknown key" in err
    assert "Traceback" not in err
    refused = json.loads(out)
    assert refused["valid"] is False
    assert f"{file}: line {line}, rule[0].whre: unknown key" in refused["errors"]


@pytest.mark.usefixtures("no_gateway_environment")
def test_policy_check_on_a_missing_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = _run(capsys, "policy", "check", str(tmp_path / "nowhere.toml"))
    assert status == 1
    assert "Cannot read the policy file" in err


# -- comparing statuses (pure) ----------------------------------------------------------------------------------

MERCHANT = {"id_type": "uscc", "id": make_uscc(random.Random(21)), "name": "甲商行"}
COURIER = {"id_type": "uscc", "id": make_uscc(random.Random(22)), "name": "乙快递"}
_FAR_FUTURE = {"now": datetime(2100, 1, 1, tzinfo=UTC)}


def _logged(seq: int, event_type: str, **data: Any) -> LoggedEvent:
    parsed = EVENT_TYPES[event_type].model_validate(event(event_type, **data), context=_FAR_FUTURE)
    return LoggedEvent(seq, "src_a", f"wh_{seq}", parsed)


def _key(subject: Subject) -> str:
    return f"{subject.id_type}:{subject.id}"


def _parcels(n: int, who: dict[str, Any] = MERCHANT) -> list[LoggedEvent]:
    return [
        _logged(i + 1, "delivery.recorded", merchant=who, courier=COURIER, waybill_no=f"W{i}", status="empty_parcel")
        for i in range(n)
    ]


def test_a_policy_compared_with_itself_keeps_everyone_on_the_diagonal() -> None:
    replay = Replay(POLICY, POLICY, _key)
    replay.apply_all(
        [*_parcels(3), _logged(9, "listing.violation", merchant=COURIER, kind="counterfeit", confirmed=True)]
    )
    diff = replay.diff(datetime.now(UTC))
    assert diff.moves == ()
    assert diff.subjects == 2
    assert (diff.matrix["watch"]["watch"], diff.matrix["black"]["black"]) == (1, 1)
    assert sum(diff.matrix[a][b] for a in LISTS for b in LISTS if a != b) == 0


def test_a_stricter_count_moves_the_merchant_and_names_the_reason_it_gains() -> None:
    replay = Replay(POLICY, parse_policy(STRICTER), _key)
    replay.apply_all(_parcels(2))
    diff = replay.diff(datetime.now(UTC))
    (move,) = diff.moves
    assert (move.key, move.before, move.after) == (_key(Subject.model_validate(MERCHANT)), "none", "watch")
    assert (move.added, move.removed) == ((ReasonKey("EMPTY_PARCELS", "watch"),), ())
    assert diff.matrix["none"] == {"black": 0, "watch": 1, "red": 0, "none": 1}  # the courier stays on no list
    assert diff.cells() == [("none", "watch", [move])]


def test_a_rule_moved_to_another_list_shows_its_code_leaving_one_list_for_the_other() -> None:
    replay = Replay(POLICY, parse_policy(LENIENT), _key)
    replay.apply_all([_logged(1, "listing.violation", merchant=MERCHANT, kind="counterfeit", confirmed=True)])
    (move,) = replay.diff(datetime.now(UTC)).moves
    assert (move.before, move.after) == ("black", "watch")
    assert move.added == (ReasonKey("LISTING_COUNTERFEIT", "watch"),)
    assert move.removed == (ReasonKey("LISTING_COUNTERFEIT", "black"),)


def test_a_subject_missing_on_one_side_counts_as_on_no_list_there() -> None:
    replay = Replay(POLICY, POLICY, _key)
    replay.apply_all(_parcels(3))
    before, _ = replay.statuses(datetime.now(UTC))
    diff = diff_statuses(before, {})
    watched = _key(Subject.model_validate(MERCHANT))
    assert [(m.key, m.before, m.after) for m in diff.moves] == [(watched, "watch", "none")]
    assert diff.moves[0].removed == (ReasonKey("EMPTY_PARCELS", "watch"),)


# -- policy diff over the inbox --------------------------------------------------------------------------------


RUN_PROJECTOR = False
"""The gateway without its built-in projector: the tests decide what has been projected."""


def _merchant(n: int) -> dict[str, Any]:
    return {"id_type": "uscc", "id": make_uscc(random.Random(n)), "name": f"商户{n}"}


PERSON_RIC = make_ric(random.Random(5))
PERSON = {"id_type": "ric", "id": PERSON_RIC, "name": "王小明"}
MASKED_RIC = f"{PERSON_RIC[:6]}********{PERSON_RIC[-4:]}"


async def _post_log(gateway: Gateway) -> None:
    """Merchant 1: two empty parcels; merchant 2: a counterfeit listing; merchant 3: one empty parcel; then, after
    the projector has run, a sole trader (RIC) with two empty parcels that the subjects table does not know yet."""
    market = await gateway.add_source("marketplace")
    courier = await gateway.add_source("courier")
    posts: list[tuple[Any, dict[str, Any]]] = []
    for i in range(2):
        posts.append(
            (
                courier,
                event(
                    "delivery.recorded",
                    courier=COURIER,
                    merchant=_merchant(1),
                    waybill_no=f"A{i}",
                    status="empty_parcel",
                ),
            )
        )
    posts.append(
        (market, event("listing.violation", merchant=_merchant(2), case_id="L1", kind="counterfeit", confirmed=True))
    )
    posts.append(
        (
            courier,
            event("delivery.recorded", courier=COURIER, merchant=_merchant(3), waybill_no="C0", status="empty_parcel"),
        )
    )
    for n, (source, body) in enumerate(posts):
        response = await gateway.post(source, body, webhook_id=f"msg_{n}")
        assert response.status == 202, await response.text()
    await Projector(gateway.store, gateway.master_key, POLICY).catch_up()
    for i in range(2):
        body = event("delivery.recorded", courier=COURIER, merchant=PERSON, waybill_no=f"P{i}", status="empty_parcel")
        response = await gateway.post(courier, body, webhook_id=f"msg_p{i}")
        assert response.status == 202, await response.text()


async def _diff(
    gateway: Gateway,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    policy_text: str,
    *options: str,
) -> tuple[int, str, str]:
    file = gateway.folder / "candidate.toml"
    file.write_text(policy_text, encoding="utf-8")
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    monkeypatch.delenv("XINYONG_POLICY_FILE", raising=False)
    capsys.readouterr()  # what the gateway logged so far is not the command's output
    argv = ["--db", gateway.settings.database_url, "policy", "diff", str(file), *options]
    status = await asyncio.to_thread(cli_main, argv)
    out, err = capsys.readouterr()
    return status, out, err


async def test_diff_of_the_current_policy_with_itself_moves_nobody(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _post_log(gateway)
    status, out, _ = await _diff(gateway, capsys, monkeypatch, DEFAULT_POLICY_TEXT)
    assert status == 0
    result = json.loads(out)
    assert (result["current_version"], result["candidate_version"]) == ("lyg-2026.4", "lyg-2026.4")
    assert (result["events"], result["moved"], result["cells"]) == (6, 0, [])
    # merchants 1, 2, 3, the person and the courier
    assert result["subjects"] == 5
    assert {(a, b) for a in LISTS for b in LISTS if result["matrix"][a][b]} == {("black", "black"), ("none", "none")}
    assert (result["matrix"]["black"]["black"], result["matrix"]["none"]["none"]) == (1, 4)


async def test_diff_with_a_stricter_policy_shows_who_moves_and_why(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _post_log(gateway)
    status, out, _ = await _diff(gateway, capsys, monkeypatch, STRICTER)
    assert status == 0
    result = json.loads(out)
    assert (result["candidate_version"], result["moved"]) == ("strict-1", 2)
    assert result["matrix"]["none"] == {"black": 0, "watch": 2, "red": 0, "none": 2}
    assert result["matrix"]["black"] == {"black": 1, "watch": 0, "red": 0, "none": 0}
    (cell,) = result["cells"]
    assert (cell["from"], cell["to"], cell["count"]) == ("none", "watch", 2)
    gained = {"code": "EMPTY_PARCELS", "list": "watch"}
    assert cell["examples"] == [
        # merchant 1 is in the subjects table (projected), the person only in the inbox
        {"subject": {"id_type": "uscc", "id": _merchant(1)["id"], "name": "商户1"}, "added": [gained], "removed": []},
        {"subject": {"id_type": "ric", "id": MASKED_RIC, "name": "王**"}, "added": [gained], "removed": []},
    ]
    assert PERSON_RIC not in out and "王小明" not in out


async def test_diff_examples_are_limited_per_cell_and_name_the_reasons_on_both_sides(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _post_log(gateway)
    both = _variant(
        "both-1",
        ('count = 3\nwithin = "90d"', 'count = 2\nwithin = "90d"'),
        ('reason = "LISTING_COUNTERFEIT"\nlist = "black"', 'reason = "LISTING_COUNTERFEIT"\nlist = "watch"'),
    )
    status, out, _ = await _diff(gateway, capsys, monkeypatch, both)
    assert status == 0
    cells = {(cell["from"], cell["to"]): cell for cell in json.loads(out)["cells"]}
    assert set(cells) == {("black", "watch"), ("none", "watch")}
    assert cells["black", "watch"]["examples"] == [
        {
            "subject": {"id_type": "uscc", "id": _merchant(2)["id"], "name": "商户2"},
            "added": [{"code": "LISTING_COUNTERFEIT", "list": "watch"}],
            "removed": [{"code": "LISTING_COUNTERFEIT", "list": "black"}],
        }
    ]
    status, out, _ = await _diff(gateway, capsys, monkeypatch, both, "--examples", "1")
    cells = {(cell["from"], cell["to"]): cell for cell in json.loads(out)["cells"]}
    assert (cells["none", "watch"]["count"], len(cells["none", "watch"]["examples"])) == (2, 1)
    status, _, err = await _diff(gateway, capsys, monkeypatch, both, "--examples", "-1")
    assert status == 2
    assert "--examples must be 0 or more" in err


async def test_diff_on_a_terminal_prints_the_matrix_and_masked_examples(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _post_log(gateway)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    status, out, _ = await _diff(gateway, capsys, monkeypatch, STRICTER)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("Replayed 6 events about 5 subjects under lyg-2026.4 (current) and strict-1 (new)")
    assert lines[1] == "2 subjects would move between lists (rows: the current policy, columns: the new one):"
    assert lines[2].split() == ["from", "\\", "to", "black", "watch", "red", "none"]
    assert lines[3].split() == ["black", "1", "0", "0", "0"]
    assert lines[6].split() == ["none", "0", "2", "0", "2"]
    assert lines[7] == "none → watch: 2 subjects"
    assert lines[8] == f"    USCC {_merchant(1)['id']} 商户1  +EMPTY_PARCELS (watch)"
    assert lines[9] == f"    RIC {MASKED_RIC} 王**  +EMPTY_PARCELS (watch)"
    assert PERSON_RIC not in out and "王小明" not in out


async def test_diff_writes_nothing_to_the_database(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _post_log(gateway)
    store = gateway.store
    position = await store.projector_position()
    changes = await store.read_changes(0, 1000)
    rows = await database_rows(gateway.settings.database_url)
    assert rows["subjects"] and rows["status_changes"]  # there is something the diff could have touched
    status, _, _ = await _diff(gateway, capsys, monkeypatch, STRICTER)
    assert status == 0
    assert await store.projector_position() == position
    assert await store.read_changes(0, 1000) == changes
    assert await database_rows(gateway.settings.database_url) == rows


async def test_diff_with_an_invalid_policy_exits_1_naming_the_problem(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = DEFAULT_POLICY_TEXT.replace('event = "penalty.imposed"', 'event = "penalty.imposd"', 1)
    status, out, err = await _diff(gateway, capsys, monkeypatch, broken)
    assert (status, out) == (1, "")
    assert "rule[1].event: unknown event type 'penalty.imposd'" in err


async def test_diff_compares_against_the_policy_given_with_policy(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await _post_log(gateway)
    current = gateway.folder / "current.toml"
    current.write_text(STRICTER, encoding="utf-8")
    file = gateway.folder / "candidate.toml"
    file.write_text(DEFAULT_POLICY_TEXT, encoding="utf-8")
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()
    argv = ["--db", gateway.settings.database_url, "policy", "diff", str(file), "--policy", str(current)]
    assert await asyncio.to_thread(cli_main, argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["current_version"], result["candidate_version"]) == ("strict-1", "lyg-2026.4")
    assert [(cell["from"], cell["to"], cell["count"]) for cell in result["cells"]] == [("watch", "none", 2)]
    assert result["cells"][0]["examples"][0]["removed"] == [{"code": "EMPTY_PARCELS", "list": "watch"}]


async def test_dry_run_reports_progress_batch_by_batch(gateway: Gateway) -> None:
    await _post_log(gateway)
    seen: list[tuple[int, int]] = []
    result = await dry_run(
        gateway.store,
        gateway.master_key,
        POLICY,
        parse_policy(STRICTER),
        batch_size=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(4, 6), (6, 6)]
    assert result.events == 6
