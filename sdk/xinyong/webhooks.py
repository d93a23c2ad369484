"""Signing and verifying inbound events (Standard Webhooks, wire contract v1).

Every event carries three headers:

``webhook-id``
    the sender's message id; stays the same across retries (the gateway deduplicates on it).
``webhook-timestamp``
    unix seconds at signing time; a retry is re-signed with a fresh timestamp.
``webhook-signature``
    space-separated ``version,base64`` entries over the signed payload
    ``f"{id}.{timestamp}.".encode() + raw_body``:

    - ``v1``: HMAC-SHA256 under a symmetric secret ``whsec_<base64>`` (24 to 64 bytes), known to
      both the sender and the gateway (:class:`SigningSecret`);
    - ``v1a``: Ed25519 under a private key ``whsk_<base64 32-byte seed>`` that only the sender holds
      (:class:`SigningKey`), checked with the public key ``whpk_<base64 32 raw bytes>`` registered at
      the gateway (:class:`VerifyingKey`).

:class:`WebhookVerifier` accepts an event when *any* entry matches *any* of its keys: entries of an
unknown version, or that do not decode, are skipped, so keys can rotate and new schemes can appear
without breaking receivers. The signature is checked before the timestamp, so only the holder of a
valid key learns that its clock is off. Comparisons are constant-time; the clock is injectable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from xinyong.errors import (
    InvalidKeyError,
    MalformedHeadersError,
    SignatureMismatchError,
    TimestampOutOfToleranceError,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "SigningKey",
    "SigningSecret",
    "VerifyingKey",
    "WebhookHeaders",
    "WebhookVerifier",
    "check_webhook_id",
    "parse_headers",
    "signature_headers",
]

DEFAULT_TOLERANCE: Final[int] = 300
"""Seconds a timestamp may lie before or after the receiver's clock (Standard Webhooks: 5 minutes)."""

_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 -- the format prefix, not a secret
_SIGNING_KEY_PREFIX: Final = "whsk_"
_VERIFYING_KEY_PREFIX: Final = "whpk_"
_SECRET_MIN_BYTES: Final = 24
_SECRET_MAX_BYTES: Final = 64
_ED25519_KEY_BYTES: Final = 32
_HMAC_SHA256_BYTES: Final = 32
_ED25519_SIGNATURE_BYTES: Final = 64

_ID_HEADER: Final = "webhook-id"
_TIMESTAMP_HEADER: Final = "webhook-timestamp"
_SIGNATURE_HEADER: Final = "webhook-signature"
_MAX_ID_LENGTH: Final = 256
_MAX_TIMESTAMP_DIGITS: Final = 12
_MAX_SIGNATURE_LENGTH: Final = 8 * 1024
# A legitimate sender signs with one key, two while rotating. Bounding how many entries of a known
# version are tried bounds the Ed25519 work an unauthenticated request can cause (an 8 KiB header
# holds ~90 v1a entries).
_MAX_SIGNATURES: Final = 10


def _decode_key(text: str, prefix: str, what: str) -> bytes:
    """Decode ``prefix + base64`` (padding optional); messages name the format, never the input."""
    text = text.strip()
    if not text.startswith(prefix):
        for other, name in (
            (_SECRET_PREFIX, "a symmetric signing secret"),
            (_SIGNING_KEY_PREFIX, "an Ed25519 signing key"),
            (_VERIFYING_KEY_PREFIX, "an Ed25519 public key"),
        ):
            if other != prefix and text.startswith(other):
                raise InvalidKeyError(f"{what} must start with {prefix!r}; this is {name} ({other}…)")
        raise InvalidKeyError(f"{what} must start with {prefix!r}")
    encoded = text[len(prefix) :]
    encoded += "=" * (-len(encoded) % 4)
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise InvalidKeyError(f"{what} is not valid base64 after {prefix!r}") from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _payload(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


class SigningSecret:
    """A symmetric ``whsec_`` secret for scheme ``v1`` (HMAC-SHA256), shared by sender and gateway."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not _SECRET_MIN_BYTES <= len(key) <= _SECRET_MAX_BYTES:
            raise InvalidKeyError(
                f"a signing secret must be {_SECRET_MIN_BYTES} to {_SECRET_MAX_BYTES} bytes, got {len(key)}"
            )
        self._key = bytes(key)

    @property
    def key(self) -> bytes:
        """The raw secret bytes."""
        return self._key

    @classmethod
    def generate(cls) -> SigningSecret:
        """A new random secret of 32 bytes."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def parse(cls, text: str) -> SigningSecret:
        """Parse ``whsec_<base64>``; raises :class:`InvalidKeyError` (without echoing the input)."""
        return cls(_decode_key(text, _SECRET_PREFIX, "a signing secret"))

    def sign(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The ``v1,<base64>`` signature entry of one message."""
        digest = hmac.digest(self._key, _payload(msg_id, timestamp, body), hashlib.sha256)
        return "v1," + _b64(digest)

    def __str__(self) -> str:
        return _SECRET_PREFIX + _b64(self._key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_SECRET_PREFIX}…)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningSecret):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash((SigningSecret, self._key))


class VerifyingKey:
    """An Ed25519 public key ``whpk_<base64 32 raw bytes>``, registered at the gateway (scheme ``v1a``)."""

    __slots__ = ("_public", "_raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != _ED25519_KEY_BYTES:
            raise InvalidKeyError(f"an Ed25519 public key must be {_ED25519_KEY_BYTES} bytes, got {len(raw)}")
        try:
            self._public = Ed25519PublicKey.from_public_bytes(bytes(raw))
        except ValueError as exc:
            raise InvalidKeyError("not a valid Ed25519 public key") from exc
        self._raw = bytes(raw)

    @property
    def raw(self) -> bytes:
        """The 32 raw public-key bytes."""
        return self._raw

    @classmethod
    def parse(cls, text: str) -> VerifyingKey:
        """Parse ``whpk_<base64>``; raises :class:`InvalidKeyError`."""
        return cls(_decode_key(text, _VERIFYING_KEY_PREFIX, "a public key"))

    def _verify_payload(self, payload: bytes, signature: bytes) -> bool:
        try:
            self._public.verify(signature, payload)
        except InvalidSignature:
            return False
        return True

    def __str__(self) -> str:
        return _VERIFYING_KEY_PREFIX + _b64(self._raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyingKey):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash((VerifyingKey, self._raw))


class SigningKey:
    """An Ed25519 private key ``whsk_<base64 32-byte seed>`` for scheme ``v1a``; only the sender holds it."""

    __slots__ = ("_private", "_public_key", "_seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != _ED25519_KEY_BYTES:
            raise InvalidKeyError(f"an Ed25519 signing key must be a {_ED25519_KEY_BYTES}-byte seed, got {len(seed)}")
        self._seed = bytes(seed)
        self._private = Ed25519PrivateKey.from_private_bytes(self._seed)
        self._public_key = VerifyingKey(self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key (32-byte seed)."""
        return cls(secrets.token_bytes(_ED25519_KEY_BYTES))

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        """Parse ``whsk_<base64 seed>``; raises :class:`InvalidKeyError` (without echoing the input)."""
        return cls(_decode_key(text, _SIGNING_KEY_PREFIX, "a signing key"))

    @property
    def public_key(self) -> VerifyingKey:
        """The matching public key, to register at the gateway."""
        return self._public_key

    def sign(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The ``v1a,<base64>`` signature entry of one message."""
        return "v1a," + _b64(self._private.sign(_payload(msg_id, timestamp, body)))

    def __str__(self) -> str:
        return _SIGNING_KEY_PREFIX + _b64(self._seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_SIGNING_KEY_PREFIX}…, public_key={self._public_key})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return hmac.compare_digest(self._seed, other._seed)

    def __hash__(self) -> int:
        return hash((SigningKey, self._seed))


@dataclass(frozen=True, slots=True)
class WebhookHeaders:
    """The three webhook headers, checked for shape (not yet for authenticity)."""

    id: str
    timestamp: int
    signature: str


def _check_present(name: str, value: str | None) -> str:
    if value is None:
        raise MalformedHeadersError(f"missing {name} header")
    if not value:
        raise MalformedHeadersError(f"empty {name} header")
    return value


def check_webhook_id(msg_id: str, *, what: str = f"{_ID_HEADER} header") -> str:
    """``msg_id`` if it can be a ``webhook-id``: 1 to 256 printable ASCII characters without spaces.

    Raises :class:`MalformedHeadersError` saying what is wrong with ``what`` (never repeating the id)."""
    if not msg_id:
        raise MalformedHeadersError(f"{what} must be a non-empty string")
    if len(msg_id) > _MAX_ID_LENGTH:
        raise MalformedHeadersError(f"{what} is longer than {_MAX_ID_LENGTH} characters")
    if not (msg_id.isascii() and msg_id.isprintable()) or " " in msg_id:
        raise MalformedHeadersError(f"{what} must be printable ASCII without spaces")
    return msg_id


def parse_headers(headers: Mapping[str, str]) -> WebhookHeaders:
    """Read and check the shape of ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``.

    Lookup is case-insensitive for plain dicts as well as for aiohttp's ``CIMultiDictProxy``.
    Raises :class:`MalformedHeadersError` naming the offending header (never its value).
    """
    msg_id = headers.get(_ID_HEADER)
    raw_timestamp = headers.get(_TIMESTAMP_HEADER)
    signature = headers.get(_SIGNATURE_HEADER)
    if msg_id is None or raw_timestamp is None or signature is None:
        # Not all found under their lowercase names: fold the names of a plain dict once.
        folded = {key.lower(): value for key, value in headers.items()}
        msg_id = folded.get(_ID_HEADER)
        raw_timestamp = folded.get(_TIMESTAMP_HEADER)
        signature = folded.get(_SIGNATURE_HEADER)

    msg_id = check_webhook_id(_check_present(_ID_HEADER, msg_id))

    raw_timestamp = _check_present(_TIMESTAMP_HEADER, raw_timestamp)
    if (
        len(raw_timestamp) > _MAX_TIMESTAMP_DIGITS
        or not (raw_timestamp.isascii() and raw_timestamp.isdigit())
        or (raw_timestamp[0] == "0" and len(raw_timestamp) > 1)
    ):
        raise MalformedHeadersError(
            f"{_TIMESTAMP_HEADER} header must be unix seconds: up to {_MAX_TIMESTAMP_DIGITS} decimal"
            " digits, no sign, no leading zeros"
        )

    signature = _check_present(_SIGNATURE_HEADER, signature)
    if len(signature) > _MAX_SIGNATURE_LENGTH:
        raise MalformedHeadersError(f"{_SIGNATURE_HEADER} header is longer than {_MAX_SIGNATURE_LENGTH} characters")

    return WebhookHeaders(id=msg_id, timestamp=int(raw_timestamp), signature=signature)


def signature_headers(
    key: SigningSecret | SigningKey,
    msg_id: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The three headers a sender attaches to ``body``; the timestamp defaults to ``int(clock())``."""
    ts = int(clock()) if timestamp is None else timestamp
    return {
        _ID_HEADER: msg_id,
        _TIMESTAMP_HEADER: str(ts),
        _SIGNATURE_HEADER: key.sign(msg_id, ts, body),
    }


def _decode_signature(encoded: str, size: int) -> bytes | None:
    try:
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None
    return raw if len(raw) == size else None


class WebhookVerifier:
    """Checks inbound events against the keys of one source.

    ``keys`` may mix :class:`SigningSecret` (``v1``) and :class:`VerifyingKey` (``v1a``) objects or
    their ``whsec_``/``whpk_`` strings; several keys of a kind are accepted side by side while they
    rotate. With no keys, nothing verifies.
    """

    __slots__ = ("_clock", "_public_keys", "_secrets", "_tolerance")

    def __init__(
        self,
        keys: Iterable[SigningSecret | VerifyingKey | str],
        *,
        tolerance: int = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if tolerance < 0:
            raise ValueError("tolerance must not be negative")
        secret_keys: dict[bytes, None] = {}
        public_keys: dict[VerifyingKey, None] = {}
        for key in keys:
            if isinstance(key, str):
                key = _parse_verifier_key(key)
            if isinstance(key, SigningSecret):
                secret_keys[key.key] = None
            elif isinstance(key, VerifyingKey):
                public_keys[key] = None
            elif isinstance(key, SigningKey):
                raise InvalidKeyError("a verifier takes the public key (whpk_), not the signing key (whsk_)")
            else:
                raise TypeError(f"unsupported key type {type(key).__name__}")
        self._secrets: tuple[bytes, ...] = tuple(secret_keys)
        self._public_keys: tuple[VerifyingKey, ...] = tuple(public_keys)
        self._tolerance = tolerance
        self._clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> WebhookHeaders:
        """Check the headers' shape, then the signature over the raw ``body``, then the timestamp.

        Raises :class:`MalformedHeadersError`, :class:`SignatureMismatchError` or
        :class:`TimestampOutOfToleranceError`, in that order; returns the parsed headers.
        """
        parsed = parse_headers(headers)
        self.verify_parts(parsed.id, parsed.timestamp, parsed.signature, body)
        return parsed

    def verify_parts(self, msg_id: str, timestamp: int, signature_header: str, body: bytes) -> None:
        """Check the signature, then the timestamp, of already parsed headers."""
        if not self._matches(msg_id, timestamp, signature_header, body):
            raise SignatureMismatchError("no valid signature for any of the keys")
        now = int(self._clock())
        skew = timestamp - now
        if abs(skew) > self._tolerance:
            direction = "ahead of" if skew > 0 else "behind"
            raise TimestampOutOfToleranceError(
                f"webhook-timestamp is {abs(skew)} s {direction} the receiver's clock, outside the"
                f" ±{self._tolerance} s tolerance; check the sender's clock",
                timestamp=timestamp,
                now=now,
                tolerance=self._tolerance,
            )

    def _matches(self, msg_id: str, timestamp: int, signature_header: str, body: bytes) -> bool:
        hmac_candidates: list[bytes] = []
        ed25519_candidates: list[bytes] = []
        tried = 0
        for entry in signature_header.split():
            version, comma, encoded = entry.partition(",")
            if not comma:
                continue
            if version == "v1":
                if not self._secrets:
                    continue
                signature = _decode_signature(encoded, _HMAC_SHA256_BYTES)
                if signature is not None:
                    hmac_candidates.append(signature)
            elif version == "v1a":
                if not self._public_keys:
                    continue
                signature = _decode_signature(encoded, _ED25519_SIGNATURE_BYTES)
                if signature is not None:
                    ed25519_candidates.append(signature)
            else:
                continue
            tried += 1
            if tried >= _MAX_SIGNATURES:
                break
        if not hmac_candidates and not ed25519_candidates:
            return False

        payload = _payload(msg_id, timestamp, body)
        if hmac_candidates:
            for secret in self._secrets:
                expected = hmac.digest(secret, payload, hashlib.sha256)
                for candidate in hmac_candidates:
                    if hmac.compare_digest(expected, candidate):
                        return True
        for candidate in ed25519_candidates:
            for public_key in self._public_keys:
                if public_key._verify_payload(payload, candidate):
                    return True
        return False


def _parse_verifier_key(text: str) -> SigningSecret | VerifyingKey:
    stripped = text.strip()
    if stripped.startswith(_SECRET_PREFIX):
        return SigningSecret.parse(stripped)
    if stripped.startswith(_VERIFYING_KEY_PREFIX):
        return VerifyingKey.parse(stripped)
    if stripped.startswith(_SIGNING_KEY_PREFIX):
        raise InvalidKeyError("a verifier takes the public key (whpk_), not the signing key (whsk_)")
    raise InvalidKeyError("a verifier key must start with 'whsec_' or 'whpk_'")
