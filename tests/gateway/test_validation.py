"""``validation.check_body`` (one-pass validation from the bytes) answers exactly as ``check_event(parse_body(…))``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import encode, event, mutated_event_bodies
from xinyong import problems
from xinyong.events import EVENT_TYPES, SOURCE_KINDS, SourceKind
from xinyong_gateway.errors import EventRejectedError
from xinyong_gateway.validation import check_body, check_event, parse_body

NOW = datetime.now(UTC)


def _answer(check: Any, body: bytes, kind: SourceKind) -> Any:
    """The validated event, or the rejection as the client and the log would see it."""
    try:
        return check(body, kind)
    except EventRejectedError as exc:
        return (exc.problem_type, exc.detail, exc.errors, exc.event_type)


def _both(body: bytes, kind: SourceKind) -> tuple[Any, Any]:
    fast = _answer(lambda raw, k: check_body(raw, k, now=NOW), body, kind)
    slow = _answer(lambda raw, k: check_event(parse_body(raw), k, now=NOW), body, kind)
    return fast, slow


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_catalogue_event_gets_the_same_answer_from_every_kind(kind: SourceKind, event_type: str) -> None:
    fast, slow = _both(encode(event(event_type)), kind)
    assert fast == slow


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", problems.BODY_NOT_JSON),
        (b"\xff\xfe{}", problems.BODY_NOT_JSON),
        (b"[]", problems.SCHEMA_INVALID),
        (b'{"type": 7}', problems.SCHEMA_INVALID),
        (b'{"type": "merchant.vanished"}', problems.UNKNOWN_EVENT_TYPE),
        (b'{"type": "penalty.imposed"}', problems.EVENT_NOT_ALLOWED),  # a marketplace may not; checked before schema
        (b'{"type": "complaint.filed", "data": {}}', problems.SCHEMA_INVALID),
    ],
)
def test_rejections_keep_the_contract_order(body: bytes, problem: str) -> None:
    fast, slow = _both(body, "marketplace")
    assert fast == slow
    assert fast[0] == problem


def test_a_fact_dated_too_far_ahead_is_refused_by_both() -> None:
    body = event("complaint.filed")
    body["data"]["filed_at"] = (NOW + timedelta(minutes=10)).isoformat()
    fast, slow = _both(encode(body), "marketplace")
    assert fast == slow
    assert fast[0] == problems.SCHEMA_INVALID


@given(raw=mutated_event_bodies(), kind=st.sampled_from(SOURCE_KINDS))
def test_mutated_events_get_the_same_answer(raw: bytes, kind: SourceKind) -> None:
    fast, slow = _both(raw, kind)
    assert fast == slow
