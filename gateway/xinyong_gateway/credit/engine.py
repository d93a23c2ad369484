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

import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from xinyong.subjects import Subject
from xinyong_gateway.credit.facts import (
    _DUE_PROCESS_TYPES,
    _REVOKES,
    ClosedState,
    EndState,
    FactKey,
    ListStatus,
    LoggedEvent,
    ObjectionView,
    Reason,
    Record,
    RepairView,
    Status,
    _case_id,
    _cst_day,
    _end_of_day,
    _instant,
    _iso,
    _limits,
    _matches,
    _micros,
    _record_id,
    fact_time,
    objection_view,
    repair_view,
    role_of,
    subjects_of,
)
from xinyong_gateway.credit.intermediary import INTERMEDIARY_TYPES, IntermediaryFile
from xinyong_gateway.credit.policy import Policy, Rule

__all__ = [
    "CreditFile",
    "ListStatus",
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
    """By objection id: ``filed`` versions ``[timestamp, seq, filed_at, record_id, source_id]`` and ``rulings``
    ``[decided_at, timestamp, seq, outcome]`` (microseconds), every one received, in any order."""
    repairs: dict[str, dict[str, list[list[Any]]]] = field(default_factory=dict)
    """By repair id: ``applied`` versions ``[timestamp, seq, applied_at, record_id, source_id]`` and ``rulings`` as
    above."""
    newest_fact: datetime | None = None
    """The latest fact time applied: horizons and the archive are measured back from it."""
    intermediary: IntermediaryFile | None = None
    """An intermediary agency's or practitioner's declared information, links, evaluations (``credit.intermediary``)."""
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
        member = subject_field
        if "/" in subject_field:  # a member of a list of subjects (``practitioners/0``) is in the list's role
            subject_field = role_of(subject_field)
        if event.type == "merchant.registered" and subject_field == "merchant":
            if self.registered_at is None or at < self.registered_at:
                self.registered_at = at
        elif event.type == "commitment.published" and subject_field == "merchant":
            self.commitment_published = True
        elif event.type in _DUE_PROCESS_TYPES:
            self._due_process(logged)
        elif event.type in INTERMEDIARY_TYPES:
            self._intermediary(logged, member)
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
            versions, version = case["filed"], [ts, seq, at, data["record_id"], logged.source_id]
        if version not in versions:
            insort(versions, version)

    def _intermediary(self, logged: LoggedEvent, member: str) -> None:
        """Keep an intermediary fact about this subject (``member``: its key in :func:`subjects_of`)."""
        subject = subjects_of(logged.event)[member]
        if self.intermediary is None:
            self.intermediary = IntermediaryFile("intermediary" if subject.id_type == "uscc" else "practitioner")
        self.intermediary.apply(logged.event, logged.source_id, logged.seq, role_of(member), subject)

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
        return objection_view(objection_id, case, self.records, policy, now)

    def repair(self, repair_id: str, policy: Policy) -> RepairView:
        """A repair application as the engine sees it: pending, granted, refused (and why), or invalid."""
        return repair_view(repair_id, self.repairs.get(repair_id, {"filed": [], "rulings": []}), self.records, policy)

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
        intermediary = self.intermediary.status_at(at, policy, standing) if self.intermediary is not None else None
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
            intermediary=intermediary,
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
        if self.intermediary is not None:
            moments += self.intermediary.changes_after(at)
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
        if self.intermediary is not None:  # only then: every other file's JSON stays as it was
            document["intermediary"] = self.intermediary.to_json()
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
            intermediary=IntermediaryFile.from_json(document["intermediary"]) if "intermediary" in document else None,
        )


def project(events: Iterable[LoggedEvent], policy: Policy, key_of: Callable[[Subject], str]) -> dict[str, CreditFile]:
    """Replay a log: every subject's credit file after applying ``events`` (in any order), settled.

    ``key_of`` names a subject's file (the projector passes a keyed blind index, so no resident id becomes
    a key); the same USCC reported by two marketplaces and a courier is one file.
    """
    files: dict[str, CreditFile] = {}
    for logged in events:
        for field_name, subject in subjects_of(logged.event).items():
            key = logged.file_key(field_name, subject, key_of)
            credit_file = files.get(key)
            if credit_file is None:
                credit_file = files[key] = CreditFile(key)
            credit_file.apply(logged, field_name, policy)
    for credit_file in files.values():
        credit_file.settle(policy)
    return files
