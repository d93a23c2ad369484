"""What the data lifecycle asks of a backend (``Store.lifecycle()``): the ``meta`` rows that hold the master key's
check values and the sealed index keys, sealed columns read and re-sealed in place (master-key rotation), a
consistent online copy (backup), the stored credit files (verify), and the erasure of expired bodies (retention).

The sealed columns a rotation walks are named by ``xinyong_gateway.sealed_columns`` (one registry); a backend is
handed a :class:`SealedPlace` and never learns what the bytes mean. Table and column names come from that registry,
never from input, and are checked against :data:`IDENTIFIER` before they reach SQL.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from xinyong_gateway.errors import StoreError

__all__ = ["IDENTIFIER", "POSTGRES_BACKUP_ADVICE", "Lifecycle", "SealedPlace", "SealedRow", "checked_place"]

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
POSTGRES_BACKUP_ADVICE = (
    "back a PostgreSQL database up with pg_dump --format=custom and restore it with pg_restore onto an empty"
    ' database (README, "Backup and restore"), then run `xinyong-gateway verify`'
)


class SealedPlace(Protocol):
    """Where sealed values live: ``table.column``, one per row named by the unique ``key`` column; ``bound_to``: the
    columns whose values the seal is bound to (its associated data), in the order the opener takes them; ``where``:
    an SQL condition on the rows that hold sealed values (``""``: every row whose column is not NULL)."""

    @property
    def table(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def column(self) -> str: ...
    @property
    def bound_to(self) -> tuple[str, ...]: ...
    @property
    def where(self) -> str: ...


class SealedRow(NamedTuple):
    key: Any
    bound: tuple[str, ...]
    sealed: bytes


def checked_place(place: SealedPlace) -> SealedPlace:
    """``place``, once its names are plain identifiers (they are spliced into SQL)."""
    for name in (place.table, place.key, place.column, *place.bound_to):
        if not IDENTIFIER.fullmatch(name):
            raise StoreError(f"{name!r} is not a table or column name.")
    return place


def sealed_select(place: SealedPlace, *, first: bool, placeholders: Sequence[str]) -> str:
    """``SELECT key, bound…, sealed`` of the rows after a key (``placeholders``: the key's, then the limit's)."""
    checked_place(place)
    columns = ", ".join([place.key, *place.bound_to, place.column])
    conditions = [f"{place.column} IS NOT NULL"]
    if place.where:
        conditions.append(f"({place.where})")
    if not first:
        conditions.append(f"{place.key} > {placeholders[0]}")
    return (
        f"SELECT {columns} FROM {place.table} WHERE {' AND '.join(conditions)}"  # noqa: S608 -- names checked above
        f" ORDER BY {place.key} LIMIT {placeholders[1]}"
    )


def sealed_row(place: SealedPlace, row: Any) -> SealedRow:
    """A row of :func:`sealed_select` (a tuple or a driver's record)."""
    return SealedRow(row[0], tuple(str(value) for value in row[1 : 1 + len(place.bound_to)]), bytes(row[-1]))


class Lifecycle(ABC):
    """The lifecycle operations of one open store."""

    # -- meta: check values and the sealed index keys ----------------------------------------------------
    @abstractmethod
    async def read_meta(self, names: Sequence[str]) -> dict[str, bytes]:
        """The ``meta`` rows of these names that exist."""

    @abstractmethod
    async def insert_meta(self, name: str, value: bytes) -> bytes:
        """Store ``value`` under ``name`` unless a value is there already (a concurrent start stored it first);
        return the value stored."""

    @abstractmethod
    async def write_meta(self, values: Mapping[str, bytes | None]) -> None:
        """Set (or, for None, delete) these ``meta`` rows, in one transaction."""

    # -- sealed columns (master-key rotation) -----------------------------------------------------------------
    @abstractmethod
    async def read_sealed(self, place: SealedPlace, after: Any, limit: int) -> list[SealedRow]:
        """Up to ``limit`` rows holding a sealed value, in key order, after the key ``after`` (None: from the start)."""

    @abstractmethod
    async def reseal(self, place: SealedPlace, changes: Sequence[tuple[Any, bytes, bytes]]) -> int:
        """Replace sealed values, ``(key, old, new)``, in one transaction, each only if the row still holds
        ``old`` (a row rewritten meanwhile keeps what its writer wrote); return how many were replaced."""

    @abstractmethod
    async def check_sealed_locked(
        self,
        places: Sequence[SealedPlace],
        opens: Callable[[SealedPlace, SealedRow], bool],
        then: Mapping[str, bytes | None],
    ) -> int:
        """Count the rows of ``places`` whose sealed value ``opens`` refuses, while no other writer can change
        those tables; when there are none, write the ``meta`` rows ``then`` in the same transaction."""

    # -- backup and verify ------------------------------------------------------------------------------
    @abstractmethod
    async def backup(self, destination: Path) -> None:
        """A consistent copy of the whole database at one instant, written to ``destination`` (a new file) while
        the database stays in use. PostgreSQL: ``StoreError`` naming ``pg_dump`` (README, "Backup and restore")."""

    @abstractmethod
    async def subject_states(self, after: str, limit: int) -> list[tuple[str, str]]:
        """``(subject_key, stored credit file)`` in key order after ``after``."""

    # -- retention --------------------------------------------------------------------------------------
    @abstractmethod
    async def erase_bodies(self, seqs: Sequence[int], erased: Callable[[int, str, str], bytes], now: int) -> int:
        """Replace the sealed bodies of these inbox rows with ``erased(seq, source_id, webhook_id)`` (a sealed
        tombstone) and record when; rows erased before are left alone. Returns how many were erased."""

    @abstractmethod
    async def erase_identities(self, subject_keys: Sequence[str], now: int) -> int:
        """Forget the sealed identifier and name of these subjects (their files and lists stay); a name carried back
        by a projector that read the row before is removed again. Returns how many rows changed."""
