"""Stable problem ``type`` URIs of the wire contract (RFC 9457 ``application/problem+json``).

Both sides import these: the gateway answers with them, the SDK and integrators branch on them.
A URI never changes meaning once published; new problems get new URIs.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_KEY_INVALID",
    "BODY_NOT_JSON",
    "BODY_TOO_LARGE",
    "DUPLICATE_CONFLICT",
    "EVENT_NOT_ALLOWED",
    "INTERNAL",
    "MALFORMED_HEADERS",
    "NOT_FOUND",
    "PROBLEM_BASE",
    "QUERY_INVALID",
    "RATE_LIMITED",
    "REQUEST_INVALID",
    "SCHEMA_INVALID",
    "SCOPE_MISSING",
    "SIGNATURE_INVALID",
    "SIGNING_KEY_MISSING",
    "SOURCE_NOT_FOUND",
    "STORE_UNAVAILABLE",
    "SUBJECT_NOT_OWN",
    "SUBSCRIPTION_NOT_FOUND",
    "SUBSCRIPTION_URL_REFUSED",
    "TIMESTAMP_OUT_OF_TOLERANCE",
    "UNKNOWN_EVENT_TYPE",
    "UNSUPPORTED_MEDIA_TYPE",
]

PROBLEM_BASE: Final = "urn:xinyong:problem:"

SOURCE_NOT_FOUND: Final = PROBLEM_BASE + "source-not-found"
BODY_TOO_LARGE: Final = PROBLEM_BASE + "body-too-large"
UNSUPPORTED_MEDIA_TYPE: Final = PROBLEM_BASE + "unsupported-media-type"
MALFORMED_HEADERS: Final = PROBLEM_BASE + "malformed-webhook-headers"
SIGNATURE_INVALID: Final = PROBLEM_BASE + "signature-invalid"
TIMESTAMP_OUT_OF_TOLERANCE: Final = PROBLEM_BASE + "timestamp-out-of-tolerance"
BODY_NOT_JSON: Final = PROBLEM_BASE + "body-not-json"
UNKNOWN_EVENT_TYPE: Final = PROBLEM_BASE + "unknown-event-type"
EVENT_NOT_ALLOWED: Final = PROBLEM_BASE + "event-type-not-allowed"
SCHEMA_INVALID: Final = PROBLEM_BASE + "schema-invalid"
SUBJECT_NOT_OWN: Final = PROBLEM_BASE + "subject-not-own"
"""403: a source that may only post about itself (kind ``intermediary``) sent an event about another subject."""
RATE_LIMITED: Final = PROBLEM_BASE + "rate-limited"
STORE_UNAVAILABLE: Final = PROBLEM_BASE + "store-unavailable"
DUPLICATE_CONFLICT: Final = PROBLEM_BASE + "webhook-id-conflict"
NOT_FOUND: Final = PROBLEM_BASE + "not-found"
INTERNAL: Final = PROBLEM_BASE + "internal-error"

# The query side (API keys, screening, the change feed).
API_KEY_INVALID: Final = PROBLEM_BASE + "api-key-invalid"
"""401: no ``Authorization: Bearer`` API key, or one the gateway does not know (unknown, revoked or malformed)."""
SCOPE_MISSING: Final = PROBLEM_BASE + "scope-missing"
"""403: the API key is valid but lacks the scope this endpoint needs (``screen``, ``changes``)."""
REQUEST_INVALID: Final = PROBLEM_BASE + "request-invalid"
"""422: a query body does not match its schema; ``errors`` holds JSON Pointers (``/subjects/3/id``)."""
QUERY_INVALID: Final = PROBLEM_BASE + "query-parameter-invalid"
"""400: a query parameter (``after`` cursor, ``limit``) is malformed or out of range."""
SIGNING_KEY_MISSING: Final = PROBLEM_BASE + "signing-key-missing"
"""503: the gateway has no attestation signing key yet (the operator runs ``xinyong-gateway signing-keys rotate``)."""

# Subscriptions (signed notifications of status changes).
SUBSCRIPTION_NOT_FOUND: Final = PROBLEM_BASE + "subscription-not-found"
"""404: no subscription with that id among the API key's own."""
SUBSCRIPTION_URL_REFUSED: Final = PROBLEM_BASE + "subscription-url-refused"
"""422: the subscription URL is refused (not http(s), credentials in it, or a host that is or resolves to a loopback,
private, link-local or other non-public address)."""
