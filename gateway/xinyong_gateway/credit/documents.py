"""The documents the credit engine's results are shown as: a status as JSON, and text as it may be displayed.

:func:`status_document` is the JSON form of a :class:`~xinyong_gateway.credit.engine.Status`: what the store keeps
for each subject, the change feed carries and screening serves; :func:`decision_of` reads back from a document what
:meth:`Status.decision` says of the status it was made from (a feed entry is written when that changes).
:func:`display_text` is a name as it may be stored for display and shown; :func:`plural` a count with its noun
(``1 event``, ``2 events``), for every message that counts something.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xinyong_gateway.credit.engine import Status
from xinyong_gateway.credit.facts import Decision
from xinyong_gateway.credit.intermediary import IntermediaryStatus

__all__ = ["decision_of", "display_text", "intermediary_document", "plural", "status_document"]


_CONTROL_CHARACTERS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], "\ufffd")
"""C0, DEL and C1 (Unicode category Cc) → U+FFFD, for ``str.translate``."""


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 event``, ``2 events``, ``1,000 subjects``; ``nouns`` when the plural is not ``noun`` + s."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def display_text(text: str | None) -> str | None:
    """``text`` as it may be stored for display and shown: every control character replaced by U+FFFD.

    Event text is free within its length limits, and the sealed original keeps every character; what is shown
    (and stored in a ``text`` column) must not carry a NUL, which PostgreSQL refuses, nor terminal escapes."""
    return None if text is None else text.translate(_CONTROL_CHARACTERS)


def status_document(row_identity: tuple[str, str, str | None], status: Status) -> dict[str, Any]:
    """The JSON form of a status: what the store keeps, the feed carries and the query API will serve."""
    id_type, display_id, display_name = row_identity
    return {
        "subject": {"id_type": id_type, "id": display_id, "name": display_name},
        "list": status.list,
        "grade": status.grade,
        "score": status.score,
        "measures": list(status.measures),
        "reasons": [
            {
                "record_id": reason.record_id,
                "code": reason.code,
                "list": reason.list,
                "severity": reason.severity,
                "source_events": list(reason.source_seqs),
                "effective_from": reason.effective_from.isoformat(),
                "effective_until": reason.effective_until.isoformat(),
                "disputed": reason.disputed,
            }
            for reason in status.reasons
        ],
        "disputed": status.disputed,
        **({"intermediary": intermediary_document(status.intermediary)} if status.intermediary is not None else {}),
        "policy_version": status.policy_version,
        "as_of": status.as_of.isoformat(),  # the last member: screening restamps it in the text (web.query)
    }


def intermediary_document(standing: IntermediaryStatus) -> dict[str, Any]:
    """The ``intermediary`` member of a status document (an agency's or practitioner's kind, tier and link count)."""
    tier = standing.tier
    return {
        "kind": standing.kind,
        "tier": None
        if tier is None
        else {
            "grade": tier.grade,
            "measures": list(tier.measures),
            "evaluation": tier.evaluation,
            "period": tier.period,
            "lowered_by": tier.lowered_by,
        },
        "declared": standing.declared,
        "expired_qualifications": standing.expired_qualifications,
        "practitioners": len(standing.links) if standing.kind == "intermediary" else 0,
        "agencies": len(standing.links) if standing.kind == "practitioner" else 0,
    }


def decision_of(document: Mapping[str, Any]) -> Decision:
    """:meth:`Status.decision` of the status ``document`` was made from (by :func:`status_document`): its list, grade,
    measures, whether it is disputed, and an intermediary's tier. A stored document compares with a new status by it;
    a property test holds the two equal."""
    standing = document.get("intermediary")
    tier = standing["tier"] if standing is not None else None
    return (
        document["list"],
        document["grade"],
        tuple(document["measures"]),
        bool(document["disputed"]),
        (tier["grade"], tuple(tier["measures"])) if tier is not None else None,
    )
