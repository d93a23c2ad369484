"""Projection: a pure function of (the set of stored facts, policy, time) → credit files and list status.

Nothing here does I/O. The projector (the edge that reads the inbox and writes the store) feeds events to
:meth:`CreditFile.apply` in whatever order they arrived and asks :meth:`CreditFile.status_at` what follows. The
order of arrival does not matter: a file equals the one obtained by applying the same facts in fact-time order
(their ``*_at`` time; ties by the envelope ``timestamp``, then by inbox position), and replaying the same log
with the same policy gives the same files, byte for byte (:meth:`CreditFile.to_json`).

Facts and cases
    Every event is about one or more subjects (its ``merchant``, ``courier`` or ``subject`` fields). A rule
    of the policy looks at one event type and one of its subjects. Events of one type from one source with
    the same ``case_id`` / ``complaint_id`` / ``decision_no`` are the versions of one *case*; the version with
    the latest envelope ``timestamp`` (equal timestamps: the later inbox position) is the case's current
    version, whatever order the versions arrived in. An older version that arrives late is kept as evidence
    and changes nothing else. ``penalty.revoked`` is a version of the ``penalty.imposed`` case it names, so a
    revocation wins only when it is the newer message. An event without a case id is a case of its own.

Records
    A rule that fires creates a :class:`Record`: reason code, severity, list, the inbox positions of the
    events behind it, effective ``[from, until)`` (``until`` = ``from`` + the severity's publicity period),
    and a ``record_id`` that is a function of the subject, the rule and the facts (never of inbox positions or
    arrival order), so the same facts give the same ids on any replay.

    - A single-fact rule makes one record per case: it exists once any version of the case matched; it runs
      from the fact time of the newest matching version, and it is ``withdrawn`` (or ``revoked``) when the
      current version no longer matches.
    - A counting rule (``count`` within a window) is evaluated over the matching cases' current versions in
      fact-time order: at each such fact at time ``t``, when at least ``count`` of them (itself included) lie
      in ``(t - window, t]`` and no record of the rule is effective at ``t``, a record starts at ``t``. A
      late fact re-evaluates the rule from its own time on, so it can complete a window entirely in the past,
      create a record that is already expired (history only), or, withdrawn, take away the records it
      completed (the change feed keeps the moment they were shown and the moment they went).
    - A ratio rule is judged on whole China Standard Time days: at the end of day D, the facts matching
      ``of`` are at least ``at_least`` of all matching facts of the ``window`` days ending with D (and there
      are at least ``min_total``), and no record of the rule is effective then: a record starts at the end of
      D. Until the day is over its record is pending, so the status does not flicker with each delivery.

    Records follow the moment the rule was met, not live counts: they stay effective when the count later
    falls.

Cost per event does not grow with a subject's history: each counting rule keeps its matching facts in
fact-time order and each ratio rule one counter pair per day, both for the rule's horizon (two windows plus its
publicity period, and one more window of facts to count against) behind the newest fact. Applying an event
only marks where its rules must be re-evaluated; :meth:`CreditFile.settle` re-evaluates each rule once, from
the earliest fact that changed. A fact older than its rule's horizon can no longer change a status: it is kept
as evidence and enters no window. Records that ended more than the red list's clean period before the newest
fact leave the file for the archive (``archived``) and are history from then on.

Status at time T
    ``black`` if a black record is effective at T, else ``watch`` if a watch record is, else ``red`` if the
    policy's red criteria hold, else ``none``. The score is the policy's start value minus the weight of every
    effective record (``none`` records included); the grade follows the score, and a black subject is always D.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from xinyong.events import EventBase
from xinyong.subjects import CHINA_STANDARD_TIME, Subject
from xinyong_gateway.credit.due_process import deadline, is_overdue
from xinyong_gateway.credit.policy import AtLeast, Condition, Policy, Rule

__all__ = [
    "CreditFile",
    "LoggedEvent",
    "ObjectionView",
    "Reason",
    "Record",
    "RepairView",
    "Status",
    "fact_time",
    "project",
    "subjects_of",
]

ListStatus = Literal["black", "watch", "red", "none"]
RecordState = Literal["active", "pending", "expired", "withdrawn", "revoked", "corrected", "repaired"]
EndState = Literal["withdrawn", "revoked"]
ClosedState = Literal["corrected", "repaired"]
_DUE_PROCESS_TYPES = {"objection.filed", "objection.decided", "repair.applied", "repair.decided"}

_CASE_FIELDS = ("case_id", "complaint_id", "decision_no")
_REVOKES = {"penalty.revoked": "penalty.imposed"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

FactKey = tuple[int, int, int]
"""Where a fact stands in fact-time order: (fact time, envelope timestamp, inbox position), in microseconds."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the projector reads it from the inbox: its position, source, webhook id and the parsed event."""

    seq: int
    source_id: str
    webhook_id: str
    event: EventBase


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
    """The subjects an event is about, by field name (``merchant``, ``courier``, ``subject``)."""
    return {name: value for name, value in _fields(event) if isinstance(value, Subject)}


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

    def decision(self) -> tuple[str, str, tuple[str, ...], bool]:
        """What a change-feed entry is about: list, grade, measures, and whether a reason is under objection."""
        return (self.list, self.grade, self.measures, self.disputed)


@dataclass(frozen=True, slots=True)
class ObjectionView:
    """An objection's state: ``open``, ``upheld``, ``rejected``, ``invalid`` (it cites no record of the subject's
    file, or one withdrawn or revoked: ``reason`` says which) or ``unfiled`` (rulings only); its deadlines as the
    last day (China Standard Time) and whether the reply is or was late; ``anomalies`` counts rulings that do not
    stand (a second ruling, or one dated before the filing)."""

    objection_id: str
    record_id: str | None
    state: Literal["open", "upheld", "rejected", "invalid", "unfiled"]
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
    reason: str | None
    applied_at: datetime | None
    possible_from: datetime | None
    decided_at: datetime | None
    outcome: str | None
    anomalies: int


# A case as a file keeps it: its current version, the positions of every version seen, and the single-fact
# rules whose record of the case has left for the archive (history: later versions no longer change it).
_TS, _SEQ, _AT, _MATCHED, _REVOCATION, _SEQS, _ARCHIVED = range(7)


@dataclass(slots=True)
class CreditFile:
    """One subject's credit file: the facts that matter to the policy, and its records."""

    key: str
    registered_at: datetime | None = None
    commitment_published: bool = False
    records: dict[str, Record] = field(default_factory=dict)
    cases: dict[str, list[Any]] = field(default_factory=dict)
    """Cases with a case id: ``[timestamp, seq, fact time, {rule id: hit}, revocation, [seqs]]`` of the current
    version (``hit``: 1 when a ratio rule's ``of`` matched too) and the positions of all its versions."""
    windows: dict[str, list[list[Any]]] = field(default_factory=dict)
    """Counting rules: ``[fact time, timestamp, seq, case]`` of the matching cases' current versions, in
    fact-time order."""
    days: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """Ratio rules: ``{CST day: [matching "of", matching]}``."""
    anchors: dict[str, int] = field(default_factory=dict)
    """Window rules: the latest ``until`` (microseconds) of the rule's records that left for the archive, so a
    re-evaluation still knows which instants they covered."""
    objections: dict[str, dict[str, list[list[Any]]]] = field(default_factory=dict)
    """By objection id: ``filed`` versions ``[timestamp, seq, filed_at, record_id]`` and ``rulings``
    ``[decided_at, timestamp, seq, outcome]`` (microseconds), every one received, in any order."""
    repairs: dict[str, dict[str, list[list[Any]]]] = field(default_factory=dict)
    """By repair id: ``applied`` versions ``[timestamp, seq, applied_at, record_id]`` and ``rulings`` as above."""
    newest_fact: datetime | None = None
    """The latest fact time applied: horizons and the archive are measured back from it."""
    archived: list[Record] = field(default_factory=list)
    """Records moved out of the file by the last :meth:`settle`, for the projector to keep elsewhere (they can no
    longer change any status from ``newest_fact`` on); not part of the file's JSON."""
    dirty: dict[str, Any] = field(default_factory=dict)
    """Window rules to re-evaluate at the next :meth:`settle`: rule id → the earliest fact key (counting rules)
    or CST day (ratio rules) that changed; not part of the file's JSON."""
    settled: bool = True
    """False from :meth:`apply` until :meth:`settle`; not part of the file's JSON."""

    # -- applying facts -----------------------------------------------------------------------------
    def apply(self, logged: LoggedEvent, subject_field: str, policy: Policy) -> None:
        """Apply one event about this subject (as its ``subject_field``) under ``policy``, whenever it arrives.

        Window rules are only marked for re-evaluation; :meth:`settle` (called by :meth:`status_at`) does it."""
        event = logged.event
        at = fact_time(event)
        self.settled = False
        if event.type == "merchant.registered" and subject_field == "merchant":
            if self.registered_at is None or at < self.registered_at:
                self.registered_at = at
        elif event.type == "commitment.published" and subject_field == "merchant":
            self.commitment_published = True
        elif event.type in _DUE_PROCESS_TYPES:
            self._due_process(logged)
        if self.newest_fact is None or at > self.newest_fact:
            self.newest_fact = at
        key: FactKey = (_micros(at), _micros(event.timestamp), logged.seq)
        case_id = _case_id(event)
        rules = [rule for rule in policy.rules_by_event.get(event.type, ()) if rule.subject_field == subject_field]
        if rules:
            matched = {}
            for rule in rules:
                if _matches(event, rule.where):
                    matched[rule.id] = 1 if rule.ratio is not None and _matches(event, rule.ratio.of) else 0
            if case_id is None:
                self._single_version(
                    f"{logged.source_id}|{event.type}|@{logged.webhook_id}", key, rules, matched, policy
                )
            else:
                self._version(f"{logged.source_id}|{event.type}|{case_id}", key, rules, matched, False, policy)
        revoked_type = _REVOKES.get(event.type)
        if revoked_type is not None and case_id is not None:
            targets = [r for r in policy.rules_by_event.get(revoked_type, ()) if r.subject_field == subject_field]
            if targets:
                self._version(f"{logged.source_id}|{revoked_type}|{case_id}", key, targets, {}, True, policy)

    def _due_process(self, logged: LoggedEvent) -> None:
        """Keep a filing, application or ruling; what they do to records is worked out at :meth:`settle`."""
        event, data = logged.event, logged.event.data.__dict__
        ts, seq, at = _micros(event.timestamp), logged.seq, _micros(fact_time(event))
        if event.type.startswith("objection."):
            case = self.objections.setdefault(data["objection_id"], {"filed": [], "rulings": []})
        else:
            case = self.repairs.setdefault(data["repair_id"], {"filed": [], "rulings": []})
        if event.type.endswith(".decided"):
            versions, version = case["rulings"], [at, ts, seq, data["outcome"]]
        else:
            versions, version = case["filed"], [ts, seq, at, data["record_id"]]
        if version not in versions:
            insort(versions, version)

    def _single_version(
        self, case: str, key: FactKey, rules: list[Rule], matched: dict[str, int], policy: Policy
    ) -> None:
        """A fact without a case id: its only version is the current one for good."""
        for rule in rules:
            if rule.id in matched:
                if rule.ratio is not None or rule.count > 1:
                    self._enter_window(rule, case, key, matched[rule.id], policy)
                else:
                    self._put_record(rule, case, key, [key[2]], None, policy)

    def _version(
        self,
        case: str,
        key: FactKey,
        rules: list[Rule],
        matched: dict[str, int],
        revocation: bool,
        policy: Policy,
    ) -> None:
        """One version of a case with a case id, in whatever order the versions arrive."""
        at, ts, seq = key
        entry = self.cases.get(case)
        if entry is not None and seq in entry[_SEQS]:
            return  # the same message again (a replay through saved files): nothing new
        if entry is None:
            entry = self.cases[case] = [ts, seq, at, matched, int(revocation), [seq], []]
            newer = True
        else:
            insort(entry[_SEQS], seq)
            newer = (ts, seq) > (entry[_TS], entry[_SEQ])
            if newer:
                self._leave_windows(case, entry, rules)
                entry[_TS], entry[_SEQ], entry[_AT], entry[_MATCHED], entry[_REVOCATION] = (
                    ts,
                    seq,
                    at,
                    matched,
                    int(revocation),
                )
        if newer:
            for rule in rules:
                if rule.ratio is not None or rule.count > 1:
                    if rule.id in matched:
                        self._enter_window(rule, case, key, matched[rule.id], policy)
                    continue
                if rule.id in entry[_ARCHIVED]:
                    continue
                record = self.records.get(_record_id(self.key, rule.id, case))
                if rule.id in matched:
                    self._put_record(rule, case, key, entry[_SEQS], None, policy)
                elif record is not None:
                    record.ended = "revoked" if revocation else "withdrawn"
                    record.source_seqs = list(entry[_SEQS])
            return
        # An older version arriving late: evidence, and the point a record runs from if it is the newest match.
        ended: EndState = "revoked" if entry[_REVOCATION] else "withdrawn"
        for rule in rules:
            if rule.ratio is not None or rule.count > 1 or rule.id in entry[_ARCHIVED]:
                continue
            record = self.records.get(_record_id(self.key, rule.id, case))
            if rule.id in matched:
                if record is None:
                    self._put_record(rule, case, key, entry[_SEQS], ended, policy)
                elif (ts, seq) > tuple(record.basis):
                    self._put_record(rule, case, key, entry[_SEQS], record.ended, policy)
                else:
                    record.source_seqs = list(entry[_SEQS])
            elif record is not None:
                record.source_seqs = list(entry[_SEQS])

    def _put_record(
        self, rule: Rule, case: str, key: FactKey, seqs: list[int], ended: EndState | None, policy: Policy
    ) -> None:
        """Create or move a single-fact rule's record of ``case`` to run from the fact ``key``."""
        at, ts, seq = key
        self._record(rule, case, _instant(at), policy, source_seqs=list(seqs), ended=ended, basis=[ts, seq])

    def _record(self, rule: Rule, anchor: str, moment: datetime, policy: Policy, **evidence: Any) -> Record:
        """Put the record of ``rule`` that stands on ``anchor`` (a case, or ``day:…``) and starts at ``moment``."""
        record_id = _record_id(self.key, rule.id, anchor)
        record = self.records[record_id] = Record(
            record_id=record_id,
            rule_id=rule.id,
            reason=rule.reason,
            list_name=rule.list,
            severity=rule.severity,
            effective_from=moment,
            effective_until=moment + policy.publicity.of(rule.severity),
            case=anchor,
            **evidence,
        )
        return record

    def _enter_window(self, rule: Rule, case: str, key: FactKey, hit: int, policy: Policy) -> None:
        assert self.newest_fact is not None  # noqa: S101 -- set by apply before any rule runs
        at = key[0]
        # Older than two windows and the publicity period before the newest fact, a fact could only complete a
        # window whose record ended long ago: it cannot change any status, so it is evidence only.
        if at < _micros(self.newest_fact) - _limits(policy).horizon[rule.id]:
            return
        if rule.ratio is not None:
            day = _cst_day(at)
            counts = self.days.setdefault(rule.id, {}).setdefault(day, [0, 0])
            counts[0] += hit
            counts[1] += 1
            self._mark(rule.id, day)
        else:
            insort(self.windows.setdefault(rule.id, []), [*key, case])
            self._mark(rule.id, key)

    def _leave_windows(self, case: str, entry: list[Any], rules: list[Rule]) -> None:
        """The case's current version is superseded: take its fact out of the windows it was counted in."""
        key = (entry[_AT], entry[_TS], entry[_SEQ])
        for rule in rules:
            hit = entry[_MATCHED].get(rule.id)
            if hit is None:
                continue
            if rule.ratio is not None:
                day = _cst_day(key[0])
                counts = self.days.get(rule.id, {}).get(day)
                if counts is not None:
                    counts[0] -= hit
                    counts[1] -= 1
                    if counts[1] <= 0:
                        del self.days[rule.id][day]
                    self._mark(rule.id, day)
            elif rule.count > 1:
                facts = self.windows.get(rule.id, [])
                index = bisect_left(facts, [*key, case])
                if index < len(facts) and facts[index] == [*key, case]:
                    del facts[index]
                    self._mark(rule.id, key)

    def _mark(self, rule_id: str, point: Any) -> None:
        earlier = self.dirty.get(rule_id)
        if earlier is None or point < earlier:
            self.dirty[rule_id] = point

    # -- re-evaluating window rules -------------------------------------------------------------------
    def settle(self, policy: Policy) -> None:
        """Re-evaluate every window rule marked by :meth:`apply` from the earliest point that changed, then move
        what can no longer matter out of the file."""
        if self.settled:
            return
        rules = policy.rules_by_id
        for rule_id, point in sorted(self.dirty.items()):
            rule = rules[rule_id]
            if rule.ratio is not None:
                self._evaluate_ratio(rule, point, policy)
            else:
                self._evaluate_count(rule, point, policy)
        self.dirty.clear()
        self._apply_due_process(policy)
        self._archive_old(policy)
        self.settled = True

    def _chain_start(self, rule: Rule, before: Callable[[Record], bool]) -> int:
        """Drop the rule's records from the point of re-evaluation on; return until when the kept ones (and
        the archived ones) cover."""
        covered = self.anchors.get(rule.id, 0)
        for record_id, record in list(self.records.items()):
            if record.rule_id != rule.id:
                continue
            if before(record):
                covered = max(covered, _micros(record.effective_until))
            else:
                del self.records[record_id]
        return covered

    def _evaluate_count(self, rule: Rule, start: FactKey, policy: Policy) -> None:
        assert rule.within is not None  # noqa: S101 -- guaranteed by Rule validation
        facts = self.windows.get(rule.id, [])
        covered = self._chain_start(rule, lambda record: tuple(record.basis) < start)
        window = _limits(policy).window[rule.id]
        publicity = policy.publicity.of(rule.severity)
        first = bisect_left(facts, list(start))
        if first >= len(facts):
            return
        low = bisect_right(facts, facts[first][0] - window, key=lambda fact: fact[0])
        for index in range(first, len(facts)):
            at = facts[index][0]
            while facts[low][0] <= at - window:
                low += 1
            if at < covered or index - low + 1 < rule.count:
                continue
            inside = facts[low : index + 1]
            crossing = facts[index]
            moment = _instant(at)
            self._record(
                rule,
                crossing[3],
                moment,
                policy,
                source_seqs=sorted(fact[2] for fact in inside),
                contributing=sorted(fact[3] for fact in inside),
                basis=list(crossing[:3]),
            )
            covered = _micros(moment + publicity)

    def _evaluate_ratio(self, rule: Rule, start: str, policy: Policy) -> None:
        ratio, within = rule.ratio, rule.within
        assert ratio is not None and within is not None  # noqa: S101 -- guaranteed by Rule validation
        buckets = self.days.get(rule.id, {})
        covered = self._chain_start(rule, lambda record: (record.case or "") < f"day:{start}")
        days = sorted(buckets)
        first = bisect_left(days, start)
        if first >= len(days):
            return
        span = within.days
        ordinals = [date.fromisoformat(day).toordinal() for day in days]
        low = bisect_right(ordinals, ordinals[first] - span)
        hits = sum(buckets[day][0] for day in days[low:first])
        total = sum(buckets[day][1] for day in days[low:first])
        publicity = policy.publicity.of(rule.severity)
        for index in range(first, len(days)):
            day = days[index]
            hits, total = hits + buckets[day][0], total + buckets[day][1]
            while ordinals[low] <= ordinals[index] - span:
                hits, total = hits - buckets[days[low]][0], total - buckets[days[low]][1]
                low += 1
            end = _end_of_day(day)
            if end < covered or total < ratio.min_total or hits < ratio.at_least * total:
                continue
            moment = _instant(end)
            self._record(rule, f"day:{day}", moment, policy, source_seqs=[])
            covered = _micros(moment + publicity)

    # -- objections and repairs -------------------------------------------------------------------------
    def _apply_due_process(self, policy: Policy) -> None:
        """Recompute what objections and repairs do to the records (they may have been re-evaluated): a valid open
        objection disputes its record, an upheld one ends it (``corrected``) when ruled on, a granted repair ends it
        (``repaired``); the earliest end wins."""
        for record in self.records.values():
            record.closed, record.disputes = None, []
        for objection_id in sorted(self.objections):
            objection = self.objection(objection_id, policy)
            disputed = self.records.get(objection.record_id or "")
            if disputed is None or objection.state in ("invalid", "unfiled") or objection.filed_at is None:
                continue
            decided = _micros(objection.decided_at) if objection.decided_at is not None else None
            disputed.disputes.append([_micros(objection.filed_at), decided])
            if objection.state == "upheld" and decided is not None:
                self._close(disputed, "corrected", decided)
        for repair_id in sorted(self.repairs):
            repair = self.repair(repair_id, policy)
            repaired = self.records.get(repair.record_id or "")
            if repaired is not None and repair.state == "granted" and repair.decided_at is not None:
                self._close(repaired, "repaired", _micros(repair.decided_at))

    @staticmethod
    def _close(record: Record, state: ClosedState, at: int) -> None:
        if record.closed is None or at < record.closed[1]:
            record.closed = [state, at]

    def objection(self, objection_id: str, policy: Policy, now: datetime | None = None) -> ObjectionView:
        """An objection as the engine sees it: its state, the ruling that stands, deadlines and anomalies."""
        case = self.objections.get(objection_id, {"filed": [], "rulings": []})
        due = policy.due_process
        filing = case["filed"][-1] if case["filed"] else None  # the latest envelope timestamp wins
        rulings = case["rulings"]
        if filing is None:
            return ObjectionView(objection_id, None, "unfiled", "a ruling on an objection that was never filed",
                                 None, None, None, None, None, None, False, len(rulings))  # fmt: skip
        filed_at = _instant(filing[2])
        record_id = filing[3]
        reply_due = deadline(filed_at, due.reply_within)
        record = self.records.get(record_id)
        if record is None or record.ended is not None:
            reason = "no such record in the subject's file" if record is None else f"the record is {record.ended}"
            return ObjectionView(objection_id, record_id, "invalid", reason, filed_at, reply_due, None, None, None,
                                 None, False, len(rulings))  # fmt: skip
        standing = [r for r in rulings if r[0] >= filing[2]]
        anomalies = len(rulings) - min(1, len(standing))
        if not standing:
            overdue = now is not None and is_overdue(reply_due, None, now)
            return ObjectionView(objection_id, record_id, "open", None, filed_at, reply_due, None, None, None, None,
                                 overdue, anomalies)  # fmt: skip
        ruling = standing[0]
        decided_at = _instant(ruling[0])
        outcome = ruling[3]
        publish_due = deadline(decided_at, due.publish_correction_within) if outcome == "upheld" else None
        feedback_due = deadline(decided_at, due.feed_back_within) if outcome == "rejected" else None
        overdue = is_overdue(reply_due, decided_at, decided_at)
        return ObjectionView(objection_id, record_id, outcome, None, filed_at, reply_due, decided_at, outcome,
                             publish_due, feedback_due, overdue, anomalies)  # fmt: skip

    def repair(self, repair_id: str, policy: Policy) -> RepairView:
        """A repair application as the engine sees it: pending, granted, refused (and why), or invalid."""
        case = self.repairs.get(repair_id, {"filed": [], "rulings": []})
        application = case["filed"][-1] if case["filed"] else None
        rulings = case["rulings"]
        if application is None:
            return RepairView(repair_id, None, "unfiled", "a ruling on a repair that was never applied for", None,
                              None, None, None, len(rulings))  # fmt: skip
        applied_at, record_id = _instant(application[2]), application[3]
        record = self.records.get(record_id)
        if record is None or record.ended is not None:
            reason = "no such record in the subject's file" if record is None else f"the record is {record.ended}"
            return RepairView(repair_id, record_id, "invalid", reason, applied_at, None, None, None, len(rulings))
        minimum = policy.due_process.repair_after.get(record.severity)
        if minimum is None:
            return RepairView(repair_id, record_id, "refused", f"{record.severity} records cannot be repaired",
                              applied_at, None, None, None, len(rulings))  # fmt: skip
        possible_from = record.effective_from + minimum
        if applied_at < possible_from:
            day = possible_from.astimezone(CHINA_STANDARD_TIME).date()
            return RepairView(repair_id, record_id, "refused", f"too early: possible from {day.isoformat()}",
                              applied_at, possible_from, None, None, len(rulings))  # fmt: skip
        standing = [r for r in rulings if r[0] >= application[2]]
        anomalies = len(rulings) - min(1, len(standing))
        if not standing:
            return RepairView(repair_id, record_id, "pending", None, applied_at, possible_from, None, None, anomalies)
        ruling = standing[0]
        return RepairView(repair_id, record_id, ruling[3], None, applied_at, possible_from, _instant(ruling[0]),
                          ruling[3], anomalies)  # fmt: skip

    def _archive_old(self, policy: Policy) -> None:
        """Move out what can no longer matter, so a file's size, and the cost of applying an event, follow recent
        activity rather than the subject's whole history:

        - records that ended more than the red list's clean period before the newest fact (for a window rule,
          only once the fact that started them is past the rule's horizon, so no re-evaluation can redo them);
        - window facts and day counters more than the horizon plus one window old;
        - cases older than the policy's horizon with no record left in the file (a version of such a case that
          still arrives starts it afresh)."""
        if self.newest_fact is None:
            return
        limits = _limits(policy)
        newest = _micros(self.newest_fact)
        ended_before = newest - limits.clean_for
        rules = policy.rules_by_id
        kept_cases: set[str] = set()
        for record_id, record in list(self.records.items()):
            old = _micros(record.effective_until) <= ended_before
            horizon = limits.horizon.get(record.rule_id)
            if old and horizon is not None:
                old = _micros(record.effective_from) < newest - horizon
                if old:
                    anchor = max(self.anchors.get(record.rule_id, 0), _micros(record.effective_until))
                    self.anchors[record.rule_id] = anchor
            if old:
                self.archived.append(self.records.pop(record_id))
                entry = self.cases.get(record.case or "")
                if entry is not None and record.rule_id in rules and horizon is None:
                    entry[_ARCHIVED].append(record.rule_id)
            elif record.case is not None:
                kept_cases.add(record.case)
        for rule_id, facts in self.windows.items():
            span = limits.prune.get(rule_id)  # None: a rule of another policy, left as it is
            if span is not None and facts and facts[0][0] < newest - span:
                del facts[: bisect_left(facts, newest - span, key=lambda fact: fact[0])]
        for rule_id, buckets in self.days.items():
            span = limits.prune.get(rule_id)
            if span is None or not buckets:
                continue
            first_day = _cst_day(newest - span)
            if min(buckets) < first_day:
                for day in [day for day in buckets if day < first_day]:
                    del buckets[day]
        case_line = newest - limits.cases
        for case in [c for c, e in self.cases.items() if e[_AT] < case_line and c not in kept_cases]:
            del self.cases[case]

    # -- reading the file ------------------------------------------------------------------------------
    def effective_records(self, at: datetime) -> list[Record]:
        return [r for r in self.records.values() if r.state_at(at) == "active"]

    def _red(self, at: datetime, policy: Policy) -> bool:
        criteria = policy.red
        if criteria.verified_registration and self.registered_at is None:
            return False
        if criteria.commitment_published and not self.commitment_published:
            return False
        if self.registered_at is None or self.registered_at > at - criteria.registered_for:
            return False
        clean_since = at - criteria.clean_for
        for record in self.records.values():
            if record.ended is None and record.effective_from <= at and record.ends_at() > clean_since:
                return False
        return True

    def status_at(self, at: datetime, policy: Policy) -> Status:
        """The subject's standing at ``at`` under ``policy`` (settling the file first)."""
        self.settle(policy)
        rank = policy.rule_rank
        effective = sorted(
            self.effective_records(at), key=lambda r: (r.effective_from, rank.get(r.rule_id, len(rank)), r.record_id)
        )
        lists = {r.list_name for r in effective}
        standing: ListStatus
        if "black" in lists:
            standing = "black"
        elif "watch" in lists:
            standing = "watch"
        elif self._red(at, policy):
            standing = "red"
        else:
            standing = "none"
        weights = policy.score.weights
        score = max(0, policy.score.start - sum(getattr(weights, r.severity) for r in effective))
        grades = policy.score.grades
        grade: Literal["A", "B", "C", "D"]
        if standing == "black":
            grade = "D"
        elif score >= grades.A:
            grade = "A"
        elif score >= grades.B:
            grade = "B"
        elif score >= grades.C:
            grade = "C"
        else:
            grade = "D"
        measures: tuple[str, ...] = ()
        if standing != "none":
            measures = tuple(getattr(policy.measures, standing))
        return Status(
            list=standing,
            grade=grade,
            score=score,
            measures=measures,
            reasons=tuple(
                Reason(
                    r.record_id,
                    r.reason,
                    r.list_name,
                    r.severity,
                    tuple(r.source_seqs),
                    r.effective_from,
                    r.effective_until,
                    r.disputed_at(at),
                )
                for r in effective
            ),
            disputed=any(r.disputed_at(at) for r in effective),
            policy_version=policy.version,
            as_of=at,
        )

    def next_change_after(self, at: datetime, policy: Policy) -> datetime | None:
        """The first instant after ``at`` at which the status may change with no new event: a record starts
        or ends, or the red list's waiting periods run out."""
        self.settle(policy)
        moments: list[datetime] = []
        for record in self.records.values():
            if record.ended is None:
                moments += [record.effective_from, record.effective_until, record.ends_at() + policy.red.clean_for]
                if record.closed is not None:
                    moments.append(_instant(record.closed[1]))
                moments += [_instant(edge) for span in record.disputes for edge in span if edge is not None]
        if self.registered_at is not None:
            moments.append(self.registered_at + policy.red.registered_for)
        later = [m for m in moments if m > at]
        return min(later) if later else None

    # -- persistence ---------------------------------------------------------------------------------
    def to_json(self) -> str:
        """A canonical JSON form: equal files give equal text. The file must be settled (:meth:`settle`)."""
        if not self.settled:
            raise ValueError("a credit file must be settled before it is saved")
        document = {
            "key": self.key,
            "registered_at": _iso(self.registered_at) if self.registered_at else None,
            "commitment_published": self.commitment_published,
            "records": {rid: record.to_json() for rid, record in sorted(self.records.items())},
            "cases": dict(sorted(self.cases.items())),
            "windows": {rule: facts for rule, facts in sorted(self.windows.items()) if facts},
            "days": {rule: dict(sorted(days.items())) for rule, days in sorted(self.days.items()) if days},
            "anchors": dict(sorted(self.anchors.items())),
            "objections": dict(sorted(self.objections.items())),
            "repairs": dict(sorted(self.repairs.items())),
            "newest_fact": _iso(self.newest_fact) if self.newest_fact else None,
        }
        return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CreditFile:
        document = json.loads(text)
        return cls(
            key=document["key"],
            registered_at=datetime.fromisoformat(document["registered_at"]) if document["registered_at"] else None,
            commitment_published=document["commitment_published"],
            records={rid: Record.from_json(data) for rid, data in document["records"].items()},
            cases=document.get("cases", {}),
            windows=document["windows"],
            days=document["days"],
            anchors=document.get("anchors", {}),
            objections=document.get("objections", {}),
            repairs=document.get("repairs", {}),
            newest_fact=datetime.fromisoformat(document["newest_fact"]) if document.get("newest_fact") else None,
        )


def project(events: Iterable[LoggedEvent], policy: Policy, key_of: Callable[[Subject], str]) -> dict[str, CreditFile]:
    """Replay a log: every subject's credit file after applying ``events`` (in any order), settled.

    ``key_of`` names a subject's file (the projector passes a keyed blind index, so no resident id becomes
    a key); the same USCC reported by two marketplaces and a courier is one file.
    """
    files: dict[str, CreditFile] = {}
    for logged in events:
        for field_name, subject in subjects_of(logged.event).items():
            key = key_of(subject)
            credit_file = files.get(key)
            if credit_file is None:
                credit_file = files[key] = CreditFile(key)
            credit_file.apply(logged, field_name, policy)
    for credit_file in files.values():
        credit_file.settle(policy)
    return files
