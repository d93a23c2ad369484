"""How an intermediary's credit file is shown (涉审中介机构): to a regulator (:func:`intermediary_section`, part of
``subjects show``) and to the public (:func:`public_view`, for the disclosure site's intermediaries column).

Both are pure functions of a credit file, the policy and an instant. Persons are masked throughout; the public view
never shows a practitioner's resident id, even masked: a practitioner appears by masked name and practising
certificate number only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xinyong_gateway.credit.engine import CreditFile
from xinyong_gateway.credit.intermediary import Link, TierStatus
from xinyong_gateway.credit.policy import Policy

__all__ = ["intermediary_lines", "intermediary_section", "public_view"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _tier(tier: TierStatus | None) -> dict[str, Any] | None:
    if tier is None:
        return None
    return {
        "grade": tier.grade,
        "measures": list(tier.measures),
        "evaluation": tier.evaluation,
        "period": tier.period,
        "evaluator": tier.evaluator,
        "lowered_by": tier.lowered_by,
    }


def _link(link: Link, kind: str, *, public: bool) -> dict[str, Any]:
    if kind == "intermediary":  # the agency's practitioner: a person
        shown = {"name": link.name, "certificate_no": link.certificate_no, "since": _iso(link.since)}
        return shown if public else {"id": link.other, **shown}
    return {"uscc": link.other, "name": link.name, "certificate_no": link.certificate_no, "since": _iso(link.since)}


def intermediary_section(credit_file: CreditFile, at: datetime, policy: Policy) -> dict[str, Any] | None:
    """The intermediary part of a file for a regulator: kind, tier, declared information (qualifications marked
    expired), current links (persons masked) and the evaluations up to ``at``; None for other subjects."""
    part = credit_file.intermediary
    if part is None:
        return None
    status = credit_file.status_at(at, policy)
    standing = status.intermediary
    assert standing is not None  # noqa: S101 -- a file with an intermediary part has an intermediary status
    declared = part.declared()
    return {
        "kind": part.kind,
        "tier": _tier(standing.tier),
        "declaration": None
        if declared is None
        else {
            "declared_at": _iso(declared["declared_at"]),
            "services": declared["services"],
            "qualifications": part.qualifications(at),
            "commitment": declared["commitment"],
        },
        "practitioners" if part.kind == "intermediary" else "agencies": [
            _link(link, part.kind, public=False) for link in standing.links
        ],
        "evaluations": [{**e, "evaluated_at": _iso(e["evaluated_at"])} for e in part.evaluations_at(at)],
    }


def public_view(credit_file: CreditFile, name: str | None, at: datetime, policy: Policy) -> dict[str, Any] | None:
    """An agency's public view at ``at`` (the disclosure site's intermediaries column): its name, list and grade, the
    records in publicity, its declared information and published truthfulness commitment, its evaluations, its
    supervision tier and its current practitioners (masked name and certificate number only). None for a file that
    is not an agency's (a practitioner's page is not public; neither is any other subject's here)."""
    part = credit_file.intermediary
    if part is None or part.kind != "intermediary":
        return None
    status = credit_file.status_at(at, policy)
    standing = status.intermediary
    assert standing is not None  # noqa: S101 -- as above
    declared = part.declared()
    records = [
        {
            "reason": reason.code,
            "list": reason.list,
            "severity": reason.severity,
            "effective_from": _iso(reason.effective_from),
            "effective_until": _iso(reason.effective_until),
            "disputed": reason.disputed,
        }
        for reason in status.reasons
    ]
    return {
        "name": name,
        "list": status.list,
        "grade": status.grade,
        "tier": _tier(standing.tier),
        "records": records,
        "declaration": None
        if declared is None
        else {
            "declared_at": _iso(declared["declared_at"]),
            "services": declared["services"],
            "qualifications": part.qualifications(at),
        },
        "commitment": None if declared is None else declared["commitment"],
        "evaluations": [{**e, "evaluated_at": _iso(e["evaluated_at"])} for e in part.evaluations_at(at)],
        "practitioners": [_link(link, part.kind, public=True) for link in standing.links],
        "policy_version": status.policy_version,
        "as_of": _iso(at),
    }


def intermediary_lines(section: dict[str, Any]) -> list[str]:
    """:func:`intermediary_section` for a person, as lines of ``subjects show``."""
    tier = section["tier"]
    lines = [f"  intermediary ({section['kind']}): tier {tier['grade'] if tier else 'none'}"]
    if tier:
        evaluated = f"evaluated {tier['evaluation']} for {tier['period']}" if tier["evaluation"] else "not evaluated"
        lowered = f", lowered by the {tier['lowered_by']} list" if tier["lowered_by"] else ""
        lines.append(f"    {evaluated}{lowered}; measures: {', '.join(tier['measures']) or 'none'}")
    declaration = section.get("declaration")
    if declaration:
        lines.append(f"    declared {declaration['declared_at']}: services {', '.join(declaration['services'])}")
        for q in declaration["qualifications"]:
            expired = "  EXPIRED" if q["expired"] else ""
            lines.append(f"    qualification {q['name']} {q['certificate_no']} valid until {q['valid_until']}{expired}")
    for key in ("practitioners", "agencies"):
        if key in section:
            lines.append(f"    {key} ({len(section[key])}):")
            for link in section[key]:
                who = link.get("uscc") or link.get("id")
                lines.append(
                    f"      {who} {link['name'] or ''} certificate {link['certificate_no']} since {link['since']}"
                )
    return lines
