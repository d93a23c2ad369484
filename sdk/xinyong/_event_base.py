"""The building blocks every event model shares (times, identifiers, texts, the envelope), apart from the catalogue
(:mod:`xinyong.events`) so the families of events can live in modules of their own (:mod:`xinyong.intermediaries`).
Everything here is re-exported by :mod:`xinyong.events`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from xinyong.wire import WireModel

__all__ = ["FUTURE_SKEW", "MAX_COUNT", "EventBase", "Identifier", "Severity", "Text", "Timestamp", "unique_items"]

T = TypeVar("T")

#: How far after "now" a fact may be dated (clock skew between sender and gateway).
FUTURE_SKEW: Final = timedelta(minutes=5)


# RFC 3339 section 5.6 ``date-time``. pydantic alone would also take "2024-01-01T00:00Z" (no seconds) or
# unix seconds, as a number or a string, which it reads as UTC; none of them is in the contract.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _timestamp(value: object, parse: ValidatorFunctionWrapHandler, info: ValidationInfo) -> datetime:
    """An RFC 3339 date-time with an offset, at most :data:`FUTURE_SKEW` after the context's ``now``.

    Only datetimes and RFC 3339 strings reach pydantic's parser (``parse``); the field is lax because the
    parser gets a Python ``str``, which strict mode refuses for a datetime even when it came from JSON, so
    the pattern is what keeps it strict. One wrap validator does both checks: a single call into Python per
    field, on the ingest hot path.
    """
    if not isinstance(value, datetime) and not (isinstance(value, str) and _RFC3339.fullmatch(value) is not None):
        raise PydanticCustomError(
            "datetime_not_rfc3339",
            "Input should be an RFC 3339 date-time with an offset, such as 2024-05-01T08:30:00+08:00",
        )
    moment: datetime = parse(value)
    context = info.context
    now = context.get("now") if isinstance(context, dict) else None
    if moment - (now or datetime.now(UTC)) > FUTURE_SKEW:
        raise PydanticCustomError("datetime_too_far_in_future", "Input should not be more than 5 minutes in the future")
    return moment


#: An RFC 3339 date-time with an offset, at most :data:`FUTURE_SKEW` after "now".
Timestamp = Annotated[
    AwareDatetime,
    Field(strict=False, description="RFC 3339 date-time with an offset, at most 5 minutes in the future."),
    WrapValidator(_timestamp),
]
#: A sender's identifier (case, complaint, shop, waybill …): kept exactly as sent, 1 to 128 characters.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: A free text (name, authority, violation, reason …): kept exactly as sent, 1 to 500 characters.
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]

Severity = Literal["minor", "general", "serious"]

# Counts travel as JSON numbers; beyond 2**53 - 1 they stop being exact in many JSON parsers (RFC 7493).
MAX_COUNT: Final = 2**53 - 1


def unique_items(value: list[T]) -> list[T]:
    """A list validator: each item at most once."""
    if len(set(value)) != len(value):
        raise PydanticCustomError("list_not_unique", "List items should be unique")
    return value


class EventBase(WireModel):
    """The envelope every event shares: ``type``, ``timestamp`` (when the source sent it) and ``data``."""

    type: str
    timestamp: Timestamp
    data: WireModel
