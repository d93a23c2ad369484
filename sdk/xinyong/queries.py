"""Wire models of the query side (docs/wire-contract.md, "Query side"), shared by the gateway and the SDK client.

- ``POST /v1/screenings``: :class:`ScreeningRequest` ``{"subjects": [...]}`` (1 to 1000 subjects) →
  :class:`ScreeningResponse` ``{"results": [...]}``, one :class:`SubjectStatus` per subject in request order.
- ``GET /v1/lists/changes?after=<cursor>&limit=N`` → :class:`ListChangesPage` ``{"changes": [...], "next":
  "<cursor>"}``: each :class:`ListChange` is a full status snapshot, the instant it took effect and its own
  cursor.
- ``GET /v1/objections/{id}`` → :class:`ObjectionCase`, ``GET /v1/repairs/{id}`` → :class:`RepairCase`: the state
  and deadlines of a case that one of the API key's own sources filed.

Personal information never travels in a status: a resident id (RIC) is shown masked (``320102********123X``)
and a person's name masked (``王*``). In the change feed a RIC subject is named only by a **pseudonym**: the hex
HMAC-SHA256 of the normalised number under the lookup secret issued with the API key, so a marketplace can
match the feed against its own merchants offline (:func:`ric_pseudonym`) while the feed never carries a
resident id, masked or not.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from typing import Annotated, Final, Literal

from pydantic import Field

from xinyong.errors import InvalidKeyError
from xinyong.subjects import IdType, Subject, validate_ric
from xinyong.wire import WireModel

__all__ = [
    "CURSOR_PATTERN",
    "LOOKUP_SECRET_PREFIX",
    "MAX_CHANGES_PAGE",
    "MAX_SCREENING_SUBJECTS",
    "FeedRicSubject",
    "FeedSubject",
    "FeedUsccSubject",
    "IntermediaryStanding",
    "ListChange",
    "ListChangesPage",
    "ListName",
    "ObjectionCase",
    "RepairCase",
    "ScreeningRequest",
    "ScreeningResponse",
    "ShownSubject",
    "StatusReason",
    "SubjectStatus",
    "Tier",
    "parse_lookup_secret",
    "ric_pseudonym",
]

MAX_SCREENING_SUBJECTS: Final = 1000
"""Subjects per ``POST /v1/screenings`` (the SDK's ``Client.screen`` splits longer lists)."""
MAX_CHANGES_PAGE: Final = 1000
"""Largest ``limit`` of one change-feed page (the default is 100)."""
CURSOR_PATTERN: Final = r"^[0-9]{1,18}$"
"""What a change-feed cursor looks like today. Treat cursors as opaque strings: store and send them back."""
LOOKUP_SECRET_PREFIX: Final = "xyls_"  # noqa: S105 -- a prefix, not a secret

ListName = Literal["black", "watch", "red", "none"]
Grade = Literal["A", "B", "C", "D"]
Severity = Literal["minor", "general", "serious"]
# Status documents have a member named ``list``; inside those classes the name no longer means the builtin.
_Ints = list[int]
_Strs = list[str]


class ScreeningRequest(WireModel):
    """``POST /v1/screenings``: the subjects to screen, each validated as in events (USCC / RIC checks)."""

    subjects: list[Subject] = Field(
        min_length=1,
        max_length=MAX_SCREENING_SUBJECTS,
        description=f"1 to {MAX_SCREENING_SUBJECTS} subjects; results come back in this order.",
    )


class ShownSubject(WireModel):
    """A subject as a status may show it: a USCC and a company's name in full, a RIC and a person's name masked."""

    id_type: IdType
    id: str = Field(description="A USCC in full; a RIC masked (`320102********123X`).")
    name: str | None = Field(description="The latest registered name; a natural person's name masked (`王*`).")


class StatusReason(WireModel):
    """Why a subject is where it is: one effective credit record."""

    record_id: str | None = Field(
        default=None,
        pattern="^rec_[0-9a-f]{24}$",
        description=(
            "The record's id: derived from the subject, the policy rule and the facts behind it (never from arrival "
            "order), so the same facts give the same id on every replay; an objection cites it. Always present in "
            "answers; absent only from change-feed entries written before record ids existed (the feed is never "
            "rewritten)."
        ),
    )
    code: str = Field(description="Reason code of the policy rule, e.g. `LISTING_COUNTERFEIT`.")
    list: ListName = Field(description="The list the record puts the subject on (`none`: it only lowers the score).")
    severity: Severity
    source_events: _Ints = Field(description="Inbox positions of the events behind the record.")
    effective_from: datetime
    effective_until: datetime
    disputed: bool = Field(
        default=False, description="Whether an objection against this record is open (absent from older entries)."
    )


_Reasons = list[StatusReason]


class Tier(WireModel):
    """An intermediary's supervision tier (分级分类监管): the latest periodic evaluation's grade, lowered by a list."""

    grade: Grade = Field(description="A (best) to D: the evaluation's grade, or the list's when that is worse.")
    measures: _Strs = Field(description="The policy's measures for the tier (`green_channel`, `practice_ban` …).")
    evaluation: Grade | None = Field(description="The grade of the latest periodic evaluation; null: never evaluated.")
    period: str | None = Field(description="The period that evaluation covers (`2026`, `2026-H1` …).")
    lowered_by: ListName | None = Field(description="The list that lowered the tier below the evaluation, if any.")


class IntermediaryStanding(WireModel):
    """What a status adds for an intermediary agency or one of its practitioners."""

    kind: Literal["intermediary", "practitioner"] = Field(
        description="`intermediary`: an agency (USCC); `practitioner`: a person practising at agencies (RIC)."
    )
    tier: Tier | None = Field(description="The supervision tier; null when neither evaluated nor listed.")
    declared: bool = Field(description="Whether the agency has declared its information (agencies only).")
    expired_qualifications: int = Field(description="Declared qualifications past their last valid day.")
    practitioners: int = Field(description="An agency's current practitioners (0 for a practitioner).")
    agencies: int = Field(description="The agencies a practitioner currently practises at (0 for an agency).")


class _Standing(WireModel):
    """The decision part of a status, shared by screening results and change-feed entries."""

    list: ListName = Field(description="`black` before `watch` before `red`; `none` when on no list.")
    grade: Grade | None = Field(description="A to D (black is always D); null when nothing was ever reported.")
    score: int | None = Field(description="100 minus the weights of effective records; null when never reported.")
    measures: _Strs = Field(description="What platforms apply, from the policy (e.g. `refuse_onboarding`).")
    reasons: _Reasons
    disputed: bool = Field(description="Whether an objection against one of the reasons is open.")
    policy_version: str = Field(description="The credit policy the status was computed under.")
    as_of: datetime = Field(description="When the status was computed.")
    intermediary: IntermediaryStanding | None = Field(
        default=None, description="For an intermediary agency or practitioner: kind and tier; absent otherwise."
    )


class SubjectStatus(_Standing):
    """One screening result: the subject as it may be shown, and its status now."""

    subject: ShownSubject


class ScreeningResponse(WireModel):
    """``POST /v1/screenings`` 200: one result per requested subject, in request order."""

    results: list[SubjectStatus]


class FeedUsccSubject(WireModel):
    """A business or organisation in the change feed: by its code (public registration data)."""

    id_type: Literal["uscc"]
    id: str
    name: str | None


class FeedRicSubject(WireModel):
    """A natural person in the change feed: only a pseudonym (see :func:`ric_pseudonym`), never the number or name."""

    id_type: Literal["ric"]
    pseudonym: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="Hex HMAC-SHA256 of the normalised RIC under the lookup secret issued with the API key.",
    )


FeedSubject = Annotated[FeedUsccSubject | FeedRicSubject, Field(discriminator="id_type")]


class ListChange(_Standing):
    """One change-feed entry: a full status snapshot after a change of list, grade or measures."""

    cursor: str = Field(description="Opaque; `after=<cursor>` continues right after this entry.")
    effective_at: datetime = Field(description="The instant the change took effect.")
    subject: FeedSubject


class ListChangesPage(WireModel):
    """``GET /v1/lists/changes`` 200: entries in feed order, and the cursor to ask for the next page with."""

    changes: list[ListChange]
    next: str = Field(description="Pass as `after` to continue; the same cursor again when the page is empty.")


class _Case(WireModel):
    """What an objection and a repair application have in common (``GET /v1/objections/{id}``,
    ``GET /v1/repairs/{id}``)."""

    subject: FeedSubject = Field(description="As in the change feed: a USCC by code, a person by pseudonym.")
    record_id: str | None = Field(description="The record it cites; null for a ruling that was never filed.")
    filed_by: str | None = Field(description="The source whose filing is current (one of the API key's sources).")
    reason: str | None = Field(description="Why it is invalid or was refused at once, in one line.")
    decided_at: datetime | None
    published_at: datetime | None = Field(
        description="When the outcome that ended the record (a correction, a repair) reached the change feed."
    )
    anomalies: int = Field(description="Rulings that do not stand (a second ruling, or one dated before filing).")
    as_of: datetime = Field(description="When the state and deadlines were computed.")


class ObjectionCase(_Case):
    """``GET /v1/objections/{objection_id}`` 200: an objection one of the key's sources filed, and its deadlines
    (each the date of its last day, China Standard Time)."""

    objection_id: str
    state: Literal["open", "upheld", "rejected", "invalid", "unfiled"]
    filed_at: datetime | None
    reply_due: date | None = Field(description="The authority answers by the end of this day (30 days).")
    outcome: Literal["upheld", "rejected"] | None
    publish_due: date | None = Field(description="Upheld: the correction is published by then (3 working days).")
    feedback_due: date | None = Field(description="Rejected: the result is fed back by then (7 working days).")
    overdue: bool = Field(description="Whether the reply is (or was) later than `reply_due`.")


class RepairCase(_Case):
    """``GET /v1/repairs/{repair_id}`` 200: a credit-repair application one of the key's sources filed."""

    repair_id: str
    state: Literal["pending", "granted", "refused", "invalid", "unfiled"]
    applied_at: datetime | None
    possible_from: datetime | None = Field(description="When the record's minimum publicity ends.")
    outcome: Literal["granted", "refused"] | None


def parse_lookup_secret(secret: str) -> bytes:
    """The 32 key bytes of a lookup secret (``xyls_`` and 64 hex digits), as issued with an API key."""
    text = secret.strip()
    if not text.startswith(LOOKUP_SECRET_PREFIX):
        raise InvalidKeyError("A lookup secret starts with xyls_.")
    try:
        key = bytes.fromhex(text.removeprefix(LOOKUP_SECRET_PREFIX))
    except ValueError:
        raise InvalidKeyError("A lookup secret is xyls_ followed by 64 hex digits.") from None
    if len(key) != 32:
        raise InvalidKeyError("A lookup secret is xyls_ followed by 64 hex digits.")
    return key


def ric_pseudonym(ric: str, lookup_secret: str | bytes) -> str:
    """The pseudonym under which the change feed names the person with this RIC, for this API key.

    ``lookup_secret`` is the ``xyls_…`` secret printed with the API key (or its 32 key bytes). The number is
    normalised and validated first (:class:`~xinyong.errors.InvalidIdentifierError` otherwise).
    """
    key = lookup_secret if isinstance(lookup_secret, bytes) else parse_lookup_secret(lookup_secret)
    return hmac.new(key, validate_ric(ric).encode(), hashlib.sha256).hexdigest()
