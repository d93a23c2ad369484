"""Attestations: the gateway's signed statement of one subject's credit status at one instant, verified offline.

``POST /v1/attestations`` (API key scope ``attest``) takes :class:`AttestationRequest` ``{"subject": {...}}`` and
answers :class:`AttestationResponse` ``{"attestation": "<compact JWS>"}``: a platform keeps the token as proof of
its onboarding check, and anyone holding the gateway's public keys (``GET /.well-known/jwks.json``, a
:class:`Jwks`) can check it later without asking the gateway (:func:`verify_attestation`,
``xinyong attest verify``). docs/wire-contract.md, "Attestations", lists every member.

The token (RFC 7515 compact serialisation)::

    header   {"alg": "EdDSA", "kid": "<RFC 7638 thumbprint of the key>", "typ": "xinyong-attestation+jwt"}
    payload  {"iss", "sub", "aud", "iat", "jti",                 the JWT claims (RFC 7519)
              "subject", "list", "grade", "score", "measures",   the status, as a screening answers it
              "reasons", "disputed", "policy_version", "as_of"}
    signature  Ed25519 over header.payload

``sub`` is ``uscc:<code>`` for an organisation (the code in full, as in screening answers) and ``ric:<pseudonym>``
for a natural person: a person's resident id never appears, not even masked in ``sub``; ``subject`` shows it masked
(``320102********123X``) with the masked name, plus the ``pseudonym`` (the hex HMAC-SHA256 of the number under the
lookup secret of the API key that asked, :func:`xinyong.ric_pseudonym`), so the platform that asked, and only it,
can tie the token to its merchant. ``aud`` is that API key's id. An attestation states a past fact and has no
``exp``: judge its age by ``iat``/``as_of``.

Verification accepts only ``alg`` ``EdDSA`` with an ``OKP``/``Ed25519`` key found by ``kid`` in the JWKS (so
``none``, ``HS256`` or a key of another type cannot be slipped in), base64url in its one canonical form (so no
character of the token can change unnoticed), and the ``typ`` above. Failures raise an ``AttestationError``
(``xinyong.errors``: malformed, algorithm not allowed, unknown kid, signature mismatch).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry
from pydantic import Field, ValidationError

from xinyong.errors import (
    AlgorithmNotAllowedError,
    AttestationError,
    AttestationSignatureError,
    MalformedAttestationError,
    UnknownKeyIdError,
)
from xinyong.queries import _Standing
from xinyong.subjects import IdType, Subject
from xinyong.wire import WireModel

__all__ = [
    "ATTESTATION_ALGORITHM",
    "ATTESTATION_TYPE",
    "JWS_REGISTRY",
    "Attestation",
    "AttestationRequest",
    "AttestationResponse",
    "AttestedSubject",
    "Jwk",
    "Jwks",
    "parse_jwks",
    "verify_attestation",
]

ATTESTATION_ALGORITHM: Final = "EdDSA"
"""The one JWS ``alg`` of attestations (with Ed25519 keys only)."""
ATTESTATION_TYPE: Final = "xinyong-attestation+jwt"
"""The ``typ`` header of attestations (explicit typing, RFC 8725 3.11): no other JWT of the gateway passes for one."""
_MAX_TOKEN = 64 * 1024


class _Ed25519Only(EdDSAAlgorithm):
    """JWS ``EdDSA`` as attestations use it. RFC 9864 deprecates the name ``EdDSA`` because it leaves the curve open
    (joserfc warns when it is used); here the curve is fixed by the key, which must be ``OKP``/``Ed25519``
    (:func:`verify_attestation` checks it first), so the warning does not apply."""

    security_warning = ""  # no warning (joserfc warns when this is truthy)


class _AttestationRegistry(JWSRegistry):
    """A JWS registry that knows ``EdDSA`` and nothing else (joserfc's own registry is left as it is)."""

    algorithms = {ATTESTATION_ALGORITHM: _Ed25519Only()}  # noqa: RUF012 -- joserfc's class-level table, ours alone
    recommended = [ATTESTATION_ALGORITHM]  # noqa: RUF012 -- as above


JWS_REGISTRY: Final = _AttestationRegistry()
"""The registry the gateway signs and the SDK verifies attestations with (``EdDSA`` only)."""


class AttestationRequest(WireModel):
    """``POST /v1/attestations``: the subject to attest, validated as in events and screenings."""

    subject: Subject


class AttestationResponse(WireModel):
    """``POST /v1/attestations`` 200: the signed attestation (compact JWS)."""

    attestation: str = Field(description="Compact JWS (`header.payload.signature`); verify with the JWKS.")


class AttestedSubject(WireModel):
    """The subject of an attestation: an organisation by its code and name in full; a person masked, with the
    pseudonym under the asking API key's lookup secret."""

    id_type: IdType
    id: str = Field(description="A USCC in full; a RIC masked (`320102********123X`).")
    name: str | None = Field(description="The latest registered name; a natural person's name masked (`王*`).")
    pseudonym: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="RIC only: hex HMAC-SHA256 of the number under the lookup secret of the API key that asked.",
    )


class Attestation(_Standing):
    """The claims of a verified attestation: who signed and for whom, and the subject's status at that instant."""

    iss: str = Field(description="The gateway that signed (`XINYONG_ISSUER`).")
    sub: str = Field(description="`uscc:<code>`, or `ric:<pseudonym>` for a natural person.")
    aud: str = Field(description="The id of the API key that asked (`key_…`).")
    iat: int = Field(description="When it was signed, Unix seconds.")
    jti: str = Field(description="This attestation's unique id (`att_…`).")
    subject: AttestedSubject


class Jwk(WireModel):
    """A public key of the gateway as ``/.well-known/jwks.json`` lists it (never a private part)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")
    kid: str = Field(description="RFC 7638 thumbprint; the attestation header's `kid`.")
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    status: Literal["current", "retired"] = Field(
        description="`current` signs new attestations; `retired` keys stay listed so that what they signed verifies."
    )


class Jwks(WireModel):
    """``GET /.well-known/jwks.json``: every key that signed or signs attestations, current and retired."""

    keys: list[Jwk]


def parse_jwks(jwks: Mapping[str, Any] | str | bytes) -> dict[str, Mapping[str, Any]]:
    """The keys of a JWK Set (a mapping, or its JSON text) by ``kid``. Keys without a string ``kid`` are skipped;
    a document that is no JWK Set raises :class:`MalformedAttestationError`."""
    document: Any = jwks
    if isinstance(jwks, str | bytes):
        try:
            document = json.loads(jwks)
        except ValueError as exc:
            raise MalformedAttestationError("The JWKS is not JSON.") from exc
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise MalformedAttestationError('The JWKS is not a JWK Set: it needs a list of "keys".')
    return {key["kid"]: key for key in keys if isinstance(key, Mapping) and isinstance(key.get("kid"), str)}


def _segment(text: str, what: str) -> bytes:
    """A base64url segment, decoded; refused unless ``text`` is its one canonical encoding (no padding, no unused
    bits set), so that changing any character of a token changes the bytes that are verified."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise MalformedAttestationError(f"The attestation's {what} is not base64url.") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise MalformedAttestationError(f"The attestation's {what} is not canonical base64url.")
    return raw


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise MalformedAttestationError("An attestation is a compact JWS: three base64url parts joined by dots.")
    for part, what in zip(parts, ("header", "payload", "signature"), strict=True):
        _segment(part, what)
    try:
        header = json.loads(_segment(parts[0], "header"))
    except ValueError:
        raise MalformedAttestationError("The attestation's header is not JSON.") from None
    if not isinstance(header, dict):
        raise MalformedAttestationError("The attestation's header is not a JSON object.")
    return header


def _shown(value: Any) -> str:
    """A header value for a message: short, printable (it comes from whoever made the token)."""
    text = repr(value)
    return text if len(text) <= 40 and text.isprintable() else "(an unprintable or long value)"


def verify_attestation(
    token: str | bytes, jwks: Mapping[str, Any] | str | bytes, *, issuer: str | None = None
) -> Attestation:
    """Check an attestation against the gateway's public keys, offline; return its claims.

    ``jwks`` is the JWK Set of ``/.well-known/jwks.json`` (its JSON text or the parsed mapping); ``issuer``, when
    given, must equal the token's ``iss``. Raises :class:`MalformedAttestationError`,
    :class:`AlgorithmNotAllowedError`, :class:`UnknownKeyIdError` or :class:`AttestationSignatureError` (all
    :class:`AttestationError`). An unknown ``kid`` after the gateway rotated its key: fetch the JWKS again."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedAttestationError("An attestation is ASCII text (compact JWS).") from None
    token = token.strip()
    if len(token) > _MAX_TOKEN:
        raise MalformedAttestationError(f"An attestation is at most {_MAX_TOKEN} characters.")
    header = _header(token)
    if header.get("alg") != ATTESTATION_ALGORITHM:
        raise AlgorithmNotAllowedError(
            f"The attestation's algorithm is {_shown(header.get('alg'))}; only {ATTESTATION_ALGORITHM} (Ed25519) is"
            " accepted."
        )
    if header.get("typ") != ATTESTATION_TYPE:
        raise MalformedAttestationError(
            f"The token's typ is {_shown(header.get('typ'))}, not {ATTESTATION_TYPE!r}: it is not an attestation."
        )
    kid = header.get("kid")
    keys = parse_jwks(jwks)
    if not isinstance(kid, str) or kid not in keys:
        raise UnknownKeyIdError(
            f"The JWKS has no key with kid {_shown(kid)}: the attestation was signed by another gateway's key, or"
            " the JWKS was fetched before that key existed (fetch /.well-known/jwks.json again)."
        )
    jwk = keys[kid]
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or jwk.get("alg", ATTESTATION_ALGORITHM) != "EdDSA":
        raise AlgorithmNotAllowedError(f"The JWKS key {_shown(kid)} is not an OKP Ed25519 key for EdDSA.")
    x = jwk.get("x")
    try:
        if not isinstance(x, str):
            raise ValueError("no public key")
        key = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": x})
    except (JoseError, ValueError, TypeError) as exc:
        raise MalformedAttestationError(f"The JWKS key {_shown(kid)} is not a valid Ed25519 public key.") from exc
    try:
        signed = jws.deserialize_compact(token, key, registry=JWS_REGISTRY)
    except BadSignatureError:
        raise AttestationSignatureError(
            "The attestation's signature does not match: it was changed after it was signed."
        ) from None
    except (JoseError, ValueError) as exc:
        raise MalformedAttestationError(f"The attestation is not a valid JWS ({type(exc).__name__}).") from None
    try:
        claims = Attestation.model_validate_json(signed.payload)
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) or "(payload)" for error in exc.errors()})
        raise MalformedAttestationError(
            f"The attestation is signed but its claims do not parse ({', '.join(fields[:5])})."
        ) from None
    if issuer is not None and claims.iss != issuer:
        raise AttestationError(f"The attestation was issued by {_shown(claims.iss)}, not {issuer!r}.")
    return claims
