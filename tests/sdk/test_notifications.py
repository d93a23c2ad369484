"""``xinyong.NotificationReceiver``: a notification's signature and timestamp, its model, duplicates and gaps.

The notifications here carry change-feed entries as the gateway's ``GET /v1/lists/changes`` answered them (recorded
from a run; ``tests/gateway/test_notifications.py`` takes them from a live gateway on both backends instead)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st

from xinyong import (
    InvalidKeyError,
    InvalidNotificationError,
    ListChange,
    ListChangedNotification,
    MalformedHeadersError,
    NotificationReceiver,
    ReceivedNotification,
    SignatureMismatchError,
    SigningSecret,
    TimestampOutOfToleranceError,
    UnknownNotificationTypeError,
    XinyongError,
    parse_notification,
)
from xinyong.webhooks import signature_headers

NOW = 1_764_942_239
SECRET = SigningSecret.generate()
OLD_SECRET = SigningSecret.generate()

BUSINESS_ENTRY: dict[str, Any] = {
    "cursor": "1",
    "effective_at": "2026-12-05T13:43:59.012033+00:00",
    "subject": {"id_type": "uscc", "id": "91291417QEFLCR639C", "name": "假货旗舰店"},
    "list": "black",
    "grade": "D",
    "score": 45,
    "measures": ["refuse_onboarding", "close_store", "freeze_account", "public_exposure"],
    "reasons": [
        {
            "record_id": "rec_8b95f5ecec78b84faaf5a477",
            "code": "LISTING_COUNTERFEIT",
            "list": "black",
            "severity": "serious",
            "source_events": [1],
            "effective_from": "2026-12-05T13:42:58.984354+00:00",
            "effective_until": "2029-12-04T13:42:58.984354+00:00",
            "disputed": False,
        },
        {
            "record_id": "rec_32c4ef6a717e7f4c6f080149",
            "code": "LISTING_VIOLATION",
            "list": "watch",
            "severity": "general",
            "source_events": [1],
            "effective_from": "2026-12-05T13:42:58.984354+00:00",
            "effective_until": "2027-12-05T13:42:58.984354+00:00",
            "disputed": False,
        },
    ],
    "disputed": False,
    "policy_version": "lyg-2026.4",
    "as_of": "2026-12-05T13:43:59.012033+00:00",
}
PERSON_ENTRY: dict[str, Any] = {
    "cursor": "2",
    "effective_at": "2026-12-05T13:43:59.012033+00:00",
    "subject": {"id_type": "ric", "pseudonym": "ffc8eec6de97cde2c37ea2ac6702cb875b53e17bd97025f5715ecfa18a9cfbfa"},
    "list": "watch",
    "grade": "B",
    "score": 85,
    "measures": ["search_demotion", "increased_inspection", "risk_warning"],
    "reasons": [
        {
            "record_id": "rec_f2e8fe8d8f189a3b5836b9e7",
            "code": "MANIPULATION_CONFIRMED",
            "list": "watch",
            "severity": "general",
            "source_events": [2],
            "effective_from": "2026-12-05T13:42:58.984571+00:00",
            "effective_until": "2027-12-05T13:42:58.984571+00:00",
            "disputed": False,
        }
    ],
    "disputed": False,
    "policy_version": "lyg-2026.4",
    "as_of": "2026-12-05T13:43:59.012033+00:00",
}


def body_of(entry: dict[str, Any] = BUSINESS_ENTRY, *, sequence: int = 1, **envelope: Any) -> bytes:
    document = {"type": "list.changed", "timestamp": "2026-12-05T13:44:00.5+00:00"} | envelope
    document["data"] = entry | {"sequence": sequence}
    return json.dumps(document, ensure_ascii=False).encode()


def signed(body: bytes, webhook_id: str = "msg_1", *, secret: SigningSecret = SECRET, at: int = NOW) -> dict[str, str]:
    return signature_headers(secret, webhook_id, body, timestamp=at)


def fixed_clock(now: float) -> Callable[[], float]:
    return lambda: now


def receiver(*secrets: SigningSecret | str, last_sequence: int = 0, remember: int = 10_000) -> NotificationReceiver:
    return NotificationReceiver(
        secrets or (SECRET,), last_sequence=last_sequence, remember=remember, clock=fixed_clock(NOW)
    )


def deliver(into: NotificationReceiver, sequence: int, webhook_id: str | None = None) -> ReceivedNotification:
    body = body_of(sequence=sequence)
    return into.receive(signed(body, webhook_id or f"msg_{sequence}"), body)


# -- the model -------------------------------------------------------------------------------------------------


def test_a_notification_of_a_black_listed_business_parses_into_the_feed_entry_model() -> None:
    received = receiver().receive(signed(body_of(sequence=7)), body_of(sequence=7))
    notification = received.notification
    assert isinstance(notification, ListChangedNotification)
    assert notification.type == "list.changed"
    assert notification.timestamp == datetime(2026, 12, 5, 13, 44, 0, 500000, tzinfo=UTC)
    change = received.change
    assert (change.sequence, change.cursor, change.list, change.grade, change.score) == (7, "1", "black", "D", 45)
    assert change.subject.id_type == "uscc"
    assert (change.subject.id, change.subject.name) == ("91291417QEFLCR639C", "假货旗舰店")
    assert "close_store" in change.measures
    assert [(reason.record_id, reason.code) for reason in change.reasons] == [
        ("rec_8b95f5ecec78b84faaf5a477", "LISTING_COUNTERFEIT"),
        ("rec_32c4ef6a717e7f4c6f080149", "LISTING_VIOLATION"),
    ]
    assert change.effective_at == datetime(2026, 12, 5, 13, 43, 59, 12033, tzinfo=UTC)
    assert change.disputed is False
    assert received.webhook_id == "msg_1"
    assert received.sequence == 7


def test_a_person_arrives_only_by_the_pseudonym_of_the_subscribing_key() -> None:
    change = parse_notification(body_of(PERSON_ENTRY, sequence=2)).data
    assert change.subject.id_type == "ric"
    assert change.subject.pseudonym == PERSON_ENTRY["subject"]["pseudonym"]
    assert (change.list, change.measures[0]) == ("watch", "search_demotion")


def test_the_data_of_a_notification_is_the_feed_entry_plus_its_sequence_number() -> None:
    change = parse_notification(body_of(sequence=3)).data
    assert isinstance(change, ListChange)
    entry = ListChange.model_validate_json(json.dumps(BUSINESS_ENTRY))
    assert change.model_dump(exclude={"sequence"}) == entry.model_dump()
    assert change.sequence == 3


AT = "2026-12-05T13:44:00Z"


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        ({"type": "list.changed", "timestamp": AT, "data": BUSINESS_ENTRY}, "/data/sequence"),
        ({"type": "list.changed", "timestamp": AT, "data": BUSINESS_ENTRY | {"sequence": 0}}, "/data/sequence"),
        ({"type": "list.changed", "timestamp": AT, "data": BUSINESS_ENTRY | {"sequence": "4"}}, "/data/sequence"),
        ({"type": "list.changed", "timestamp": AT, "data": BUSINESS_ENTRY | {"sequence": 4, "list": 1}}, "/data/list"),
        ({"type": "list.changed", "timestamp": AT, "data": BUSINESS_ENTRY | {"sequence": 4, "k": 1}}, "/data/k"),
        ({"type": "list.changed", "data": BUSINESS_ENTRY | {"sequence": 4}}, "/timestamp"),
        ({"timestamp": AT, "data": BUSINESS_ENTRY | {"sequence": 4}}, "/type"),
        ([1, 2], ""),
    ],
)  # fmt: skip
def test_a_body_that_is_not_a_notification_names_the_field_at_fault(document: Any, pointer: str) -> None:
    body = json.dumps(document, ensure_ascii=False).encode()
    with pytest.raises(InvalidNotificationError) as caught:
        receiver().receive(signed(body), body)
    assert not isinstance(caught.value, UnknownNotificationTypeError)
    assert pointer in [error["pointer"] for error in caught.value.errors]
    assert (pointer or "/") + ":" in str(caught.value)
    assert "假货" not in str(caught.value) and "91291417QEFLCR639C" not in str(caught.value)


def test_a_signed_body_that_is_not_json_is_an_invalid_notification() -> None:
    body = b"close the store"
    with pytest.raises(InvalidNotificationError, match=r"^not a notification: /: "):
        receiver().receive(signed(body), body)


def test_a_type_this_sdk_does_not_know_is_its_own_error_carrying_the_type() -> None:
    body = body_of(type="subscription.paused")
    with pytest.raises(
        UnknownNotificationTypeError, match=r"'subscription\.paused' is not one this SDK knows"
    ) as caught:
        receiver().receive(signed(body), body)
    assert caught.value.type == "subscription.paused"
    assert isinstance(caught.value, InvalidNotificationError) and isinstance(caught.value, XinyongError)


# -- signature and timestamp (the one verifier: xinyong.WebhookVerifier) -----------------------------------------


def test_a_body_changed_after_signing_is_refused() -> None:
    body = body_of()
    tampered = body.replace(b'"black"', b'"white"', 1).replace(b'"white"', b'"watch"', 1)
    with pytest.raises(SignatureMismatchError):
        receiver().receive(signed(body), tampered)


def test_a_message_signed_with_another_secret_is_refused() -> None:
    body = body_of()
    with pytest.raises(SignatureMismatchError, match="no valid signature"):
        receiver().receive(signed(body, secret=SigningSecret.generate()), body)


@pytest.mark.parametrize("skew", [-301, 301, -86_400])
def test_a_timestamp_outside_five_minutes_is_refused(skew: int) -> None:
    body = body_of()
    with pytest.raises(TimestampOutOfToleranceError, match="outside the ±300 s tolerance") as caught:
        receiver().receive(signed(body, at=NOW + skew), body)
    assert (caught.value.timestamp, caught.value.now) == (NOW + skew, NOW)


def test_a_timestamp_at_the_edge_of_the_tolerance_is_accepted() -> None:
    body = body_of()
    assert receiver().receive(signed(body, at=NOW - 300), body).sequence == 1


def test_during_a_rotation_a_message_signed_with_both_secrets_verifies_with_either() -> None:
    body = body_of()
    signature = f"{SECRET.sign('msg_1', NOW, body)} {OLD_SECRET.sign('msg_1', NOW, body)}"
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    for keys in [(SECRET,), (OLD_SECRET,), (OLD_SECRET, SECRET)]:
        assert receiver(*keys).receive(headers, body).webhook_id == "msg_1"


def test_a_receiver_given_the_old_and_new_secret_accepts_a_message_signed_with_only_the_new_one() -> None:
    body = body_of()
    assert receiver(str(OLD_SECRET), str(SECRET)).receive(signed(body), body).sequence == 1


def test_signatures_of_unknown_versions_are_skipped() -> None:
    body = body_of()
    right = SECRET.sign("msg_1", NOW, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": f"v2,Zm9v v1a,YmFy {right}"}
    assert receiver().receive(headers, body).sequence == 1
    headers["webhook-signature"] = "v2," + right.removeprefix("v1,")
    with pytest.raises(SignatureMismatchError):
        receiver().receive(headers, body)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_webhook_header_is_malformed(missing: str) -> None:
    body = body_of()
    headers = {name: value for name, value in signed(body).items() if name != missing}
    with pytest.raises(MalformedHeadersError, match=f"missing {missing} header"):
        receiver().receive(headers, body)


def test_the_signature_is_checked_on_the_raw_bytes_before_anything_is_parsed() -> None:
    body = b"{not json"  # signed with another secret: the signature is what fails, not the JSON
    with pytest.raises(SignatureMismatchError):
        receiver().receive(signed(body, secret=OLD_SECRET), body)
    with pytest.raises(TypeError, match="raw body bytes"):
        receiver().receive(signed(body_of()), json.loads(body_of()))


def test_a_message_signed_by_the_standard_webhooks_reference_library_is_received() -> None:
    body = body_of()
    signature = standardwebhooks.Webhook(str(SECRET)).sign("msg_ref", datetime.fromtimestamp(NOW, UTC), body.decode())
    headers = {"webhook-id": "msg_ref", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    assert receiver().receive(headers, body).change.list == "black"


def test_a_receiver_takes_only_whsec_secrets() -> None:
    with pytest.raises(InvalidKeyError, match="must start with 'whsec_'"):
        NotificationReceiver("whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=")
    with pytest.raises(ValueError, match="give the subscription's secret"):
        NotificationReceiver([])
    with pytest.raises(ValueError, match="last_sequence must not be negative"):
        NotificationReceiver(SECRET, last_sequence=-1)


# -- duplicates -------------------------------------------------------------------------------------------------


def test_a_retry_of_an_acknowledged_message_is_a_duplicate() -> None:
    into = receiver()
    first = deliver(into, 1)
    assert not first.duplicate
    into.acknowledge(first)
    again = deliver(into, 1)
    assert again.duplicate and not again.missed and not again.late


def test_a_retry_of_a_message_whose_processing_failed_is_not_a_duplicate() -> None:
    into = receiver()
    deliver(into, 1)  # never acknowledged: the receiver answered 500, say
    retry = deliver(into, 1)
    assert not retry.duplicate and not retry.missed


def test_a_receiver_remembers_only_the_newest_ids_and_then_calls_an_old_retry_late() -> None:
    into = receiver(remember=2)
    for sequence in (1, 2, 3):
        into.acknowledge(deliver(into, sequence))
    assert deliver(into, 3).duplicate and deliver(into, 2).duplicate
    forgotten = deliver(into, 1)
    assert (forgotten.duplicate, forgotten.late) == (False, True)


# -- gaps -------------------------------------------------------------------------------------------------------


def test_a_jump_in_the_sequence_names_the_missed_numbers() -> None:
    into = receiver()
    into.acknowledge(deliver(into, 1))
    into.acknowledge(deliver(into, 2))
    after_gap = deliver(into, 5)
    assert after_gap.missed == range(3, 5)
    assert not after_gap.late
    into.acknowledge(after_gap)
    assert into.last_sequence == 5
    late = deliver(into, 4)
    assert (late.late, late.duplicate, late.missed) == (True, False, range(0))


def test_a_receiver_with_no_state_sees_the_numbers_before_its_first_message_as_missed() -> None:
    assert deliver(receiver(), 4).missed == range(1, 4)
    assert deliver(receiver(), 1).missed == range(0)


def test_a_receiver_resumes_the_count_from_last_sequence() -> None:
    assert deliver(receiver(last_sequence=41), 42).missed == range(0)
    assert deliver(receiver(last_sequence=41), 44).missed == range(42, 44)


def test_receiving_alone_records_nothing() -> None:
    into = receiver()
    deliver(into, 3)
    assert into.last_sequence == 0
    assert deliver(into, 3).missed == range(1, 3)


@given(
    order=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=40),
    failing=st.sets(st.integers(min_value=0, max_value=39)),
)
def test_whatever_the_order_and_retries_every_number_up_to_the_highest_is_received_or_reported_missed(
    order: Sequence[int], failing: set[int]
) -> None:
    """Deliveries in any order, with retries and failed processing: the numbers a receiver acted on and the numbers
    it was told it missed together cover 1 … the highest it acted on; a duplicate is only ever an acknowledged id."""
    into = receiver()
    acted: set[int] = set()
    reported: set[int] = set()
    acknowledged: set[str] = set()
    for position, sequence in enumerate(order):
        received = deliver(into, sequence)
        assert received.duplicate == (received.webhook_id in acknowledged)
        reported.update(received.missed)
        if received.duplicate or position in failing:
            continue
        acted.add(sequence)
        into.acknowledge(received)
        acknowledged.add(received.webhook_id)
    if acted:
        assert set(range(1, max(acted) + 1)) <= acted | reported
        assert into.last_sequence == max(acted)
