"""Wire models of the subscriptions API (``/v1/subscriptions``, API key scope ``subscribe``).

A platform subscribes a URL to status changes of some lists (and, optionally, only some subjects); the gateway then
POSTs each matching change-feed entry to it as a Standard Webhooks message of type ``list.changed``, signed ``v1``
with the subscription's own ``whsec_`` secret, its ``data`` the feed entry plus ``sequence`` (1, 2, 3 ... per
subscription, so a gap shows a missing message). Persons are named by the subscribing key's pseudonyms
(:func:`xinyong.ric_pseudonym`), never by resident id, in requests as in deliveries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from xinyong.errors import InvalidIdentifierError
from xinyong.queries import FeedRicSubject
from xinyong.subjects import validate_uscc
from xinyong.wire import WireModel

__all__ = [
    "MAX_ROTATION_GRACE",
    "MAX_SUBSCRIBED_SUBJECTS",
    "MAX_URL_LENGTH",
    "NOTIFICATION_TYPE",
    "ReplayAccepted",
    "ReplayRequest",
    "SecretRotated",
    "SecretRotation",
    "SubscribedSubject",
    "SubscribedUscc",
    "Subscription",
    "SubscriptionCreated",
    "SubscriptionList",
    "SubscriptionRequest",
]

NOTIFICATION_TYPE: Final = "list.changed"
"""The ``type`` of every notification a subscription receives."""
MAX_SUBSCRIBED_SUBJECTS: Final = 1000
MAX_URL_LENGTH: Final = 2048
MAX_ROTATION_GRACE: Final = 7 * 24 * 3600
"""Seconds the previous secret may keep signing after a rotation, at most."""

SubscribedList = Literal["black", "watch", "red"]


class SubscribedUscc(WireModel):
    """A business or organisation to be notified about, by its code."""

    id_type: Literal["uscc"]
    id: str = Field(description="The USCC (normalised and checked).")

    @field_validator("id", mode="after")
    @classmethod
    def _valid_uscc(cls, value: str) -> str:
        try:
            return validate_uscc(value)
        except InvalidIdentifierError as exc:
            raise PydanticCustomError("invalid_identifier", str(exc)) from None


SubscribedSubject = Annotated[SubscribedUscc | FeedRicSubject, Field(discriminator="id_type")]
"""A USCC by code, or a person by the pseudonym the feed gives it for this API key (never a resident id)."""


class SubscriptionRequest(WireModel):
    """``POST /v1/subscriptions``."""

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description=(
            "Where to POST notifications: `https://` (or `http://`) to a host that resolves only to public addresses"
            " (checked now and again at each connection); redirects are not followed."
        ),
    )
    lists: list[SubscribedList] = Field(
        min_length=1,
        max_length=3,
        description="A change is sent when the subject enters, leaves or changes within one of these lists.",
    )
    subjects: list[SubscribedSubject] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SUBSCRIBED_SUBJECTS,
        description="Only these subjects (omit for every subject).",
    )


class Subscription(WireModel):
    """A subscription as its API key sees it (never its secret)."""

    subscription_id: str
    url: str
    lists: list[SubscribedList]
    subjects: list[SubscribedSubject] | None
    status: Literal["active", "disabled"]
    disabled_reason: str | None = Field(description="`gone` (the endpoint answered 410), `failing`, `operator` ...")
    last_sequence: int = Field(description="The sequence of the last notification written for it (0: none yet).")
    created_at: datetime
    previous_secret_until: datetime | None = Field(
        description="While a rotation's grace period runs: deliveries are signed with both secrets until then."
    )


class SubscriptionCreated(Subscription):
    """``POST /v1/subscriptions`` 201: the subscription and its signing secret, shown this once."""

    secret: str = Field(description="`whsec_…`: verify deliveries with it (Standard Webhooks `v1`).")


class SubscriptionList(WireModel):
    """``GET /v1/subscriptions`` 200: the API key's own subscriptions, oldest first."""

    subscriptions: list[Subscription]


class SecretRotation(WireModel):
    """``POST /v1/subscriptions/{id}/rotate-secret``."""

    grace_seconds: int = Field(
        default=86400,
        ge=0,
        le=MAX_ROTATION_GRACE,
        description="How long the previous secret keeps signing beside the new one (both signatures are sent).",
    )


class SecretRotated(WireModel):
    """``POST /v1/subscriptions/{id}/rotate-secret`` 200: the new secret, shown this once."""

    subscription_id: str
    secret: str
    previous_secret_until: datetime


class ReplayRequest(WireModel):
    """``POST /v1/subscriptions/{id}/replay``: send again every matching change that took effect since then."""

    since: datetime = Field(description="RFC 3339 with an offset.")


class ReplayAccepted(WireModel):
    """``POST /v1/subscriptions/{id}/replay`` 202: how many notifications were queued (each with a new sequence)."""

    queued: int
