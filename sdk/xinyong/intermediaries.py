"""Wire models of the intermediaries' events (涉审中介机构, docs/wire-contract.md, "Intermediaries").

Agencies that do paid technical work inside administrative approvals (design and consulting; appraisal, testing and
inspection; surveying, certification and notary; assessment; accounting and audit; tendering agents) and their
practitioners get credit files on the same engine as merchants: one per agency (a USCC), one per practitioner (a
RIC), 一企一档 一人一档.

- ``intermediary.declared`` — an agency's voluntary declaration about **itself** (service categories, qualifications
  with certificate numbers and expiry, practitioners, and a truthfulness commitment). Only an ``intermediary``
  source sends it, and only about the USCC it was registered with (anything else is a 403).
- ``intermediary.practitioner_joined`` / ``intermediary.practitioner_left`` — a practitioner (by RIC, with the
  practising certificate number) starts or stops practising at an agency; sent by the agency itself or a regulator.
- ``intermediary.evaluated`` — a periodic credit evaluation by an industry regulator (period, grade, evaluator).
- ``intermediary.service_evaluated`` — an approval department's evaluation of one service (on time or late,
  satisfaction, findings).
- ``intermediary.violation`` — a violation (false report or certificate, fee violation …) with its severity, the
  agency and the practitioners involved, and the decision number; a later one from the same source with the same
  ``case_id`` supersedes it (``confirmed: false`` withdraws it), as for other cases.

The catalogue (:data:`xinyong.events.EVENT_TYPES`) and the kinds allowed to send each type
(:data:`xinyong.events.ALLOWED_EVENT_TYPES`) include these.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

from xinyong._event_base import EventBase, Identifier, Severity, Text, Timestamp, unique_items
from xinyong.subjects import Subject
from xinyong.wire import WireModel

__all__ = [
    "SERVICE_CATEGORIES",
    "AgencyDeclared",
    "AgencyDeclaredData",
    "AgencyEvaluated",
    "AgencyEvaluatedData",
    "CalendarDay",
    "DeclaredPractitioner",
    "EvaluationGrade",
    "IntermediaryViolation",
    "IntermediaryViolationData",
    "PractitionerJoined",
    "PractitionerJoinedData",
    "PractitionerLeft",
    "PractitionerLeftData",
    "Qualification",
    "Satisfaction",
    "ServiceCategory",
    "ServiceEvaluated",
    "ServiceEvaluatedData",
    "TruthfulnessCommitment",
    "ViolationKind",
]

ServiceCategory = Literal[
    "design_consulting",
    "appraisal_testing_inspection",
    "surveying_certification_notary",
    "assessment",
    "accounting_audit",
    "tendering_agency",
]
#: The six service categories of the city's measures, in their order.
SERVICE_CATEGORIES: Final = (
    "design_consulting",
    "appraisal_testing_inspection",
    "surveying_certification_notary",
    "assessment",
    "accounting_audit",
    "tendering_agency",
)
EvaluationGrade = Literal["A", "B", "C", "D"]
Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]
ViolationKind = Literal[
    "false_report", "false_certificate", "fee_violation", "unqualified_practice", "service_default", "other"
]

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _calendar_day(value: object, parse: ValidatorFunctionWrapHandler) -> date:
    """``YYYY-MM-DD`` only (pydantic alone would also take unix seconds); lax, like times, because the gateway
    validates the parsed Python ``str`` and strict mode refuses a ``str`` for a date."""
    if not isinstance(value, date) and not (isinstance(value, str) and _DAY.fullmatch(value) is not None):
        raise PydanticCustomError("date_not_iso", "Input should be a date, YYYY-MM-DD")
    day: date = parse(value)
    return day


#: A calendar date, ``YYYY-MM-DD`` (China Standard Time).
CalendarDay = Annotated[
    date, Field(strict=False, description="A calendar date, YYYY-MM-DD."), WrapValidator(_calendar_day)
]


def _agency(subject: Subject) -> Subject:
    if subject.id_type != "uscc":
        raise PydanticCustomError("agency_not_uscc", "An agency is an organisation: id_type should be 'uscc'")
    return subject


def _person(subject: Subject) -> Subject:
    if subject.id_type != "ric":
        raise PydanticCustomError("practitioner_not_ric", "A practitioner is a person: id_type should be 'ric'")
    return subject


def _unique_people(value: list[Subject]) -> list[Subject]:
    if len({subject.id for subject in value}) != len(value):
        raise PydanticCustomError("list_not_unique", "Each practitioner should appear once")
    return value


#: An agency: an organisation by its USCC.
Agency = Annotated[Subject, AfterValidator(_agency)]
#: A practitioner: a natural person by RIC.
Person = Annotated[Subject, AfterValidator(_person)]
_People = Annotated[list[Person], Field(max_length=100), AfterValidator(_unique_people)]


class Qualification(WireModel):
    """A qualification the agency holds: its name, certificate number and the last day it is valid."""

    name: Text
    certificate_no: Identifier
    valid_until: CalendarDay = Field(description="The last day the certificate is valid.")


class DeclaredPractitioner(WireModel):
    """A practitioner the agency declares: the person and their practising certificate number."""

    person: Person
    certificate_no: Identifier = Field(description="The practising certificate number.")


class TruthfulnessCommitment(WireModel):
    """The truthfulness commitment (信用承诺) that backs a declaration, in the standard published format."""

    accepted: Literal[True] = Field(description="The agency commits that the declaration is true (must be true).")
    items: Annotated[list[Text], Field(min_length=1, max_length=50)] = Field(description="The promises made.")
    signatory: Text = Field(
        description="The office that signs for the agency (e.g. 法定代表人); published as is, so never a person's name."
    )


class AgencyDeclaredData(WireModel):
    """Data of ``intermediary.declared``."""

    agency: Agency
    services: Annotated[
        list[ServiceCategory],
        Field(min_length=1, json_schema_extra={"uniqueItems": True}),
        AfterValidator(unique_items),
    ] = Field(description="The service categories the agency offers (at least one, each once).")
    qualifications: Annotated[list[Qualification], Field(max_length=100)]
    practitioners: Annotated[list[DeclaredPractitioner], Field(max_length=1000)] = Field(
        description="The practitioners practising at the agency as of the declaration (each person once)."
    )
    commitment: TruthfulnessCommitment
    declared_at: Timestamp


class PractitionerJoinedData(WireModel):
    """Data of ``intermediary.practitioner_joined``."""

    agency: Agency
    practitioner: Person
    certificate_no: Identifier = Field(description="The practising certificate number.")
    joined_at: Timestamp


class PractitionerLeftData(WireModel):
    """Data of ``intermediary.practitioner_left``."""

    agency: Agency
    practitioner: Person
    certificate_no: Identifier = Field(description="The practising certificate number.")
    left_at: Timestamp


class AgencyEvaluatedData(WireModel):
    """Data of ``intermediary.evaluated``."""

    evaluation_id: Identifier
    subject: Subject = Field(description="The agency (USCC) or practitioner (RIC) evaluated.")
    period: Annotated[str, Field(pattern=r"^[0-9]{4}(-(H[12]|Q[1-4]|[01][0-9]))?$")] = Field(
        description="The period evaluated: a year `2026`, half `2026-H1`, quarter `2026-Q3` or month `2026-07`."
    )
    grade: EvaluationGrade = Field(description="A (best) to D, on qualifications, practice, efficiency, quality …")
    evaluator: Text = Field(description="The industry regulator (or association) that evaluated.")
    evaluated_at: Timestamp


class ServiceEvaluatedData(WireModel):
    """Data of ``intermediary.service_evaluated``."""

    service_id: Identifier = Field(description="The approval department's id of the service (one case).")
    agency: Agency
    on_time: bool = Field(description="Whether the service was delivered within the promised time.")
    satisfaction: Satisfaction
    findings: Annotated[list[Text], Field(max_length=50)] = Field(default_factory=list)
    evaluated_at: Timestamp


class IntermediaryViolationData(WireModel):
    """Data of ``intermediary.violation``."""

    case_id: Identifier
    agency: Agency
    practitioners: _People = Field(
        default_factory=list, description="The practitioners involved (persons by RIC, each once; may be empty)."
    )
    kind: ViolationKind
    severity: Severity
    confirmed: bool = Field(description="Whether the violation is established; false withdraws an earlier report.")
    decision_no: Identifier | None = Field(default=None, description="The decision's number, when there is one.")
    found_at: Timestamp


class AgencyDeclared(EventBase):
    """An agency's declaration about itself, backed by a truthfulness commitment.

    Sent by an ``intermediary`` source about its own USCC only. The declaration with the latest ``declared_at``
    is the agency's declared information; its practitioner list is a snapshot as of then."""

    type: Literal["intermediary.declared"]
    data: AgencyDeclaredData


class PractitionerJoined(EventBase):
    """A practitioner started practising at an agency. Sent by the agency (about itself) or a regulator."""

    type: Literal["intermediary.practitioner_joined"]
    data: PractitionerJoinedData


class PractitionerLeft(EventBase):
    """A practitioner stopped practising at an agency. Sent by the agency (about itself) or a regulator."""

    type: Literal["intermediary.practitioner_left"]
    data: PractitionerLeftData


class AgencyEvaluated(EventBase):
    """A periodic credit evaluation of an agency or a practitioner by an industry regulator.

    A later one from the same source with the same ``evaluation_id`` supersedes it; the evaluation with the latest
    ``evaluated_at`` sets the supervision tier."""

    type: Literal["intermediary.evaluated"]
    data: AgencyEvaluatedData


class ServiceEvaluated(EventBase):
    """An approval department's evaluation of one service by an agency. Sent by a regulator; a later one from the
    same source with the same ``service_id`` supersedes it."""

    type: Literal["intermediary.service_evaluated"]
    data: ServiceEvaluatedData


class IntermediaryViolation(EventBase):
    """A violation by an agency and the practitioners involved (false report, false certificate, fee violation …).

    Sent by a regulator. A later one from the same source with the same ``case_id`` supersedes it: that is how it is
    confirmed, corrected or withdrawn (``confirmed: false``)."""

    type: Literal["intermediary.violation"]
    data: IntermediaryViolationData
