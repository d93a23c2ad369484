"""The credit policy: a versioned TOML file that says which facts put a subject on which list.

A regulator reads, changes and publishes it; nothing about the lists is hard-coded elsewhere. The file is
validated on load, and every problem is reported with the line and the key it is about
(``policy.toml, line 42, rule[3].where.kind: ...``), so a person editing it can fix it.

What a policy holds (the shipped default is ``default_policy.toml`` beside this module):

- ``version``: recorded with every status it produces, so a decision names the rules behind it;
- ``publicity``: how long a record is effective, by severity (minor up to 3 months, general 3 months to
  1 year, serious 1 to 3 years);
- ``score``: the start value, the weight of each active negative record by severity, and the lowest score
  of grades A, B and C (below C is D; a black-listed subject is always D);
- ``measures``: what platforms apply to each list;
- ``red``: when a subject earns the red list;
- ``retention`` (optional): how long a raw webhook body keeps the natural persons it names, counted from the end
  of the last record it supports (or from its own fact time when it supports none): ``keep_bodies_for``, by
  default the longest publicity period plus 5 years (``retention run``, ``credit/retention.py``);
- ``disclosure``: who the public site (``/public/``) shows: natural persons only while on the lists named in
  ``persons`` (default ``["black"]``; ``[]`` never), always masked;
- ``intermediary`` (optional): the tiered supervision of intermediary agencies and their practitioners: the measures
  of each tier (A to D) for each kind, and the tier a list lowers a subject to (``list_tier``);
- ``rule``: one table per rule. A rule matches one event type (``event``), optionally only when fields of
  its ``data`` have given values (``where``: a value, a list of allowed values, or ``{ at_least = n }``),
  about one of its subjects (``subject``: the name of a subject field, needed when the event has two).
  It fires on each matching fact, or when ``count`` matching facts fall ``within`` a window, or, with
  ``ratio``, when the facts matching ``of`` are at least ``at_least`` of all matching facts in the window
  (and there are at least ``min_total``). Firing creates a record of the rule's ``severity`` with its
  ``reason`` code (and its Chinese ``label``, what the public site shows), which puts the subject on the rule's
  ``list`` (``black``, ``watch``, or ``none`` for a
  record that only lowers the score) while it is effective.

This module is pure: it parses and checks. Applying a policy to events is the projector's job.
"""

from __future__ import annotations

import re
import tomllib
import types
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from xinyong.events import EVENT_TYPES
from xinyong.subjects import Subject
from xinyong_gateway.credit.due_process import DueDuration, due_duration
from xinyong_gateway.errors import GatewayError

__all__ = [
    "DEFAULT_POLICY_FILE",
    "AtLeast",
    "Disclosure",
    "IntermediaryPolicy",
    "Policy",
    "PolicyError",
    "Ratio",
    "Retention",
    "Rule",
    "default_policy",
    "load_policy",
    "parse_policy",
    "policy_from",
]

DEFAULT_POLICY_FILE = "default_policy.toml"

Severity = Literal["minor", "general", "serious"]
ListName = Literal["black", "watch", "none"]

_DAYS = re.compile(r"([1-9][0-9]{0,4})d")
_PUBLICITY_BOUNDS: dict[str, tuple[int, int]] = {
    "minor": (1, 92),  # up to 3 months
    "general": (90, 366),  # 3 months to 1 year
    "serious": (365, 1096),  # 1 to 3 years
}


class PolicyError(GatewayError, ValueError):
    """A policy file that cannot be used; the message names the file, the line and the key."""


def _days(value: object) -> object:
    if isinstance(value, str):
        match = _DAYS.fullmatch(value.strip())
        if match is None:
            raise ValueError('a duration is a whole number of days, such as "90d"')
        return timedelta(days=int(match.group(1)))
    return value


Days = Annotated[timedelta, BeforeValidator(_days)]
"""A whole number of days, written ``"90d"``."""


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Publicity(_PolicyModel):
    minor: Days
    general: Days
    serious: Days

    @model_validator(mode="after")
    def _within_legal_bounds(self) -> Self:
        for severity, (low, high) in _PUBLICITY_BOUNDS.items():
            days = getattr(self, severity).days
            if not low <= days <= high:
                raise ValueError(f"{severity} publicity must be between {low} and {high} days, not {days}")
        return self

    def of(self, severity: Severity) -> timedelta:
        duration: timedelta = getattr(self, severity)
        return duration


class Weights(_PolicyModel):
    minor: Annotated[int, Field(ge=0, le=100)]
    general: Annotated[int, Field(ge=0, le=100)]
    serious: Annotated[int, Field(ge=0, le=100)]


class Grades(_PolicyModel):
    A: Annotated[int, Field(ge=0, le=100)]
    B: Annotated[int, Field(ge=0, le=100)]
    C: Annotated[int, Field(ge=0, le=100)]

    @model_validator(mode="after")
    def _descending(self) -> Self:
        if not self.A > self.B > self.C:
            raise ValueError("grade thresholds must fall from A to C (A > B > C)")
        return self


class Score(_PolicyModel):
    start: Annotated[int, Field(ge=0, le=100)] = 100
    weights: Weights
    grades: Grades


MeasureName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Measures(_PolicyModel):
    black: Annotated[list[MeasureName], Field(min_length=1)]
    watch: Annotated[list[MeasureName], Field(min_length=1)]
    red: Annotated[list[MeasureName], Field(min_length=1)]


class RedCriteria(_PolicyModel):
    verified_registration: bool
    commitment_published: bool
    registered_for: Days
    clean_for: Days


Grade = Literal["A", "B", "C", "D"]


class TierMeasures(_PolicyModel):
    """The supervision measures of each tier, A (best) to D (worst); a tier may have none."""

    A: list[MeasureName]
    B: list[MeasureName]
    C: list[MeasureName]
    D: list[MeasureName]

    def of(self, grade: Grade) -> tuple[str, ...]:
        measures: list[str] = getattr(self, grade)
        return tuple(measures)


class IntermediaryPolicy(_PolicyModel):
    """``[intermediary]``: tiered supervision (分级分类监管). A subject's tier is the grade of its latest periodic
    evaluation (``intermediary.evaluated``), lowered to ``list_tier[list]`` while it is on that list; ``agency`` and
    ``practitioner`` give each tier's measures for each kind of subject."""

    list_tier: dict[Literal["black", "watch"], Grade]
    agency: TierMeasures
    practitioner: TierMeasures


class AtLeast(_PolicyModel):
    """A numeric condition: the field's value is at least ``at_least``."""

    at_least: int | float


Condition = AtLeast | list[str | int | bool] | str | int | bool


class Ratio(_PolicyModel):
    """The facts matching ``of`` are at least ``at_least`` of all matching facts, of which there are at
    least ``min_total``, in the rule's window."""

    of: dict[str, Condition]
    at_least: Annotated[float, Field(gt=0, le=1)]
    min_total: Annotated[int, Field(ge=1)]


def _data_model(event: str) -> type[BaseModel]:
    """The model of an event type's ``data``."""
    data_model = EVENT_TYPES[event].model_fields["data"].annotation
    if not (isinstance(data_model, type) and issubclass(data_model, BaseModel)):
        raise TypeError(f"{event} has no data model")
    return data_model


def _names_subjects(annotation: Any) -> bool:
    """Whether a field of this type holds a subject: a :class:`Subject`, an optional one, or a list of them."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _names_subjects(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_names_subjects(member) for member in get_args(annotation))
    if origin is list:
        return _names_subjects(get_args(annotation)[0])
    return annotation is Subject


def _subject_fields(event: str) -> tuple[str, ...]:
    """The names of the subject fields of an event's data (a list of subjects is one field), in declaration order."""
    return tuple(name for name, info in _data_model(event).model_fields.items() if _names_subjects(info.annotation))


def _check_conditions(event: str, conditions: dict[str, Condition], where: str) -> None:
    fields = _data_model(event).model_fields
    subjects = _subject_fields(event)
    for key, condition in conditions.items():
        if key not in fields:
            known = ", ".join(name for name in fields if name not in subjects)
            raise ValueError(f"{where}: {event} has no field {key!r} (fields: {known})")
        if key in subjects:
            raise ValueError(f"{where}: {key!r} is a subject; choose the subject with `subject = {key!r}`")
        info = fields[key]
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated.__class_getitem__((annotation, *info.metadata))  # type: ignore[attr-defined]
        checker: TypeAdapter[Any] = TypeAdapter(annotation)
        if isinstance(condition, AtLeast):
            if info.annotation not in (int, float):
                raise ValueError(f"{where}: {key!r} is not a number, so `at_least` does not apply")
            continue
        for value in condition if isinstance(condition, list) else [condition]:
            try:
                checker.validate_python(value, strict=True)
            except ValidationError:
                raise ValueError(f"{where}: {value!r} is not a possible value of {event} {key!r}") from None


PublicList = Literal["black", "watch", "red"]


def _black_only() -> list[PublicList]:
    return ["black"]


class Disclosure(_PolicyModel):
    """What the public disclosure site shows of natural persons: only while on one of ``persons``' lists (masked,
    never by resident id); organisations always."""

    persons: list[PublicList] = Field(default_factory=_black_only)


class Rule(_PolicyModel):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
    reason: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=64)]
    label: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^\S(.*\S)?$")] = Field(
        description="The reason as the public site shows it, in Chinese (required: `policy check` refuses a rule"
        " without one)."
    )
    list: ListName
    severity: Severity
    event: str
    subject: str | None = None
    where: dict[str, Condition] = Field(default_factory=dict)
    count: Annotated[int, Field(ge=1, le=100_000)] = 1
    within: Days | None = None
    ratio: Ratio | None = None

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if value not in EVENT_TYPES:
            raise ValueError(f"unknown event type {value!r} (known: {', '.join(EVENT_TYPES)})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        subjects = _subject_fields(self.event)
        if self.subject is None:
            if len(subjects) != 1:
                raise ValueError(f"{self.event} has subjects {', '.join(subjects)}: say which with `subject`")
        elif self.subject not in subjects:
            raise ValueError(f"{self.event} has no subject field {self.subject!r} (it has {', '.join(subjects)})")
        _check_conditions(self.event, self.where, "where")
        if self.ratio is not None:
            _check_conditions(self.event, self.ratio.of, "ratio.of")
            if self.count != 1:
                raise ValueError("a rule counts facts (`count`) or compares them (`ratio`), not both")
        if (self.count > 1 or self.ratio is not None) and self.within is None:
            raise ValueError("a rule with `count` above 1 or a `ratio` needs a window: `within`")
        if self.count == 1 and self.ratio is None and self.within is not None:
            raise ValueError("`within` only applies with `count` above 1 or a `ratio`")
        return self

    @cached_property
    def subject_field(self) -> str:
        """The data field naming the subject the rule is about (the event's only one, unless ``subject``); worked out
        once per rule, as the engine asks for it with every event."""
        return self.subject or _subject_fields(self.event)[0]


def _due(value: object) -> object:
    if isinstance(value, str):
        return due_duration(value)
    return value


Due = Annotated[DueDuration, BeforeValidator(_due)]


def _default_repair_after() -> dict[Severity, timedelta]:
    return {"general": timedelta(days=90), "serious": timedelta(days=365)}


"""A deadline: ``"30d"`` (calendar days) or ``"3wd"`` (working days on the China calendar)."""


class DueProcess(_PolicyModel):
    """Deadlines of objections and the minimum publicity before credit repair.

    The defaults are the city's measures: an answer within 30 days, an upheld objection's correction published
    within 3 working days, a rejected one's result fed back within 7 working days. ``repair_after`` follows the
    national credit-repair rules (minimum publicity: 3 months for general dishonesty, 1 year for serious); a
    severity not named (minor, by default) cannot be repaired."""

    reply_within: Due = DueDuration(30, "d")
    publish_correction_within: Due = DueDuration(3, "wd")
    feed_back_within: Due = DueDuration(7, "wd")
    repair_after: dict[Severity, Days] = Field(default_factory=_default_repair_after)
    calendar: Literal["CN"] = "CN"


RETENTION_MARGIN = timedelta(days=5 * 365)
"""What the default retention adds to the longest publicity period: 5 years."""


class Retention(_PolicyModel):
    """How long raw bodies keep the persons they name after the last record they support has ended (PIPL art. 19,
    47: no longer than the purpose needs). None: the longest publicity period plus :data:`RETENTION_MARGIN`."""

    keep_bodies_for: Days | None = None


class Policy(_PolicyModel):
    """A validated credit policy."""

    version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
    publicity: Publicity
    score: Score
    measures: Measures
    red: RedCriteria
    due_process: DueProcess = DueProcess()
    retention: Retention = Retention()
    disclosure: Disclosure = Disclosure()
    intermediary: IntermediaryPolicy | None = None
    rules: Annotated[list[Rule], Field(alias="rule", min_length=1)]

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Self:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"two rules have the id {rule.id!r}")
            seen.add(rule.id)
        return self

    @cached_property
    def rules_by_event(self) -> dict[str, tuple[Rule, ...]]:
        """The rules that look at each event type, in file order."""
        grouped: dict[str, list[Rule]] = {}
        for rule in self.rules:
            grouped.setdefault(rule.event, []).append(rule)
        return {event: tuple(rules) for event, rules in grouped.items()}

    @cached_property
    def rules_by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}

    @cached_property
    def rule_rank(self) -> dict[str, int]:
        """Each rule's place in the file: reasons that start together are shown in this order."""
        return {rule.id: rank for rank, rule in enumerate(self.rules)}

    @cached_property
    def keep_bodies_for(self) -> timedelta:
        """How long a body keeps its persons after the last record it supports has ended (``[retention]``)."""
        return self.retention.keep_bodies_for or self.publicity.serious + RETENTION_MARGIN

    @cached_property
    def horizon(self) -> timedelta:
        """How long a credit file remembers a case after its last version's fact time, when no record of it is
        left: as long as a window rule keeps facts (three windows and its publicity period) and as long as a record
        can matter (the longest publicity plus the red list's clean period)."""
        spans = [self.publicity.serious + self.red.clean_for]
        for rule in self.rules:
            if rule.within is not None:
                spans.append(3 * rule.within + self.publicity.of(rule.severity))
        return max(spans)


# -- where each key sits in the file, for error messages ------------------------------------------------
@dataclass(frozen=True, slots=True)
class _KeyLines:
    lines: dict[tuple[str | int, ...], int]

    @classmethod
    def scan(cls, text: str) -> _KeyLines:
        """Map key paths (``("rule", 2, "where")``) to the line that sets them, by reading the file's
        table headers and ``key =`` lines (tomllib reports no positions for valid files)."""
        lines: dict[tuple[str | int, ...], int] = {}
        table: tuple[str | int, ...] = ()
        array_counts: dict[tuple[str, ...], int] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line.startswith("[["):
                name = tuple(part.strip() for part in line.strip("[]").split("#")[0].strip().strip("]").split("."))
                index = array_counts.get(name, 0)
                array_counts[name] = index + 1
                table = (*name, index)
                lines.setdefault(table, number)
            elif line.startswith("["):
                table = tuple(part.strip() for part in line.split("]")[0].strip("[").split("."))
                lines.setdefault(table, number)
            elif "=" in line and not line.startswith("#"):
                key = tuple(part.strip().strip('"') for part in line.split("=", 1)[0].split("."))
                lines.setdefault((*table, *key), number)
        return cls(lines)

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None


def _key_path(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_UNION_LABEL = re.compile(r"^(str|int|bool|float|AtLeast)$|\[")


def _meaningful_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union-member labels (``str``, ``AtLeast``, ...) from an error location."""
    return tuple(part for part in loc if isinstance(part, int) or not _UNION_LABEL.search(part))


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse and validate a policy; raise :class:`PolicyError` naming the line and key of the first problems."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        where = _KeyLines.scan(text)
        problems = []
        for error in exc.errors(include_url=False, include_context=False):
            loc = _meaningful_loc(tuple(error["loc"]))
            line = where.line_of(loc)
            at = f"line {line}, " if line else ""
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{source}: {at}{_key_path(loc) or 'top level'}: {message}")
        unique = list(dict.fromkeys(problems))
        raise PolicyError(
            "\n".join(unique[:10]) + (f"\n(and {len(unique) - 10} more)" if len(unique) > 10 else "")
        ) from exc


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise PolicyError(f"Cannot read the policy file {file}: {reason}.") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"Cannot read the policy file {file}: it is not UTF-8 text.") from exc
    return parse_policy(text, source=str(file))


def policy_from(path: str | Path | None) -> Policy:
    """The policy in ``path``, or the shipped default when there is none."""
    return load_policy(path) if path is not None else default_policy()


def default_policy() -> Policy:
    """The policy shipped with xinyong (``default_policy.toml``)."""
    text = (resources.files("xinyong_gateway.credit") / DEFAULT_POLICY_FILE).read_text(encoding="utf-8")
    return parse_policy(text, source=DEFAULT_POLICY_FILE)
