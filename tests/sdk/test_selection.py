"""``SelectionDecision.from_status``: how an approval department's choice of an intermediary follows from a status
(the decision rule alone; tests/gateway/test_intermediaries_stored.py asks a real gateway)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from xinyong import SelectionDecision
from xinyong.queries import SubjectStatus

AGENCY = {"id_type": "uscc", "id": "91320703MA1W8E2K6M", "name": "连云港海州工程咨询有限公司"}


def _status(*, list_name: str = "none", disputed: bool = False, intermediary: Any = None) -> SubjectStatus:
    return SubjectStatus.model_validate_json(  # as the client reads an answer
        json.dumps(
            {
                "subject": AGENCY,
                "list": list_name,
                "grade": "A",
                "score": 100,
                "measures": [],
                "reasons": [],
                "disputed": disputed,
                "policy_version": "lyg-2026.4",
                "as_of": "2026-12-05T10:00:00+08:00",
                **({"intermediary": intermediary} if intermediary is not None else {}),
            }
        )
    )


def _agency(grade: str | None, measures: list[str], *, evaluated: bool = True, **more: Any) -> dict[str, Any]:
    tier = None if grade is None else {"grade": grade, "measures": measures, "evaluation": grade if evaluated else None,
                                       "period": "2026" if evaluated else None, "lowered_by": None}  # fmt: skip
    return {"kind": "intermediary", "tier": tier, "declared": True, "expired_qualifications": 0, "practitioners": 3,
            "agencies": 0, **more}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "decision", "reasons"),
    [
        (_status(intermediary=_agency("A", ["green_channel"])), "allow", ()),
        (_status(intermediary=_agency("B", [])), "allow", ()),
        (_status(intermediary=_agency("C", ["spot_check_increase", "early_warning"])), "review",
         ("EARLY_WARNING", "SPOT_CHECK_INCREASE")),
        (_status(list_name="watch", intermediary=_agency("C", [])), "review", ("WATCH_LIST",)),
        (_status(list_name="black", intermediary=_agency("D", ["access_restriction"])), "deny",
         ("BLACK_LIST", "ACCESS_RESTRICTION")),
        (_status(intermediary=_agency("A", [], expired_qualifications=1)), "review", ("QUALIFICATION_EXPIRED",)),
        (_status(intermediary=_agency("A", [], declared=False)), "review", ("NOT_DECLARED",)),
        (_status(intermediary=_agency(None, [])), "review", ("NOT_EVALUATED",)),
        (_status(disputed=True, intermediary=_agency("A", [])), "review", ("DISPUTED",)),
        (_status(), "review", ("NOT_AN_INTERMEDIARY",)),
        (_status(intermediary={**_agency("D", ["practice_ban"]), "kind": "practitioner"}), "deny",
         ("PRACTICE_BAN", "NOT_AN_INTERMEDIARY")),
    ],
)  # fmt: skip
def test_selection_follows_the_list_the_tier_and_the_declared_information(
    status: SubjectStatus, decision: str, reasons: tuple[str, ...]
) -> None:
    choice = SelectionDecision.from_status(status)
    assert (choice.decision, choice.reasons) == (decision, reasons)
    assert choice.status is status


def test_a_status_from_before_intermediaries_reads_without_the_block() -> None:
    """Feed entries and mirrors written before the ``intermediary`` member existed stay readable."""
    assert _status().intermediary is None
