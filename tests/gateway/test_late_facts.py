"""Late and out-of-order facts: a credit file is a function of the set of facts, never of their arrival order.

The pure engine here; ``test_late_facts_stored`` runs the same laws through a real gateway on both backends.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import event, fact_time_field, make_ric, make_uscc
from xinyong.events import EVENT_TYPES
from xinyong.subjects import Subject
from xinyong_gateway.credit.engine import CreditFile, LoggedEvent, fact_time, project, subjects_of
from xinyong_gateway.credit.policy import Policy, default_policy, parse_policy

POLICY = default_policy()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MERCHANTS = [{"id_type": "uscc", "id": make_uscc(random.Random(500 + i)), "name": f"商户{i}"} for i in range(3)]
COURIER = {"id_type": "uscc", "id": make_uscc(random.Random(600)), "name": "快递"}
AGENCIES = [{"id_type": "uscc", "id": make_uscc(random.Random(700 + i)), "name": f"中介{i}"} for i in range(2)]
PEOPLE = [{"id_type": "ric", "id": make_ric(random.Random(800 + i)), "name": f"执业者{i}"} for i in range(3)]
_FAR_FUTURE = {"now": datetime(2100, 1, 1, tzinfo=UTC)}


def _small_windows_policy() -> Policy:
    """The default policy with windows small enough for a few dozen facts to fill: a courier's loss rate over 10
    days from 4 deliveries, and two empty parcels within 7 days."""
    text = (resources.files("xinyong_gateway.credit") / "default_policy.toml").read_text(encoding="utf-8")
    text = text.replace('version = "lyg-2026.4"', 'version = "small-windows"')
    text = text.replace(
        'ratio = { of = { status = ["lost", "damaged"] }, at_least = 0.02, min_total = 200 }',
        'ratio = { of = { status = ["lost", "damaged"] }, at_least = 0.5, min_total = 4 }',
    )
    text = text.replace(
        'within = "90d"\n\n[[rule]]\nid = "upheld-complaints"', 'within = "7d"\n\n[[rule]]\nid = "upheld-complaints"'
    )
    text = text.replace(
        'where = { status = "empty_parcel" }\ncount = 3\nwithin = "7d"',
        'where = { status = "empty_parcel" }\ncount = 2\nwithin = "7d"',
    )
    policy = parse_policy(text, source="small-windows")
    assert policy.rules_by_id["courier-loss-rate"].ratio is not None
    assert policy.rules_by_id["courier-loss-rate"].ratio.min_total == 4
    assert policy.rules_by_id["empty-parcels-watch"].count == 2
    return policy


SMALL = _small_windows_policy()


def key_of(subject: Subject) -> str:
    return f"{subject.id_type}:{subject.id}"


class Facts:
    """Events with fixed inbox positions and webhook ids: a set of stored facts to apply in any order."""

    def __init__(self) -> None:
        self.events: list[LoggedEvent] = []
        self._seq = itertools.count(1)

    def add(
        self, event_type: str, at: datetime, *, sent: datetime | None = None, source: str = "src_a", **data: Any
    ) -> LoggedEvent:
        subject_field = "subject" if event_type.startswith(("penalty.", "objection.", "repair.")) else "merchant"
        if event_type == "delivery.recorded":
            data.setdefault("courier", COURIER)
        if not event_type.startswith("intermediary."):  # those name their agency and practitioners themselves
            data.setdefault(subject_field, MERCHANTS[0])
        body = event(event_type, **{fact_time_field(event_type): at.isoformat(), **data})
        body["timestamp"] = (sent or at).isoformat()
        parsed = EVENT_TYPES[event_type].model_validate(body, context=_FAR_FUTURE)
        seq = next(self._seq)
        logged = LoggedEvent(seq, source, f"wh_{seq}", parsed)
        self.events.append(logged)
        return logged


def _fact_order(events: list[LoggedEvent]) -> list[LoggedEvent]:
    """The oracle's order: fact time, then envelope timestamp, then inbox position."""
    return sorted(events, key=lambda e: (fact_time(e.event), e.event.timestamp, e.seq))


def _files(events: list[LoggedEvent], policy: Policy = POLICY) -> dict[str, CreditFile]:
    return project(events, policy, key_of)


def _status(events: list[LoggedEvent], who: dict[str, Any], at: datetime = NOW, policy: Policy = POLICY) -> Any:
    return _files(events, policy)[key_of(Subject.model_validate(who))].status_at(at, policy)


def _days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


# -- the reproductions of the issue -------------------------------------------------------------------------


def test_three_empty_parcels_posted_newest_first_put_the_merchant_on_watch() -> None:
    facts = Facts()
    for n in (10, 11, 12):  # newest first
        facts.add("delivery.recorded", _days_ago(n), waybill_no=f"W{n}", status="empty_parcel")
    status = _status(facts.events, MERCHANTS[0])
    assert status.list == "watch"
    assert [r.code for r in status.reasons] == ["EMPTY_PARCELS"]
    assert status.reasons[0].effective_from == _days_ago(10)  # the fact that completed the window


def test_a_window_completed_entirely_in_the_past_fires_whatever_the_order() -> None:
    facts = Facts()
    for n in (20, 100, 50):  # all inside the 90 days ending 20 days ago
        facts.add("delivery.recorded", _days_ago(n), waybill_no=f"W{n}", status="empty_parcel")
    status = _status(facts.events, MERCHANTS[0])
    assert status.list == "watch"
    assert status.reasons[0].effective_from == _days_ago(20)


def test_a_late_confirmation_older_than_the_withdrawal_changes_nothing() -> None:
    facts = Facts()
    facts.add("listing.violation", _days_ago(3), sent=_days_ago(1), case_id="L1", kind="counterfeit", confirmed=False)
    facts.add("listing.violation", _days_ago(3), sent=_days_ago(2), case_id="L1", kind="counterfeit", confirmed=True)
    status = _status(facts.events, MERCHANTS[0])
    assert status.list == "none"
    assert status.reasons == ()
    in_order = _files(_fact_order(facts.events))
    assert {k: f.to_json() for k, f in _files(facts.events).items()} == {k: f.to_json() for k, f in in_order.items()}
    states = {r.state_at(NOW) for r in next(iter(_files(facts.events).values())).records.values()}
    assert states == {"withdrawn"}  # the case was reported and withdrawn: history, not a standing


def test_a_late_revocation_wins_and_an_older_imposition_arriving_after_it_does_not() -> None:
    facts = Facts()
    facts.add("penalty.revoked", _days_ago(1), decision_no="D-1")
    facts.add("penalty.imposed", _days_ago(5), decision_no="D-1", severity="serious")
    status = _status(facts.events, MERCHANTS[0])
    assert status.list == "none"
    record = next(iter(_files(facts.events)[key_of(Subject.model_validate(MERCHANTS[0]))].records.values()))
    assert record.state_at(NOW) == "revoked"


def test_a_late_fact_can_create_a_record_that_has_already_expired() -> None:
    facts = Facts()
    facts.add("complaint.resolved", _days_ago(1), complaint_id="K-new", outcome="rejected")
    facts.add("complaint.resolved", _days_ago(200), complaint_id="K-old", outcome="upheld")  # minor: 90 days
    credit_file = _files(facts.events)[key_of(Subject.model_validate(MERCHANTS[0]))]
    assert [r.state_at(NOW) for r in credit_file.records.values()] == ["expired"]
    assert credit_file.status_at(NOW, POLICY).list == "none"
    assert credit_file.status_at(_days_ago(150), POLICY).score == 95  # it was in force back then


def test_a_late_withdrawal_takes_away_the_window_record_it_completed() -> None:
    facts = Facts()
    for n, case in ((30, "c1"), (20, "c2"), (10, "c3")):
        facts.add("review.manipulation_detected", _days_ago(n), case_id=case, kind="fake_traffic", confirmed=True)
    assert _status(facts.events, MERCHANTS[0]).list == "black"
    facts.add(
        "review.manipulation_detected",
        _days_ago(20),
        sent=_days_ago(5),
        case_id="c2",
        kind="fake_traffic",
        confirmed=False,
    )
    status = _status(facts.events, MERCHANTS[0])
    assert status.list == "watch"
    assert [r.code for r in status.reasons] == ["MANIPULATION_CONFIRMED", "MANIPULATION_CONFIRMED"]


def test_the_same_facts_imported_sorted_and_shuffled_give_the_same_records() -> None:
    rng = random.Random(2018)
    facts = _history(rng, 400)
    sorted_files = _files(_fact_order(facts.events))
    shuffled = list(facts.events)
    rng.shuffle(shuffled)
    assert _documents(_files(shuffled)) == _documents(sorted_files)
    assert len(sorted_files) == len(MERCHANTS) + 1 + len(AGENCIES) + len(PEOPLE)  # and the courier
    assert sum(len(f.records) for f in sorted_files.values()) > 20


def test_record_ids_are_derived_from_facts_and_rule_never_from_positions() -> None:
    facts = Facts()
    facts.add("listing.violation", _days_ago(3), case_id="L1", kind="counterfeit", confirmed=True)
    ids = {r.record_id for f in _files(facts.events).values() for r in f.records.values()}
    renumbered = [LoggedEvent(e.seq + 1000, e.source_id, e.webhook_id, e.event) for e in facts.events]
    assert {r.record_id for f in _files(renumbered).values() for r in f.records.values()} == ids
    assert all(record_id.startswith("rec_") and len(record_id) == 28 for record_id in ids)
    other = Facts()
    other.add("listing.violation", _days_ago(3), case_id="L2", kind="counterfeit", confirmed=True)
    assert not ids & {r.record_id for f in _files(other.events).values() for r in f.records.values()}


def test_a_ratio_rule_is_judged_on_whole_days_and_starts_at_the_end_of_the_day() -> None:
    facts = Facts()
    day = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)  # 10:00 in China
    for i, status in enumerate(["lost", "lost", "delivered", "lost"]):
        facts.add("delivery.recorded", day + timedelta(hours=i), waybill_no=f"W{i}", status=status)
    credit_file = _files(facts.events, SMALL)[key_of(Subject.model_validate(COURIER))]
    end_of_day = datetime(2026, 5, 10, 16, 0, tzinfo=UTC)  # midnight in China
    assert credit_file.status_at(end_of_day - timedelta(seconds=1), SMALL).list == "none"
    assert credit_file.status_at(end_of_day, SMALL).list == "watch"


# -- the law: any arrival order gives the fact-time-ordered files --------------------------------------------

_KINDS = [
    "listing.violation", "review.manipulation_detected", "delivery.recorded", "delivery.recorded",
    "complaint.resolved", "penalty.imposed", "penalty.revoked", "merchant.registered", "commitment.published",
    "intermediary.declared", "intermediary.practitioner_joined", "intermediary.practitioner_left",
    "intermediary.evaluated", "intermediary.service_evaluated", "intermediary.violation",
]  # fmt: skip


def _intermediary_data(event_type: str, rng: random.Random) -> dict[str, Any]:
    """An intermediary fact about one of two agencies and three practitioners (each with one certificate number),
    with few enough case ids that cases get several versions."""
    agency = rng.choice(AGENCIES)
    index = rng.randrange(len(PEOPLE))
    person, number = PEOPLE[index], f"PR-{index}"
    if event_type == "intermediary.declared":
        listed = rng.sample(range(len(PEOPLE)), rng.randrange(len(PEOPLE) + 1))
        until = (NOW + timedelta(days=rng.randrange(-400, 60))).date().isoformat()
        qualification = {"name": "资质", "certificate_no": f"Q{rng.randrange(3)}", "valid_until": until}
        listing = [{"person": PEOPLE[i], "certificate_no": f"PR-{i}"} for i in listed]
        return {"agency": agency, "practitioners": listing, "qualifications": [qualification]}
    if event_type in ("intermediary.practitioner_joined", "intermediary.practitioner_left"):
        return {"agency": agency, "practitioner": person, "certificate_no": number}
    if event_type == "intermediary.evaluated":
        return {"evaluation_id": f"E{rng.randrange(3)}", "subject": rng.choice([agency, person]),
                "grade": rng.choice("ABCD"), "period": rng.choice(["2025", "2026"])}  # fmt: skip
    if event_type == "intermediary.service_evaluated":
        return {"service_id": f"S{rng.randrange(6)}", "agency": agency, "on_time": rng.random() < 0.5,
                "satisfaction": rng.choice(["satisfied", "dissatisfied"])}  # fmt: skip
    return {"case_id": f"V{rng.randrange(3)}", "agency": agency, "confirmed": rng.random() < 0.7,
            "practitioners": [p for p in PEOPLE if rng.random() < 0.4],
            "kind": rng.choice(["false_report", "fee_violation"]),
            "severity": rng.choice(["minor", "general", "serious"])}  # fmt: skip


def _random_data(event_type: str, rng: random.Random) -> dict[str, Any]:
    if event_type == "listing.violation":
        return {"case_id": f"L{rng.randrange(4)}", "kind": rng.choice(["counterfeit", "price_fraud"]),
                "confirmed": rng.random() < 0.7}  # fmt: skip
    if event_type == "review.manipulation_detected":
        return {"case_id": f"M{rng.randrange(8)}", "kind": "fake_order", "order_count": rng.choice([5, 150]),
                "confirmed": rng.random() < 0.8}  # fmt: skip
    if event_type == "delivery.recorded":
        return {"waybill_no": f"W{rng.randrange(10**6)}",
                "status": rng.choice(["empty_parcel", "empty_parcel", "delivered", "lost", "damaged"])}  # fmt: skip
    if event_type == "complaint.resolved":
        return {"complaint_id": f"K{rng.randrange(10)}", "outcome": rng.choice(["upheld", "upheld", "rejected"])}
    if event_type == "penalty.imposed":
        return {"decision_no": f"P{rng.randrange(3)}", "severity": rng.choice(["minor", "general", "serious"])}
    if event_type == "penalty.revoked":
        return {"decision_no": f"P{rng.randrange(3)}"}
    return {}


def _history(rng: random.Random, length: int, *, span_days: int = 370) -> Facts:
    """Random facts over ``span_days`` (inside every horizon of both policies, so nothing is archived): cases
    sent in several versions with envelope timestamps in any order relative to their fact times."""
    facts = Facts()
    for _ in range(length):
        event_type = rng.choice(_KINDS)
        at = NOW - timedelta(days=rng.randrange(span_days), minutes=rng.randrange(1440))
        sent = at + timedelta(minutes=rng.randrange(0, 20 * 1440))
        subject_field = "subject" if event_type.startswith("penalty.") else "merchant"
        if event_type.startswith("intermediary."):
            data = _intermediary_data(event_type, rng)
        else:
            data = {subject_field: rng.choice(MERCHANTS), **_random_data(event_type, rng)}
        facts.add(event_type, at, sent=sent, source=rng.choice(["src_a", "src_b"]), **data)
    return facts


def _documents(files: dict[str, CreditFile], policy: Policy = POLICY) -> dict[str, Any]:
    """What must not depend on arrival order: each file's canonical JSON and its status at a few instants."""
    return {
        key: (
            credit_file.to_json(),
            [credit_file.status_at(NOW - timedelta(days=d), policy) for d in (400, 200, 90, 30, 7, 0)],
            credit_file.next_change_after(NOW, policy),
        )
        for key, credit_file in sorted(files.items())
    }


@settings(max_examples=150)
@given(seed=st.integers(0, 10**9), length=st.integers(1, 80), policy=st.sampled_from([POLICY, SMALL]))
def test_any_arrival_order_gives_the_files_of_fact_time_order(seed: int, length: int, policy: Policy) -> None:
    rng = random.Random(seed)
    facts = _history(rng, length)
    arrival = list(facts.events)
    rng.shuffle(arrival)
    assert _documents(_files(arrival, policy), policy) == _documents(_files(_fact_order(facts.events), policy), policy)


@settings(max_examples=100)
@given(seed=st.integers(0, 10**9), length=st.integers(1, 80), cuts=st.lists(st.integers(0, 80), max_size=4))
def test_arrival_in_batches_through_saved_files_equals_one_pass(seed: int, length: int, cuts: list[int]) -> None:
    """What the projector does: apply a batch, settle, save; load and go on, with facts arriving in any order."""
    rng = random.Random(seed)
    facts = _history(rng, length)
    arrival = list(facts.events)
    rng.shuffle(arrival)
    files: dict[str, CreditFile] = {}
    bounds = sorted({0, len(arrival), *(c % (length + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        part = _files_from(files, arrival[start:end], SMALL)
        files = {k: CreditFile.from_json(f.to_json()) for k, f in part.items()}
    assert _documents(files, SMALL) == _documents(_files(_fact_order(facts.events), SMALL), SMALL)


def _files_from(files: dict[str, CreditFile], events: list[LoggedEvent], policy: Policy) -> dict[str, CreditFile]:
    for logged in events:
        for field_name, subject in subjects_of(logged.event).items():
            key = key_of(subject)
            files.setdefault(key, CreditFile(key)).apply(logged, field_name, policy)
    for credit_file in files.values():
        credit_file.settle(policy)
    return files


def test_the_sdk_reads_reasons_with_and_without_a_record_id() -> None:
    """Feed entries written before record ids existed stay readable (the feed is never rewritten)."""
    from pydantic import ValidationError

    from xinyong.queries import StatusReason

    reason = {
        "code": "LISTING_COUNTERFEIT",
        "list": "black",
        "severity": "serious",
        "source_events": [1],
        "effective_from": "2026-01-01T00:00:00+00:00",
        "effective_until": "2029-01-01T00:00:00+00:00",
    }
    assert StatusReason.model_validate_json(json.dumps(reason)).record_id is None
    with_id = {**reason, "record_id": "rec_" + "0" * 24}
    assert StatusReason.model_validate_json(json.dumps(with_id)).record_id == "rec_" + "0" * 24
    try:
        StatusReason.model_validate_json(json.dumps({**reason, "record_id": "42"}))
    except ValidationError:
        pass
    else:
        raise AssertionError("a malformed record id was accepted")
