"""Intermediaries in the pure engine (涉审中介机构): agencies and practitioners as subjects with a kind, links
between them, declarations with expiring qualifications, evaluations and the supervision tier, a practitioner's
violation on both files, and the public view of an agency. Arrival order is covered by the laws of
``test_late_facts`` (their random histories include every intermediary type)."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

from tests.factories import make_ric, make_uscc
from tests.gateway.test_late_facts import MERCHANTS, NOW, Facts, key_of
from xinyong.subjects import Subject
from xinyong_gateway.credit.engine import CreditFile, LoggedEvent, project
from xinyong_gateway.credit.intermediary_view import intermediary_section, public_view
from xinyong_gateway.credit.policy import default_policy

POLICY = default_policy()
FIRM = {"id_type": "uscc", "id": make_uscc(random.Random(2101)), "name": "海州工程咨询有限公司"}
OTHER_FIRM = {"id_type": "uscc", "id": make_uscc(random.Random(2102)), "name": "连云检测技术有限公司"}
ALICE = {"id_type": "ric", "id": make_ric(random.Random(2103)), "name": "王小明"}
BOB = {"id_type": "ric", "id": make_ric(random.Random(2104)), "name": "李四"}
CERTIFICATE = {ALICE["id"]: "ZJ-0001", BOB["id"]: "ZJ-0002"}


def _ago(days: float) -> Any:
    return NOW - timedelta(days=days)


def _file(events: list[LoggedEvent], who: dict[str, Any]) -> CreditFile:
    return project(events, POLICY, key_of)[key_of(Subject.model_validate(who))]


def _declare(facts: Facts, at: Any, *, people: list[dict[str, Any]], valid_until: str = "2030-12-31") -> None:
    facts.add(
        "intermediary.declared",
        at,
        agency=FIRM,
        practitioners=[{"person": p, "certificate_no": CERTIFICATE[p["id"]]} for p in people],
        qualifications=[{"name": "工程咨询甲级资信", "certificate_no": "ZX-001", "valid_until": valid_until}],
    )


def _evaluate(facts: Facts, at: Any, grade: str, *, who: dict[str, Any] = FIRM, case: str = "EV-2026") -> None:
    facts.add(
        "intermediary.evaluated", at, subject=who, grade=grade, evaluation_id=case, period="2026", source="src_reg"
    )


def _violation(facts: Facts, at: Any, *, confirmed: bool = True, sent: Any = None, **data: Any) -> None:
    data = {"case_id": "IV-1", "agency": FIRM, "practitioners": [ALICE], "kind": "false_report",
            "severity": "serious", "confirmed": confirmed, **data}  # fmt: skip
    facts.add("intermediary.violation", at, sent=sent, source="src_reg", **data)


def test_agencies_and_practitioners_are_subjects_with_a_kind() -> None:
    facts = Facts()
    _declare(facts, _ago(30), people=[ALICE])
    firm = _file(facts.events, FIRM).status_at(NOW, POLICY).intermediary
    alice = _file(facts.events, ALICE).status_at(NOW, POLICY).intermediary
    assert firm is not None and alice is not None
    assert (firm.kind, alice.kind) == ("intermediary", "practitioner")
    assert [link.other for link in alice.links] == [FIRM["id"]]  # the person's file links to the agency
    assert [(link.name, link.certificate_no) for link in firm.links] == [("王**", "ZJ-0001")]  # persons masked
    assert ALICE["id"] not in json.dumps([link.other for link in firm.links])


def test_an_evaluation_gives_the_tier_and_its_measures() -> None:
    facts = Facts()
    _declare(facts, _ago(30), people=[ALICE])
    _evaluate(facts, _ago(10), "A")
    status = _file(facts.events, FIRM).status_at(NOW, POLICY)
    assert status.intermediary is not None and status.intermediary.tier is not None
    tier = status.intermediary.tier
    assert (tier.grade, tier.measures, tier.evaluation, tier.lowered_by) == (
        "A",
        ("green_channel", "procurement_preference"),
        "A",
        None,
    )
    assert status.list == "none"  # an evaluation is not a list
    before = _file(facts.events, FIRM).status_at(_ago(20), POLICY).intermediary
    assert before is not None and before.tier is None  # not yet evaluated then


def test_a_later_version_of_an_evaluation_replaces_it_and_the_latest_evaluation_counts() -> None:
    facts = Facts()
    _evaluate(facts, _ago(100), "B", case="EV-2025")
    _evaluate(facts, _ago(10), "A", case="EV-2026")
    facts.add("intermediary.evaluated", _ago(10), sent=_ago(5), subject=FIRM, grade="C", evaluation_id="EV-2026",
              period="2026", source="src_reg")  # fmt: skip
    standing = _file(facts.events, FIRM).status_at(NOW, POLICY).intermediary
    assert standing is not None and standing.tier is not None
    assert (standing.tier.grade, standing.tier.measures) == ("C", ("spot_check_increase", "early_warning"))


def test_a_practitioners_false_report_lists_both_and_bans_the_practitioner() -> None:
    facts = Facts()
    _declare(facts, _ago(30), people=[ALICE, BOB])
    _evaluate(facts, _ago(20), "A")
    _violation(facts, _ago(2))
    firm = _file(facts.events, FIRM).status_at(NOW, POLICY)
    alice = _file(facts.events, ALICE).status_at(NOW, POLICY)
    bob = _file(facts.events, BOB).status_at(NOW, POLICY)
    assert (firm.list, alice.list, bob.list) == ("black", "black", "none")
    assert [r.code for r in alice.reasons] == ["PRACTITIONER_FALSE_REPORT", "PRACTITIONER_VIOLATION_SERIOUS"]
    assert firm.intermediary is not None and firm.intermediary.tier is not None
    assert (firm.intermediary.tier.grade, firm.intermediary.tier.lowered_by) == ("D", "black")
    assert "access_restriction" in firm.intermediary.tier.measures  # it lost its tier A
    assert alice.intermediary is not None and alice.intermediary.tier is not None
    assert alice.intermediary.tier.measures == ("practice_ban",)


def test_a_withdrawn_violation_ends_the_records_of_both() -> None:
    facts = Facts()
    _evaluate(facts, _ago(20), "A")
    _violation(facts, _ago(2), sent=_ago(2))
    _violation(facts, _ago(2), confirmed=False, sent=_ago(1))
    for who in (FIRM, ALICE):
        status = _file(facts.events, who).status_at(NOW, POLICY)
        assert (status.list, status.reasons) == ("none", ())
    firm = _file(facts.events, FIRM).status_at(NOW, POLICY).intermediary
    assert firm is not None and firm.tier is not None and firm.tier.grade == "A"  # the tier back


def test_a_practitioner_moving_between_agencies_is_linked_to_the_new_one_only() -> None:
    facts = Facts()
    alice_at = {"practitioner": ALICE, "certificate_no": "ZJ-0001"}
    facts.add("intermediary.practitioner_left", _ago(10), agency=FIRM, **alice_at)  # sent first, happened second
    facts.add("intermediary.practitioner_joined", _ago(9), agency=OTHER_FIRM, **alice_at)
    facts.add("intermediary.practitioner_joined", _ago(200), agency=FIRM, **alice_at)
    alice = _file(facts.events, ALICE)
    now = alice.status_at(NOW, POLICY).intermediary
    then = alice.status_at(_ago(50), POLICY).intermediary
    assert now is not None and then is not None
    assert [link.other for link in now.links] == [OTHER_FIRM["id"]]
    assert [link.other for link in then.links] == [FIRM["id"]]
    old = _file(facts.events, FIRM).status_at(NOW, POLICY).intermediary
    new = _file(facts.events, OTHER_FIRM).status_at(NOW, POLICY).intermediary
    assert old is not None and new is not None
    assert (len(old.links), len(new.links)) == (0, 1)


def test_a_later_declaration_replaces_the_declared_information_but_leaving_takes_a_left_event() -> None:
    facts = Facts()
    _declare(facts, _ago(40), people=[ALICE, BOB])
    _declare(facts, _ago(20), people=[BOB], valid_until="2031-01-01")
    facts.add("intermediary.practitioner_left", _ago(10), agency=FIRM, practitioner=BOB, certificate_no="ZJ-0002")
    firm = _file(facts.events, FIRM)
    declared = firm.intermediary.declared() if firm.intermediary else None
    assert declared is not None and declared["qualifications"] == [["工程咨询甲级资信", "ZX-001", "2031-01-01"]]
    standing = firm.status_at(NOW, POLICY).intermediary
    assert standing is not None
    assert [link.certificate_no for link in standing.links] == ["ZJ-0001"]


def test_an_expired_qualification_shows_in_the_file_and_the_file_changes_when_it_expires() -> None:
    facts = Facts()
    expiry_day = (NOW + timedelta(days=3)).date()
    _declare(facts, _ago(30), people=[], valid_until=expiry_day.isoformat())
    firm = _file(facts.events, FIRM)
    standing = firm.status_at(NOW, POLICY).intermediary
    assert standing is not None and standing.expired_qualifications == 0
    change = firm.next_change_after(NOW, POLICY)
    assert change is not None and change.isoformat().startswith((expiry_day + timedelta(days=1)).isoformat())
    later = firm.status_at(change, POLICY).intermediary
    assert later is not None and later.expired_qualifications == 1
    section = intermediary_section(firm, change, POLICY)
    assert section is not None and section["declaration"]["qualifications"][0]["expired"] is True


@pytest.mark.parametrize("kind", ["false_report", "fee_violation"])
def test_a_general_violation_puts_the_agency_on_watch_and_lowers_its_tier_to_c(kind: str) -> None:
    facts = Facts()
    _evaluate(facts, _ago(20), "A")
    _violation(facts, _ago(2), kind="fee_violation", severity="general", practitioners=[])
    status = _file(facts.events, FIRM).status_at(NOW, POLICY)
    assert status.list == "watch" and status.intermediary is not None and status.intermediary.tier is not None
    assert (status.intermediary.tier.grade, status.intermediary.tier.lowered_by) == ("C", "watch")


def test_three_dissatisfied_service_evaluations_within_a_year_put_the_agency_on_watch() -> None:
    facts = Facts()
    for n, days in enumerate((300, 200, 100)):
        facts.add("intermediary.service_evaluated", _ago(days), agency=FIRM, service_id=f"S-{n}",
                  satisfaction="dissatisfied", on_time=True, source="src_dept")  # fmt: skip
    status = _file(facts.events, FIRM).status_at(NOW, POLICY)
    assert (status.list, [r.code for r in status.reasons]) == ("watch", ["INTERMEDIARY_SERVICE_DISSATISFIED"])


def test_the_public_view_of_an_agency_masks_its_practitioners_and_shows_no_resident_id() -> None:
    facts = Facts()
    _declare(facts, _ago(30), people=[ALICE])
    _evaluate(facts, _ago(20), "B")
    _violation(facts, _ago(2), kind="fee_violation", severity="general")
    firm = _file(facts.events, FIRM)
    view = public_view(firm, FIRM["name"], NOW, POLICY)
    assert view is not None
    assert (view["name"], view["list"], view["tier"]["grade"]) == (FIRM["name"], "watch", "C")
    assert view["declaration"]["services"] == ["design_consulting", "assessment"]
    assert view["commitment"]["accepted"] is True and view["commitment"]["items"]
    assert [(e["period"], e["grade"]) for e in view["evaluations"]] == [("2026", "B")]
    assert [r["reason"] for r in view["records"]] == ["INTERMEDIARY_VIOLATION"]
    assert view["practitioners"] == [
        {"name": "王**", "certificate_no": "ZJ-0001", "since": view["practitioners"][0]["since"]}
    ]
    text = json.dumps(view, ensure_ascii=False)
    assert ALICE["id"] not in text and ALICE["id"][-4:] not in text and "王小明" not in text
    assert public_view(_file(facts.events, ALICE), None, NOW, POLICY) is None  # a person's file is not public here


def test_a_file_without_intermediary_facts_keeps_its_json_and_has_no_intermediary_status() -> None:
    facts = Facts()
    facts.add("merchant.registered", _ago(5))
    credit_file = _file(facts.events, MERCHANTS[0])
    assert "intermediary" not in json.loads(credit_file.to_json())
    assert credit_file.status_at(NOW, POLICY).intermediary is None
    assert CreditFile.from_json(credit_file.to_json()).to_json() == credit_file.to_json()


def test_under_a_policy_without_tiers_an_evaluated_agency_has_its_kind_but_no_tier() -> None:
    from tests.gateway.conftest import DEFAULT_POLICY_TEXT
    from xinyong_gateway.credit.policy import parse_policy

    text = DEFAULT_POLICY_TEXT
    untiered = parse_policy(text[: text.index("[intermediary]")] + text[text.index("# -- black list") :])
    facts = Facts()
    _evaluate(facts, _ago(10), "A")
    files = project(facts.events, untiered, key_of)
    standing = files[key_of(Subject.model_validate(FIRM))].status_at(NOW, untiered).intermediary
    assert standing is not None and (standing.kind, standing.tier) == ("intermediary", None)
