"""A subject's status under the default policy: the score at each grade's boundary, the floor, black always D, and
what every status says besides (the reasons' severities, ``disputed``). Killed mutants of ``CreditFile.status_at``
(``make mutation``)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest

from tests.factories import event, make_uscc
from xinyong.events import EVENT_TYPES
from xinyong_gateway.credit.engine import LoggedEvent, Status, project
from xinyong_gateway.credit.policy import default_policy

POLICY = default_policy()
SUBJECT = {"id_type": "uscc", "id": make_uscc(random.Random(71)), "name": "边界商行"}
_FAR_FUTURE = {"now": datetime(2100, 1, 1, tzinfo=UTC)}


def status_after_penalties(*severities: str) -> Status:
    """The subject's status now, after one regulator penalty of each severity (weights 5, 15, 40 from 100)."""
    seqs = itertools.count(1)
    logged = [
        LoggedEvent(
            seq := next(seqs),
            "src_regulator",
            f"wh_{seq}",
            EVENT_TYPES["penalty.imposed"].model_validate(
                event("penalty.imposed", subject=SUBJECT, severity=severity, decision_no=f"连市监罚〔2026〕{n}号"),
                context=_FAR_FUTURE,
            ),
        )
        for n, severity in enumerate(severities)
    ]
    (credit_file,) = project(logged, POLICY, lambda subject: subject.id).values()
    return credit_file.status_at(datetime.now(UTC), POLICY)


@pytest.mark.parametrize(
    ("severities", "score", "standing", "grade"),
    [
        (("minor", "minor"), 90, "none", "A"),
        (("minor", "minor", "minor"), 85, "none", "B"),
        (("general", "minor", "minor"), 75, "watch", "B"),
        (("general", "minor", "minor", "minor"), 70, "watch", "C"),
        (("general", "general", "minor", "minor"), 60, "watch", "C"),
        (("general", "general", "general"), 55, "watch", "D"),
        (("serious",), 60, "black", "D"),
        (("serious", "serious", "serious"), 0, "black", "D"),
    ],
    ids=["A at 90", "B below 90", "B at 75", "C below 75", "C at 60", "D below 60", "black is D", "floor 0"],
)
def test_the_grade_follows_the_score_at_each_boundary_and_black_is_always_d(
    severities: tuple[str, ...], score: int, standing: str, grade: str
) -> None:
    status = status_after_penalties(*severities)
    assert (status.score, status.list, status.grade) == (score, standing, grade)


def test_a_status_names_each_reasons_severity_and_is_not_disputed() -> None:
    status = status_after_penalties("general", "minor")
    assert sorted((reason.code, reason.severity) for reason in status.reasons) == [
        ("PENALTY_GENERAL", "general"),
        ("PENALTY_MINOR", "minor"),
    ]
    assert status.disputed is False
