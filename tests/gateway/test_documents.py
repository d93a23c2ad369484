"""``credit.documents``: a status as JSON, read back by the one decision rule, and names as they may be shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from xinyong_gateway.credit.documents import decision_of, display_text, status_document
from xinyong_gateway.credit.engine import Reason, Status
from xinyong_gateway.credit.intermediary import IntermediaryStatus, Link, TierStatus

_MEASURE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20)
_MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
_REASONS = st.builds(
    Reason,
    code=st.sampled_from(["LISTING_COUNTERFEIT", "REVIEW_MANIPULATION", "EMPTY_PARCELS"]),
    list=st.sampled_from(["black", "watch", "none"]),
    severity=st.sampled_from(["minor", "general", "serious"]),
    source_seqs=st.lists(st.integers(1, 10**9), max_size=5).map(tuple),
    effective_from=_MOMENTS,
    effective_until=_MOMENTS,
)
_GRADES = st.sampled_from(["A", "B", "C", "D"])
_TIERS = st.builds(
    TierStatus,
    grade=_GRADES,
    measures=st.lists(_MEASURE, max_size=3).map(tuple),
    evaluation=_GRADES | st.none(),
    period=st.sampled_from(["2026", "2026-H1"]) | st.none(),
    evaluator=st.just("市住建局") | st.none(),
    lowered_by=st.sampled_from(["black", "watch"]) | st.none(),
)
_INTERMEDIARIES = st.builds(
    IntermediaryStatus,
    kind=st.sampled_from(["intermediary", "practitioner"]),
    tier=_TIERS | st.none(),
    declared=st.booleans(),
    expired_qualifications=st.integers(0, 3),
    links=st.lists(
        st.builds(Link, other=st.just("x"), name=st.none(), certificate_no=st.just("c"), since=_MOMENTS), max_size=2
    ).map(tuple),
)
STATUSES = st.builds(
    Status,
    list=st.sampled_from(["black", "watch", "red", "none"]),
    grade=st.sampled_from(["A", "B", "C", "D"]),
    score=st.integers(0, 100),
    measures=st.lists(_MEASURE, max_size=5).map(tuple),
    reasons=st.lists(_REASONS, max_size=3).map(tuple),
    disputed=st.booleans(),
    policy_version=st.text(min_size=1, max_size=20),
    as_of=_MOMENTS,
    intermediary=_INTERMEDIARIES | st.none(),
)


@given(STATUSES, STATUSES)
def test_a_stored_document_reads_back_the_decision_of_its_status(status: Status, other: Status) -> None:
    """The projector compares a stored document (JSON text) with a new status: ``decision_of`` of the document is
    ``Status.decision()`` of the status it was made from, and two statuses' documents differ in decision exactly when
    the statuses do."""
    stored = json.loads(json.dumps(status_document(("uscc", "91320706MA1Y2N6Q47", "甲商行"), status)))
    assert decision_of(stored) == status.decision()
    assert (decision_of(stored) == other.decision()) == (status.decision() == other.decision())
    assert list(stored)[-1] == "as_of"  # screening restamps the last member in the stored text


def test_display_text_replaces_every_control_character_and_keeps_the_rest() -> None:
    assert display_text("云购\x00商城\x1b[31m\x7f\x9f") == "云购\ufffd商城\ufffd[31m\ufffd\ufffd"
    assert display_text(None) is None
