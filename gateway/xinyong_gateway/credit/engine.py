"""Projection: a pure function of (events in log order, policy, time) → credit files and list status.

Nothing here does I/O. The projector (the edge that reads the inbox and writes the store) feeds events in
inbox order to :meth:`CreditFile.apply` and asks :meth:`CreditFile.status_at` what follows; replaying the
same log with the same policy gives the same files, byte for byte (:meth:`CreditFile.to_json`).

Facts and records
    Every event is about one or more subjects (its ``merchant``, ``courier`` or ``subject`` fields). A rule
    of the policy looks at one event type and one of its subjects. Each fact has a *case*: events of one
    type from one source with the same ``case_id`` / ``complaint_id`` / ``decision_no`` are one case, and a
    later event of the case supersedes the earlier one (that is how a report is confirmed, corrected or
    withdrawn); ``penalty.revoked`` revokes its ``penalty.imposed``. Events without such an id are each a
    case of their own.

    A rule that fires creates a :class:`Record`: reason code, severity, list, the inbox positions of the
    events behind it, effective ``[from, until)`` (``until`` = ``from`` + the severity's publicity period).
    A single-fact rule's record follows its case: a superseding event that no longer matches withdraws it
    (or revokes it, for a revocation). A counting rule (``count`` within a window) fires when the count of
    matching cases with fact times in ``(t - window, t]`` reaches the threshold at a fact's time ``t``, unless
    a record of the rule is already effective then; a ratio rule fires likewise when the share of matching
    facts in the window reaches ``at_least`` of at least ``min_total``. Records follow the moment the rule
    was met, not live counts: they stay effective when the count later falls, but a record whose
    contributing cases are withdrawn below the threshold is withdrawn with them.

Cost per event does not grow with a subject's history: a counting rule keeps the cases inside its window
(at most ``_WINDOW_CAP`` times its threshold of them), a ratio rule keeps one counter pair per day of its window.
A late fact older than what a window keeps is counted against what is kept.

Status at time T
    ``black`` if a black record is effective at T, else ``watch`` if a watch record is, else ``red`` if the
    policy's red criteria hold, else ``none``. The score is the policy's start value minus the weight of every
    effective record (``none`` records included); the grade follows the score, and a black subject is always D.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from xinyong.events import EventBase
from xinyong.subjects import CHINA_STANDARD_TIME, Subject
from xinyong_gateway.credit.policy import AtLeast, Condition, Policy, Rule

__all__ = [
    "CreditFile",
    "LoggedEvent",
    "Reason",
    "Record",
    "Status",
    "fact_time",
    "project",
    "subjects_of",
]

ListStatus = Literal["black", "watch", "red", "none"]
RecordState = Literal["active", "pending", "expired", "withdrawn", "revoked"]

_CASE_FIELDS = ("case_id", "complaint_id", "decision_no")
_REVOKES = {"penalty.revoked": "penalty.imposed"}
_WINDOW_CAP = 10


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the projector reads it from the inbox: its position, its source and the parsed event."""

    seq: int
    source_id: str
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


def _case_of(logged: LoggedEvent, event_type: str) -> str:
    fields = _data(logged.event).__dict__  # a missing field costs pydantic's __getattr__ an exception: look it up
    for name in _CASE_FIELDS:
        value = fields.get(name)
        if isinstance(value, str):
            return f"{logged.source_id}|{event_type}|{value}"
    return f"{logged.source_id}|{event_type}|#{logged.seq}"


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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _cst_day(moment: datetime) -> date:
    return moment.astimezone(CHINA_STANDARD_TIME).date()


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
    ended: Literal["withdrawn", "revoked"] | None = None
    case: str | None = None
    contributing: list[str] = field(default_factory=list)

    def state_at(self, at: datetime) -> RecordState:
        if self.ended is not None:
            return self.ended
        if at < self.effective_from:
            return "pending"
        return "active" if at < self.effective_until else "expired"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["effective_from"] = _iso(self.effective_from)
        data["effective_until"] = _iso(self.effective_until)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        values = dict(data)
        values["effective_from"] = datetime.fromisoformat(values["effective_from"])
        values["effective_until"] = datetime.fromisoformat(values["effective_until"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a subject is where it is: one effective record, as a status shows it."""

    code: str
    list: str
    severity: str
    source_seqs: tuple[int, ...]
    effective_from: datetime
    effective_until: datetime


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

    def decision(self) -> tuple[str, str, tuple[str, ...]]:
        """What a change-feed entry is about: list, grade and measures."""
        return (self.list, self.grade, self.measures)


@dataclass(slots=True)
class CreditFile:
    """One subject's credit file: the facts that matter to the policy, and its records."""

    key: str
    registered_at: datetime | None = None
    commitment_published: bool = False
    records: dict[str, Record] = field(default_factory=dict)
    windows: dict[str, list[list[Any]]] = field(default_factory=dict)
    """Counting rules: ``[fact time ISO, case, seq]`` of the matching cases kept in the window."""
    days: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """Ratio rules: ``{day ISO: [matching, total]}`` over the window."""
    fired: dict[str, int] = field(default_factory=dict)
    """How many records each counting or ratio rule has created (their ids are ``rule#n``)."""
    newest_fact: datetime | None = None
    """The latest fact time applied: records that ended long before it leave the file (see ``archived``)."""
    archived: list[Record] = field(default_factory=list)
    """Records moved out of the file by the last :meth:`apply` calls, for the projector to keep elsewhere (they
    can no longer change any status from ``newest_fact`` on); not part of the file's JSON."""

    # -- applying facts -----------------------------------------------------------------------------
    def apply(self, logged: LoggedEvent, subject_field: str, policy: Policy) -> None:
        """Apply one event about this subject (as its ``subject_field``) under ``policy``."""
        event = logged.event
        if event.type == "merchant.registered" and subject_field == "merchant":
            moment = fact_time(event)
            if self.registered_at is None or moment < self.registered_at:
                self.registered_at = moment
        elif event.type == "commitment.published" and subject_field == "merchant":
            self.commitment_published = True
        revoked_type = _REVOKES.get(event.type)
        if revoked_type is not None:
            self._revoke(_case_of(logged, revoked_type))
        for rule in policy.rules_by_event.get(event.type, ()):
            if rule.subject_field != subject_field:
                continue
            if rule.ratio is not None:
                self._apply_ratio(rule, logged, policy)
            elif rule.count > 1:
                self._apply_count(rule, logged, policy)
            else:
                self._apply_single(rule, logged, policy)
        moment = fact_time(event)
        if self.newest_fact is None or moment > self.newest_fact:
            self.newest_fact = moment
            self._archive_old_records(policy)

    def _archive_old_records(self, policy: Policy) -> None:
        """Move out the records that can no longer matter: ended, or expired for longer than the red list's
        clean period, before the newest fact. This keeps the file's size, and so the cost of applying an
        event, bounded by recent activity rather than by the subject's whole history."""
        assert self.newest_fact is not None  # noqa: S101 -- set by the caller
        horizon = self.newest_fact - policy.red.clean_for
        old = [record_id for record_id, record in self.records.items() if record.effective_until <= horizon]
        for record_id in old:
            self.archived.append(self.records.pop(record_id))

    def _new_record(
        self, rule: Rule, record_id: str, seqs: list[int], moment: datetime, policy: Policy, **extra: Any
    ) -> Record:
        return Record(
            record_id=record_id,
            rule_id=rule.id,
            reason=rule.reason,
            list_name=rule.list,
            severity=rule.severity,
            source_seqs=seqs,
            effective_from=moment,
            effective_until=moment + policy.publicity.of(rule.severity),
            **extra,
        )

    def _apply_single(self, rule: Rule, logged: LoggedEvent, policy: Policy) -> None:
        case = _case_of(logged, logged.event.type)
        record_id = f"{rule.id}|{case}"
        existing = self.records.get(record_id)
        if _matches(logged.event, rule.where):
            moment = fact_time(logged.event)
            if existing is None:
                self.records[record_id] = self._new_record(rule, record_id, [logged.seq], moment, policy, case=case)
            else:  # a correction or confirmation of the same case: the latest fact decides
                existing.source_seqs.append(logged.seq)
                existing.effective_from = moment
                existing.effective_until = moment + policy.publicity.of(rule.severity)
                existing.ended = None
        elif existing is not None and existing.ended is None:
            existing.source_seqs.append(logged.seq)
            existing.ended = "withdrawn"

    def _revoke(self, case: str) -> None:
        for record in self.records.values():
            if record.case == case and record.ended is None:
                record.ended = "revoked"

    def _covered(self, rule: Rule, moment: datetime) -> bool:
        return any(
            r.rule_id == rule.id and r.ended is None and r.effective_from <= moment < r.effective_until
            for r in self.records.values()
        )

    def _apply_count(self, rule: Rule, logged: LoggedEvent, policy: Policy) -> None:
        assert rule.within is not None  # noqa: S101 -- Rule validation guarantees a window with count > 1
        case = _case_of(logged, logged.event.type)
        entries = [entry for entry in self.windows.get(rule.id, []) if entry[1] != case]
        matched = _matches(logged.event, rule.where)
        if matched:
            moment = fact_time(logged.event)
            entries.append([_iso(moment), case, logged.seq])
        entries.sort(key=lambda entry: (entry[0], entry[2]))
        if entries:
            newest = datetime.fromisoformat(entries[-1][0])
            entries = [e for e in entries if datetime.fromisoformat(e[0]) > newest - rule.within]
            entries = entries[-rule.count * _WINDOW_CAP :]
        self.windows[rule.id] = entries
        if matched:
            in_window = [e for e in entries if moment - rule.within < datetime.fromisoformat(e[0]) <= moment]
            if len(in_window) >= rule.count and not self._covered(rule, moment):
                self.fired[rule.id] = self.fired.get(rule.id, 0) + 1
                record_id = f"{rule.id}#{self.fired[rule.id]}"
                self.records[record_id] = self._new_record(
                    rule,
                    record_id,
                    sorted(e[2] for e in in_window),
                    moment,
                    policy,
                    contributing=sorted(e[1] for e in in_window),
                )
        else:  # a withdrawn case no longer supports the records it helped create
            kept = {e[1] for e in entries}
            for record in self.records.values():
                if record.rule_id == rule.id and record.ended is None and case in record.contributing:
                    if len([c for c in record.contributing if c in kept]) < rule.count:
                        record.source_seqs.append(logged.seq)
                        record.ended = "withdrawn"

    def _apply_ratio(self, rule: Rule, logged: LoggedEvent, policy: Policy) -> None:
        ratio, window = rule.ratio, rule.within
        assert ratio is not None and window is not None  # noqa: S101 -- guaranteed by Rule validation
        if not _matches(logged.event, rule.where):
            return
        moment = fact_time(logged.event)
        day = _cst_day(moment)
        today = day.isoformat()
        buckets = self.days.setdefault(rule.id, {})
        counts = buckets.setdefault(today, [0, 0])
        counts[0] += 1 if _matches(logged.event, ratio.of) else 0
        counts[1] += 1
        # Days are ISO dates (YYYY-MM-DD), whose text order is their date order: compare them as text, so the
        # cost per event is a string comparison per day of the window, not a date parse.
        stale_until = (date.fromisoformat(max(buckets)) - window).isoformat()
        for stale in [d for d in buckets if d <= stale_until]:
            del buckets[stale]
        first_day = (day - window + timedelta(days=1)).isoformat()
        hits = total = 0
        for d, (m, t) in buckets.items():
            if first_day <= d <= today:
                hits, total = hits + m, total + t
        if total >= ratio.min_total and hits >= ratio.at_least * total and not self._covered(rule, moment):
            self.fired[rule.id] = self.fired.get(rule.id, 0) + 1
            record_id = f"{rule.id}#{self.fired[rule.id]}"
            self.records[record_id] = self._new_record(rule, record_id, [logged.seq], moment, policy)

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
            if record.ended is None and record.effective_from <= at and record.effective_until > clean_since:
                return False
        return True

    def status_at(self, at: datetime, policy: Policy) -> Status:
        """The subject's standing at ``at`` under ``policy``."""
        effective = sorted(self.effective_records(at), key=lambda r: (r.effective_from, r.record_id))
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
                Reason(r.reason, r.list_name, r.severity, tuple(r.source_seqs), r.effective_from, r.effective_until)
                for r in effective
            ),
            disputed=False,
            policy_version=policy.version,
            as_of=at,
        )

    def next_change_after(self, at: datetime, policy: Policy) -> datetime | None:
        """The first instant after ``at`` at which the status may change with no new event: a record starts
        or ends, or the red list's waiting periods run out."""
        moments: list[datetime] = []
        for record in self.records.values():
            if record.ended is None:
                moments += [
                    record.effective_from,
                    record.effective_until,
                    record.effective_until + policy.red.clean_for,
                ]
        if self.registered_at is not None:
            moments.append(self.registered_at + policy.red.registered_for)
        later = [m for m in moments if m > at]
        return min(later) if later else None

    # -- persistence ---------------------------------------------------------------------------------
    def to_json(self) -> str:
        """A canonical JSON form: equal files give equal text."""
        document = {
            "key": self.key,
            "registered_at": _iso(self.registered_at) if self.registered_at else None,
            "commitment_published": self.commitment_published,
            "records": {rid: record.to_json() for rid, record in sorted(self.records.items())},
            "windows": dict(sorted(self.windows.items())),
            "days": {rule: dict(sorted(days.items())) for rule, days in sorted(self.days.items())},
            "fired": dict(sorted(self.fired.items())),
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
            windows=document["windows"],
            days=document["days"],
            fired=document["fired"],
            newest_fact=datetime.fromisoformat(document["newest_fact"]) if document.get("newest_fact") else None,
        )


def project(events: Iterable[LoggedEvent], policy: Policy, key_of: Callable[[Subject], str]) -> dict[str, CreditFile]:
    """Replay a log: every subject's credit file after applying ``events`` in order.

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
    return files
