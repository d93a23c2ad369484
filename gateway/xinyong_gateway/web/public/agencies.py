"""The intermediaries column of the public site (中介机构信息): the section of an agency's subject page and the rows of
``/public/intermediaries``, in Chinese, worked out from ``credit.intermediary_view.public_view`` and a stored status.

Practitioners are persons: they appear by masked name and practising certificate number only (never a resident id,
masked or not), and only while the policy's ``[disclosure]`` shows persons on the list the agency is on
(:func:`~xinyong_gateway.web.public.views.person_shown`); otherwise the page says how many there are.

Pure: the handlers (``web.public.site``) read the store and pass the file, the status and the policy in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from xinyong_gateway.credit.engine import CreditFile
from xinyong_gateway.credit.intermediary_view import public_view
from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.store import ListedSubject, from_micros
from xinyong_gateway.web.public.views import GRADE_LABELS, LIST_LABELS, MEASURE_LABELS, cst_day, person_shown

__all__ = ["SERVICE_LABELS", "TIER_MEASURE_LABELS", "agency_context", "agency_row"]

SERVICE_LABELS = {
    "design_consulting": "设计咨询类",
    "appraisal_testing_inspection": "鉴定检测检验类",
    "surveying_certification_notary": "测绘认证公证类",
    "assessment": "评估类",
    "accounting_audit": "会计审计类",
    "tendering_agency": "招标代理类",
}
TIER_MEASURE_LABELS = {
    "green_channel": "绿色通道",
    "procurement_preference": "政府采购优先",
    "spot_check_increase": "提高抽查比例和频次",
    "early_warning": "预警提示",
    "access_restriction": "限制进入中介服务市场",
    "practice_ban": "禁止执业",
}
TIER_LABELS = {"A": "A 级（守信）", "B": "B 级（基本守信）", "C": "C 级（失信）", "D": "D 级（严重失信）"}


def _tier(tier: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if tier is None:
        return None
    return {
        "grade": tier["grade"],
        "label": TIER_LABELS.get(tier["grade"], tier["grade"]),
        "measures": [TIER_MEASURE_LABELS.get(m, MEASURE_LABELS.get(m, m)) for m in tier["measures"]],
        "evaluation": tier["evaluation"],
        "period": tier["period"],
        "lowered_by": LIST_LABELS.get(tier["lowered_by"]) if tier["lowered_by"] else None,
    }


def agency_context(credit_file: CreditFile, now: datetime, policy: Policy) -> dict[str, Any] | None:
    """The section 中介机构信息 of an agency's page at ``now``; None when the file is not an agency's."""
    view = public_view(credit_file, None, now, policy)
    if view is None:
        return None
    declaration = view["declaration"]
    commitment = view["commitment"]
    practitioners = view["practitioners"]
    shown = person_shown(policy, view["list"])
    return {
        "tier": _tier(view["tier"]),
        "declared": None if declaration is None else cst_day(datetime.fromisoformat(declaration["declared_at"])),
        "services": [] if declaration is None else [SERVICE_LABELS.get(s, s) for s in declaration["services"]],
        "qualifications": []
        if declaration is None
        else [
            {"name": q["name"], "number": q["certificate_no"], "until": q["valid_until"], "expired": q["expired"]}
            for q in declaration["qualifications"]
        ],
        "commitment": None
        if commitment is None
        else {"items": list(commitment["items"]), "signatory": commitment["signatory"]},
        "evaluations": [
            {
                "period": e["period"],
                "grade": TIER_LABELS.get(e["grade"], e["grade"]),
                "evaluator": e["evaluator"],
                "date": cst_day(datetime.fromisoformat(e["evaluated_at"])),
            }
            for e in view["evaluations"]
        ],
        "practitioner_count": len(practitioners),
        "practitioners_shown": shown,
        # a masked name and a certificate number, nothing else of a person (public_view gives no id at all)
        "practitioners": [
            {
                "name": p["name"] or "—",
                "number": p["certificate_no"],
                "since": cst_day(datetime.fromisoformat(p["since"])),
            }
            for p in practitioners
        ]
        if shown
        else [],
    }


def agency_row(row: ListedSubject, status: Mapping[str, Any]) -> dict[str, Any]:
    """An agency in the column: its code, name, list and supervision tier (from its stored status)."""
    standing = status.get("intermediary") or {}
    tier = standing.get("tier")
    return {
        "id": row.display_id,
        "name": row.display_name or "",
        "list": status["list"],
        "list_label": LIST_LABELS.get(status["list"], status["list"]),
        "grade": GRADE_LABELS.get(status["grade"], status["grade"]),
        "tier": TIER_LABELS.get(tier["grade"], tier["grade"]) if tier else "未评价",
        "updated": cst_day(from_micros(row.updated_at)),
    }
