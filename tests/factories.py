"""Valid identifiers and events for tests, built with the check characters computed, never hard-coded."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from xinyong.events import EVENT_TYPES

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
RIC_CHECK_ALPHABET = "0123456789X"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def org_check(body8: str) -> str:
    check = 11 - sum(_ORG_VALUES[c] * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True)) % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def make_uscc(rng: random.Random | None = None, *, authority: str = "9", category: str = "1") -> str:
    """A valid USCC: authority + category + 6-digit region + organisation code (8 + check) + mod-31 check."""
    rng = rng or random.Random()
    region = "".join(rng.choice("0123456789") for _ in range(6))
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    first17 = authority + category + region + body + org_check(body)
    return first17 + stdnum_uscc.calc_check_digit(first17)


def make_ric(rng: random.Random | None = None, *, region: str = "320102", born: date | None = None) -> str:
    """A valid resident identity number (ISO 7064 MOD 11-2 check computed)."""
    rng = rng or random.Random()
    born = born or date(1980, 1, 1) + timedelta(days=rng.randrange(0, 12000))
    first17 = region + born.strftime("%Y%m%d") + f"{rng.randrange(0, 1000):03d}"
    return first17 + stdnum_ric.calc_check_digit(first17 + "0")  # it reads 18 chars and ignores the last


def with_wrong_check(code: str, alphabet: str = USCC_ALPHABET) -> str:
    """``code`` with its last (check) character replaced by another one of ``alphabet``: well-formed, invalid."""
    return code[:-1] + alphabet[(alphabet.index(code[-1]) + 1) % len(alphabet)]


def person(rng: random.Random | None = None, *, name: str = "王小明") -> dict[str, Any]:
    """A natural person as a subject: a RIC and a name, both personal information."""
    return {"id_type": "ric", "id": make_ric(rng), "name": name}


def fact_time_field(event_type: str) -> str:
    """The name of an event type's fact time (``occurred_at``, ``decided_at`` …), read from its SDK model."""
    data_model = EVENT_TYPES[event_type].model_fields["data"].annotation
    assert isinstance(data_model, type)
    return next(name for name in data_model.model_fields if name.endswith("_at"))


def encode(body: Mapping[str, Any]) -> bytes:
    """The raw bytes a sender posts for ``body``: UTF-8 JSON with non-ASCII text kept as is."""
    return json.dumps(body, ensure_ascii=False).encode()


def now_rfc3339(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def merchant(rng: random.Random | None = None) -> dict[str, Any]:
    return {"id_type": "uscc", "id": make_uscc(rng), "name": "示例网店有限公司"}


def agency(rng: random.Random | None = None) -> dict[str, Any]:
    """An intermediary agency (涉审中介机构) as a subject."""
    return {"id_type": "uscc", "id": make_uscc(rng), "name": "示例工程咨询有限公司"}


def intermediary_defaults(rng: random.Random, n: int, at: str) -> dict[str, dict[str, Any]]:
    """Valid ``data`` of each intermediary event type (one agency, one practitioner)."""
    firm, member = agency(rng), person(rng, name="李四")
    return {
        "intermediary.declared": {
            "agency": firm,
            "services": ["design_consulting", "assessment"],
            "qualifications": [
                {"name": "工程咨询单位甲级资信", "certificate_no": f"ZX-{n}", "valid_until": "2030-12-31"}
            ],
            "practitioners": [{"person": member, "certificate_no": f"PR-{n}"}],
            "commitment": {"accepted": True, "items": ["申报信息真实有效"], "signatory": "法定代表人"},
            "declared_at": at,
        },
        "intermediary.practitioner_joined": {
            "agency": firm,
            "practitioner": member,
            "certificate_no": f"PR-{n}",
            "joined_at": at,
        },
        "intermediary.practitioner_left": {
            "agency": firm,
            "practitioner": member,
            "certificate_no": f"PR-{n}",
            "left_at": at,
        },
        "intermediary.evaluated": {
            "evaluation_id": f"ev-{n}",
            "subject": firm,
            "period": "2026",
            "grade": "A",
            "evaluator": "市发展和改革委员会",
            "evaluated_at": at,
        },
        "intermediary.service_evaluated": {
            "service_id": f"svc-{n}",
            "agency": firm,
            "on_time": True,
            "satisfaction": "satisfied",
            "evaluated_at": at,
        },
        "intermediary.violation": {
            "case_id": f"iv-{n}",
            "agency": firm,
            "practitioners": [member],
            "kind": "false_report",
            "severity": "serious",
            "confirmed": True,
            "decision_no": f"连审改罚〔2026〕{n}号",
            "found_at": at,
        },
    }


def event(event_type: str, rng: random.Random | None = None, **data: Any) -> dict[str, Any]:
    """A valid event of ``event_type`` dated now; keyword arguments override fields of ``data``."""
    rng = rng or random.Random()
    at = now_rfc3339(-timedelta(minutes=1))
    n = rng.randrange(10**9)
    defaults: dict[str, dict[str, Any]] = {
        "merchant.registered": {
            "merchant": merchant(rng),
            "shop_id": f"shop-{n}",
            "shop_name": "示例旗舰店",
            "verification": ["business_license", "face_match"],
            "registered_at": at,
        },
        "review.manipulation_detected": {
            "case_id": f"case-{n}",
            "merchant": merchant(rng),
            "kind": "fake_order",
            "order_count": 12,
            "confirmed": True,
            "detected_at": at,
        },
        "complaint.filed": {
            "complaint_id": f"cmp-{n}",
            "merchant": merchant(rng),
            "category": "quality",
            "channel": "12315",
            "filed_at": at,
        },
        "complaint.resolved": {
            "complaint_id": f"cmp-{n}",
            "merchant": merchant(rng),
            "outcome": "upheld",
            "resolved_at": at,
        },
        "commitment.published": {
            "merchant": merchant(rng),
            "commitment_id": f"cm-{n}",
            "items": ["genuine goods", "7-day returns"],
            "published_at": at,
        },
        "commitment.breached": {
            "merchant": merchant(rng),
            "commitment_id": f"cm-{n}",
            "severity": "general",
            "found_at": at,
        },
        "listing.violation": {
            "case_id": f"lv-{n}",
            "merchant": merchant(rng),
            "listing_id": f"item-{n}",
            "kind": "counterfeit",
            "confirmed": True,
            "found_at": at,
        },
        "delivery.recorded": {
            "waybill_no": f"SF{n:012d}",
            "courier": {"id_type": "uscc", "id": make_uscc(rng), "name": "顺捷快递有限公司"},
            "merchant": merchant(rng),
            "status": "delivered",
            "occurred_at": at,
        },
        "penalty.imposed": {
            "decision_no": f"连市监罚〔2026〕{n}号",
            "subject": merchant(rng),
            "authority": "连云港市市场监督管理局",
            "severity": "general",
            "violation": "虚假宣传",
            "decided_at": at,
        },
        "penalty.revoked": {
            "decision_no": f"连市监罚〔2026〕{n}号",
            "subject": merchant(rng),
            "revoked_at": at,
            "reason": "行政复议撤销",
        },
        "objection.filed": {
            "objection_id": f"obj-{n}",
            "subject": merchant(rng),
            "record_id": f"rec_{n:024x}",
            "grounds": "该记录所依据的信息有误",
            "filed_at": at,
        },
        "objection.decided": {
            "objection_id": f"obj-{n}",
            "subject": merchant(rng),
            "outcome": "upheld",
            "note": "经核查属实，予以更正",
            "decided_at": at,
        },
        "repair.applied": {
            "repair_id": f"rep-{n}",
            "subject": merchant(rng),
            "record_id": f"rec_{n:024x}",
            "grounds": "已完成整改",
            "applied_at": at,
        },
        "repair.decided": {
            "repair_id": f"rep-{n}",
            "subject": merchant(rng),
            "outcome": "granted",
            "note": "准予信用修复",
            "decided_at": at,
        },
        **intermediary_defaults(rng, n, at),
    }
    body = dict(defaults[event_type])
    body.update(data)
    return {"type": event_type, "timestamp": now_rfc3339(-timedelta(seconds=30)), "data": body}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
"""Arbitrary JSON values."""


@st.composite
def mutated_event_bodies(draw: st.DrawFn) -> bytes:
    """A valid event of the catalogue (any type) with one member of its envelope or of its data, an existing one or
    a new one, set to an arbitrary JSON value; encoded."""
    from xinyong.events import EVENT_TYPES

    body = event(draw(st.sampled_from(sorted(EVENT_TYPES))))
    target = body if draw(st.sampled_from(["envelope", "data"])) == "envelope" else body["data"]
    key = draw(st.text(max_size=12))
    if draw(st.booleans()):
        key = sorted(target)[len(key) % len(target)]
    target[key] = draw(JSON_VALUES)
    return json.dumps(body, ensure_ascii=False).encode()
