"""The intermediary part of a credit file (涉审中介机构): declared information, links between agencies and their
practitioners, periodic evaluations, and the supervision tier. Pure, like the engine (``credit.engine``) that keeps
one :class:`IntermediaryFile` in the credit file of each agency and practitioner.

Arrival order does not matter, as everywhere in the engine: every fact is kept as the greatest of its kind under a
total order, so any order of the same facts gives the same file.

- **Declaration**: the one with the latest ``declared_at`` (ties: envelope timestamp, inbox position) is the agency's
  declared information: services, qualifications (each shown expired once its last valid day is over, China
  Standard Time), the truthfulness commitment, and its practitioners, persons masked.
- **Links** between an agency and a practitioner (by the practising certificate number in the agency's file, by the
  agency's USCC in the practitioner's): at an instant, the latest (by fact time, envelope timestamp, inbox position)
  of the ``practitioner_joined`` and ``practitioner_left`` facts about the pair and the declarations that list the
  practitioner (a listing says "practising as of then"; leaving
  is always an explicit ``practitioner_left``, which both files see alike). Current links are those whose latest
  fact at the instant asked is a join or a listing.
- **Evaluations**: within one case (source and ``evaluation_id``) the version with the latest envelope timestamp
  wins; the case with the latest ``evaluated_at`` at or before the instant asked gives the evaluated grade.
- **Tier**: the evaluated grade, lowered to the policy's ``list_tier`` grade while the subject is on a list; its
  measures are the policy's for the tier and the kind of subject (``[intermediary.agency]``,
  ``[intermediary.practitioner]``).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, cast

from xinyong.events import EventBase
from xinyong.intermediaries import (
    AgencyDeclaredData,
    AgencyEvaluatedData,
    PractitionerJoinedData,
    PractitionerLeftData,
)
from xinyong.subjects import CHINA_STANDARD_TIME, Subject
from xinyong_gateway.credit.policy import Policy

__all__ = [
    "INTERMEDIARY_TYPES",
    "IntermediaryFile",
    "IntermediaryStatus",
    "Link",
    "TierStatus",
]

INTERMEDIARY_TYPES = frozenset(
    {
        "intermediary.declared",
        "intermediary.practitioner_joined",
        "intermediary.practitioner_left",
        "intermediary.evaluated",
        "intermediary.service_evaluated",
        "intermediary.violation",
    }
)
Kind = Literal["intermediary", "practitioner"]
_GRADES = "ABCD"
_LISTED = ("black", "watch")
Grade = Literal["A", "B", "C", "D"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _instant(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class Link:
    """A current link: an agency's practitioner (``other``: masked id, ``name``: masked name) or a practitioner's
    agency (``other``: its USCC, ``name``: its name), with the practising certificate number and since when."""

    other: str
    name: str | None
    certificate_no: str
    since: datetime


@dataclass(frozen=True, slots=True)
class TierStatus:
    """The supervision tier: its grade and measures, the evaluation behind it, and the list that lowered it."""

    grade: str
    measures: tuple[str, ...]
    evaluation: str | None
    period: str | None
    evaluator: str | None
    lowered_by: str | None


@dataclass(frozen=True, slots=True)
class IntermediaryStatus:
    """What a status adds for an agency or a practitioner at one instant."""

    kind: Kind
    tier: TierStatus | None
    declared: bool
    expired_qualifications: int
    links: tuple[Link, ...]

    def decision(self) -> tuple[str, tuple[str, ...]] | None:
        """What a feed entry follows of it: the tier's grade and measures (None: no tier)."""
        return (self.tier.grade, self.tier.measures) if self.tier is not None else None


def _worse(grade: str | None, other: str | None) -> str | None:
    if grade is None or other is None:
        return grade or other
    return max(grade, other, key=_GRADES.index)


def _day_end(day: str) -> datetime:
    """The instant a China Standard Time day ends (its next midnight)."""
    return datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(), CHINA_STANDARD_TIME)


@dataclass(slots=True)
class IntermediaryFile:
    """The intermediary facts of one subject's credit file (see the module docstring); JSON-able lists throughout."""

    kind: Kind
    declaration: list[Any] | None = None
    """``[declared_at, timestamp, seq, declared]`` (microseconds) of the latest declaration (agencies)."""
    links: dict[str, list[list[Any]]] = field(default_factory=dict)
    """By certificate number (agency) or agency USCC (practitioner): every fact about the pair, ``[at, timestamp,
    seq, joined, other, name, certificate_no]``, in that order (joins, leaves and listings are few per pair)."""
    evaluations: dict[str, list[Any]] = field(default_factory=dict)
    """By case (source and evaluation id): ``[timestamp, seq, evaluated_at, period, grade, evaluator]`` of its
    current version."""

    def apply(self, event: EventBase, source_id: str, seq: int, role: str, subject: Subject) -> None:
        """Keep what ``event`` (at inbox position ``seq``) says about this file's subject, in its ``role``."""
        data = event.data
        ts = _micros(event.timestamp)
        if isinstance(data, AgencyDeclaredData):
            at = _micros(data.declared_at)
            if role == "agency":
                declared = {
                    "name": data.agency.name,
                    "services": list(data.services),
                    "qualifications": [
                        [q.name, q.certificate_no, q.valid_until.isoformat()] for q in data.qualifications
                    ],
                    "commitment": data.commitment.model_dump(),
                }
                version = [at, ts, seq, declared]
                if self.declaration is None or version[:3] > self.declaration[:3]:
                    self.declaration = version
                for listed in data.practitioners:
                    person = listed.person
                    self._link(listed.certificate_no, [at, ts, seq, True, person.masked_id, person.masked_name])
            else:  # a practitioner the declaration lists
                number = next(p.certificate_no for p in data.practitioners if p.person.id == subject.id)
                self._link(data.agency.id, [at, ts, seq, True, data.agency.id, data.agency.name], number)
        elif isinstance(data, PractitionerJoinedData | PractitionerLeftData):
            joined = isinstance(data, PractitionerJoinedData)
            at = _micros(data.joined_at if isinstance(data, PractitionerJoinedData) else data.left_at)
            if role == "agency":
                person = data.practitioner
                self._link(data.certificate_no, [at, ts, seq, joined, person.masked_id, person.masked_name])
            else:
                self._link(data.agency.id, [at, ts, seq, joined, data.agency.id, data.agency.name], data.certificate_no)
        elif isinstance(data, AgencyEvaluatedData):
            case = f"{source_id}|{data.evaluation_id}"
            version = [ts, seq, _micros(data.evaluated_at), data.period, data.grade, data.evaluator]
            current = self.evaluations.get(case)
            if current is None or version[:2] > current[:2]:
                self.evaluations[case] = version

    def _link(self, key: str, version: list[Any], certificate_no: str | None = None) -> None:
        version = [*version, certificate_no if certificate_no is not None else key]
        versions = self.links.setdefault(key, [])
        if version not in versions:
            insort(versions, version, key=lambda v: v[:3])

    # -- reading ---------------------------------------------------------------------------------------
    def qualifications(self, at: datetime) -> list[dict[str, Any]]:
        """The declared qualifications, each with ``expired`` as of ``at``."""
        if self.declaration is None:
            return []
        return [
            {"name": name, "certificate_no": number, "valid_until": until, "expired": _day_end(until) <= at}
            for name, number, until in self.declaration[3]["qualifications"]
        ]

    def declared(self) -> dict[str, Any] | None:
        """The declared information (services, qualifications, commitment, when) or None."""
        if self.declaration is None:
            return None
        return {**self.declaration[3], "declared_at": _instant(self.declaration[0])}

    def current_links(self, at: datetime) -> tuple[Link, ...]:
        """The links whose latest fact at or before ``at`` is a join or a listing."""
        moment = _micros(at)
        found = []
        for _, versions in sorted(self.links.items()):
            last = bisect_right(versions, moment, key=lambda v: v[0])
            if last and versions[last - 1][3]:
                version = versions[last - 1]
                found.append(Link(version[4], version[5], version[6], _instant(version[0])))
        return tuple(found)

    def evaluations_until(self, at: datetime) -> list[list[Any]]:
        """The current version of each evaluation case dated at or before ``at``, newest first."""
        moment = _micros(at)
        found = [version for version in self.evaluations.values() if version[2] <= moment]
        return sorted(found, key=lambda v: (v[2], v[0], v[1]), reverse=True)

    def evaluations_at(self, at: datetime) -> list[dict[str, Any]]:
        """The evaluations dated at or before ``at`` (each case's current version), newest first."""
        return [
            {"period": v[3], "grade": v[4], "evaluator": v[5], "evaluated_at": _instant(v[2])}
            for v in self.evaluations_until(at)
        ]

    def status_at(self, at: datetime, policy: Policy, list_name: str) -> IntermediaryStatus:
        evaluations = self.evaluations_until(at)
        latest = evaluations[0] if evaluations else None
        tier: TierStatus | None = None
        rules = policy.intermediary
        if rules is not None:
            evaluated = latest[4] if latest is not None else None
            capped = rules.list_tier.get("black" if list_name == "black" else "watch") if list_name in _LISTED else None
            grade = _worse(evaluated, capped)
            if grade is not None:
                table = rules.agency if self.kind == "intermediary" else rules.practitioner
                tier = TierStatus(
                    grade,
                    table.of(cast(Grade, grade)),
                    evaluated,
                    latest[3] if latest is not None else None,
                    latest[5] if latest is not None else None,
                    list_name if capped is not None and grade != evaluated else None,
                )
        return IntermediaryStatus(
            self.kind,
            tier,
            self.declaration is not None,
            sum(1 for q in self.qualifications(at) if q["expired"]),
            self.current_links(at),
        )

    def changes_after(self, at: datetime) -> list[datetime]:
        """Instants after ``at`` at which the intermediary status changes with no new event: a qualification
        expires, a link or an evaluation dated in the future takes effect."""
        moments = [_instant(version[0]) for versions in self.links.values() for version in versions]
        moments += [_instant(version[2]) for version in self.evaluations.values()]
        if self.declaration is not None:
            moments += [_day_end(until) for _, _, until in self.declaration[3]["qualifications"]]
        return [moment for moment in moments if moment > at]

    # -- persistence -----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "declaration": self.declaration,
            "links": dict(sorted(self.links.items())),
            "evaluations": dict(sorted(self.evaluations.items())),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> IntermediaryFile:
        return cls(document["kind"], document["declaration"], document["links"], document["evaluations"])
