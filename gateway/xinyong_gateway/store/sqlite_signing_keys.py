"""The SQLite store's statements for attestation signing keys (``SQLiteStore.add_signing_key`` and
``list_signing_keys`` run them on its connections)."""

from __future__ import annotations

import sqlite3

from xinyong_gateway.store.records import SigningKeyRecord
from xinyong_gateway.store.rows import SIGNING_KEY_COLUMNS

__all__ = ["add", "list_all"]


def list_all(conn: sqlite3.Connection) -> list[SigningKeyRecord]:
    rows = conn.execute(f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid")
    return [SigningKeyRecord(r[0], r[1], bytes(r[2]), bytes(r[3]), r[4], r[5]) for r in rows]


def add(conn: sqlite3.Connection, record: SigningKeyRecord, first: bool) -> bool:
    """(Writer thread, inside ``BEGIN IMMEDIATE``: rotations take turns) retire the current key, add ``record``."""
    if first and conn.execute("SELECT 1 FROM signing_keys LIMIT 1").fetchone() is not None:
        return False
    conn.execute("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL", (record.created_at,))
    conn.execute(
        f"INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL)",
        (record.kid, record.algorithm, record.public_key, record.sealed_private_key, record.created_at),
    )
    return True
