"""xinyong (信用): the SDK of the e-commerce credit-information gateway."""

from __future__ import annotations

from xinyong.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InvalidIdentifierError,
    InvalidKeyError,
    MalformedHeadersError,
    NotFoundError,
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
    "ClientClosedError",
    "ConflictError",
    "Event",
    "EventSender",
    "InvalidIdentifierError",
    "InvalidKeyError",
    "MalformedHeadersError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Problem",
    "RateLimitError",
    "RequestTimeout",
    "ServerError",
    "ServiceUnavailableError",
    "SignatureMismatchError",
    "SigningKey",
    "SigningSecret",
    "Subject",
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
]
