"""A regulator's report of one credit file (``xinyong-gateway subjects show``): its status, every record it ever
held (the archived ones too) in the order they took effect, its objections and repair applications with their
deadlines, its status history from the change feed, and for an intermediary agency or practitioner its declared
information, links and tier (``credit.intermediary_view``).

:func:`subject_report` reads it from the store (the identity masked, unless ``reveal``); :func:`report_lines` is its
form for a person. Times are UTC to the second (``2026-03-01T08:00:00Z``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from xinyong.subjects import Subject
from xinyong_gateway.credit.engine import CreditFile, ObjectionView, Record, RepairView
from xinyong_gateway.credit.intermediary_view import intermediary_lines, intermediary_section
from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import CaseRef, Micros, Store, SubjectRow, from_micros

__all__ = ["HeldCase", "case_document", "case_line", "held_cases", "report_lines", "subject_report"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def case_document(view: ObjectionView | RepairView, published_at: Micros | None = None) -> dict[str, Any]:
    """An objection or repair as JSON: instants as UTC to the second, deadlines as the date of their last day;
    ``published_at``: when its outcome (a correction, a repair) reached the change feed, if it has."""
    document = asdict(view)
    document["published_at"] = from_micros(published_at) if published_at is not None else None
    for name, value in document.items():
        if isinstance(value, datetime):
            document[name] = _iso(value)
        elif isinstance(value, date):
            document[name] = value.isoformat()
    return document


@dataclass(frozen=True, slots=True)
class HeldCase:
    """An objection or repair application as its subject's credit file holds it now."""

    ref: CaseRef
    row: SubjectRow
    view: ObjectionView | RepairView

    def document(self) -> dict[str, Any]:
        return case_document(self.view, self.ref.published_at)


async def held_cases(
    store: Store,
    kind: str,
    policy: Policy,
    now: datetime,
    *,
    case_id: str | None = None,
    subject_key: str | None = None,
) -> list[HeldCase]:
    """The cases of ``kind`` (``objection`` or ``repair``; one id, or all; of one subject, or of all) with their
    states and deadlines under ``policy`` at ``now``. A case that left its file after the policy's horizon is not
    held any more and is left out."""
    refs = await store.case_refs(kind, case_id)
    if subject_key is not None:
        refs = [ref for ref in refs if ref.subject_key == subject_key]
    rows = await store.load_subjects(sorted({ref.subject_key for ref in refs}))
    found = []
    for ref in refs:
        row = rows.get(ref.subject_key)
        if row is None or not row.state:
            continue
        credit_file = CreditFile.from_json(row.state)
        if ref.case_id not in (credit_file.objections if kind == "objection" else credit_file.repairs):
            continue
        view: ObjectionView | RepairView = (
            credit_file.objection(ref.case_id, policy, now)
            if kind == "objection"
            else credit_file.repair(ref.case_id, policy)
        )
        found.append(HeldCase(ref, row, view))
    return found


async def subject_report(
    store: Store, master: MasterKey, subject: Subject, *, reveal: bool, now: datetime, policy: Policy
) -> dict[str, Any] | None:
    """The report of ``subject``'s credit file at ``now`` (records' states are as of then; deadlines under
    ``policy``), or None when nothing was ever reported about it. ``reveal``: the identifier and name unsealed
    instead of masked."""
    key = master.subject_key(subject.id_type, subject.id)
    row = (await store.load_subjects([key])).get(key)
    if row is None:
        return None
    credit_file = CreditFile.from_json(row.state)
    identity: dict[str, Any] = {"id_type": row.id_type, "id": row.display_id, "name": row.display_name}
    if reveal and not row.sealed_id:
        identity["erased"] = True  # retention forgot this person: the masked form is all there is
    elif reveal:
        identity["id"] = master.open_identity(key, row.sealed_id)
        identity["name"] = master.open_identity(key, row.sealed_name) if row.sealed_name else None
    records = [
        {
            "record_id": record.record_id,
            "reason": record.reason,
            "rule": record.rule_id,
            "list": record.list_name,
            "severity": record.severity,
            "state": record.state_at(now),
            "disputed": record.disputed_at(now),
            "source_events": record.source_seqs,
            "effective_from": _iso(record.effective_from),
            "effective_until": _iso(record.effective_until),
        }
        for record in sorted(
            [
                *(Record.from_json(json.loads(text)) for text in await store.archived_records(key)),
                *credit_file.records.values(),
            ],
            key=lambda r: (r.effective_from, r.record_id),
        )
    ]
    history = [
        {"change_id": c.change_id, "effective_at": _iso(from_micros(c.effective_at)), **json.loads(c.snapshot)}
        for c in await store.subject_changes(key)
    ]
    status = json.loads(row.status)
    status["subject"] = identity
    published = {
        (ref.kind, ref.case_id): ref.published_at
        for kind in ("objection", "repair")
        for ref in await store.case_refs(kind)
        if ref.subject_key == key
    }
    objections = [
        case_document(credit_file.objection(oid, policy, now), published.get(("objection", oid)))
        for oid in sorted(credit_file.objections)
    ]
    repairs = [
        case_document(credit_file.repair(rid, policy), published.get(("repair", rid)))
        for rid in sorted(credit_file.repairs)
    ]
    report: dict[str, Any] = {
        "subject": identity,
        "status": status,
        "records": records,
        "objections": objections,
        "repairs": repairs,
        "history": history,
    }
    section = intermediary_section(credit_file, now, policy)
    if section is not None:  # an agency's or practitioner's file (一企一档, 一人一档)
        report["intermediary"] = section
    return report


def case_line(case: dict[str, Any]) -> str:
    """An objection or a repair (a :func:`case_document`) on one line for a person: its state, what it cites, its
    times and deadlines, and what does not stand."""
    kind = "objection" if "objection_id" in case else "repair"
    parts = [f"{case[f'{kind}_id']}: {case['state']}", f"record {case['record_id']}"]
    opened = case["filed_at" if kind == "objection" else "applied_at"]
    if opened:
        verb = "filed" if kind == "objection" else "applied"
        parts.append(f"{verb} {opened}" + (f", reply due {case['reply_due']}" if kind == "objection" else ""))
    if case["decided_at"]:
        parts.append(f"decided {case['decided_at']}")
    for key, label in (("publish_due", "correction published by"), ("feedback_due", "result fed back by")):
        if case.get(key):
            parts.append(f"{label} {case[key]}")
    if case.get("published_at"):
        parts.append(f"published {case['published_at']}")
    if case.get("overdue"):
        parts.append("OVERDUE")
    if case["reason"]:
        parts.append(case["reason"])
    if case["anomalies"]:
        parts.append(f"{case['anomalies']} ruling(s) that do not stand")
    return ", ".join(parts)


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report for a person: who, the status, one line per record, one line per feed entry."""
    subject, status = report["subject"], report["status"]
    lines = [
        f"{subject['id_type'].upper()} {subject['id']}  {subject['name'] or ''}".rstrip(),
        f"  list {status['list']}, grade {status['grade']}, score {status['score']}"
        f" (policy {status['policy_version']}, as of {status['as_of']})",
    ]
    if status["measures"]:
        lines.append(f"  measures: {', '.join(status['measures'])}")
    lines.append(f"  records ({len(report['records'])}):")
    for record in report["records"]:
        lines.append(
            f"    {record['record_id']}  {record['reason']:<24} {record['list']:<5} {record['severity']:<7}"
            f" {record['state']:<9}{' (disputed)' if record['disputed'] else ''}"
            f" {record['effective_from']} → {record['effective_until']}  events {record['source_events']}"
        )
    if "intermediary" in report:
        lines += intermediary_lines(report["intermediary"])
    if report["objections"]:
        lines.append(f"  objections ({len(report['objections'])}):")
        for objection in report["objections"]:
            lines.append(f"    {case_line(objection)}")
    if report["repairs"]:
        lines.append(f"  repairs ({len(report['repairs'])}):")
        for repair in report["repairs"]:
            lines.append(f"    {case_line(repair)}")
    lines.append(f"  status history ({len(report['history'])}):")
    for change in report["history"]:
        disputed = " (disputed)" if change.get("disputed") else ""
        lines.append(
            f"    #{change['change_id']} {change['effective_at']}: {change['list']} {change['grade']}{disputed}"
        )
    return lines
