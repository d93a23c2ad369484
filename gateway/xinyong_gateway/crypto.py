"""The master key and what is derived from it.

One 32-byte master key (``XINYONG_MASTER_KEY``, base64; or, on the embedded SQLite default, a key file
created with mode 0600 beside the database by ``migrate`` when it creates the database) never touches data
directly. Purpose-bound keys
are derived from it with HKDF-SHA256:

- ``inbox``   AES-256-GCM key that seals raw webhook bodies at rest (they may carry resident ids and names);
- ``secrets`` AES-256-GCM key that seals sources' webhook secrets, API keys' lookup secrets, the private halves of
  the gateway's attestation signing keys and subscriptions' signing secrets (each bound to its row and kind:
  ``source-secret``, ``lookup-secret``, ``signing-key``, ``subscription-secret``);
- ``identities`` AES-256-GCM key that seals a subject's identifier and name beside its credit file;
- ``dedupe``  HMAC key for the body digest that tells a duplicate from a conflicting re-use of a webhook-id;
- ``subject`` HMAC key of the blind index that names a subject's credit file (``subject_key``): files are
  found by identifier without any resident id stored in the clear;
- ``api-keys`` HMAC key under which API key secrets are stored (``api_key_digest``): the database holds no key
  that works, nor one that can be checked offline without the master key;
- ``audit``   HMAC key of the audit log's chain (``xinyong_gateway.audit``): someone who can write the database but
  has no master key cannot write an entry, or rebuild the chain after changing one, that ``audit verify`` accepts;
- ``check``   HMAC key for a check value stored in the database, so a wrong master key is refused at start-up
  instead of producing undecryptable rows;
- ``keyring`` AES-256-GCM key that seals the database's *index keys* (below).

**Sealing keys and index keys.** The three sealing keys (``inbox``, ``secrets``, ``identities``) protect data and are
changed by a master-key rotation, which re-seals every sealed column (``xinyong_gateway.sealed_columns``). The four
HMAC keys (``dedupe``, ``subject``, ``api-keys``, ``audit``) name or check data that cannot be recomputed under a new
key without the plaintext (an API key's secret) or without rewriting what must never change (the blind-index keys
that name every credit file, the audit chain's hashes): they are the database's *index keys*, kept for ever. They
are derived from the master key the database was created with, and stored in the database (``meta`` row
``keyring``) sealed under the current master key (:meth:`MasterKey.seal_index_keys`): a rotation re-seals that one
row, and the blind index, API-key digests, body digests and audit chain go on working unchanged
(``xinyong_gateway.keyring`` opens the database with its keys).

During a rotation a process may hold two master keys (``XINYONG_MASTER_KEY`` and ``XINYONG_MASTER_KEY_PREVIOUS``):
it seals under the current one and opens with either (:meth:`MasterKey.with_previous`).

Sealed blobs are ``0x01 || nonce(12) || ciphertext+tag``; the associated data binds a blob to its row (a body to its
source and webhook id, a secret to its source or API key, a signing key to its ``kid``, an identity to its subject
key), so a sealed value cannot be moved to another row undetected. Every entry point gets the key with
:func:`master_key_of` (its settings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xinyong_gateway.errors import MasterKeyError

if TYPE_CHECKING:
    from xinyong_gateway.settings import GatewaySettings

__all__ = [
    "MasterKey",
    "Sealer",
    "key_file_for",
    "master_key_for",
    "master_key_of",
    "next_key_file_for",
    "resolve_master_key",
    "resolve_previous_master_key",
    "write_key_file",
]

_SEAL_VERSION = b"\x01"
_NONCE_BYTES = 12
_CHECK_LABEL = b"xinyong master key check v1"
_INDEX_KEYS_AAD = b"keyring\x00index keys v1"


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"xinyong/" + purpose.encode()).derive(master)


class Sealer:
    """AES-256-GCM with a fresh random nonce per message and the row identity as associated data; with a
    ``previous`` sealer (a master-key rotation), what this key does not open is tried with that one."""

    __slots__ = ("_aead", "_previous")

    def __init__(self, key: bytes, previous: Sealer | None = None) -> None:
        self._aead = AESGCM(key)
        self._previous = previous

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        if sealed[:1] != _SEAL_VERSION:
            raise MasterKeyError("Sealed data has an unknown format version.")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], associated_data)
        except InvalidTag as exc:
            if self._previous is not None:
                return self._previous.open(sealed, associated_data)
            raise MasterKeyError("Sealed data does not open with this master key (or was altered).") from exc

    def falling_back_to(self, previous: Sealer) -> Sealer:
        """This key for sealing; this key, then ``previous``, for opening."""
        sealer = Sealer.__new__(Sealer)
        sealer._aead, sealer._previous = self._aead, previous
        return sealer


@dataclass(frozen=True, slots=True, repr=False)
class MasterKey:
    """The master key and the purpose-bound keys derived from it (``repr`` shows none of them)."""

    inbox: Sealer
    secrets: Sealer
    identities: Sealer
    dedupe_key: bytes
    subject_index_key: bytes
    api_key_digest_key: bytes
    audit_key: bytes
    check_value: bytes
    keyring: Sealer
    _dedupe: hmac.HMAC = field(init=False, repr=False, compare=False)
    _subject_index: hmac.HMAC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The keyed states that body digests and blind-index keys copy: hmac.digest() lets go of the GIL on every
        # call, which costs a thread switch per body while the store's writer thread holds it; copy, update and
        # digest of a body under 2 KiB do not (a screening computes a thousand subject keys at once).
        object.__setattr__(self, "_dedupe", hmac.new(self.dedupe_key, digestmod=hashlib.sha256))
        object.__setattr__(self, "_subject_index", hmac.new(self.subject_index_key, digestmod=hashlib.sha256))

    def __repr__(self) -> str:
        return "MasterKey(…)"

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        if len(raw) != 32:
            raise MasterKeyError("The master key must be 32 bytes (base64 of 32 random bytes).")
        check_key = _derive(raw, "check")
        return cls(
            inbox=Sealer(_derive(raw, "inbox")),
            secrets=Sealer(_derive(raw, "secrets")),
            identities=Sealer(_derive(raw, "identities")),
            dedupe_key=_derive(raw, "dedupe"),
            subject_index_key=_derive(raw, "subject"),
            api_key_digest_key=_derive(raw, "api-keys"),
            audit_key=_derive(raw, "audit"),
            check_value=hmac.digest(check_key, _CHECK_LABEL, "sha256"),
            keyring=Sealer(_derive(raw, "keyring")),
        )

    # -- index keys and rotation ------------------------------------------------------------------------
    def index_keys(self) -> bytes:
        """The four index keys (dedupe, subject, api-keys, audit), as :meth:`seal_index_keys` stores them."""
        return self.dedupe_key + self.subject_index_key + self.api_key_digest_key + self.audit_key

    def with_index_keys(self, index_keys: bytes) -> MasterKey:
        """This master key's sealing keys with a database's index keys (:meth:`index_keys` of its first key)."""
        if len(index_keys) != 4 * 32:
            raise MasterKeyError("The database's index keys are damaged (wrong length).")
        dedupe, subject, api_keys, audit = (index_keys[at : at + 32] for at in range(0, 128, 32))
        return replace(self, dedupe_key=dedupe, subject_index_key=subject, api_key_digest_key=api_keys, audit_key=audit)

    def with_previous(self, previous: MasterKey) -> MasterKey:
        """Seal under this key; open with this key, else ``previous`` (while a rotation re-seals): every
        :class:`Sealer` of the key, whatever it is for."""
        sealers = [item.name for item in fields(self) if isinstance(getattr(self, item.name), Sealer)]
        return replace(self, **{name: getattr(self, name).falling_back_to(getattr(previous, name)) for name in sealers})

    def seal_index_keys(self, index_keys: bytes) -> bytes:
        """Seal a database's index keys (the ``meta`` row ``keyring``)."""
        return self.keyring.seal(index_keys, _INDEX_KEYS_AAD)

    def open_index_keys(self, sealed: bytes) -> bytes:
        return self.keyring.open(sealed, _INDEX_KEYS_AAD)

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        """Parse base64 (standard or URL-safe alphabet, padding optional) of 32 bytes."""
        cleaned = text.strip()
        altchars = b"-_" if ("-" in cleaned or "_" in cleaned) else None
        try:
            raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), altchars=altchars, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MasterKeyError("The master key is not valid base64.") from exc
        return cls.from_bytes(raw)

    @staticmethod
    def generate_text() -> str:
        """A new random master key, as the base64 text ``XINYONG_MASTER_KEY`` expects."""
        return base64.b64encode(secrets.token_bytes(32)).decode()

    def seal_body(self, source_id: str, webhook_id: str, body: bytes) -> bytes:
        """Seal a raw webhook body, bound to its inbox row."""
        return self.inbox.seal(body, _row_aad(b"inbox", source_id, webhook_id))

    def open_body(self, source_id: str, webhook_id: str, sealed: bytes) -> bytes:
        return self.inbox.open(sealed, _row_aad(b"inbox", source_id, webhook_id))

    def seal_secret(self, source_id: str, secret: bytes) -> bytes:
        """Seal a source's webhook secret, bound to the source."""
        return self.secrets.seal(secret, _row_aad(b"source-secret", source_id))

    def open_secret(self, source_id: str, sealed: bytes) -> bytes:
        return self.secrets.open(sealed, _row_aad(b"source-secret", source_id))

    def api_key_digest(self, key_id: str, secret: str) -> bytes:
        """What is stored of an API key's secret: HMAC-SHA256 under a derived key, bound to the key's id."""
        return hmac.digest(self.api_key_digest_key, f"{key_id}:{secret}".encode(), "sha256")

    def seal_lookup_secret(self, key_id: str, secret: bytes) -> bytes:
        """Seal an API key's lookup secret (the change feed's pseudonyms are computed with it), bound to the key."""
        return self.secrets.seal(secret, _row_aad(b"lookup-secret", key_id))

    def open_lookup_secret(self, key_id: str, sealed: bytes) -> bytes:
        return self.secrets.open(sealed, _row_aad(b"lookup-secret", key_id))

    def seal_signing_key(self, kid: str, private_key: bytes) -> bytes:
        """Seal the private half (the 32-byte Ed25519 seed) of an attestation signing key, bound to its ``kid``."""
        return self.secrets.seal(private_key, _row_aad(b"signing-key", kid))

    def open_signing_key(self, kid: str, sealed: bytes) -> bytes:
        return self.secrets.open(sealed, _row_aad(b"signing-key", kid))

    def seal_subscription_secret(self, subscription_id: str, secret: bytes) -> bytes:
        """Seal a subscription's signing secret (the ``whsec_`` key of its deliveries), bound to the subscription."""
        return self.secrets.seal(secret, _row_aad(b"subscription-secret", subscription_id))

    def open_subscription_secret(self, subscription_id: str, sealed: bytes) -> bytes:
        return self.secrets.open(sealed, _row_aad(b"subscription-secret", subscription_id))

    def subject_key(self, id_type: str, normalised_id: str) -> str:
        """The blind index naming a subject's credit file: HMAC-SHA256 of ``id_type:id``, 32 hex digits."""
        mac = self._subject_index.copy()
        mac.update(f"{id_type}:{normalised_id}".encode())
        return mac.digest()[:16].hex()

    def seal_identity(self, subject_key: str, value: str) -> bytes:
        """Seal a subject's identifier or name, bound to its credit file."""
        return self.identities.seal(value.encode(), _row_aad(b"identity", subject_key))

    def open_identity(self, subject_key: str, sealed: bytes) -> str:
        return self.identities.open(sealed, _row_aad(b"identity", subject_key)).decode()

    def body_digest(self, body: bytes) -> bytes:
        """Keyed SHA-256 of a raw body: equal bodies, equal digests; no guessing a body from its digest."""
        mac = self._dedupe.copy()
        mac.update(body)
        return mac.digest()


def _row_aad(purpose: bytes, *parts: str) -> bytes:
    return b"\x00".join([purpose, *(part.encode() for part in parts)])


def key_file_for(db_path: Path) -> Path:
    """Where the embedded SQLite default keeps its master key: ``<database>.key`` beside the database."""
    return db_path.with_name(db_path.name + ".key")


def next_key_file_for(db_path: Path) -> Path:
    """The new key of an unfinished rotation of a SQLite key file (``<database>.key.next``): while it exists, a
    process seals under it and opens with it or the key file (``master-key rotate`` renames it over the key file
    when every sealed value opens with it)."""
    return db_path.with_name(db_path.name + ".key.next")


def write_key_file(path: Path, text: str) -> None:
    """Write a master key to a new file, mode 0600, synced to disk (``FileExistsError`` if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_key_file(key_path: Path) -> MasterKey:
    try:
        return MasterKey.from_text(key_path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MasterKeyError(f"Cannot read the master key file {key_path}.") from exc


def resolve_master_key(env_value: str | None, *, sqlite_path: Path | None, create: bool = False) -> MasterKey:
    """The master key from the environment, else (SQLite only) from the key file beside the database.

    The key file is created (mode 0600) only when ``create`` (``migrate``) and the database does not exist yet: a
    database without its key cannot be opened, so a missing key file is an error, never a new key.
    """
    if env_value:
        return MasterKey.from_text(env_value)
    if sqlite_path is None:
        raise MasterKeyError("XINYONG_MASTER_KEY must be set for this database (a key file is only for SQLite).")
    key_path = key_file_for(sqlite_path)
    if next_key_file_for(sqlite_path).exists():
        return _read_key_file(next_key_file_for(sqlite_path))
    if key_path.exists():
        return _read_key_file(key_path)
    if sqlite_path.exists():
        raise MasterKeyError(
            f"The database {sqlite_path} exists but its master key file {key_path} is missing: restore the file or"
            " set XINYONG_MASTER_KEY (a new key could not open the database's sealed data, so none is made)."
        )
    if not create:
        raise MasterKeyError(
            f"No master key: XINYONG_MASTER_KEY is not set and there is no key file {key_path}"
            " (`xinyong-gateway migrate` creates the database and its key file)."
        )
    text = MasterKey.generate_text()
    write_key_file(key_path, text)
    return MasterKey.from_text(text)


def master_key_for(database_url: str, env_value: str | None, *, create: bool = False) -> MasterKey:
    """The master key for a database: ``XINYONG_MASTER_KEY``, or the SQLite key file beside it (made only when
    ``create``, for a database that does not exist yet)."""
    from xinyong_gateway.store import sqlite_path_from_url  # local: the store package imports this module's errors

    sqlite_path = sqlite_path_from_url(database_url) if database_url.startswith("sqlite:") else None
    return resolve_master_key(env_value, sqlite_path=sqlite_path, create=create)


def master_key_of(settings: GatewaySettings, *, create: bool = False) -> MasterKey:
    """The master key of the configured database (:func:`master_key_for` its URL and ``XINYONG_MASTER_KEY``): what
    every entry point (the app, each command, each worker) opens the store with. Only ``migrate`` passes
    ``create``: every other entry point opens the database first, so a missing database is reported as that."""
    env_value = settings.master_key.get_secret_value() if settings.master_key else None
    return master_key_for(settings.database_url, env_value, create=create)


def resolve_previous_master_key(settings: GatewaySettings) -> MasterKey | None:
    """The key before an unfinished rotation: ``XINYONG_MASTER_KEY_PREVIOUS``, else (SQLite, no
    ``XINYONG_MASTER_KEY``, a ``<database>.key.next`` beside the database) the key file; None otherwise."""
    if settings.master_key_previous:
        return MasterKey.from_text(settings.master_key_previous.get_secret_value())
    if settings.master_key or not settings.database_url.startswith("sqlite:"):
        return None
    from xinyong_gateway.store import sqlite_path_from_url  # local: the store package imports this module's errors

    sqlite_path = sqlite_path_from_url(settings.database_url)
    if next_key_file_for(sqlite_path).exists() and key_file_for(sqlite_path).exists():
        return _read_key_file(key_file_for(sqlite_path))
    return None
