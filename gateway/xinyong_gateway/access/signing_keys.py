"""The gateway's attestation signing keys: making and rotating them, and the in-memory keyring that signs and
publishes them.

A signing key is an Ed25519 key pair. Its ``kid`` is the RFC 7638 thumbprint of the public key; the public half is
stored as it is and published at ``/.well-known/jwks.json``; the private half (the 32-byte seed) is stored only
sealed under the master key (``MasterKey.seal_signing_key``, bound to the kid: table ``signing_keys``, column
``sealed_private_key``). ``migrate`` makes the first key when there is none (:func:`ensure_signing_key`);
``xinyong-gateway signing-keys rotate`` makes a new current key and retires the old one, which stays published so
that what it signed keeps verifying (:func:`rotate_signing_key`).

:class:`SigningKeyring` is what a running gateway holds: the current key, ready to sign, and the JWKS document of
every key. It is reloaded every few seconds (``XINYONG_API_KEY_REFRESH_INTERVAL``) like the other registries, so a
rotation reaches every gateway process within that interval.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from joserfc import jws
from joserfc.jwk import OKPKey

from xinyong.attestations import ATTESTATION_ALGORITHM, ATTESTATION_TYPE, JWS_REGISTRY
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import SigningKeyMissingError
from xinyong_gateway.store import SigningKeyRecord, Store, to_micros

__all__ = [
    "SigningKeyring",
    "ensure_signing_key",
    "jwk_of",
    "new_attestation_id",
    "new_signing_key",
    "rotate_signing_key",
]


def new_signing_key(master: MasterKey, now: datetime) -> SigningKeyRecord:
    """A fresh Ed25519 key as it is stored: the public key, and the seed sealed under the master key."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    kid = OKPKey.import_key(private.public_key()).thumbprint()
    return SigningKeyRecord(
        kid=kid,
        algorithm=ATTESTATION_ALGORITHM,
        public_key=public,
        sealed_private_key=master.seal_signing_key(kid, seed),
        created_at=to_micros(now),
        retired_at=None,
    )


async def ensure_signing_key(store: Store, master: MasterKey, *, now: datetime) -> SigningKeyRecord | None:
    """The first signing key, made when the database has none (``migrate`` calls this); None when it has one."""
    record = new_signing_key(master, now)
    return record if await store.add_signing_key(record, first=True) else None


async def rotate_signing_key(store: Store, master: MasterKey, *, now: datetime) -> SigningKeyRecord:
    """A new current signing key; the current one is retired (and stays published)."""
    record = new_signing_key(master, now)
    await store.add_signing_key(record)
    return record


def jwk_of(record: SigningKeyRecord) -> dict[str, Any]:
    """The public JWK of a key as ``/.well-known/jwks.json`` lists it (never a private part)."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(record.public_key).rstrip(b"=").decode(),
        "kid": record.kid,
        "alg": record.algorithm,
        "use": "sig",
        "status": record.status,
    }


@dataclass(frozen=True, slots=True)
class _Current:
    kid: str
    key: OKPKey


class SigningKeyring:
    """The current signing key (unsealed, ready to sign) and the JWKS of every key, reloaded from the store."""

    def __init__(self, store: Store, master: MasterKey) -> None:
        self._store = store
        self._master = master
        self._current: _Current | None = None
        self._jwks = b'{"keys": []}'

    @property
    def jwks(self) -> bytes:
        """The JSON text of ``/.well-known/jwks.json``: every key, current and retired, oldest first."""
        return self._jwks

    @property
    def current_kid(self) -> str | None:
        return self._current.kid if self._current else None

    async def refresh(self) -> None:
        """Reload the keys from the store (the current one is unsealed only when it changed)."""
        records = await self._store.list_signing_keys()
        current = next((record for record in records if record.retired_at is None), None)
        if current is None:
            self._current = None
        elif self._current is None or self._current.kid != current.kid:
            seed = self._master.open_signing_key(current.kid, current.sealed_private_key)
            self._current = _Current(current.kid, OKPKey.import_key(Ed25519PrivateKey.from_private_bytes(seed)))
        self._jwks = json.dumps({"keys": [jwk_of(record) for record in records]}).encode()

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS of ``claims`` under the current key. Raises ``SigningKeyMissingError`` when there is none."""
        current = self._current
        if current is None:
            raise SigningKeyMissingError(
                "The gateway has no signing key yet: run `xinyong-gateway signing-keys rotate` (or `migrate`)."
            )
        header = {"alg": ATTESTATION_ALGORITHM, "kid": current.kid, "typ": ATTESTATION_TYPE}
        payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode()
        return jws.serialize_compact(header, payload, current.key, registry=JWS_REGISTRY)


def new_attestation_id() -> str:
    """``att_`` and 32 hex digits (128 random bits): an attestation's ``jti``."""
    return "att_" + secrets.token_hex(16)
