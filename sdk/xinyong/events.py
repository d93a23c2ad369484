"""Wire models of the inbound events (docs/wire-contract.md, "Event catalogue").

Every event is an envelope ``{"type": "...", "timestamp": "<RFC 3339>", "data": {...}}``. The models
are strict evidence: unknown fields are rejected (a typo such as ``"confirmd"`` is a 422 with a
pointer, never a silently unconfirmed report), numbers and booleans are not coerced from strings,
and every time carries an offset and lies at most :data:`FUTURE_SKEW` after "now".

"now" comes from the validation context (``{"now": datetime}``), so the gateway and tests control the
clock; without one, the current UTC time is used::

    event = parse_event(body, now=received_at)
    MerchantRegistered.model_validate_json(body, context={"now": received_at})

Senders serialise with ``event.model_dump_json(exclude_none=True)``; the result parses back to an
equal event. A later event from the same source with the same ``case_id`` (or ``complaint_id``,
``decision_no``) supersedes the earlier one: that is how a report is confirmed, corrected or
withdrawn (``confirmed: false``).

Validation errors are turned into JSON Pointers into the body by :func:`error_pointers`, whose
details never contain input values (an identifier may be personal information).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, cast, get_args

from pydantic import (
    AfterValidator,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import CoreSchema
from pydantic_core.core_schema import TaggedUnionSchema

from xinyong._event_base import (
    FUTURE_SKEW,
    MAX_COUNT,
    EventBase,
    Identifier,
    Severity,
    Text,
    Timestamp,
    unique_items,
)
from xinyong.intermediaries import (
    AgencyDeclared,
    AgencyEvaluated,
    IntermediaryViolation,
    PractitionerJoined,
    PractitionerLeft,
    ServiceEvaluated,
)
from xinyong.subjects import Subject
from xinyong.wire import WIRE_CONFIG, WireModel

__all__ = [
    "ALLOWED_EVENT_TYPES",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "FUTURE_SKEW",
    "OWN_SUBJECT_FIELDS",
    "SOURCE_KINDS",
    "CommitmentBreached",
    "CommitmentBreachedData",
    "CommitmentPublished",
    "CommitmentPublishedData",
    "ComplaintCategory",
    "ComplaintChannel",
    "ComplaintFiled",
    "ComplaintFiledData",
    "ComplaintOutcome",
    "ComplaintResolved",
    "ComplaintResolvedData",
    "DeliveryRecorded",
    "DeliveryRecordedData",
    "DeliveryStatus",
    "Event",
    "EventBase",
    "Identifier",
    "ListingViolation",
    "ListingViolationData",
    "ListingViolationKind",
    "ManipulationKind",
    "MerchantRegistered",
    "MerchantRegisteredData",
    "ObjectionDecided",
    "ObjectionDecidedData",
    "ObjectionFiled",
    "ObjectionFiledData",
    "ObjectionOutcome",
    "PenaltyImposed",
    "PenaltyImposedData",
    "PenaltyRevoked",
    "PenaltyRevokedData",
    "RecordId",
    "RepairApplied",
    "RepairAppliedData",
    "RepairDecided",
    "RepairDecidedData",
    "RepairOutcome",
    "ReviewManipulationDetected",
    "ReviewManipulationDetectedData",
    "Severity",
    "SourceKind",
    "Text",
    "Timestamp",
    "Verification",
    "error_pointers",
    "own_subject_of",
    "parse_event",
    "type_suggestion",
]


Verification = Literal["id_card", "business_license", "digital_certificate", "face_match"]
ManipulationKind = Literal["fake_order", "malicious_review", "fake_traffic", "review_cashback"]
ComplaintCategory = Literal[
    "counterfeit", "misdescription", "price_fraud", "quality", "service_default", "delivery", "privacy", "other"
]
ComplaintChannel = Literal["platform", "12315", "12345", "12312", "12318", "12331", "12358", "12365"]
ComplaintOutcome = Literal["upheld", "rejected", "settled", "compensated_in_advance"]
ListingViolationKind = Literal["counterfeit", "prohibited_goods", "false_advertising", "ip_infringement", "price_fraud"]
DeliveryStatus = Literal["delivered", "lost", "damaged", "delayed", "returned", "empty_parcel"]
ObjectionOutcome = Literal["upheld", "rejected"]
RepairOutcome = Literal["granted", "refused"]
#: A credit record's id as statuses show it (``reasons[].record_id``): derived from the facts, stable across replays.
RecordId = Annotated[
    str, StringConstraints(pattern=r"^rec_[0-9a-f]{24}$"), Field(description="A record id, `rec_` and 24 hex digits.")
]


class MerchantRegisteredData(WireModel):
    """Data of ``merchant.registered``."""

    merchant: Subject
    shop_id: Identifier
    shop_name: Text
    verification: Annotated[
        list[Verification],
        Field(min_length=1, json_schema_extra={"uniqueItems": True}),
        AfterValidator(unique_items),
    ] = Field(description="How the operator's real name was verified (at least one method, each once).")
    registered_at: Timestamp


class ReviewManipulationDetectedData(WireModel):
    """Data of ``review.manipulation_detected``."""

    case_id: Identifier
    merchant: Subject
    kind: ManipulationKind
    order_count: Annotated[int, Field(ge=0, le=MAX_COUNT)] = Field(description="Number of orders or reviews involved.")
    confirmed: bool = Field(
        description="Whether the platform has confirmed the manipulation; false reports or withdraws a suspicion."
    )
    detected_at: Timestamp


class ComplaintFiledData(WireModel):
    """Data of ``complaint.filed``."""

    complaint_id: Identifier
    merchant: Subject
    category: ComplaintCategory
    channel: ComplaintChannel = Field(
        description="`platform`, or the government hotline the complaint came through (12315 …)."
    )
    filed_at: Timestamp


class ComplaintResolvedData(WireModel):
    """Data of ``complaint.resolved``."""

    complaint_id: Identifier
    merchant: Subject
    outcome: ComplaintOutcome
    resolved_at: Timestamp


class CommitmentPublishedData(WireModel):
    """Data of ``commitment.published``."""

    merchant: Subject
    commitment_id: Identifier
    items: Annotated[list[Text], Field(min_length=1)] = Field(description="The promises made (at least one).")
    published_at: Timestamp


class CommitmentBreachedData(WireModel):
    """Data of ``commitment.breached``."""

    merchant: Subject
    commitment_id: Identifier
    severity: Severity
    found_at: Timestamp


class ListingViolationData(WireModel):
    """Data of ``listing.violation``."""

    case_id: Identifier
    merchant: Subject
    listing_id: Identifier
    kind: ListingViolationKind
    confirmed: bool = Field(description="Whether the violation is confirmed; false reports or withdraws a suspicion.")
    found_at: Timestamp


class DeliveryRecordedData(WireModel):
    """Data of ``delivery.recorded``."""

    waybill_no: Identifier
    courier: Subject
    merchant: Subject | None = Field(default=None, description="The shipping merchant, when known.")
    status: DeliveryStatus
    occurred_at: Timestamp


class PenaltyImposedData(WireModel):
    """Data of ``penalty.imposed``."""

    decision_no: Identifier
    subject: Subject
    authority: Text
    severity: Severity
    violation: Text
    decided_at: Timestamp


class PenaltyRevokedData(WireModel):
    """Data of ``penalty.revoked``."""

    decision_no: Identifier
    subject: Subject
    revoked_at: Timestamp
    reason: Text


class ObjectionFiledData(WireModel):
    """Data of ``objection.filed``."""

    objection_id: Identifier
    subject: Subject
    record_id: RecordId
    grounds: Text = Field(description="Why the record or the information behind it is contested.")
    filed_at: Timestamp


class ObjectionDecidedData(WireModel):
    """Data of ``objection.decided``."""

    objection_id: Identifier
    subject: Subject = Field(description="The subject of the objection ruled on (routes the ruling to its file).")
    outcome: ObjectionOutcome
    note: Text
    decided_at: Timestamp


class RepairAppliedData(WireModel):
    """Data of ``repair.applied``."""

    repair_id: Identifier
    subject: Subject
    record_id: RecordId
    grounds: Text = Field(description="How the subject corrected its behaviour.")
    applied_at: Timestamp


class RepairDecidedData(WireModel):
    """Data of ``repair.decided``."""

    repair_id: Identifier
    subject: Subject = Field(description="The subject of the repair ruled on (routes the ruling to its file).")
    outcome: RepairOutcome
    note: Text
    decided_at: Timestamp


class MerchantRegistered(EventBase):
    """A shop operator was registered under their real name.

    Sent by a marketplace. Each registration is a fact of its own: no later event supersedes it.
    """

    type: Literal["merchant.registered"]
    data: MerchantRegisteredData


class ReviewManipulationDetected(EventBase):
    """Fake orders (brushing), malicious reviews, fake traffic or review cash-back were found.

    Sent by a marketplace. A later one from the same source with the same ``case_id`` supersedes it:
    that is how a suspicion is confirmed (``confirmed: true``), corrected or withdrawn.
    """

    type: Literal["review.manipulation_detected"]
    data: ReviewManipulationDetectedData


class ComplaintFiled(EventBase):
    """A consumer complaint against a merchant was filed.

    Sent by a marketplace or a regulator (hotline complaints). A later ``complaint.filed`` from the same
    source with the same ``complaint_id`` supersedes it; a ``complaint.resolved`` with that
    ``complaint_id`` closes it.
    """

    type: Literal["complaint.filed"]
    data: ComplaintFiledData


class ComplaintResolved(EventBase):
    """A complaint was resolved.

    Sent by a marketplace or a regulator. It closes the ``complaint.filed`` with the same
    ``complaint_id`` from the same source; a later ``complaint.resolved`` with that ``complaint_id``
    supersedes it.
    """

    type: Literal["complaint.resolved"]
    data: ComplaintResolvedData


class CommitmentPublished(EventBase):
    """A merchant published an integrity commitment (e.g. "genuine goods", "7-day returns").

    Sent by a marketplace. Each publication is a fact of its own: no later event supersedes it.
    """

    type: Literal["commitment.published"]
    data: CommitmentPublishedData


class CommitmentBreached(EventBase):
    """A merchant broke a published commitment.

    Sent by a marketplace or a regulator. Each breach is a fact of its own: no later event supersedes it.
    """

    type: Literal["commitment.breached"]
    data: CommitmentBreachedData


class ListingViolation(EventBase):
    """A listing broke the rules (counterfeit, prohibited goods, false advertising …).

    Sent by a marketplace. A later one from the same source with the same ``case_id`` supersedes it:
    that is how a suspicion is confirmed (``confirmed: true``), corrected or withdrawn.
    """

    type: Literal["listing.violation"]
    data: ListingViolationData


class DeliveryRecorded(EventBase):
    """A delivery outcome, including lost, damaged and empty parcels (shipped to fake a sale).

    Sent by a courier. Each record is a fact of its own: no later event supersedes it.
    """

    type: Literal["delivery.recorded"]
    data: DeliveryRecordedData


class PenaltyImposed(EventBase):
    """An administrative penalty decision.

    Sent by a regulator. A later ``penalty.imposed`` from the same source with the same ``decision_no``
    supersedes it; a ``penalty.revoked`` with that ``decision_no`` revokes it.
    """

    type: Literal["penalty.imposed"]
    data: PenaltyImposedData


class PenaltyRevoked(EventBase):
    """A penalty decision was revoked (e.g. overturned on review).

    Sent by a regulator. It revokes the ``penalty.imposed`` with the same ``decision_no`` from the same
    source.
    """

    type: Literal["penalty.revoked"]
    data: PenaltyRevokedData


class ObjectionFiled(EventBase):
    """A subject objects to a credit record or the information behind it (it cites the record's ``record_id``).

    Sent by a marketplace or a regulator on the subject's behalf. A later one from the same source with the same
    ``objection_id`` corrects it. While it is open the record and the subject's status say ``disputed``.
    """

    type: Literal["objection.filed"]
    data: ObjectionFiledData


class ObjectionDecided(EventBase):
    """The authority's ruling on an objection: ``upheld`` ends the record (state ``corrected``), ``rejected``
    leaves it standing. Sent by a regulator. The first ruling stands; a further one is kept as an anomaly."""

    type: Literal["objection.decided"]
    data: ObjectionDecidedData


class RepairApplied(EventBase):
    """A subject applies for credit repair of a record whose minimum publicity has passed.

    Sent by a marketplace or a regulator on the subject's behalf. An application that comes too early is refused
    at once, with the date it becomes possible."""

    type: Literal["repair.applied"]
    data: RepairAppliedData


class RepairDecided(EventBase):
    """The ruling on a repair application: ``granted`` ends the record (state ``repaired``), ``refused`` leaves it.
    Sent by a regulator. The first ruling stands; a further one is kept as an anomaly."""

    type: Literal["repair.decided"]
    data: RepairDecidedData


def _type_of(model: type[EventBase]) -> str:
    (tag,) = get_args(model.model_fields["type"].annotation)
    return str(tag)


#: Event type string → model, in catalogue order.
EVENT_TYPES: Final[Mapping[str, type[EventBase]]] = MappingProxyType(
    {
        _type_of(model): model
        for model in (
            MerchantRegistered,
            ReviewManipulationDetected,
            ComplaintFiled,
            ComplaintResolved,
            CommitmentPublished,
            CommitmentBreached,
            ListingViolation,
            DeliveryRecorded,
            PenaltyImposed,
            PenaltyRevoked,
            ObjectionFiled,
            ObjectionDecided,
            RepairApplied,
            RepairDecided,
            AgencyDeclared,
            PractitionerJoined,
            PractitionerLeft,
            AgencyEvaluated,
            ServiceEvaluated,
            IntermediaryViolation,
        )
    }
)

_UNKNOWN_EVENT_TYPE: Final = "unknown_event_type"


class _UnknownEventTypeError:
    """Replaces pydantic's errors for a missing or unknown ``type`` with one that does not echo it.

    pydantic's ``union_tag_invalid`` message repeats the tag that was sent, and ``str(exc)`` may end
    up in a log; ``Discriminator(custom_error_*)`` is only honoured for callable discriminators, which
    would convert the whole JSON body to Python objects before validating it.
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        if schema["type"] != "tagged-union":  # pragma: no cover - guards against a pydantic change
            raise TypeError(f"expected a tagged union, got a {schema['type']} schema")
        tagged = cast(TaggedUnionSchema, schema)
        tagged["custom_error_type"] = _UNKNOWN_EVENT_TYPE
        tagged["custom_error_message"] = "Input should be one of the event types " + ", ".join(
            f"'{event_type}'" for event_type in EVENT_TYPES
        )
        return tagged


#: Any event of the catalogue, told apart by ``type``. A missing or unknown ``type`` is one error,
#: ``unknown_event_type``, whose message lists the known types and does not repeat the value sent.
Event = Annotated[
    MerchantRegistered
    | ReviewManipulationDetected
    | ComplaintFiled
    | ComplaintResolved
    | CommitmentPublished
    | CommitmentBreached
    | ListingViolation
    | DeliveryRecorded
    | PenaltyImposed
    | PenaltyRevoked
    | ObjectionFiled
    | ObjectionDecided
    | RepairApplied
    | RepairDecided
    | AgencyDeclared
    | PractitionerJoined
    | PractitionerLeft
    | AgencyEvaluated
    | ServiceEvaluated
    | IntermediaryViolation,
    Field(discriminator="type"),
    _UnknownEventTypeError(),
]

#: Validates any event (``validate_json`` on the raw body); its errors hide the input too.
EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event, config=WIRE_CONFIG)


def type_suggestion(event_type: object) -> str | None:
    """``Did you mean 'delivery.recorded'?`` for a ``type`` that is not in the catalogue but close to one type of it
    (a typo, a wrong case, a missing part); None when nothing is close. It names a catalogue type, never repeats
    what was sent."""
    if not isinstance(event_type, str) or event_type in EVENT_TYPES or len(event_type) > 100:
        return None
    folded = {name.lower(): name for name in EVENT_TYPES}
    given = event_type.strip().lower()
    if given in folded:
        return f"Did you mean '{folded[given]}'?"
    family = [name for name in folded if given and name.startswith(given.rstrip(".") + ".")]  # "delivery"
    if len(family) > 1:  # "complaint": filed or resolved? No guess.
        return None
    close = family or difflib.get_close_matches(given, list(folded), n=1, cutoff=0.75)
    return f"Did you mean '{folded[close[0]]}'?" if close else None


SourceKind = Literal["marketplace", "courier", "regulator", "intermediary"]
SOURCE_KINDS: Final[tuple[SourceKind, ...]] = get_args(SourceKind)

#: Which event types each kind of source may send (anything else is answered with 403).
ALLOWED_EVENT_TYPES: Final[Mapping[SourceKind, frozenset[str]]] = MappingProxyType(
    {
        "marketplace": frozenset(
            {
                "merchant.registered",
                "review.manipulation_detected",
                "complaint.filed",
                "complaint.resolved",
                "commitment.published",
                "commitment.breached",
                "listing.violation",
                "objection.filed",
                "repair.applied",
            }
        ),
        "courier": frozenset({"delivery.recorded"}),
        "regulator": frozenset(
            {
                "complaint.filed",
                "complaint.resolved",
                "commitment.breached",
                "penalty.imposed",
                "penalty.revoked",
                "objection.filed",
                "objection.decided",
                "repair.applied",
                "repair.decided",
                "intermediary.practitioner_joined",
                "intermediary.practitioner_left",
                "intermediary.evaluated",
                "intermediary.service_evaluated",
                "intermediary.violation",
            }
        ),
        # An agency posts about itself only: the gateway answers 403 when the agency (or, for an objection or a
        # repair application, the subject) is not the USCC the source was registered with (OWN_SUBJECT_FIELDS).
        "intermediary": frozenset(
            {
                "intermediary.declared",
                "intermediary.practitioner_joined",
                "intermediary.practitioner_left",
                "objection.filed",
                "repair.applied",
            }
        ),
    }
)

#: Kinds of source that may only post about themselves, and the field naming the subject each type is about: the
#: subject must be the USCC the source was registered with (``sources add --uscc``), else 403 ``subject-not-own``.
OWN_SUBJECT_FIELDS: Final[Mapping[SourceKind, Mapping[str, str]]] = MappingProxyType(
    {
        "intermediary": MappingProxyType(
            {
                "intermediary.declared": "agency",
                "intermediary.practitioner_joined": "agency",
                "intermediary.practitioner_left": "agency",
                "objection.filed": "subject",
                "repair.applied": "subject",
            }
        )
    }
)


def own_subject_of(event: EventBase, kind: SourceKind) -> Subject | None:
    """The subject an event of a self-posting kind of source (``intermediary``) must be about itself, or None when
    the kind may post about anyone."""
    field = OWN_SUBJECT_FIELDS.get(kind, {}).get(event.type)
    if field is None:
        return None
    subject = getattr(event.data, field)
    return subject if isinstance(subject, Subject) else None


def parse_event(body: bytes | str, *, now: datetime | None = None) -> Event:
    """Validate a raw JSON body as an event of the catalogue.

    ``now`` (timezone-aware; default: the current time) bounds how far in the future the event's
    times may lie.

    :raises pydantic.ValidationError: turn it into a 422 with :func:`error_pointers`.
    """
    if now is None:
        return EVENT_ADAPTER.validate_json(body)
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return EVENT_ADAPTER.validate_json(body, context={"now": now})


def _json_pointer(loc: tuple[int | str, ...]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


# Messages in the words of JSON whether the body was validated as JSON or as the Python objects parsed
# from it (which is how the gateway validates: it parses once), where pydantic's wording differs.
_JSON_WORDING: Final = {
    "extra_forbidden": "unknown field",
    "model_type": "Input should be an object",
    "list_type": "Input should be a valid array",
}


def error_pointers(exc: ValidationError) -> list[dict[str, str]]:
    """The errors of an event validation as ``[{"pointer": "/data/merchant/id", "detail": "..."}]``.

    Pointers are RFC 6901 JSON Pointers into the body, whether the event was validated through
    :data:`EVENT_ADAPTER` (whose locations start with the type tag, dropped here) or through one
    event model. A detail is pydantic's message only, never the input or its context: a value may
    be a resident identity number.
    """
    pointers: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = error["loc"]
        kind = error["type"]
        if len(loc) >= 2 and loc[0] in EVENT_TYPES:
            loc = loc[1:]
        if kind == _UNKNOWN_EVENT_TYPE:
            loc = ("type",)
        detail = _JSON_WORDING.get(kind, error["msg"])
        pointers.append({"pointer": _json_pointer(loc), "detail": detail})
    return pointers
