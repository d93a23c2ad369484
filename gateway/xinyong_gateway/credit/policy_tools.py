"""Policy tooling: explain a policy in plain language, and show who a new policy would move between lists.

``xinyong-gateway policy check FILE`` and ``policy diff FILE`` are thin edges around this module.

Explaining
    :func:`explain_rule` turns one rule into one line a regulator can read and publish::

        counterfeit-listing: a confirmed listing.violation of kind counterfeit about the merchant puts it on
        the black list for 1095 days (serious, LISTING_COUNTERFEIT)

    (one line, wrapped here). :func:`explain_policy` adds one line each for the publicity periods, the score
    and grades, the measures, the red-list criteria and retention.

Comparing
    :func:`diff_statuses` compares each subject's status under two policies: a from → to matrix over the lists
    (black, watch, red, none) and, for every subject that moves, the reasons that move it. :class:`Replay`
    builds those statuses by applying one log to two sets of credit files with the pure engine, and
    :func:`dry_run` feeds it the whole inbox. That is the one function here that does I/O: it *reads* the
    inbox and the subjects table and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from xinyong.subjects import Subject
from xinyong_gateway.credit.documents import display_text, plural
from xinyong_gateway.credit.engine import CreditFile, ListStatus, LoggedEvent, Status, subjects_of
from xinyong_gateway.credit.inbox import read_logged
from xinyong_gateway.credit.policy import AtLeast, Condition, Policy, Rule
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import Store

__all__ = [
    "LISTS",
    "DryRun",
    "Example",
    "Move",
    "PolicyDiff",
    "ReasonKey",
    "Replay",
    "SubjectDisplay",
    "diff_document",
    "diff_lines",
    "diff_statuses",
    "dry_run",
    "explain_measures",
    "explain_policy",
    "explain_publicity",
    "explain_red",
    "explain_retention",
    "explain_rule",
    "explain_score",
]

LISTS: tuple[ListStatus, ...] = ("black", "watch", "red", "none")
"""The lists a status can be on, from the most to the least severe: black, watch, red, none."""

K = TypeVar("K", bound=Hashable)

# -- explaining ---------------------------------------------------------------------------------------------
_NEGATED = {"confirmed": "unconfirmed"}
"""How a false boolean condition reads before the event (``confirmed = false`` → "an unconfirmed ...")."""
_OF_FIELDS = frozenset({"kind"})
"""Fields that read "of kind counterfeit" rather than "with kind counterfeit"."""


def _value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _values(condition: Condition) -> str:
    """A condition's accepted values: ``counterfeit``, ``lost or damaged``, ``at least 100``."""
    if isinstance(condition, AtLeast):
        return f"at least {_value(condition.at_least)}"
    if isinstance(condition, list):
        return " or ".join(_value(value) for value in condition)
    return _value(condition)


def _article(words: str) -> str:
    return f"an {words}" if words[:1] in "aeiou" else f"a {words}"


def _facts(rule: Rule) -> str:
    """The matching facts without their quantity: ``confirmed listing.violation of kind counterfeit about the
    merchant``. A boolean condition reads as an adjective, ``kind`` as "of kind ...", every other field as
    "with field value"."""
    adjectives: list[str] = []
    of: list[str] = []
    with_: list[str] = []
    for key, condition in rule.where.items():
        if isinstance(condition, bool):
            adjectives.append(key if condition else _NEGATED.get(key, f"not {key}"))
        elif key in _OF_FIELDS:
            of.append(f"of {key} {_values(condition)}")
        else:
            with_.append(f"{key} {_values(condition)}")
    words = [*adjectives, rule.event, *of]
    if with_:
        words.append("with " + " and ".join(with_))
    words.append(f"about the {rule.subject_field}")
    return " ".join(words)


def _share_of(conditions: Mapping[str, Condition]) -> str:
    """What a ratio counts, by its accepted values: ``lost or damaged``."""
    parts = []
    for key, condition in conditions.items():
        if isinstance(condition, bool):
            parts.append(key if condition else _NEGATED.get(key, f"not {key}"))
        elif isinstance(condition, AtLeast):
            parts.append(f"{key} {_values(condition)}")
        else:
            parts.append(_values(condition))
    return " and ".join(parts)


def explain_rule(rule: Rule, policy: Policy) -> str:
    """One line of plain language saying what ``rule`` does under ``policy`` (which sets how long its record
    lasts and what it weighs): its id, the facts it looks at, the list it puts the subject on and for how many
    days, its severity and its reason code."""
    facts = _facts(rule)
    if rule.ratio is not None:
        assert rule.within is not None  # noqa: S101 -- Rule validation guarantees a window with a ratio
        share = f"{rule.ratio.at_least * 100:g}%"
        cause = (
            f"{_share_of(rule.ratio.of)} at least {share} of at least {rule.ratio.min_total} {facts}"
            f" within {rule.within.days} days"
        )
        singular = True
    elif rule.count > 1:
        assert rule.within is not None  # noqa: S101 -- Rule validation guarantees a window with count > 1
        cause = f"{rule.count} {facts} within {rule.within.days} days"
        singular = False
    else:
        cause = _article(facts)
        singular = True
    days = policy.publicity.of(rule.severity).days
    if rule.list == "none":
        weight = getattr(policy.score.weights, rule.severity)
        verb = "lowers" if singular else "lower"
        effect = f"{verb} the score by {weight} for {days} days without listing it"
    else:
        verb = "puts" if singular else "put"
        effect = f"{verb} it on the {rule.list} list for {days} days"
    return f"{rule.id}: {cause} {effect} ({rule.severity}, {rule.reason})"


def explain_publicity(policy: Policy) -> str:
    """How long a record is effective, by severity."""
    publicity = policy.publicity
    return (
        f"publicity: a record is effective for {publicity.minor.days} days if minor,"
        f" {publicity.general.days} days if general, {publicity.serious.days} days if serious"
    )


def explain_score(policy: Policy) -> str:
    """How the score is counted and how it maps to grades."""
    score = policy.score
    weights, grades = score.weights, score.grades
    return (
        f"score: {score.start} minus {weights.minor} per effective minor record, {weights.general} per general"
        f" and {weights.serious} per serious (never below 0); grade A from {grades.A}, B from {grades.B},"
        f" C from {grades.C}, D below; a subject on the black list is always D"
    )


def explain_measures(policy: Policy) -> str:
    """What platforms apply to each list."""
    measures = policy.measures
    return (
        f"measures: black list {', '.join(measures.black)}; watch list {', '.join(measures.watch)};"
        f" red list {', '.join(measures.red)}"
    )


def explain_retention(policy: Policy) -> str:
    """How long raw bodies keep the persons they name (``[retention]``)."""
    default = "" if policy.retention.keep_bodies_for else " (the default: the longest publicity period plus 5 years)"
    return (
        f"retention: a raw body keeps the persons it names for {policy.keep_bodies_for.days} days{default} after"
        " the last record it supports has ended, then `retention run` erases them (the facts stay)"
    )


def explain_red(policy: Policy) -> str:
    """When a subject earns the red list."""
    red = policy.red
    registered = "merchant.registered"
    if red.verified_registration:
        registered += ", with a verified real name"
    conditions = [f"has been registered ({registered}) for at least {red.registered_for.days} days"]
    if red.commitment_published:
        conditions.append("has published a commitment")
    conditions.append(f"has had no negative record effective in the last {red.clean_for.days} days")
    return (
        f"red: a subject goes on the red list once it {', '.join(conditions[:-1])} and {conditions[-1]}"
        " (pending complaints do not count)"
    )


def explain_policy(policy: Policy) -> list[str]:
    """The whole policy, one line each: publicity, score and grades, measures, red criteria, retention, then every rule
    in file order (:func:`explain_rule`)."""
    return [
        explain_publicity(policy),
        explain_score(policy),
        explain_measures(policy),
        explain_red(policy),
        explain_retention(policy),
        *(explain_rule(rule, policy) for rule in policy.rules),
    ]


# -- comparing statuses --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, order=True)
class ReasonKey:
    """A reason as the diff compares it: its code and the list it puts the subject on (a rule moved from the
    black to the watch list keeps its code but is another reason)."""

    code: str
    list: str

    def __str__(self) -> str:
        return f"{self.code} ({self.list})"


@dataclass(frozen=True, slots=True)
class Move(Generic[K]):
    """A subject on another list under the new policy, and the reasons that move it."""

    key: K
    before: ListStatus
    after: ListStatus
    added: tuple[ReasonKey, ...]
    """Reasons under the new policy that the old one does not give."""
    removed: tuple[ReasonKey, ...]
    """Reasons under the old policy that the new one does not give."""


@dataclass(frozen=True, slots=True)
class PolicyDiff(Generic[K]):
    """Who is where under the old and the new policy."""

    matrix: dict[ListStatus, dict[ListStatus, int]]
    """``matrix[old list][new list]``: how many subjects; every pair of :data:`LISTS` is there."""
    moves: tuple[Move[K], ...]
    """The subjects off the diagonal, in the order of the statuses compared."""

    @property
    def subjects(self) -> int:
        return sum(sum(row.values()) for row in self.matrix.values())

    @property
    def moved(self) -> int:
        return len(self.moves)

    def cell(self, before: ListStatus, after: ListStatus) -> list[Move[K]]:
        """The subjects moving from ``before`` to ``after``."""
        return [move for move in self.moves if (move.before, move.after) == (before, after)]

    def cells(self) -> list[tuple[ListStatus, ListStatus, list[Move[K]]]]:
        """The non-empty off-diagonal cells, in matrix order."""
        found = []
        for before in LISTS:
            for after in LISTS:
                if before != after and self.matrix[before][after]:
                    found.append((before, after, self.cell(before, after)))
        return found


def _reasons(status: Status | None) -> set[ReasonKey]:
    return {ReasonKey(reason.code, reason.list) for reason in status.reasons} if status else set()


def diff_statuses(before: Mapping[K, Status], after: Mapping[K, Status]) -> PolicyDiff[K]:
    """Compare each subject's status under the old policy (``before``) and the new one (``after``).

    A subject missing on one side counts as on no list there, with no reasons. Subjects are taken in the order
    of ``before``, then those only in ``after``.
    """
    matrix: dict[ListStatus, dict[ListStatus, int]] = {row: dict.fromkeys(LISTS, 0) for row in LISTS}
    moves: list[Move[K]] = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        old_list: ListStatus = old.list if old else "none"
        new_list: ListStatus = new.list if new else "none"
        matrix[old_list][new_list] += 1
        if old_list != new_list:
            old_reasons, new_reasons = _reasons(old), _reasons(new)
            moves.append(
                Move(
                    key,
                    old_list,
                    new_list,
                    added=tuple(sorted(new_reasons - old_reasons)),
                    removed=tuple(sorted(old_reasons - new_reasons)),
                )
            )
    return PolicyDiff(matrix, tuple(moves))


# -- replaying a log under two policies ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubjectDisplay:
    """A subject as it may be shown: a USCC in full, a resident id and a person's name masked."""

    id_type: str
    id: str
    name: str | None

    @classmethod
    def of(cls, subject: Subject) -> SubjectDisplay:
        return cls(subject.id_type, subject.masked_id, display_text(subject.masked_name))

    def to_json(self) -> dict[str, Any]:
        return {"id_type": self.id_type, "id": self.id, "name": self.name}

    def __str__(self) -> str:
        return f"{self.id_type.upper()} {self.id}" + (f" {self.name}" if self.name else "")


@dataclass(slots=True)
class Replay:
    """Every subject's credit file under two policies, built by applying one log in order (pure, in memory).

    ``key_of`` names a subject's file as the projector does (a keyed blind index); only the masked form of each
    subject is kept (the latest name wins, as in the projector).
    """

    current: Policy
    candidate: Policy
    key_of: Callable[[Subject], str]
    before: dict[str, CreditFile] = field(default_factory=dict)
    after: dict[str, CreditFile] = field(default_factory=dict)
    displays: dict[str, SubjectDisplay] = field(default_factory=dict)
    events: int = 0

    def apply(self, logged: LoggedEvent) -> None:
        """Apply one event to the files of the subjects it is about, under both policies."""
        for field_name, subject in subjects_of(logged.event).items():
            key = logged.file_key(field_name, subject, self.key_of)
            display, known = SubjectDisplay.of(subject), self.displays.get(key)
            erased = logged.file_keys is not None and field_name in logged.file_keys  # its subject: a stand-in
            if known is not None and (display.name is None or erased):
                display = known
            self.displays[key] = display
            for files, policy in ((self.before, self.current), (self.after, self.candidate)):
                credit_file = files.get(key)
                if credit_file is None:
                    credit_file = files[key] = CreditFile(key)
                credit_file.apply(logged, field_name, policy)
        self.events += 1

    def apply_all(self, events: Iterable[LoggedEvent]) -> None:
        for logged in events:
            self.apply(logged)

    def statuses(self, at: datetime) -> tuple[dict[str, Status], dict[str, Status]]:
        """Each subject's status at ``at`` under the current and the candidate policy."""
        statuses = (
            {key: credit_file.status_at(at, self.current) for key, credit_file in self.before.items()},
            {key: credit_file.status_at(at, self.candidate) for key, credit_file in self.after.items()},
        )
        for files in (self.before, self.after):
            for credit_file in files.values():
                credit_file.archived.clear()  # ended long before the newest fact: no status from now on needs it
        return statuses

    def diff(self, at: datetime) -> PolicyDiff[str]:
        return diff_statuses(*self.statuses(at))


@dataclass(frozen=True, slots=True)
class Example:
    """A subject that moves, as it may be shown, with the reasons that move it."""

    subject: SubjectDisplay
    added: tuple[ReasonKey, ...]
    removed: tuple[ReasonKey, ...]


@dataclass(frozen=True, slots=True)
class DryRun:
    """What :func:`dry_run` found."""

    current_version: str
    candidate_version: str
    at: datetime
    events: int
    diff: PolicyDiff[str]
    examples: dict[tuple[ListStatus, ListStatus], list[Example]]
    """Up to the requested number of examples for each non-empty off-diagonal cell."""


async def dry_run(
    store: Store,
    master: MasterKey,
    current: Policy,
    candidate: Policy,
    *,
    examples: int = 3,
    at: datetime | None = None,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> DryRun:
    """Replay the whole inbox under ``current`` and ``candidate`` and compare every subject's status at ``at``
    (default: when the replay ends). Reads the inbox and the subjects table; writes nothing.

    Events are read in inbox order and unsealed as the projector does; ``progress(done, total)`` is called after
    each batch (``total`` is the inbox size when the replay started). Examples name a subject by its row in the
    subjects table when the projector has one, else by the masked identity from the events.
    """
    replay = Replay(current, candidate, lambda subject: master.subject_key(subject.id_type, subject.id))
    total = await store.inbox_count()
    position = 0
    while rows := await store.read_inbox(position, batch_size):
        replay.apply_all(read_logged(row, master) for row in rows)
        position = rows[-1].seq
        if progress is not None:
            progress(replay.events, max(total, replay.events))
    moment = at or datetime.now(UTC)
    diff = replay.diff(moment)
    chosen = {(before, after): moves[:examples] for before, after, moves in diff.cells()}
    wanted = [move.key for moves in chosen.values() for move in moves]
    rows_by_key = await store.load_subjects(wanted) if wanted else {}
    displays = {key: replay.displays[key] for key in wanted}
    for key, row in rows_by_key.items():
        displays[key] = SubjectDisplay(row.id_type, row.display_id, row.display_name)
    return DryRun(
        current_version=current.version,
        candidate_version=candidate.version,
        at=moment,
        events=replay.events,
        diff=diff,
        examples={
            cell: [Example(displays[move.key], move.added, move.removed) for move in moves]
            for cell, moves in chosen.items()
        },
    )


# -- presenting a dry run ------------------------------------------------------------------------------------
def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def diff_document(result: DryRun) -> dict[str, Any]:
    """The JSON form of a dry run: versions, counts, the matrix and the examples of each moving cell."""
    diff = result.diff
    return {
        "current_version": result.current_version,
        "candidate_version": result.candidate_version,
        "as_of": _iso(result.at),
        "events": result.events,
        "subjects": diff.subjects,
        "moved": diff.moved,
        "matrix": {before: dict(row) for before, row in diff.matrix.items()},
        "cells": [
            {
                "from": before,
                "to": after,
                "count": diff.matrix[before][after],
                "examples": [
                    {
                        "subject": example.subject.to_json(),
                        "added": [{"code": r.code, "list": r.list} for r in example.added],
                        "removed": [{"code": r.code, "list": r.list} for r in example.removed],
                    }
                    for example in result.examples.get((before, after), [])
                ],
            }
            for before, after, _ in diff.cells()
        ],
    }


def _matrix_lines(matrix: Mapping[ListStatus, Mapping[ListStatus, int]]) -> list[str]:
    width = max(7, *(len(str(n)) + 2 for row in matrix.values() for n in row.values()))
    lines = ["  from \\ to " + "".join(f"{name:>{width}}" for name in LISTS)]
    for before in LISTS:
        lines.append(f"  {before:<10}" + "".join(f"{matrix[before][after]:>{width}}" for after in LISTS))
    return lines


def _reason_text(added: Sequence[ReasonKey], removed: Sequence[ReasonKey]) -> str:
    text = " ".join([*(f"+{r}" for r in added), *(f"-{r}" for r in removed)])
    return text or "(same reasons: the red-list criteria decide)"


def diff_lines(result: DryRun) -> list[str]:
    """The human form of a dry run: a summary, the from → to matrix, then each moving cell with its examples."""
    diff = result.diff
    lines = [
        f"Replayed {plural(result.events, 'event')} about {plural(diff.subjects, 'subject')} under"
        f" {result.current_version} (current) and {result.candidate_version} (new), status as of {_iso(result.at)}.",
        f"{plural(diff.moved, 'subject')} would move between lists (rows: the current policy, columns: the new one):",
        *_matrix_lines(diff.matrix),
    ]
    for before, after, _ in diff.cells():
        count = diff.matrix[before][after]
        lines.append(f"{before} → {after}: {plural(count, 'subject')}")
        for example in result.examples.get((before, after), []):
            lines.append(f"    {example.subject}  {_reason_text(example.added, example.removed)}")
    return lines
