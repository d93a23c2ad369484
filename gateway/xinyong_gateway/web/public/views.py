"""What the public site shows, worked out from a stored status, credit file and policy: the pages' contexts in
Chinese, with nothing personal beyond what the policy discloses (``policy.disclosure``), masked.

Pure: the handlers (``web.public.site``) read the store and the sources and pass them in.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from xinyong.subjects import CHINA_STANDARD_TIME
from xinyong_gateway.credit.engine import CreditFile, Record
from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.store import Commitment, ListedSubject, from_micros

__all__ = [
    "LIST_LABELS",
    "SourceLabel",
    "cst_day",
    "cst_day_at",
    "etag_of",
    "horizon",
    "listed_row",
    "person_shown",
    "subject_context",
]

LIST_LABELS = {
    "black": "严重失信主体名单",
    "watch": "重点关注名单",
    "red": "守信激励名单",
    "none": "未列入名单",
}
SEVERITY_LABELS = {"minor": "轻微", "general": "一般", "serious": "严重"}
SOURCE_KIND_LABELS = {"regulator": "行政机关", "marketplace": "电子商务平台", "courier": "快递物流企业"}
EVENT_LABELS = {
    "penalty.imposed": "行政处罚",
    "listing.violation": "商品信息检查",
    "review.manipulation_detected": "交易与评价核查",
    "complaint.resolved": "消费投诉处理",
    "delivery.recorded": "寄递记录",
    "commitment.breached": "信用承诺履行核查",
    "intermediary.violation": "中介服务违法违规查处",
    "intermediary.service_evaluated": "中介服务评价",
}
MEASURE_LABELS = {
    "refuse_onboarding": "不予入驻",
    "close_store": "关闭店铺",
    "freeze_account": "冻结账户",
    "public_exposure": "公开曝光",
    "search_demotion": "搜索降权",
    "increased_inspection": "加大抽查频次",
    "risk_warning": "风险提示",
    "search_boost": "搜索优先展示",
    "traffic_priority": "流量扶持",
    "green_channel": "绿色通道",
}
_CST_SECONDS = CHINA_STANDARD_TIME.utcoffset(None).total_seconds()  # +8 h all year: China keeps no summer time
_EPOCH = date(1970, 1, 1)
GRADE_LABELS = {"A": "A 级（诚信）", "B": "B 级（良好）", "C": "C 级（警示）", "D": "D 级（失信）"}


class SourceLabel(Protocol):
    """Who reported the facts behind a record, as the site names them: the kind, and an authority's own name (a
    ``store.SourceRecord``, from the gateway's registry of sources)."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str | None: ...


def cst_day(moment: datetime) -> str:
    """``2026-03-01``: the China Standard Time day of an instant."""
    return moment.astimezone(CHINA_STANDARD_TIME).date().isoformat()


def cst_day_at(now: float) -> str:
    """:func:`cst_day` of a POSIX time, for what is asked at every request (the badge, a page's date): the day's
    number, then its label from a small cache."""
    return _day_label(_cst_day_number(now))


def _cst_day_number(now: float) -> int:
    """Days from 1970-01-01 to the China Standard Time day of the POSIX time ``now``."""
    return math.floor((now + _CST_SECONDS) / 86_400)


@functools.lru_cache(maxsize=8)
def _day_label(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def horizon(now: float, next_change_at: int | None) -> float:
    """Until when (a POSIX time) a subject's page or badge worked out at ``now`` (a POSIX time) can be right,
    whatever is committed or not: the end of the China Standard Time day it shows, or the moment its status changes
    by time alone (``next_change_at``, microseconds), whichever comes first."""
    day_ends = (_cst_day_number(now) + 1) * 86_400 - _CST_SECONDS
    return day_ends if next_change_at is None else min(day_ends, next_change_at / 1_000_000)


def etag_of(*parts: str) -> str:
    """A strong entity tag for a page made from ``parts`` (what the page is a function of), joined by NULs."""
    return '"' + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32] + '"'


def person_shown(policy: Policy, list_name: str) -> bool:
    """Whether the policy lets the public site show a natural person on ``list_name`` (masked)."""
    return list_name in policy.disclosure.persons


def _label(policy: Policy, record: Record | None, code: str) -> str:
    """A reason's Chinese label: its rule's, else that of a rule with the same reason code, else the code."""
    if record is not None and record.rule_id in policy.rules_by_id:
        return policy.rules_by_id[record.rule_id].label
    for rule in policy.rules:
        if rule.reason == code:
            return rule.label
    return code


def _origin(policy: Policy, record: Record | None, sources: Mapping[str, SourceLabel]) -> tuple[str, str | None]:
    """(The kind of source or authority, the decision number) of a record: the case a record stands on is
    ``source|event type|case id`` (credit.engine), and a penalty's case id is its decision number."""
    if record is None or record.case is None or record.case.startswith("day:"):
        rule = policy.rules_by_id.get(record.rule_id) if record is not None else None
        return (EVENT_LABELS.get(rule.event, "—") if rule else "—"), None
    source_id, event_type, case_id = [*record.case.split("|", 2), "", ""][:3]
    source = sources.get(source_id)
    kind = SOURCE_KIND_LABELS.get(source.kind, source.kind) if source is not None else "—"
    if source is not None and source.name and source.kind == "regulator":
        kind = f"{kind}（{source.name}）"
    decision = case_id if event_type == "penalty.imposed" and case_id and not case_id.startswith("@") else None
    return f"{kind} · {EVENT_LABELS.get(event_type, event_type)}", decision


def subject_context(
    status: Mapping[str, Any],
    credit_file: CreditFile | None,
    commitments: Iterable[Commitment],
    policy: Policy,
    sources: Mapping[str, SourceLabel],
    now: datetime,
) -> dict[str, Any]:
    """The subject page of an organisation: its list, grade, measures, records in publicity, commitments and the
    objections under way."""
    records = credit_file.records if credit_file is not None else {}
    shown_records = []
    for reason in status["reasons"]:
        record = records.get(reason["record_id"])
        source, decision = _origin(policy, record, sources)
        shown_records.append(
            {
                "label": _label(policy, record, reason["code"]),
                "list": reason["list"],
                "list_label": LIST_LABELS.get(reason["list"], reason["list"]),
                "severity": SEVERITY_LABELS.get(reason["severity"], reason["severity"]),
                "from": cst_day(datetime.fromisoformat(reason["effective_from"])),
                "until": cst_day(datetime.fromisoformat(reason["effective_until"])),
                "source": source,
                "decision": decision,
                "disputed": reason["disputed"],
            }
        )
    objections = []
    if credit_file is not None:
        for objection_id in sorted(credit_file.objections):
            view = credit_file.objection(objection_id, policy, now)
            if view.state != "open" or view.filed_at is None:
                continue
            record = records.get(view.record_id or "")
            objections.append(
                {
                    "record": _label(policy, record, record.reason) if record is not None else "—",
                    "filed": cst_day(view.filed_at),
                    "reply_due": view.reply_due.isoformat() if view.reply_due else "—",
                }
            )
    return {
        "code": status["subject"]["id"],
        "name": status["subject"]["name"],
        "list": status["list"],
        "list_label": LIST_LABELS.get(status["list"], status["list"]),
        "grade": status["grade"],
        "grade_label": GRADE_LABELS.get(status["grade"], status["grade"]),
        "score": status["score"],
        "measures": [MEASURE_LABELS.get(m, m) for m in status["measures"]],
        "records": shown_records,
        "commitments": [
            {"id": c.commitment_id, "date": cst_day(from_micros(c.published_at)), "promises": list(c.items)}
            for c in commitments
        ],
        "objections": objections,
        "disputed": status["disputed"],
        "policy_version": status["policy_version"],
        "as_of": cst_day_at(now.timestamp()),
        "reply_within": _days(policy.due_process.reply_within.count, policy.due_process.reply_within.unit),
    }


def _days(count: int, unit: str) -> str:
    return f"{count} 日" if unit == "d" else f"{count} 个工作日"


def listed_row(row: ListedSubject, status: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    """A subject on a list page: an organisation with a link to its page; a person (where the policy shows them)
    by masked name and id only, never linked."""
    labels = []
    for reason in status.get("reasons", []):
        if reason["list"] == status["list"] or status["list"] == "red":
            labels.append(_label(policy, None, reason["code"]))
    return {
        "organisation": row.id_type == "uscc",
        "id": row.display_id,
        "name": row.display_name or "",
        "grade": status.get("grade"),
        "reasons": list(dict.fromkeys(labels)),
        "updated": cst_day(from_micros(row.updated_at)),
    }
