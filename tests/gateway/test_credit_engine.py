"""The pure projection: each default rule at its boundaries, superseding, time passing, and replay laws."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event, fact_time_field, make_uscc
from xinyong.events import EVENT_TYPES
from xinyong.subjects import Subject
from xinyong_gateway.credit.engine import CreditFile, LoggedEvent, project, subjects_of
from xinyong_gateway.credit.policy import Policy, default_policy

POLICY = default_policy()
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MERCHANT = {"id_type": "uscc", "id": make_uscc(random.Random(1)), "name": "甲商行"}
COURIER = {"id_type": "uscc", "id": make_uscc(random.Random(2)), "name": "乙快递"}
_FAR_FUTURE = {"now": datetime(2100, 1, 1, tzinfo=UTC)}


class Log:
    """Builds a log of events in order, as the projector would read them from the inbox."""

    def __init__(self) -> None:
        self.events: list[LoggedEvent] = []
        self._seq = itertools.count(1)

    def add(self, event_type: str, at: datetime, *, source: str = "src_a", **data: Any) -> LoggedEvent:
        subject_field = "subject" if event_type.startswith("penalty.") else "merchant"
        if event_type == "delivery.recorded":
            data.setdefault("courier", COURIER)
        data.setdefault(subject_field, MERCHANT)
        body = event(event_type, **{fact_time_field(event_type): at.isoformat(), **data})
        body["timestamp"] = at.isoformat()
        parsed = EVENT_TYPES[event_type].model_validate(body, context=_FAR_FUTURE)
        seq = next(self._seq)
        logged = LoggedEvent(seq, source, f"wh_{seq}", parsed)
        self.events.append(logged)
        return logged

    def files(self, policy: Policy = POLICY) -> dict[str, CreditFile]:
        return project(self.events, policy, key_of)

    def status(self, at: datetime, who: dict[str, str] = MERCHANT, policy: Policy = POLICY) -> Any:
        return self.files(policy)[key_of(Subject.model_validate(who))].status_at(at, policy)


def key_of(subject: Subject) -> str:
    return f"{subject.id_type}:{subject.id}"


def days(n: float) -> timedelta:
    return timedelta(days=n)


# -- black list rules ---------------------------------------------------------------------------------


def test_confirmed_counterfeit_listing_puts_the_merchant_on_the_black_list_for_three_years() -> None:
    log = Log()
    log.add("listing.violation", T0, kind="counterfeit", confirmed=True)
    status = log.status(T0)
    assert (status.list, status.grade) == ("black", "D")
    assert status.measures == ("refuse_onboarding", "close_store", "freeze_account", "public_exposure")
    assert {r.code for r in status.reasons} == {"LISTING_COUNTERFEIT", "LISTING_VIOLATION"}
    assert log.status(T0 + days(1095) - timedelta(seconds=1)).list == "black"
    assert log.status(T0 + days(1095)).list == "none"


def test_unconfirmed_counterfeit_report_changes_nothing() -> None:
    log = Log()
    log.add("listing.violation", T0, kind="counterfeit", confirmed=False)
    assert log.status(T0).list == "none"
    assert log.status(T0).reasons == ()


def test_serious_penalty_blacklists_and_its_revocation_lifts_it() -> None:
    log = Log()
    log.add("penalty.imposed", T0, decision_no="D-1", severity="serious")
    assert log.status(T0).list == "black"
    log.add("penalty.revoked", T0 + days(10), decision_no="D-1")
    assert log.status(T0 + days(10)).list == "none"
    record = next(iter(log.files()[key_of(Subject.model_validate(MERCHANT))].records.values()))
    assert record.state_at(T0 + days(10)) == "revoked"


def test_revocation_by_another_source_does_not_touch_the_penalty() -> None:
    log = Log()
    log.add("penalty.imposed", T0, decision_no="D-1", severity="serious")
    log.add("penalty.revoked", T0 + days(1), decision_no="D-1", source="src_other")
    assert log.status(T0 + days(1)).list == "black"


@pytest.mark.parametrize(("orders", "expected"), [(99, "watch"), (100, "black")])
def test_fake_orders_blacklist_from_one_hundred_orders(orders: int, expected: str) -> None:
    log = Log()
    log.add("review.manipulation_detected", T0, kind="fake_order", order_count=orders, confirmed=True)
    assert log.status(T0).list == expected


@pytest.mark.parametrize(("gap_days", "expected"), [(364, "black"), (365, "watch")])
def test_three_confirmed_manipulations_within_365_days_blacklist(gap_days: int, expected: str) -> None:
    log = Log()
    for i, at in enumerate([T0, T0 + days(100), T0 + days(gap_days)]):
        log.add("review.manipulation_detected", at, case_id=f"c{i}", kind="fake_traffic", order_count=1, confirmed=True)
    assert log.status(T0 + days(gap_days)).list == expected


@pytest.mark.parametrize(("parcels", "expected"), [(2, "none"), (3, "watch"), (9, "watch"), (10, "black")])
def test_empty_parcels_within_90_days_put_the_merchant_on_watch_then_black(parcels: int, expected: str) -> None:
    log = Log()
    for i in range(parcels):
        log.add("delivery.recorded", T0 + days(i), waybill_no=f"W{i}", status="empty_parcel")
    assert log.status(T0 + days(parcels - 1)).list == expected


@pytest.mark.parametrize(("third_on_day", "expected"), [(89, "watch"), (90, "none")])
def test_empty_parcel_window_is_90_days_counted_on_fact_times(third_on_day: int, expected: str) -> None:
    log = Log()
    for i, day in enumerate([0, 1, third_on_day]):
        log.add("delivery.recorded", T0 + days(day), waybill_no=f"W{i}", status="empty_parcel")
    assert log.status(T0 + days(third_on_day)).list == expected


def test_empty_parcels_count_against_the_merchant_not_the_courier() -> None:
    log = Log()
    for i in range(3):
        log.add("delivery.recorded", T0, waybill_no=f"W{i}", status="empty_parcel")
    assert log.status(T0).list == "watch"
    assert log.status(T0, COURIER).list == "none"


# -- watch list rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("upheld", "expected"), [(4, "none"), (5, "watch")])
def test_five_upheld_complaints_within_90_days_put_the_merchant_on_watch(upheld: int, expected: str) -> None:
    log = Log()
    for i in range(upheld):
        log.add("complaint.resolved", T0 + days(i), complaint_id=f"k{i}", outcome="upheld")
    status = log.status(T0 + days(upheld))
    assert status.list == expected
    assert status.score == 100 - 5 * upheld - (15 if expected == "watch" else 0)


def test_complaint_outcomes_other_than_upheld_make_no_record() -> None:
    log = Log()
    for i, outcome in enumerate(["rejected", "settled", "compensated_in_advance"]):
        log.add("complaint.filed", T0, complaint_id=f"k{i}")
        log.add("complaint.resolved", T0, complaint_id=f"k{i}", outcome=outcome)
    assert log.status(T0).reasons == ()


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("penalty.imposed", {"severity": "general"}),
        ("commitment.breached", {"severity": "minor"}),
        ("listing.violation", {"kind": "false_advertising", "confirmed": True}),
        ("review.manipulation_detected", {"kind": "malicious_review", "order_count": 3, "confirmed": True}),
    ],
)
def test_general_dishonesty_puts_the_subject_on_watch_for_a_year(event_type: str, data: dict[str, Any]) -> None:
    log = Log()
    log.add(event_type, T0, **data)
    status = log.status(T0)
    assert status.list == "watch"
    assert status.measures == ("search_demotion", "increased_inspection", "risk_warning")
    assert log.status(T0 + days(365)).list == "none"


@pytest.mark.parametrize(("lost", "expected"), [(3, "none"), (4, "watch")])
def test_courier_losing_two_percent_of_200_deliveries_goes_on_watch(lost: int, expected: str) -> None:
    log = Log()
    for i in range(200):
        log.add(
            "delivery.recorded",
            T0 + timedelta(minutes=i),
            waybill_no=f"W{i}",
            status="lost" if i < lost else "delivered",
        )
    assert log.status(T0 + days(1), COURIER).list == expected


def test_courier_loss_rate_needs_at_least_200_deliveries() -> None:
    log = Log()
    for i in range(199):
        log.add("delivery.recorded", T0, waybill_no=f"W{i}", status="damaged" if i < 50 else "delivered")
    assert log.status(T0, COURIER).list == "none"


# -- superseding ------------------------------------------------------------------------------------


def test_a_withdrawn_report_withdraws_its_record() -> None:
    log = Log()
    log.add("listing.violation", T0, case_id="L1", kind="counterfeit", confirmed=True)
    log.add("listing.violation", T0 + days(2), case_id="L1", kind="counterfeit", confirmed=False)
    status = log.status(T0 + days(2))
    assert status.list == "none"
    states = {r.state_at(T0 + days(2)) for r in log.files()[key_of(Subject.model_validate(MERCHANT))].records.values()}
    assert states == {"withdrawn"}


def test_a_suspicion_confirmed_later_counts_from_its_confirmation() -> None:
    log = Log()
    log.add("listing.violation", T0, case_id="L1", kind="counterfeit", confirmed=False)
    log.add("listing.violation", T0 + days(3), case_id="L1", kind="counterfeit", confirmed=True)
    assert log.status(T0 + days(2)).list == "none"
    assert log.status(T0 + days(3)).list == "black"


def test_the_same_case_reported_twice_counts_once() -> None:
    log = Log()
    for _ in range(3):
        log.add("review.manipulation_detected", T0, case_id="same", kind="fake_traffic", order_count=1, confirmed=True)
    assert log.status(T0).list == "watch"


def test_withdrawing_a_case_below_the_threshold_withdraws_the_count_record() -> None:
    log = Log()
    for i in range(3):
        log.add(
            "review.manipulation_detected",
            T0 + days(i),
            case_id=f"c{i}",
            kind="fake_traffic",
            order_count=1,
            confirmed=True,
        )
    assert log.status(T0 + days(2)).list == "black"
    log.add(
        "review.manipulation_detected",
        T0 + days(3),
        case_id="unrelated",
        kind="fake_traffic",
        order_count=1,
        confirmed=False,
    )
    assert log.status(T0 + days(3)).list == "black"  # withdrawing an unknown case changes nothing
    log.add(
        "review.manipulation_detected", T0 + days(4), case_id="c1", kind="fake_traffic", order_count=1, confirmed=False
    )
    status = log.status(T0 + days(4))
    assert status.list == "watch"
    assert [r.code for r in status.reasons] == ["MANIPULATION_CONFIRMED", "MANIPULATION_CONFIRMED"]


def test_same_usccs_from_two_sources_share_one_credit_file() -> None:
    log = Log()
    log.add("review.manipulation_detected", T0, case_id="a", kind="fake_traffic", order_count=1, confirmed=True)
    log.add(
        "review.manipulation_detected",
        T0,
        case_id="a",
        kind="fake_traffic",
        order_count=1,
        confirmed=True,
        source="src_b",
    )
    log.add(
        "review.manipulation_detected",
        T0,
        case_id="a",
        kind="fake_traffic",
        order_count=1,
        confirmed=True,
        source="src_c",
    )
    files = log.files()
    assert len(files) == 1
    assert log.status(T0).list == "black"  # three sources' cases are three cases


# -- red list, grades, time ---------------------------------------------------------------------------


def _good_merchant(log: Log) -> None:
    log.add("merchant.registered", T0)
    log.add("commitment.published", T0)


@pytest.mark.parametrize(("after", "expected"), [(days(180) - timedelta(seconds=1), "none"), (days(180), "red")])
def test_registered_committed_merchant_becomes_red_after_180_clean_days(after: timedelta, expected: str) -> None:
    log = Log()
    _good_merchant(log)
    status = log.status(T0 + after)
    assert status.list == expected
    assert status.grade == "A"
    if expected == "red":
        assert status.measures == ("search_boost", "traffic_priority", "green_channel")


def test_red_needs_a_published_commitment() -> None:
    log = Log()
    log.add("merchant.registered", T0)
    assert log.status(T0 + days(400)).list == "none"


def test_a_minor_record_keeps_a_merchant_off_red_for_365_days_after_it_ends() -> None:
    log = Log()
    _good_merchant(log)
    log.add("complaint.resolved", T0 + days(200), outcome="upheld")
    ends = T0 + days(200) + days(90)
    assert log.status(T0 + days(250)).list == "none"
    assert log.status(ends + days(365) - timedelta(seconds=1)).list == "none"
    assert log.status(ends + days(365)).list == "red"


def test_pending_complaints_do_not_count_against_red() -> None:
    log = Log()
    _good_merchant(log)
    log.add("complaint.filed", T0 + days(10))
    assert log.status(T0 + days(200)).list == "red"


def test_grades_follow_the_score_and_black_is_always_d() -> None:
    log = Log()
    log.add("penalty.imposed", T0, decision_no="p1", severity="minor")
    status = log.status(T0)
    assert (status.score, status.grade, status.list) == (95, "A", "none")
    log.add("penalty.imposed", T0, decision_no="p2", severity="general")
    assert (log.status(T0).score, log.status(T0).grade) == (80, "B")
    log.add("penalty.imposed", T0, decision_no="p3", severity="serious")
    assert (log.status(T0).score, log.status(T0).grade, log.status(T0).list) == (40, "D", "black")


def test_next_change_names_when_time_alone_changes_the_status() -> None:
    log = Log()
    log.add("penalty.imposed", T0, decision_no="p1", severity="general")
    credit_file = log.files()[key_of(Subject.model_validate(MERCHANT))]
    change = credit_file.next_change_after(T0, POLICY)
    assert change == T0 + days(365)
    assert credit_file.status_at(change, POLICY).list != credit_file.status_at(T0, POLICY).list


# -- laws of the projection ---------------------------------------------------------------------------


def _random_data(event_type: str, r: random.Random) -> dict[str, Any]:
    if event_type == "listing.violation":
        return {
            "case_id": f"L{r.randrange(4)}",
            "kind": r.choice(["counterfeit", "price_fraud"]),
            "confirmed": r.random() < 0.7,
        }
    if event_type == "review.manipulation_detected":
        return {
            "case_id": f"M{r.randrange(6)}",
            "kind": "fake_order",
            "order_count": r.choice([5, 150]),
            "confirmed": r.random() < 0.8,
        }
    if event_type == "delivery.recorded":
        return {"waybill_no": f"W{r.randrange(10**6)}", "status": r.choice(["empty_parcel", "delivered", "lost"])}
    if event_type == "complaint.resolved":
        return {"complaint_id": f"K{r.randrange(8)}", "outcome": r.choice(["upheld", "rejected"])}
    if event_type == "penalty.imposed":
        return {"decision_no": f"P{r.randrange(3)}", "severity": r.choice(["minor", "general", "serious"])}
    if event_type == "penalty.revoked":
        return {"decision_no": f"P{r.randrange(3)}"}
    return {}


_KINDS = [
    "listing.violation", "review.manipulation_detected", "delivery.recorded", "complaint.resolved",
    "penalty.imposed", "penalty.revoked", "merchant.registered", "commitment.published",
]  # fmt: skip


def _random_log(seed: int, length: int) -> Log:
    rng = random.Random(seed)
    merchants = [{"id_type": "uscc", "id": make_uscc(random.Random(100 + i))} for i in range(3)]
    log = Log()
    for _ in range(length):
        event_type = rng.choice(_KINDS)
        # Inside every horizon of the default policy: older facts are history (see the archive tests below).
        at = T0 + timedelta(days=rng.randrange(0, 370), minutes=rng.randrange(1440))
        subject_field = "subject" if event_type.startswith("penalty.") else "merchant"
        data = {subject_field: rng.choice(merchants), **_random_data(event_type, rng)}
        log.add(event_type, at, source=rng.choice(["src_a", "src_b"]), **data)
    return log


def _states(log: Log) -> dict[str, str]:
    return {key: credit_file.to_json() for key, credit_file in log.files().items()}


@given(seed=st.integers(0, 10**6), length=st.integers(1, 60))
def test_replaying_the_same_log_gives_identical_files(seed: int, length: int) -> None:
    log = _random_log(seed, length)
    assert _states(log) == _states(log)
    for text in _states(log).values():
        assert CreditFile.from_json(text).to_json() == text


@given(seed=st.integers(0, 10**6), length=st.integers(1, 60), cut=st.integers(0, 60))
def test_applying_a_log_in_two_parts_through_saved_files_equals_one_pass(seed: int, length: int, cut: int) -> None:
    """What the projector does across restarts: save the files, load them, go on."""
    log = _random_log(seed, length)
    whole = _states(log)
    first, rest = log.events[: cut % (length + 1)], log.events[cut % (length + 1) :]
    files = {k: CreditFile.from_json(v.to_json()) for k, v in project(first, POLICY, key_of).items()}
    for logged in rest:
        for field_name, subject in subjects_of(logged.event).items():
            key = key_of(subject)
            files.setdefault(key, CreditFile(key)).apply(logged, field_name, POLICY)
    for credit_file in files.values():
        credit_file.settle(POLICY)
    assert {k: v.to_json() for k, v in files.items()} == whole


@given(seed=st.integers(0, 10**6), length=st.integers(1, 60), probe=st.integers(0, 1200))
def test_every_reason_traces_to_events_of_the_log_about_that_subject(seed: int, length: int, probe: int) -> None:
    log = _random_log(seed, length)
    by_seq = {logged.seq: logged for logged in log.events}
    at = T0 + timedelta(days=probe)
    for key, credit_file in log.files().items():
        for reason in credit_file.status_at(at, POLICY).reasons:
            assert reason.source_seqs
            for seq in reason.source_seqs:
                assert key in {key_of(s) for s in subjects_of(by_seq[seq].event).values()}
            assert reason.effective_from <= at < reason.effective_until


@given(seed=st.integers(0, 10**6), length=st.integers(1, 40))
def test_record_expiry_is_exact_at_its_boundary(seed: int, length: int) -> None:
    log = _random_log(seed, length)
    for credit_file in log.files().values():
        for record in credit_file.records.values():
            if record.ended is None:
                until = record.effective_until
                assert record.state_at(until - timedelta(microseconds=1)) in ("active", "pending")
                assert record.state_at(until) == "expired"


def test_records_that_can_no_longer_matter_leave_the_file_for_the_archive() -> None:
    log = Log()
    log.add("complaint.resolved", T0, complaint_id="k1", outcome="upheld")  # minor: effective for 90 days
    log.add("complaint.resolved", T0 + days(90 + 364), complaint_id="k2", outcome="upheld")
    credit_file = log.files()[key_of(Subject.model_validate(MERCHANT))]
    assert credit_file.archived == []  # still inside the red list's 365 clean days
    log.add("complaint.resolved", T0 + days(90 + 365), complaint_id="k3", outcome="upheld")
    credit_file = log.files()[key_of(Subject.model_validate(MERCHANT))]
    assert [record.case for record in credit_file.archived] == ["src_a|complaint.resolved|k1"]
    assert sorted(record.case or "" for record in credit_file.records.values()) == [
        "src_a|complaint.resolved|k2",
        "src_a|complaint.resolved|k3",
    ]
    assert "complaint.resolved|k1" in credit_file.to_json()  # the case is remembered while a window may count it
    log.add("complaint.resolved", T0 + POLICY.horizon + days(1), complaint_id="k4", outcome="upheld")
    credit_file = log.files()[key_of(Subject.model_validate(MERCHANT))]
    assert "k1" not in credit_file.to_json()


def test_a_record_that_left_for_the_archive_is_history_that_later_versions_do_not_change() -> None:
    log = Log()
    log.add("listing.violation", T0, case_id="L1", kind="price_fraud", confirmed=True)  # general: a year
    log.add("complaint.resolved", T0 + days(365 + 366), complaint_id="k9", outcome="rejected")
    key = key_of(Subject.model_validate(MERCHANT))
    credit_file = log.files()[key]
    assert [record.reason for record in credit_file.archived] == ["LISTING_VIOLATION"]
    saved = CreditFile.from_json(credit_file.to_json())
    late = log.add("listing.violation", T0 + days(1), case_id="L1", kind="price_fraud", confirmed=False)
    saved.apply(late, "merchant", POLICY)
    saved.settle(POLICY)
    assert saved.records == {} and saved.archived == []  # the withdrawal came after the record was history
    assert late.seq in saved.cases["src_a|listing.violation|L1"][5]  # kept as evidence of the case


def test_next_change_is_the_earliest_moment_over_every_record() -> None:
    """Every record's moments count, not only the last one's: a minor record ending first is the next change."""
    for order in ((("general", T0), ("minor", T0 + days(10))), (("minor", T0 + days(10)), ("general", T0))):
        log = Log()
        for n, (severity, at) in enumerate(order):
            log.add("penalty.imposed", at, decision_no=f"p{n}", severity=severity)
        credit_file = log.files()[key_of(Subject.model_validate(MERCHANT))]
        assert credit_file.next_change_after(T0 + days(11), POLICY) == T0 + days(100)


def test_next_change_includes_the_day_a_registered_merchant_may_earn_red() -> None:
    log = Log()
    _good_merchant(log)
    credit_file = log.files()[key_of(Subject.model_validate(MERCHANT))]
    assert credit_file.next_change_after(T0, POLICY) == T0 + days(180)
    assert credit_file.status_at(T0 + days(180), POLICY).list == "red"


def test_only_a_published_commitment_counts_for_red_not_any_merchant_event() -> None:
    log = Log()
    log.add("merchant.registered", T0)
    log.add("complaint.resolved", T0, complaint_id="k1", outcome="rejected")
    credit_file = log.files()[key_of(Subject.model_validate(MERCHANT))]
    assert not credit_file.commitment_published
    assert credit_file.status_at(T0 + days(400), POLICY).list == "none"
