"""Examples and round-trip strategies of the intermediaries' events, merged into the catalogue tables of
tests/sdk/test_events.py (kept apart so that module stays readable)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

AGENCY_USCC = "91320700MA1P4K7L4R"


def examples(company: dict[str, Any], person: dict[str, Any], at: str) -> dict[str, dict[str, Any]]:
    """A valid ``data`` of each intermediary event type."""
    agency = {**company, "id": AGENCY_USCC}
    return {
        "intermediary.declared": {
            "agency": agency,
            "services": ["design_consulting", "tendering_agency"],
            "qualifications": [
                {"name": "工程咨询单位乙级资信", "certificate_no": "ZX-2026-001", "valid_until": "2027-06-30"}
            ],
            "practitioners": [{"person": person, "certificate_no": "ZJ-3207-0001"}],
            "commitment": {"accepted": True, "items": ["申报材料真实、准确、完整"], "signatory": "法定代表人"},
            "declared_at": at,
        },
        "intermediary.practitioner_joined": {
            "agency": agency,
            "practitioner": person,
            "certificate_no": "ZJ-3207-0001",
            "joined_at": at,
        },
        "intermediary.practitioner_left": {
            "agency": agency,
            "practitioner": person,
            "certificate_no": "ZJ-3207-0001",
            "left_at": at,
        },
        "intermediary.evaluated": {
            "evaluation_id": "eval-2026",
            "subject": agency,
            "period": "2026-H1",
            "grade": "B",
            "evaluator": "连云港市住房和城乡建设局",
            "evaluated_at": at,
        },
        "intermediary.service_evaluated": {
            "service_id": "svc-1",
            "agency": agency,
            "on_time": False,
            "satisfaction": "basically_satisfied",
            "findings": ["报告延期三个工作日"],
            "evaluated_at": at,
        },
        "intermediary.violation": {
            "case_id": "iv-1",
            "agency": agency,
            "practitioners": [person],
            "kind": "false_report",
            "severity": "serious",
            "confirmed": True,
            "decision_no": "连审改罚〔2026〕7号",
            "found_at": at,
        },
    }


TIME_FIELDS = [
    ("intermediary.declared", "declared_at"),
    ("intermediary.practitioner_joined", "joined_at"),
    ("intermediary.practitioner_left", "left_at"),
    ("intermediary.evaluated", "evaluated_at"),
    ("intermediary.service_evaluated", "evaluated_at"),
    ("intermediary.violation", "found_at"),
]

ALLOWED = {
    "intermediary": {
        "intermediary.declared",
        "intermediary.practitioner_joined",
        "intermediary.practitioner_left",
        "objection.filed",
        "repair.applied",
    },
    "regulator": {
        "intermediary.practitioner_joined",
        "intermediary.practitioner_left",
        "intermediary.evaluated",
        "intermediary.service_evaluated",
        "intermediary.violation",
    },
}


def strategies(
    *,
    times: st.SearchStrategy[str],
    identifiers: st.SearchStrategy[str],
    texts: st.SearchStrategy[str],
    companies: st.SearchStrategy[dict[str, Any]],
    people: st.SearchStrategy[dict[str, Any]],
    subjects: st.SearchStrategy[dict[str, Any]],
) -> tuple[dict[str, dict[str, st.SearchStrategy[Any]]], dict[str, dict[str, st.SearchStrategy[Any]]]]:
    """Required and optional ``data`` fields of each intermediary event type."""
    days = st.dates().map(lambda day: day.isoformat())
    grades = st.sampled_from("ABCD")
    qualification = st.fixed_dictionaries({"name": texts, "certificate_no": identifiers, "valid_until": days})
    listed = st.fixed_dictionaries({"person": people, "certificate_no": identifiers})
    commitment = st.fixed_dictionaries(
        {"accepted": st.just(True), "items": st.lists(texts, min_size=1, max_size=3), "signatory": texts}
    )
    services = st.lists(
        st.sampled_from(
            [
                "design_consulting",
                "appraisal_testing_inspection",
                "surveying_certification_notary",
                "assessment",
                "accounting_audit",
                "tendering_agency",
            ]
        ),
        min_size=1,
        unique=True,
    )
    required = {
        "intermediary.declared": {
            "agency": companies,
            "services": services,
            "qualifications": st.lists(qualification, max_size=3),
            "practitioners": st.lists(listed, max_size=3),
            "commitment": commitment,
            "declared_at": times,
        },
        "intermediary.practitioner_joined": {
            "agency": companies,
            "practitioner": people,
            "certificate_no": identifiers,
            "joined_at": times,
        },
        "intermediary.practitioner_left": {
            "agency": companies,
            "practitioner": people,
            "certificate_no": identifiers,
            "left_at": times,
        },
        "intermediary.evaluated": {
            "evaluation_id": identifiers,
            "subject": subjects,
            "period": st.sampled_from(["2026", "2025-H2", "2026-Q3", "2026-07"]),
            "grade": grades,
            "evaluator": texts,
            "evaluated_at": times,
        },
        "intermediary.service_evaluated": {
            "service_id": identifiers,
            "agency": companies,
            "on_time": st.booleans(),
            "satisfaction": st.sampled_from(["satisfied", "basically_satisfied", "dissatisfied"]),
            "evaluated_at": times,
        },
        "intermediary.violation": {
            "case_id": identifiers,
            "agency": companies,
            "kind": st.sampled_from(["false_report", "false_certificate", "fee_violation", "other"]),
            "severity": st.sampled_from(["minor", "general", "serious"]),
            "confirmed": st.booleans(),
            "found_at": times,
        },
    }
    optional = {
        "intermediary.service_evaluated": {"findings": st.lists(texts, max_size=3)},
        "intermediary.violation": {
            "practitioners": st.lists(people, max_size=1),
            "decision_no": identifiers | st.none(),
        },
    }
    return required, optional
