"""The SDK's one error tree.

Every exception the SDK raises on purpose derives from :class:`XinyongError`; third-party
exceptions (aiohttp, cryptography) are translated once, at the boundary, with ``raise … from exc``::

    XinyongError
     ├── InvalidKeyError(XinyongError, ValueError)      a whsec_/whsk_/whpk_ string that is not a key
     ├── ClientClosedError(XinyongError, RuntimeError)  a sender or client used after ``close()``
     ├── InvalidIdentifierError(XinyongError, ValueError) a USCC or RIC that fails validation
     ├── MirrorError                                    a ListMirror file that cannot answer (never synced, another
     │                                                  key's, not a mirror, unreadable)
     ├── InvalidNotificationError(XinyongError, ValueError)  a verified notification body that is not one (``errors``)
     │    └── UnknownNotificationTypeError              a ``type`` this SDK does not know (a newer gateway): ``type``
     ├── NotNdjsonError(XinyongError, ValueError)       a file given as NDJSON events that is something else
     ├── WebhookVerificationError                       an inbound webhook that must not be trusted
     │    ├── MalformedHeadersError                     webhook-id/-timestamp/-signature missing or malformed (400)
     │    ├── SignatureMismatchError                    no signature matches any key (401)
     │    └── TimestampOutOfToleranceError              signed, but outside the ±tolerance window (401)
     ├── AttestationError                       an attestation that must not be trusted (``verify_attestation``)
     │    ├── MalformedAttestationError(…, ValueError) not a compact JWS attestation, or claims that do not parse
     │    ├── AlgorithmNotAllowedError          an alg other than EdDSA, or a key that is not OKP Ed25519
     │    ├── UnknownKeyIdError                 no key with the token's kid in the JWKS
     │    └── AttestationSignatureError         the signature does not match: the token was changed
     ├── TransportError(XinyongError, ConnectionError)  the gateway could not be reached or the connection broke
     │    └── RequestTimeout(TransportError, TimeoutError)
     └── ApiError                                       the gateway answered with a problem (RFC 9457)
          ├── BadRequestError             400
          ├── AuthenticationError         401
          ├── PermissionDeniedError       403
          ├── NotFoundError               404
          ├── ConflictError               409
          ├── PayloadTooLargeError        413
          ├── UnsupportedMediaTypeError   415
          ├── UnprocessableEntityError    422   (``errors``: JSON Pointers into the body)
          ├── RateLimitError              429   (``retry_after`` seconds)
          └── ServerError                 5xx
               └── ServiceUnavailableError 503

Messages never contain a personal identifier: validation problems name the field, not its value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xinyong.problems import PROBLEM_BASE

__all__ = [
    "AlgorithmNotAllowedError",
    "ApiError",
    "AttestationError",
    "AttestationSignatureError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "InvalidIdentifierError",
    "InvalidKeyError",
    "InvalidNotificationError",
    "MalformedAttestationError",
    "MalformedHeadersError",
    "MirrorError",
    "NotFoundError",
    "NotNdjsonError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeout",
    "ServerError",
    "ServiceUnavailableError",
    "SignatureMismatchError",
    "TimestampOutOfToleranceError",
    "TransportError",
    "UnknownKeyIdError",
    "UnknownNotificationTypeError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "WebhookVerificationError",
    "XinyongError",
    "api_error_for",
]


class XinyongError(Exception):
    """Root of every error the SDK raises."""


class InvalidKeyError(XinyongError, ValueError):
    """A signing secret or key string is not in the ``whsec_``/``whsk_``/``whpk_`` format."""


class InvalidIdentifierError(XinyongError, ValueError):
    """A USCC or RIC failed validation.

    The message says what is wrong ("USCC check character is wrong") and never contains the
    identifier itself: a resident identity number is personal information.
    """


class ClientClosedError(XinyongError, RuntimeError):
    """A sender or client was used after it was closed; create a new one."""


class MirrorError(XinyongError):
    """A :class:`~xinyong.ListMirror` cannot answer: it has never completed a sync, its file was made for another
    API key's lookup secret, is not a mirror, or cannot be read or written. It never answers "allow" instead."""


class NotNdjsonError(XinyongError, ValueError):
    """A file given as NDJSON events is something else: its first line is not a JSON object (a CSV, a GB18030
    export, pretty-printed JSON). See :func:`xinyong.ndjson.check_first_line`."""


class InvalidNotificationError(XinyongError, ValueError):
    """A notification from the gateway passed verification but its body is not a notification this SDK reads.

    ``errors`` are the fields at fault, ``[{"pointer": "/data/list", "detail": "..."}]`` (JSON Pointers into the body);
    neither they nor the message contain a value of the body. Answer 400: the gateway retries the message, and a
    receiver that keeps refusing it is eventually disabled, so this is worth an alert."""

    def __init__(self, message: str, *, errors: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(message)
        self.errors: list[Mapping[str, str]] = list(errors)


class UnknownNotificationTypeError(InvalidNotificationError):
    """A verified notification of a ``type`` this SDK does not know, from a newer gateway.

    A receiver may acknowledge it with a 2xx and ignore it (the gateway stops retrying); the changes it does know
    keep arriving, and a sequence number it skipped shows as a gap that a feed sync covers. ``type`` is the type."""

    def __init__(self, message: str, *, type: str, errors: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(message, errors=errors)
        self.type = type


class WebhookVerificationError(XinyongError):
    """An inbound webhook failed verification and must not be trusted."""


class MalformedHeadersError(WebhookVerificationError):
    """A webhook header is missing or malformed."""


class SignatureMismatchError(WebhookVerificationError):
    """No signature in the header matches any key of the source."""


class TimestampOutOfToleranceError(WebhookVerificationError):
    """The signature is valid but the timestamp lies outside the tolerance window."""

    def __init__(self, message: str, *, timestamp: int, now: int, tolerance: int) -> None:
        super().__init__(message)
        self.timestamp = timestamp
        self.now = now
        self.tolerance = tolerance


class AttestationError(XinyongError):
    """An attestation that must not be trusted (the message says why, without echoing the token)."""


class MalformedAttestationError(AttestationError, ValueError):
    """Not a compact JWS attestation: wrong shape, base64url or JSON, wrong ``typ``, or claims that do not parse."""


class AlgorithmNotAllowedError(AttestationError):
    """The token's ``alg`` is not ``EdDSA``, or its key is not an ``OKP`` ``Ed25519`` key."""


class UnknownKeyIdError(AttestationError):
    """The token's ``kid`` names no key of the JWKS (another gateway's key, or a JWKS older than the key)."""


class AttestationSignatureError(AttestationError):
    """The signature does not match the header and payload: the token was changed after it was signed."""


class TransportError(XinyongError, ConnectionError):
    """The gateway could not be reached, or the connection failed mid-request.

    The message is one sentence: ``Cannot reach http://127.0.0.1:8080 (connection refused) after 5 tries — is the
    gateway running?``. ``url`` is the gateway's base URL, ``reason`` the few words in the parentheses,
    ``attempts`` how many tries were made; the exception of the HTTP library is the ``__cause__``.
    """

    def __init__(self, message: str, *, url: str | None = None, reason: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason
        self.attempts = attempts


class RequestTimeout(TransportError, TimeoutError):  # noqa: N818 -- the name CONVENTIONS.md gives, as in aiohttp
    """The gateway did not answer within the client's timeout."""


class ApiError(XinyongError):
    """The gateway answered with an error (``application/problem+json``, RFC 9457).

    Carries the HTTP ``status``, the stable problem ``type`` URI, ``title``, ``detail``, the
    ``request_id`` the gateway logged it under, and the full problem document in ``problem``.
    """

    def __init__(
        self,
        status: int,
        problem: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        message: str | None = None,
    ) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.type: str = str(self.problem.get("type", "about:blank"))
        self.title: str = str(self.problem.get("title", "")) or f"HTTP {status}"
        self.detail: str | None = self.problem.get("detail")
        self.request_id = request_id
        if message is None:
            message = f"{status} {self.title}"
            if self.detail:
                message += f": {self.detail}"
        super().__init__(message)

    @property
    def from_gateway(self) -> bool:
        """Whether the answer was a problem document of the gateway (a ``urn:xinyong:problem:`` type), not the page
        of something else answering at that address (a proxy's error page, another web server)."""
        return self.type.startswith(PROBLEM_BASE)

    @property
    def errors(self) -> Sequence[Mapping[str, Any]]:
        """Field errors of a 422 problem: ``[{"pointer": "/data/...", "detail": "..."}]``."""
        errors = self.problem.get("errors")
        return errors if isinstance(errors, list) else []


class BadRequestError(ApiError):
    """400: the request was malformed (headers, or a body that is not JSON)."""


class AuthenticationError(ApiError):
    """401: no valid signature or credentials."""


class PermissionDeniedError(ApiError):
    """403: authenticated, but not allowed to do this."""


class NotFoundError(ApiError):
    """404: unknown (or disabled) source, or unknown resource."""


class ConflictError(ApiError):
    """409: the same webhook-id was already stored with another body."""


class PayloadTooLargeError(ApiError):
    """413: the body is over the gateway's limit."""


class UnsupportedMediaTypeError(ApiError):
    """415: the body is not declared as JSON."""


class UnprocessableEntityError(ApiError):
    """422: the event is not in the catalogue or does not match its schema."""


class RateLimitError(ApiError):
    """429: too many requests; ``retry_after`` says how many seconds to wait."""

    def __init__(
        self,
        status: int,
        problem: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(status, problem, request_id=request_id, message=message)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the gateway failed; safe to retry (every POST carries an idempotency key)."""


class ServiceUnavailableError(ServerError):
    """503: the gateway cannot commit right now."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def api_error_for(
    status: int,
    problem: Mapping[str, Any] | None = None,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    message: str | None = None,
) -> ApiError:
    """Build the most specific :class:`ApiError` subclass for an HTTP status (``message``: instead of the one made
    of the status, title and detail)."""
    if status == 429:
        return RateLimitError(status, problem, request_id=request_id, retry_after=retry_after, message=message)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(status, problem, request_id=request_id, message=message)
