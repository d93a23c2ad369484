"""The one registry of sealed columns: every value in the database sealed under the master key, and how it is opened
and sealed. ``master-key rotate`` (``xinyong_gateway.rotation``) walks exactly this list, so a column missing here
would stay under the old key and become unreadable when that key is dropped: **a feature that adds a sealed column
adds its line here** (a test holds the list to the migrations: every BLOB/BYTEA column written with a seal).

Each entry names the table, the unique column rows are paged and updated by, the sealed column, the columns the
seal is bound to (its associated data, in the order the MasterKey method takes them), an SQL condition on the rows
that hold a sealed value, and the MasterKey pair that opens and seals it (``open(master, bound, sealed) -> bytes``,
``seal(master, bound, plaintext) -> sealed``). ``carried``: other writers copy the column's value from a row they
read earlier (the projector carries a subject's sealed name), so a rotation ends with a check of that table under
its write lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xinyong_gateway.crypto import MasterKey

__all__ = ["SEALED_COLUMNS", "SealedColumn"]

Opener = Callable[[MasterKey, tuple[str, ...], bytes], bytes]
Sealer = Callable[[MasterKey, tuple[str, ...], bytes], bytes]


@dataclass(frozen=True, slots=True)
class SealedColumn:
    table: str
    key: str
    column: str
    bound_to: tuple[str, ...]
    open: Opener
    seal: Sealer
    where: str = ""
    carried: bool = False

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


def _identity_open(master: MasterKey, bound: tuple[str, ...], sealed: bytes) -> bytes:
    return master.open_identity(bound[0], sealed).encode()


def _identity_seal(master: MasterKey, bound: tuple[str, ...], plaintext: bytes) -> bytes:
    return master.seal_identity(bound[0], plaintext.decode())


# fmt: off
SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    # The index keys first: every process needs them to start (crypto.py, "Sealing keys and index keys").
    SealedColumn("meta", "name", "value", (), lambda m, b, s: m.open_index_keys(s),
                 lambda m, b, p: m.seal_index_keys(p), where="name = 'keyring'"),
    SealedColumn("source_keys", "key_id", "material", ("source_id",), lambda m, b, s: m.open_secret(b[0], s),
                 lambda m, b, p: m.seal_secret(b[0], p), where="scheme = 'v1'"),
    SealedColumn("api_keys", "key_id", "sealed_lookup_secret", ("key_id",),
                 lambda m, b, s: m.open_lookup_secret(b[0], s), lambda m, b, p: m.seal_lookup_secret(b[0], p)),
    SealedColumn("signing_keys", "kid", "sealed_private_key", ("kid",), lambda m, b, s: m.open_signing_key(b[0], s),
                 lambda m, b, p: m.seal_signing_key(b[0], p)),
    SealedColumn("subscriptions", "subscription_id", "sealed_secret", ("subscription_id",),
                 lambda m, b, s: m.open_subscription_secret(b[0], s),
                 lambda m, b, p: m.seal_subscription_secret(b[0], p)),
    SealedColumn("subscriptions", "subscription_id", "sealed_previous_secret", ("subscription_id",),
                 lambda m, b, s: m.open_subscription_secret(b[0], s),
                 lambda m, b, p: m.seal_subscription_secret(b[0], p), where="sealed_previous_secret IS NOT NULL"),
    SealedColumn("subjects", "subject_key", "sealed_id", ("subject_key",), _identity_open, _identity_seal,
                 where="identity_erased_at IS NULL", carried=True),
    SealedColumn("subjects", "subject_key", "sealed_name", ("subject_key",), _identity_open, _identity_seal,
                 carried=True),
    SealedColumn("inbox", "seq", "body", ("source_id", "webhook_id"), lambda m, b, s: m.open_body(b[0], b[1], s),
                 lambda m, b, p: m.seal_body(b[0], b[1], p)),
)
# fmt: on
