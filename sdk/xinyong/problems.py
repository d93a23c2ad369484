"""Stable problem ``type`` URIs of the wire contract (RFC 9457 ``application/problem+json``).

Both sides import these: the gateway answers with them, the SDK and integrators branch on them.
A URI never changes meaning once published; new problems get new URIs.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BODY_NOT_JSON",
    "BODY_TOO_LARGE",
    "DUPLICATE_CONFLICT",
    "EVENT_NOT_ALLOWED",
    "INTERNAL",
    "MALFORMED_HEADERS",
    "NOT_FOUND",
    "PROBLEM_BASE",
    "RATE_LIMITED",
    "SCHEMA_INVALID",
    "SIGNATURE_INVALID",
    "SOURCE_NOT_FOUND",
    "STORE_UNAVAILABLE",
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
RATE_LIMITED: Final = PROBLEM_BASE + "rate-limited"
STORE_UNAVAILABLE: Final = PROBLEM_BASE + "store-unavailable"
DUPLICATE_CONFLICT: Final = PROBLEM_BASE + "webhook-id-conflict"
NOT_FOUND: Final = PROBLEM_BASE + "not-found"
INTERNAL: Final = PROBLEM_BASE + "internal-error"
