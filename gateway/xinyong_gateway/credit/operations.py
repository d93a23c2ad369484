"""What an operator watches, from the database: projector lag, the lists, objections and repairs and their deadlines.

:func:`operations_report` is what ``/metrics`` renders as gauges (``web.metrics``) and what ``xinyong-gateway status``
shows; :func:`stored_cases` reads objections or repairs with their states and deadlines as the subjects' credit files
hold them now (also for ``objections list|show|decide`` and ``repairs …``). Deadlines are the policy's
(``[due_process]``), as dates of their last day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from xinyong.subjects import CHINA_STANDARD_TIME
from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.credit.policy_tools import LISTS
from xinyong_gateway.credit.report import held_cases
from xinyong_gateway.store import PARTITIONS, OperationsState, Store, to_micros

__all__ = ["CaseKind", "OperationsReport", "PartitionLag", "operations_report", "stored_cases"]

CaseKind = Literal["objection", "repair"]
_OPEN_STATES = ("open", "pending")


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far one projection partition is behind the inbox: rows not yet applied, and the age of the oldest."""

    events: int
    seconds: float


@dataclass(frozen=True, slots=True)
class OperationsReport:
    state: OperationsState
    projector_lag: dict[int, PartitionLag]
    lists: dict[str, int]
    """Credit files per list, every list named (0 for an empty one)."""
    open_cases: dict[CaseKind, int]
    overdue_objections: int
    due: list[dict[str, Any]]
    """Objections with a deadline up to the horizon asked for (open ones' replies, overdue ones included; decided ones'
    publication or feedback), each with ``deadline``, earliest first."""


async def stored_cases(
    store: Store,
    kind: CaseKind,
    policy: Policy,
    now: datetime,
    case_id: str | None = None,
    subject_key: str | None = None,
) -> list[dict[str, Any]]:
    """The cases of ``kind`` (one id, or all; one subject's, or everyone's) as the subjects' files hold them at ``now``
    (:func:`~xinyong_gateway.credit.report.held_cases`): each a ``case_document`` with ``subject`` (as it may be
    shown) and ``subject_key``."""
    held = await held_cases(store, kind, policy, now, case_id=case_id, subject_key=subject_key)
    return [
        {"subject": f"{case.row.id_type} {case.row.display_id}"}
        | case.document()
        | {"subject_key": case.ref.subject_key}
        for case in held
    ]


def _deadline(case: dict[str, Any], today: str, horizon: str) -> str | None:
    """The deadline of an objection that falls due by ``horizon``: an open one's reply (also when already late), or
    a decided one's publication of the correction or feedback from ``today`` on."""
    if case["state"] == "open":
        due: str | None = case["reply_due"]
        return due if due is not None and due <= horizon else None
    for name in ("publish_due", "feedback_due"):
        due = case.get(name)
        if due is not None and today <= due <= horizon:
            return str(due)
    return None


async def operations_report(
    store: Store, policy: Policy, now: datetime, *, due_within: timedelta = timedelta(days=7)
) -> OperationsReport:
    """The operational state at ``now``; ``due`` lists open objections due by ``now + due_within`` (or overdue)."""
    state = await store.operations_state()
    now_us = to_micros(now)
    lag = {
        partition: PartitionLag(
            events=max(0, state.inbox_head - state.positions.get(partition, 0)),
            seconds=max(0.0, (now_us - state.oldest_unapplied[partition]) / 1e6)
            if partition in state.oldest_unapplied
            else 0.0,
        )
        for partition in range(PARTITIONS)
    }
    lists = dict.fromkeys(LISTS, 0) | state.subjects_by_list
    objections = await stored_cases(store, "objection", policy, now)
    repairs = await stored_cases(store, "repair", policy, now)
    local = now.astimezone(CHINA_STANDARD_TIME)  # deadlines are dates in China Standard Time
    today, horizon = local.date().isoformat(), (local + due_within).date().isoformat()
    due = []
    for case in objections:
        deadline = _deadline(case, today, horizon)
        if deadline is not None:
            due.append({key: value for key, value in case.items() if key != "subject_key"} | {"deadline": deadline})
    due.sort(key=lambda case: (case["deadline"], case["objection_id"]))
    return OperationsReport(
        state=state,
        projector_lag=lag,
        lists=lists,
        open_cases={
            "objection": sum(case["state"] in _OPEN_STATES for case in objections),
            "repair": sum(case["state"] in _OPEN_STATES for case in repairs),
        },
        overdue_objections=sum(bool(case.get("overdue")) for case in objections),
        due=due,
    )
