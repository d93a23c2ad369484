"""Due process in the pure engine: objections and credit repair, their deadlines on the Chinese working-day
calendar (the ``holidays`` library is the oracle), and replays in any order."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gateway.test_late_facts import MERCHANTS, Facts, _fact_order, key_of
from xinyong.subjects import CHINA_STANDARD_TIME, Subject
from xinyong_gateway.credit.due_process import DueDuration, deadline, due_duration, is_overdue
from xinyong_gateway.credit.engine import CreditFile, project
from xinyong_gateway.credit.policy import PolicyError, default_policy, parse_policy

POLICY = default_policy()
WHO = MERCHANTS[0]
CN = holidays.country_holidays("CN", years=range(2024, 2028))


def _cst(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CHINA_STANDARD_TIME)


# -- deadlines --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "last_day"),
    [
        (date(2026, 2, 13), "3wd", date(2026, 2, 25)),  # Spring Festival 2026: Sat 14 Feb is a make-up working day
        (date(2026, 2, 12), "3wd", date(2026, 2, 24)),
        (date(2025, 9, 30), "3wd", date(2025, 10, 11)),  # National Day 2025: Sat 11 Oct is a make-up working day
        (date(2025, 9, 26), "7wd", date(2025, 10, 13)),  # Sun 28 Sep and Sat 11 Oct are make-up working days
        (date(2026, 2, 13), "30d", date(2026, 3, 15)),
    ],
)
def test_deadlines_across_spring_festival_and_national_day(start: date, duration: str, last_day: date) -> None:
    assert deadline(_cst(start), due_duration(duration)) == last_day


@settings(max_examples=200)
@given(day=st.dates(date(2024, 1, 1), date(2026, 12, 1)), count=st.integers(1, 15))
def test_working_day_deadlines_agree_with_the_holidays_library(day: date, count: int) -> None:
    last = deadline(_cst(day), DueDuration(count, "wd"))
    assert last == CN.get_nth_working_day(day, count)
    assert CN.is_working_day(last)
    assert CN.get_working_days_count(day + timedelta(days=1), last) == count


def test_a_deadline_counts_from_the_china_standard_time_day() -> None:
    late_utc = datetime(2026, 2, 12, 17, 0, tzinfo=UTC)  # already 13 Feb in China
    assert deadline(late_utc, due_duration("3wd")) == date(2026, 2, 25)


def test_overdue_is_judged_on_the_last_day_in_china() -> None:
    due = date(2026, 3, 2)
    assert not is_overdue(due, None, _cst(due, 23))
    assert is_overdue(due, None, _cst(due + timedelta(days=1), 0))
    assert not is_overdue(due, _cst(due, 9), _cst(due + timedelta(days=30)))


@pytest.mark.parametrize("text", ["30", "3w", "0d", "-1d", "3 wd", "1.5d"])
def test_the_policy_refuses_malformed_deadlines_with_line_and_key(text: str) -> None:
    with pytest.raises(PolicyError, match=r"line \d+, due_process.reply_within"):
        parse_policy(_policy_text().replace('reply_within = "30d"', f'reply_within = "{text}"'), source="p.toml")


def test_the_shipped_deadlines_are_those_of_the_measures() -> None:
    due = POLICY.due_process
    assert (str(due.reply_within), str(due.publish_correction_within), str(due.feed_back_within)) == (
        "30d",
        "3wd",
        "7wd",
    )
    assert set(due.repair_after) == {"general", "serious"}


def _policy_text() -> str:
    text = (resources.files("xinyong_gateway.credit") / "default_policy.toml").read_text(encoding="utf-8")
    assert 'reply_within = "30d"' in text
    return text


# -- objections ---------------------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _counterfeit(facts: Facts, days_ago: float = 20) -> str:
    facts.add("listing.violation", NOW - timedelta(days=days_ago), case_id="L1", kind="counterfeit", confirmed=True)
    credit_file = project(facts.events, POLICY, key_of)[key_of(Subject.model_validate(WHO))]
    return next(r.record_id for r in credit_file.records.values() if r.reason == "LISTING_COUNTERFEIT")


def _file(facts: Facts) -> CreditFile:
    return project(facts.events, POLICY, key_of)[key_of(Subject.model_validate(WHO))]


def _filed(facts: Facts, record_id: str, days_ago: float, objection_id: str = "O1", **extra: Any) -> None:
    facts.add("objection.filed", NOW - timedelta(days=days_ago), objection_id=objection_id, subject=WHO,
              record_id=record_id, grounds="该商品为正品，附品牌授权书", **extra)  # fmt: skip


def _ruled(facts: Facts, outcome: str, days_ago: float, objection_id: str = "O1") -> None:
    facts.add("objection.decided", NOW - timedelta(days=days_ago), objection_id=objection_id, subject=WHO,
              outcome=outcome, note="经核查")  # fmt: skip


def test_an_open_objection_disputes_the_record_and_the_status() -> None:
    facts = Facts()
    record_id = _counterfeit(facts)
    _filed(facts, record_id, 10)
    status = _file(facts).status_at(NOW, POLICY)
    assert status.list == "black" and status.disputed
    assert {r.record_id: r.disputed for r in status.reasons}[record_id] is True
    assert not _file(facts).status_at(NOW - timedelta(days=15), POLICY).disputed  # before it was filed
    view = _file(facts).objection("O1", POLICY, NOW)
    assert (view.state, view.reply_due, view.overdue) == (
        "open",
        deadline(view.filed_at or NOW, DueDuration(30, "d")),
        False,
    )
    assert _file(facts).objection("O1", POLICY, NOW + timedelta(days=40)).overdue


def test_an_upheld_objection_corrects_the_record_from_the_ruling_on() -> None:
    facts = Facts()
    record_id = _counterfeit(facts)
    _filed(facts, record_id, 10)
    _ruled(facts, "upheld", 5)
    credit_file = _file(facts)
    assert credit_file.status_at(NOW, POLICY).list == "watch"  # the listing violation itself still stands
    assert credit_file.status_at(NOW - timedelta(days=6), POLICY).list == "black"
    assert credit_file.records[record_id].state_at(NOW) == "corrected"
    view = credit_file.objection("O1", POLICY, NOW)
    assert view.state == "upheld" and view.publish_due is not None and view.feedback_due is None
    assert not credit_file.status_at(NOW, POLICY).disputed


def test_a_rejected_objection_clears_the_dispute_and_the_record_stands() -> None:
    facts = Facts()
    record_id = _counterfeit(facts)
    _filed(facts, record_id, 10)
    _ruled(facts, "rejected", 5)
    credit_file = _file(facts)
    status = credit_file.status_at(NOW, POLICY)
    assert (status.list, status.disputed) == ("black", False)
    view = credit_file.objection("O1", POLICY, NOW)
    assert view.state == "rejected" and view.feedback_due is not None and view.publish_due is None


def test_an_objection_citing_no_record_of_the_subject_is_invalid_and_changes_nothing() -> None:
    facts = Facts()
    _counterfeit(facts)
    _filed(facts, "rec_" + "0" * 24, 10)
    credit_file = _file(facts)
    view = credit_file.objection("O1", POLICY, NOW)
    assert view.state == "invalid" and view.reason == "no such record in the subject's file"
    assert not credit_file.status_at(NOW, POLICY).disputed


def test_a_ruling_without_a_filing_and_a_second_ruling_are_anomalies_not_changes() -> None:
    facts = Facts()
    record_id = _counterfeit(facts)
    _ruled(facts, "upheld", 5, objection_id="O-unknown")
    assert _file(facts).objection("O-unknown", POLICY).state == "unfiled"
    _filed(facts, record_id, 10)
    _ruled(facts, "rejected", 6)
    _ruled(facts, "upheld", 5)
    view = _file(facts).objection("O1", POLICY, NOW)
    assert (view.state, view.anomalies) == ("rejected", 1)
    assert _file(facts).status_at(NOW, POLICY).list == "black"


# -- repairs ------------------------------------------------------------------------------------------------


def _applied(facts: Facts, record_id: str, days_ago: float, repair_id: str = "R1") -> None:
    facts.add("repair.applied", NOW - timedelta(days=days_ago), repair_id=repair_id, subject=WHO,
              record_id=record_id, grounds="已整改并完成培训")  # fmt: skip


def _repair_ruled(facts: Facts, outcome: str, days_ago: float, repair_id: str = "R1") -> None:
    facts.add("repair.decided", NOW - timedelta(days=days_ago), repair_id=repair_id, subject=WHO, outcome=outcome,
              note="准予修复")  # fmt: skip


def test_a_repair_applied_for_too_early_is_refused_with_the_date_it_becomes_possible() -> None:
    facts = Facts()
    record_id = _counterfeit(facts, days_ago=100)  # serious: repairable after 365 days
    _applied(facts, record_id, 1)
    view = _file(facts).repair("R1", POLICY)
    assert view.state == "refused" and view.possible_from is not None
    expected = (NOW - timedelta(days=100) + timedelta(days=365)).astimezone(CHINA_STANDARD_TIME).date()
    assert view.reason == f"too early: possible from {expected.isoformat()}"


def test_a_granted_repair_ends_the_record_and_keeps_it_in_the_history() -> None:
    facts = Facts()
    record_id = _counterfeit(facts, days_ago=400)
    _applied(facts, record_id, 20)
    assert _file(facts).repair("R1", POLICY).state == "pending"
    _repair_ruled(facts, "granted", 10)
    credit_file = _file(facts)
    assert credit_file.repair("R1", POLICY).state == "granted"
    assert credit_file.records[record_id].state_at(NOW) == "repaired"
    assert credit_file.records[record_id].state_at(NOW - timedelta(days=11)) == "active"
    assert credit_file.status_at(NOW - timedelta(days=11), POLICY).list == "black"
    assert credit_file.status_at(NOW, POLICY).list == "none"  # the watch record of the same case ended after a year


def test_minor_records_cannot_be_repaired_by_default() -> None:
    facts = Facts()
    facts.add("complaint.resolved", NOW - timedelta(days=30), complaint_id="K1", outcome="upheld")
    record_id = next(iter(_file(facts).records))
    _applied(facts, record_id, 1)
    view = _file(facts).repair("R1", POLICY)
    assert (view.state, view.reason) == ("refused", "minor records cannot be repaired")


# -- any order --------------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(seed=st.integers(0, 10**9))
def test_objections_and_repairs_give_the_same_files_in_any_arrival_order(seed: int) -> None:
    rng = random.Random(seed)
    facts = Facts()
    record_id = _counterfeit(facts, days_ago=rng.choice([30, 400]))
    for n in range(rng.randrange(1, 4)):
        _filed(facts, rng.choice([record_id, "rec_" + "1" * 24]), rng.randrange(1, 25), objection_id=f"O{n}")
        if rng.random() < 0.7:
            _ruled(facts, rng.choice(["upheld", "rejected"]), rng.randrange(0, 20), objection_id=f"O{n}")
    _applied(facts, record_id, rng.randrange(1, 25))
    if rng.random() < 0.5:
        _repair_ruled(facts, rng.choice(["granted", "refused"]), rng.randrange(0, 20))
    arrival = list(facts.events)
    rng.shuffle(arrival)
    shuffled = project(arrival, POLICY, key_of)
    ordered = project(_fact_order(facts.events), POLICY, key_of)
    assert {k: f.to_json() for k, f in shuffled.items()} == {k: f.to_json() for k, f in ordered.items()}
    for key, credit_file in ordered.items():
        for moment in (NOW - timedelta(days=10), NOW):
            assert shuffled[key].status_at(moment, POLICY) == credit_file.status_at(moment, POLICY)
        for objection_id in credit_file.objections:
            assert shuffled[key].objection(objection_id, POLICY, NOW) == credit_file.objection(
                objection_id, POLICY, NOW
            )


def test_a_ruling_dated_before_its_filing_does_not_stand_and_the_objection_stays_open() -> None:
    facts = Facts()
    record_id = _counterfeit(facts)
    _filed(facts, record_id, 5)
    _ruled(facts, "upheld", 6)  # a day before the filing
    view = _file(facts).objection("O1", POLICY, NOW)
    assert (view.state, view.anomalies) == ("open", 1)
    assert _file(facts).status_at(NOW, POLICY).disputed


def test_objections_and_repairs_citing_a_withdrawn_record_are_invalid() -> None:
    facts = Facts()
    record_id = _counterfeit(facts, days_ago=400)
    facts.add("listing.violation", NOW - timedelta(days=399), sent=NOW - timedelta(days=30), case_id="L1",
              kind="counterfeit", confirmed=False)  # fmt: skip
    _filed(facts, record_id, 10)
    _applied(facts, record_id, 10)
    credit_file = _file(facts)
    assert (credit_file.objection("O1", POLICY, NOW).state, credit_file.objection("O1", POLICY, NOW).reason) == (
        "invalid",
        "the record is withdrawn",
    )
    assert (credit_file.repair("R1", POLICY).state, credit_file.repair("R1", POLICY).reason) == (
        "invalid",
        "the record is withdrawn",
    )
