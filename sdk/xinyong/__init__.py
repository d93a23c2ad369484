"""xinyong (信用): the SDK of the e-commerce credit-information gateway."""

from __future__ import annotations

from xinyong.client import Client, OnboardingDecision, SelectionDecision, SyncClient
from xinyong.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InvalidIdentifierError,
    InvalidKeyError,
    MalformedHeadersError,
    MirrorError,
    NotFoundError,
    NotNdjsonError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    ServiceUnavailableError,
    SignatureMismatchError,
    TimestampOutOfToleranceError,
    TransportError,
    UnprocessableEntityError,
    UnsupportedMediaTypeError,
    WebhookVerificationError,
    XinyongError,
)
from xinyong.events import EVENT_TYPES, Event, parse_event
from xinyong.mirror import ListMirror, MirrorFreshness
from xinyong.queries import (
    ListChange,
    ListChangesPage,
    ScreeningRequest,
    ScreeningResponse,
    StatusReason,
    SubjectStatus,
    ric_pseudonym,
)
from xinyong.responses import Problem, WebhookAck
from xinyong.sender import EventSender
from xinyong.subjects import Subject
from xinyong.webhooks import SigningKey, SigningSecret, VerifyingKey, WebhookVerifier

__version__ = "0.1.0"

__all__ = [
    "EVENT_TYPES",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ClientClosedError",
    "ConflictError",
    "Event",
    "EventSender",
    "InvalidIdentifierError",
    "InvalidKeyError",
    "ListChange",
    "ListChangesPage",
    "ListMirror",
    "MalformedHeadersError",
    "MirrorError",
    "MirrorFreshness",
    "NotFoundError",
    "NotNdjsonError",
    "OnboardingDecision",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Problem",
    "RateLimitError",
    "RequestTimeout",
    "ScreeningRequest",
    "ScreeningResponse",
    "SelectionDecision",
    "ServerError",
    "ServiceUnavailableError",
    "SignatureMismatchError",
    "SigningKey",
    "SigningSecret",
    "StatusReason",
    "Subject",
    "SubjectStatus",
    "SyncClient",
    "TimestampOutOfToleranceError",
    "TransportError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "VerifyingKey",
    "WebhookAck",
    "WebhookVerificationError",
    "WebhookVerifier",
    "XinyongError",
    "__version__",
    "parse_event",
    "ric_pseudonym",
]
