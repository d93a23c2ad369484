"""Attestations: ``POST /v1/attestations`` and ``GET /.well-known/jwks.json`` (docs/wire-contract.md, "Attestations").

**Attesting.** Checked in this order, as a screening is: 401/403 API key and scope ``attest`` (``web.auth``) → 429 the
key's rate → 400 any query parameter → 413 body over 16 KiB (408 when it does not arrive within the body timeout) →
415 not JSON → 400 body not JSON → 422 schema (``{"subject": {...}}``, the id checked as in events; pointers such as
``/subject/id``) → 503 store or no signing key. Then the subject's status at this instant is computed exactly as a
screening answers it (``QueryHandler.status_of``) and signed with the current signing key
(``access.SigningKeyring``): a compact JWS whose claims are ``xinyong.attestations.Attestation``. A natural person
(RIC) appears masked, with the pseudonym of the number under the asking key's lookup secret; never unmasked. The log
line carries the key id and the attestation's ``jti``, never an identifier.

**The keys.** ``/.well-known/jwks.json`` lists every signing key, current and retired, as public JWKs (``OKP``,
``Ed25519``, ``kid``); no authentication, cacheable for five minutes. A verifier that meets an unknown ``kid`` fetches
it again (a rotation reaches every gateway process within the key refresh interval).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from xinyong import problems
from xinyong.attestations import AttestationRequest
from xinyong.events import error_pointers
from xinyong.queries import ric_pseudonym
from xinyong.subjects import Subject
from xinyong_gateway.access import ApiKeyRegistry, SigningKeyring, new_attestation_id
from xinyong_gateway.errors import SigningKeyMissingError
from xinyong_gateway.web.auth import authenticate
from xinyong_gateway.web.body import is_json_utf8, read_body, validated_json
from xinyong_gateway.web.middleware import LOG_FACTS
from xinyong_gateway.web.problems import ProblemError
from xinyong_gateway.web.query import QueryHandler

__all__ = ["ATTESTATION_BODY_LIMIT", "JWKS_CACHE_CONTROL", "AttestationHandler"]

ATTESTATION_BODY_LIMIT = 16 * 1024
"""Bytes of an attestation request: one subject (a name of 200 Chinese characters is 600 bytes)."""
JWKS_CACHE_CONTROL = "public, max-age=300"
_TOO_LARGE = f"The body limit of an attestation request is {ATTESTATION_BODY_LIMIT} bytes."


class AttestationHandler:
    """The attestation endpoints, bound to the query side (statuses), the API keys and the signing keyring."""

    _keys: ApiKeyRegistry
    _keyring: SigningKeyring

    def __init__(
        self, query: QueryHandler, *, issuer: str, body_timeout: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._query = query
        self._issuer = issuer
        self._body_timeout = body_timeout
        self._clock = clock

    def attach(self, keys: ApiKeyRegistry, keyring: SigningKeyring) -> None:
        """Bind the resources opened at start-up (routes must exist before the app starts)."""
        self._keys = keys
        self._keyring = keyring

    # -- POST /v1/attestations --------------------------------------------------------------------------
    async def attest(self, request: web.Request) -> web.Response:
        facts = request[LOG_FACTS]
        key = await authenticate(request, self._keys, "attest")
        if request.query_string and request.query:
            raise ProblemError(
                problems.QUERY_INVALID,
                "An attestation request takes no query parameters: the subject goes in the body.",
            )
        body = await read_body(request, limit=ATTESTATION_BODY_LIMIT, seconds=self._body_timeout, too_large=_TOO_LARGE)
        if not is_json_utf8(request):
            raise ProblemError(problems.UNSUPPORTED_MEDIA_TYPE, "Send the subject as application/json (UTF-8).")
        now = datetime.fromtimestamp(self._clock(), UTC)
        subject = _attestation_subject(body, now)
        status = await self._query.status_of(subject, now)
        shown: dict[str, Any] = status.pop("subject")
        if subject.id_type == "ric":
            pseudonym = ric_pseudonym(subject.id, key.lookup_key)
            shown["pseudonym"] = pseudonym
            sub = f"ric:{pseudonym}"
        else:
            sub = f"uscc:{subject.id}"
        jti = new_attestation_id()
        claims = {
            "iss": self._issuer,
            "sub": sub,
            "aud": key.key_id,
            "iat": int(now.timestamp()),
            "jti": jti,
            "subject": shown,
            **status,
        }
        token = await self._sign(claims)
        facts["jti"] = jti
        return web.Response(body=json.dumps({"attestation": token}).encode(), content_type="application/json")

    async def _sign(self, claims: dict[str, Any]) -> str:
        try:
            return self._keyring.sign(claims)
        except SigningKeyMissingError:
            await self._keyring.refresh()  # a first key made since the last reload (`migrate`, `signing-keys rotate`)
        try:
            return self._keyring.sign(claims)
        except SigningKeyMissingError as exc:
            raise ProblemError(
                problems.SIGNING_KEY_MISSING,
                "The gateway has no signing key yet; its operator makes one with `xinyong-gateway signing-keys"
                " rotate`.",
                headers={"Retry-After": "60"},
            ) from exc

    # -- GET /.well-known/jwks.json ---------------------------------------------------------------------
    async def jwks(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._keyring.jwks,
            content_type="application/json",
            headers={"Cache-Control": JWKS_CACHE_CONTROL},
        )


def _attestation_subject(body: bytes, now: datetime) -> Subject:
    """The subject of an attestation request; 400 when the body is not JSON, 422 (with pointers) when it does not
    match the schema. Nothing of the body is echoed."""
    return validated_json(AttestationRequest, body, {"now": now}, _invalid_attestation).subject


def _invalid_attestation(exc: ValidationError, document: Any) -> ProblemError:
    return ProblemError(
        problems.REQUEST_INVALID,
        "The attestation request does not match its schema; nothing was looked up.",
        errors=error_pointers(exc),
    )
