"""Master-key rotation: re-seal every sealed column (``xinyong_gateway.sealed_columns``) under a new key.

1. **Begin** (one transaction): ``meta.master_key_check`` becomes the new key's check value and the old one is kept as
   ``master_key_check_previous``. From here a process must hold both keys (``XINYONG_MASTER_KEY`` the new one,
   ``XINYONG_MASTER_KEY_PREVIOUS`` the old one): it seals under the new key and opens with either
   (``xinyong_gateway.keyring``).
2. **Passes**: each registered column is read in key order, a page at a time. A value that opens with the new key is
   left alone; one that opens with the old key is sealed again under the new key and written back only if the row
   still holds the value read (compare-and-set, one transaction per page): every row is at every moment sealed
   under one of the two keys, never neither. A value neither key opens is counted and left as it is (the rotation
   then does not finish: that row was unreadable before it began).
3. **Finish**: the columns other writers copy from rows read earlier (``carried``) are checked once more while no one
   else can write them; when every value opens with the new key, ``master_key_check_previous`` is deleted in the
   same transaction. From then the old key is no longer needed.

A crash (even SIGKILL) at any point is harmless: each page commits on its own, and running the command again with
the same two keys skips what is done and does the rest. The index keys (blind index, API-key digests, body
digests, audit chain) do not change: they are one sealed row (``meta`` ``keyring``), the first one re-sealed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import MasterKeyError
from xinyong_gateway.keyring import CHECK, CHECK_PREVIOUS
from xinyong_gateway.sealed_columns import SEALED_COLUMNS, SealedColumn
from xinyong_gateway.store import SealedPlace, SealedRow, Store

__all__ = ["RotationResult", "rotate"]


@dataclass(slots=True)
class RotationResult:
    resealed: dict[str, int] = field(default_factory=dict)
    """Values sealed again under the new key, by ``table.column``."""
    already: int = 0
    """Values that already opened with the new key (written since the rotation began, or by an earlier run)."""
    unreadable: dict[str, int] = field(default_factory=dict)
    """Values neither key opens, by ``table.column`` (none when the rotation finished)."""
    finished: bool = False


def _opens(master: MasterKey, column: SealedColumn, row: SealedRow) -> bool:
    try:
        column.open(master, row.bound, row.sealed)
    except MasterKeyError:
        return False
    return True


async def rotate(
    store: Store,
    new: MasterKey,
    old: MasterKey,
    *,
    page: int = 500,
    progress: Callable[[str, int], None] | None = None,
) -> RotationResult:
    """Re-seal every registered column under ``new`` (``old``: the key the database is sealed under, or was before
    an interrupted run). ``progress(column, rows seen)`` after each page."""
    lifecycle = store.lifecycle()
    meta = await lifecycle.read_meta([CHECK, CHECK_PREVIOUS])
    if meta.get(CHECK) not in (old.check_value, new.check_value):
        raise MasterKeyError("XINYONG_MASTER_KEY_PREVIOUS is not the key this database is sealed under.")
    if meta.get(CHECK) == new.check_value and CHECK_PREVIOUS not in meta:
        result = RotationResult(finished=True)  # done before: nothing is sealed under the old key any more
        return result
    await lifecycle.write_meta({CHECK: new.check_value, CHECK_PREVIOUS: old.check_value})
    result = RotationResult()
    for column in SEALED_COLUMNS:
        after = None
        seen = 0
        while rows := await lifecycle.read_sealed(column, after, page):
            changes = []
            for row in rows:
                if _opens(new, column, row):
                    result.already += 1
                    continue
                try:
                    plaintext = column.open(old, row.bound, row.sealed)
                except MasterKeyError:
                    result.unreadable[column.name] = result.unreadable.get(column.name, 0) + 1
                    continue
                changes.append((row.key, row.sealed, column.seal(new, row.bound, plaintext)))
            if changes:
                done = await lifecycle.reseal(column, changes)
                result.resealed[column.name] = result.resealed.get(column.name, 0) + done
            after, seen = rows[-1].key, seen + len(rows)
            if progress is not None:
                progress(column.name, seen)
    if result.unreadable:
        return result
    carried = [column for column in SEALED_COLUMNS if column.carried]

    def opens_new(place: SealedPlace, row: SealedRow) -> bool:
        return _opens(new, next(c for c in carried if c is place), row)

    # A carried value copied (under the old key) from a row read before its page was re-sealed: one more pass.
    while await lifecycle.check_sealed_locked(carried, opens_new, {CHECK_PREVIOUS: None}):
        for column in carried:
            after = None
            while rows := await lifecycle.read_sealed(column, after, page):
                changes = [
                    (row.key, row.sealed, column.seal(new, row.bound, column.open(old, row.bound, row.sealed)))
                    for row in rows
                    if not _opens(new, column, row)
                ]
                if changes:
                    result.resealed[column.name] = result.resealed.get(column.name, 0) + await lifecycle.reseal(
                        column, changes
                    )
                after = rows[-1].key
    result.finished = True
    return result
