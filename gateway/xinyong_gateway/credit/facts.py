"""The engine's vocabulary: a logged event and its fact time, records, reasons and statuses, and the views of an
objection or a repair. Pure, like the engine (``credit.engine``) that works with them; exact instants are whole
microseconds since the epoch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from xinyong.events import EventBase
from xinyong.subjects import CHINA_STANDARD_TIME, Subject
from xinyong_gateway.credit.due_process import deadline, is_overdue
from xinyong_gateway.credit.intermediary import IntermediaryStatus
from xinyong_gateway.credit.policy import AtLeast, Condition, Policy

__all__ = [
    "ClosedState",
    "Decision",
    "EndState",
    "FactKey",
    "ListStatus",
    "LoggedEvent",
    "ObjectionView",
    "Reason",
    "Record",
    "RecordState",
    "RepairView",
    "Status",
    "fact_time",
    "objection_view",
    "repair_view",
    "role_of",
    "subjects_of",
]

ListStatus = Literal["black", "watch", "red", "none"]
RecordState = Literal["active", "pending", "expired", "withdrawn", "revoked", "corrected", "repaired"]
EndState = Literal["withdrawn", "revoked"]
ClosedState = Literal["corrected", "repaired"]
_DUE_PROCESS_TYPES = {"objection.filed", "objection.decided", "repair.applied", "repair.decided"}

_CASE_FIELDS = ("case_id", "complaint_id", "decision_no", "evaluation_id", "service_id")
_REVOKES = {"penalty.revoked": "penalty.imposed"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Decision = tuple[str, str, tuple[str, ...], bool, tuple[str, tuple[str, ...]] | None]
"""What a change-feed entry follows of a status (:meth:`Status.decision`)."""

FactKey = tuple[int, int, int]
"""Where a fact stands in fact-time order: (fact time, envelope timestamp, inbox position), in microseconds."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the projector reads it from the inbox: its position, source, webhook id and the parsed event."""

    seq: int
    source_id: str
    webhook_id: str
    event: EventBase
    file_keys: Mapping[str, str] | None = None
    """An erased body (retention): the file key of each subject field whose identity was erased (its subject in
    ``event`` is a stand-in, which names no file)."""

    def file_key(self, field_name: str, subject: Subject, key_of: Callable[[Subject], str]) -> str:
        """The key of the credit file of the subject in ``field_name``: ``key_of(subject)``, or the one kept for it
        when the body's identities were erased."""
        if self.file_keys is not None and field_name in self.file_keys:
            return self.file_keys[field_name]
        return key_of(subject)


def _data(event: EventBase) -> BaseModel:
    return event.data


def _fields(event: EventBase) -> Iterable[tuple[str, Any]]:
    """The event's data fields and their values, in declaration order (a model's fields live in its ``__dict__``;
    reading it directly spares pydantic's iterator on the projector's hot path)."""
    return _data(event).__dict__.items()


def fact_time(event: EventBase) -> datetime:
    """When the fact happened: the event's ``*_at`` field (``detected_at``, ``occurred_at``, ...)."""
    for name, value in _fields(event):
        if name.endswith("_at") and isinstance(value, datetime):
            return value.astimezone(UTC)
    raise ValueError(f"{event.type} has no fact time")


def subjects_of(event: EventBase) -> dict[str, Subject]:
    """The subjects an event is about, by field name (``merchant``, ``courier``, ``subject``); the members of a list
    by ``name/index`` (``practitioners/0``: a subject, or an item with a ``person``), each in a role named ``name``
    (:func:`role_of`)."""
    found: dict[str, Subject] = {}
    for name, value in _fields(event):
        if isinstance(value, Subject):
            found[name] = value
        elif isinstance(value, list):
            for index, item in enumerate(value):
                person = item if isinstance(item, Subject) else getattr(item, "person", None)
                if isinstance(person, Subject):
                    found[f"{name}/{index}"] = person
    return found


def role_of(subject_field: str) -> str:
    """The data field a key of :func:`subjects_of` names (``practitioners/0`` → ``practitioners``)."""
    return subject_field.partition("/")[0]


def _case_id(event: EventBase) -> str | None:
    fields = _data(event).__dict__  # a missing field costs pydantic's __getattr__ an exception: look it up
    for name in _CASE_FIELDS:
        value = fields.get(name)
        if isinstance(value, str):
            return value
    return None


def _matches(event: EventBase, conditions: dict[str, Condition]) -> bool:
    data = _data(event)
    for key, condition in conditions.items():
        value = getattr(data, key)
        if isinstance(condition, AtLeast):
            if not (isinstance(value, int | float) and value >= condition.at_least):
                return False
        elif isinstance(condition, list):
            if value not in condition:
                return False
        elif value != condition:
            return False
    return True


def _micros(moment: datetime) -> int:
    """An instant as whole microseconds since the epoch (exact, unlike a float timestamp)."""
    return (moment - _EPOCH) // _MICROSECOND


def _instant(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _cst_day(micros: int) -> str:
    return _instant(micros).astimezone(CHINA_STANDARD_TIME).date().isoformat()


def _end_of_day(day: str) -> int:
    """The instant a China Standard Time day ends (its next midnight), in microseconds."""
    following = date.fromisoformat(day) + timedelta(days=1)
    return _micros(datetime.combine(following, time(), CHINA_STANDARD_TIME))


@dataclass(frozen=True, slots=True)
class _Limits:
    """A policy's spans in microseconds, computed once per policy (the hot path compares integers)."""

    policy: Policy
    horizon: dict[str, int]
    """Window rules: how far behind the newest fact they still take facts in (two windows and the publicity)."""
    prune: dict[str, int]
    """Window rules: how far behind the newest fact they keep facts to count against (one more window)."""
    window: dict[str, int]
    clean_for: int
    cases: int


_LIMITS: dict[int, _Limits] = {}


def _limits(policy: Policy) -> _Limits:
    limits = _LIMITS.get(id(policy))
    if limits is None or limits.policy is not policy:
        if len(_LIMITS) > 64:  # a process sees a handful of policies; never let a long replay session pile them up
            _LIMITS.clear()
        horizon, prune, window = {}, {}, {}
        for rule in policy.rules:
            if rule.within is not None:
                window[rule.id] = _micros(_EPOCH + rule.within)
                horizon[rule.id] = _micros(_EPOCH + 2 * rule.within + policy.publicity.of(rule.severity))
                prune[rule.id] = horizon[rule.id] + window[rule.id]
        limits = _LIMITS[id(policy)] = _Limits(
            policy,
            horizon,
            prune,
            window,
            _micros(_EPOCH + policy.red.clean_for),
            _micros(_EPOCH + policy.horizon),
        )
    return limits


def _record_id(file_key: str, rule_id: str, anchor: str) -> str:
    """A record's id: a digest of its subject's file key, its rule and what it stands on (a case, or the fact or
    day that completed a window). The file key is a keyed blind index, so the id reveals no identity."""
    digest = hashlib.sha256(f"{file_key}\n{rule_id}\n{anchor}".encode()).hexdigest()
    return f"rec_{digest[:24]}"


@dataclass(slots=True)
class Record:
    """A credit record: one reason, its evidence, and when it is effective."""

    record_id: str
    rule_id: str
    reason: str
    list_name: Literal["black", "watch", "none"]
    severity: Literal["minor", "general", "serious"]
    source_seqs: list[int]
    effective_from: datetime
    effective_until: datetime
    ended: EndState | None = None
    case: str | None = None
    """What the record stands on: its case (single-fact and counting rules: the case that completed the
    window), or ``day:YYYY-MM-DD`` for a ratio rule."""
    contributing: list[str] = field(default_factory=list)
    """Counting rules: the cases inside the window when it was met."""
    basis: list[int] = field(default_factory=list)
    """Single-fact rules: ``[timestamp, seq]`` of the case version the record runs from; counting rules: the
    :data:`FactKey` of the fact that completed the window; ratio rules: empty."""
    closed: list[Any] | None = None
    """``[state, instant]``: an upheld objection (``corrected``) or a granted repair (``repaired``) ended the record
    at that instant (microseconds); recomputed from the file's objections and repairs at every settle."""
    disputes: list[list[int | None]] = field(default_factory=list)
    """``[from, until or None]`` (microseconds) of each valid objection against the record: open until ruled on."""

    def state_at(self, at: datetime) -> RecordState:
        if self.ended is not None:
            return self.ended
        if self.closed is not None and _micros(at) >= self.closed[1]:
            state: ClosedState = self.closed[0]
            return state
        if at < self.effective_from:
            return "pending"
        return "active" if at < self.effective_until else "expired"

    def to_json(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "list_name": self.list_name,
            "severity": self.severity,
            "source_seqs": list(self.source_seqs),
            "effective_from": _iso(self.effective_from),
            "effective_until": _iso(self.effective_until),
            "ended": self.ended,
            "case": self.case,
            "contributing": list(self.contributing),
            "basis": list(self.basis),
            "closed": list(self.closed) if self.closed is not None else None,
            "disputes": [list(span) for span in self.disputes],
        }

    def disputed_at(self, at: datetime) -> bool:
        """Whether an objection against the record is open at ``at``."""
        moment = _micros(at)
        return any(
            start <= moment and (end is None or moment < end) for start, end in self.disputes if start is not None
        )

    def ends_at(self) -> datetime:
        """When the record stops counting: its ``until``, or earlier when it was corrected or repaired."""
        if self.closed is not None:
            return min(self.effective_until, _instant(self.closed[1]))
        return self.effective_until

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        values = dict(data)
        values["effective_from"] = datetime.fromisoformat(values["effective_from"])
        values["effective_until"] = datetime.fromisoformat(values["effective_until"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a subject is where it is: one effective record, as a status shows it."""

    record_id: str
    code: str
    list: str
    severity: str
    source_seqs: tuple[int, ...]
    effective_from: datetime
    effective_until: datetime
    disputed: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    """A subject's standing at one instant, with the reasons behind it."""

    list: ListStatus
    grade: Literal["A", "B", "C", "D"]
    score: int
    measures: tuple[str, ...]
    reasons: tuple[Reason, ...]
    disputed: bool
    policy_version: str
    as_of: datetime
    intermediary: IntermediaryStatus | None = None
    """An intermediary agency's or practitioner's kind, tier and links (``credit.intermediary``); None otherwise."""

    def decision(self) -> Decision:
        """What a change-feed entry is about: list, grade, measures, whether a reason is under objection, and an
        intermediary's tier (grade and measures; None for other subjects)."""
        tier = self.intermediary.decision() if self.intermediary is not None else None
        return (self.list, self.grade, self.measures, self.disputed, tier)


@dataclass(frozen=True, slots=True)
class ObjectionView:
    """An objection's state: ``open``, ``upheld``, ``rejected``, ``invalid`` (it cites no record of the subject's
    file, or one withdrawn or revoked: ``reason`` says which) or ``unfiled`` (rulings only); its deadlines as the
    last day (China Standard Time) and whether the reply is or was late; ``anomalies`` counts rulings that do not
    stand (a second ruling, or one dated before the filing)."""

    objection_id: str
    record_id: str | None
    state: Literal["open", "upheld", "rejected", "invalid", "unfiled"]
    filed_by: str | None
    """The source whose filing is current (the latest envelope timestamp); None for a ruling without a filing,
    and for a filing kept by an engine older than this field (a rebuild, ``project --rebuild``, fills it in)."""
    reason: str | None
    filed_at: datetime | None
    reply_due: date | None
    decided_at: datetime | None
    outcome: str | None
    publish_due: date | None
    feedback_due: date | None
    overdue: bool
    anomalies: int


@dataclass(frozen=True, slots=True)
class RepairView:
    """A repair application's state: ``pending``, ``granted``, ``refused`` (by a ruling, or at once: ``reason``
    says why and ``possible_from`` when it could be applied for), ``invalid`` or ``unfiled``."""

    repair_id: str
    record_id: str | None
    state: Literal["pending", "granted", "refused", "invalid", "unfiled"]
    filed_by: str | None
    """The source whose application is current; None as for :attr:`ObjectionView.filed_by`."""
    reason: str | None
    applied_at: datetime | None
    possible_from: datetime | None
    decided_at: datetime | None
    outcome: str | None
    anomalies: int


def _filer(version: list[Any]) -> str | None:
    """The source of a filing or application version (``[timestamp, seq, at, record_id, source_id]``; files saved
    before the source was kept have four members)."""
    return version[4] if len(version) > 4 else None


def objection_view(
    objection_id: str,
    case: dict[str, list[list[Any]]],
    records: Mapping[str, Record],
    policy: Policy,
    now: datetime | None,
) -> ObjectionView:
    """An objection as the engine sees it: its state, the ruling that stands, deadlines and anomalies."""
    due = policy.due_process
    filing = case["filed"][-1] if case["filed"] else None  # the latest envelope timestamp wins
    rulings = case["rulings"]
    if filing is None:
        return ObjectionView(
            objection_id,
            None,
            "unfiled",
            None,
            "a ruling on an objection that was never filed",
            None,
            None,
            None,
            None,
            None,
            None,
            False,
            len(rulings),
        )
    filed_at = _instant(filing[2])
    record_id, filed_by = filing[3], _filer(filing)
    reply_due = deadline(filed_at, due.reply_within)
    record = records.get(record_id)
    if record is None or record.ended is not None:
        reason = "no such record in the subject's file" if record is None else f"the record is {record.ended}"
        return ObjectionView(
            objection_id,
            record_id,
            "invalid",
            filed_by,
            reason,
            filed_at,
            reply_due,
            None,
            None,
            None,
            None,
            False,
            len(rulings),
        )
    standing = [r for r in rulings if r[0] >= filing[2]]
    anomalies = len(rulings) - min(1, len(standing))
    if not standing:
        overdue = now is not None and is_overdue(reply_due, None, now)
        return ObjectionView(
            objection_id,
            record_id,
            "open",
            filed_by,
            None,
            filed_at,
            reply_due,
            None,
            None,
            None,
            None,
            overdue,
            anomalies,
        )
    ruling = standing[0]
    decided_at = _instant(ruling[0])
    outcome = ruling[3]
    publish_due = deadline(decided_at, due.publish_correction_within) if outcome == "upheld" else None
    feedback_due = deadline(decided_at, due.feed_back_within) if outcome == "rejected" else None
    overdue = is_overdue(reply_due, decided_at, decided_at)
    return ObjectionView(
        objection_id,
        record_id,
        outcome,
        filed_by,
        None,
        filed_at,
        reply_due,
        decided_at,
        outcome,
        publish_due,
        feedback_due,
        overdue,
        anomalies,
    )


def repair_view(
    repair_id: str, case: dict[str, list[list[Any]]], records: Mapping[str, Record], policy: Policy
) -> RepairView:
    """A repair application as the engine sees it: pending, granted, refused (and why), or invalid."""
    application = case["filed"][-1] if case["filed"] else None
    rulings = case["rulings"]
    if application is None:
        return RepairView(
            repair_id,
            None,
            "unfiled",
            None,
            "a ruling on a repair that was never applied for",
            None,
            None,
            None,
            None,
            len(rulings),
        )
    applied_at, record_id, filed_by = _instant(application[2]), application[3], _filer(application)
    record = records.get(record_id)
    if record is None or record.ended is not None:
        reason = "no such record in the subject's file" if record is None else f"the record is {record.ended}"
        return RepairView(repair_id, record_id, "invalid", filed_by, reason, applied_at, None, None, None, len(rulings))
    minimum = policy.due_process.repair_after.get(record.severity)
    if minimum is None:
        return RepairView(
            repair_id,
            record_id,
            "refused",
            filed_by,
            f"{record.severity} records cannot be repaired",
            applied_at,
            None,
            None,
            None,
            len(rulings),
        )
    possible_from = record.effective_from + minimum
    if applied_at < possible_from:
        day = possible_from.astimezone(CHINA_STANDARD_TIME).date()
        return RepairView(
            repair_id,
            record_id,
            "refused",
            filed_by,
            f"too early: possible from {day.isoformat()}",
            applied_at,
            possible_from,
            None,
            None,
            len(rulings),
        )
    standing = [r for r in rulings if r[0] >= application[2]]
    anomalies = len(rulings) - min(1, len(standing))
    if not standing:
        return RepairView(
            repair_id, record_id, "pending", filed_by, None, applied_at, possible_from, None, None, anomalies
        )
    ruling = standing[0]
    return RepairView(
        repair_id,
        record_id,
        ruling[3],
        filed_by,
        None,
        applied_at,
        possible_from,
        _instant(ruling[0]),
        ruling[3],
        anomalies,
    )
