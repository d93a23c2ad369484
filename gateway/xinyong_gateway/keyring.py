"""Opening a database with its master key (or keys, during a rotation) and its index keys.

Every entry point (each command, ``serve`` and its workers) calls :func:`unlock` once the store is open; it
returns the :class:`~xinyong_gateway.crypto.MasterKey` the process works with:

- **the check.** ``meta`` row ``master_key_check`` is the check value of the key the database is sealed under
  (written by the first process to open a new database). A rotation (``xinyong_gateway.rotation``) sets it to the
  new key's value as it starts and keeps the old one as ``master_key_check_previous`` until every sealed value
  opens with the new key. A process is refused unless its ``XINYONG_MASTER_KEY`` is the key of the check (or,
  before a rotation starts, its ``XINYONG_MASTER_KEY_PREVIOUS`` is); while a rotation is unfinished, it must
  hold both keys.
- **the index keys** (``crypto.py``, "Sealing keys and index keys"): ``meta`` row ``keyring`` holds them sealed.
  A database that has none yet (created before this row existed) gets the keys its own master key derives, which
  are the ones its blind index, digests and audit chain were made with, sealed under that key.
"""

from __future__ import annotations

from xinyong_gateway.crypto import MasterKey, master_key_of, resolve_previous_master_key
from xinyong_gateway.errors import MasterKeyError
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import Store

__all__ = ["CHECK", "CHECK_PREVIOUS", "KEYRING", "unlock", "unlock_with"]

CHECK = "master_key_check"
CHECK_PREVIOUS = "master_key_check_previous"
KEYRING = "keyring"


async def unlock(store: Store, settings: GatewaySettings, *, create: bool = False) -> MasterKey:
    """The master key of ``settings`` (``XINYONG_MASTER_KEY`` or the SQLite key file; ``create``: ``migrate``
    makes the key file), checked against ``store`` and completed with its index keys (:func:`unlock_with`)."""
    return await unlock_with(store, master_key_of(settings, create=create), resolve_previous_master_key(settings))


async def unlock_with(store: Store, current: MasterKey, previous: MasterKey | None) -> MasterKey:
    """``current`` checked against ``store`` (``MasterKeyError`` when it cannot open it), with the database's index
    keys, opening with ``previous`` too when it is given (a rotation)."""
    await store.require_schema()
    lifecycle = store.lifecycle()
    meta = await lifecycle.read_meta([CHECK, CHECK_PREVIOUS, KEYRING])
    check = meta.get(CHECK)
    if check is None:
        check = await lifecycle.insert_meta(CHECK, current.check_value)
    if check == current.check_value:
        if CHECK_PREVIOUS in meta and previous is None:
            raise MasterKeyError(
                "A master-key rotation of this database is unfinished: set XINYONG_MASTER_KEY_PREVIOUS to the key"
                " before it, and finish it with `xinyong-gateway master-key rotate`."
            )
        original = current
    elif previous is not None and check == previous.check_value:
        original = previous  # restarted with the new key before `master-key rotate` began
    elif meta.get(CHECK_PREVIOUS) == current.check_value:
        raise MasterKeyError(
            "This database's master key is being rotated (or was): XINYONG_MASTER_KEY holds the previous key. Set"
            " XINYONG_MASTER_KEY to the new key (and XINYONG_MASTER_KEY_PREVIOUS to this one until the rotation ends)."
        )
    else:
        raise MasterKeyError(f"The master key does not match the one {store.display_url} was created with.")
    sealed = meta.get(KEYRING)
    if sealed is None:
        sealed = await lifecycle.insert_meta(KEYRING, original.seal_index_keys(original.index_keys()))
    opener = current.with_previous(previous) if previous is not None else current
    return opener.with_index_keys(opener.open_index_keys(sealed))
