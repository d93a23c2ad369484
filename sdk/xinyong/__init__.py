"""xinyong (信用): the SDK of the e-commerce credit-information gateway."""

from __future__ import annotations

from xinyong.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
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
from xinyong.sender import EventSender

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "EventSender",
    "InvalidKeyError",
    "MalformedHeadersError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeout",
    "ServerError",
    "ServiceUnavailableError",
    "SignatureMismatchError",
    "TimestampOutOfToleranceError",
    "TransportError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "WebhookVerificationError",
    "XinyongError",
    "__version__",
]
