"""The SQLite store's audit-log statements (``SQLiteStore.append_audit`` and the readers run them on its connections).

The chain itself (ids, hashes, the head record's MAC) is worked out by ``store.base.next_audit_entry``; these functions
only read the head and write the entry and the new head, inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3

from xinyong_gateway.store.base import AuditChain, next_audit_entry
from xinyong_gateway.store.records import AuditDraft, AuditEntry, AuditHead
from xinyong_gateway.store.rows import AUDIT_COLUMNS

__all__ = ["append", "head", "latest", "read"]

_SELECT_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM audit_log"


def append(conn: sqlite3.Connection, draft: AuditDraft, chain: AuditChain) -> AuditEntry:
    """(Writer thread, inside ``BEGIN IMMEDIATE``) the next entry and the new head record."""
    row = conn.execute("SELECT entry_id, hash, mac FROM audit_head WHERE id = 1").fetchone()
    last = conn.execute("SELECT entry_id, hash FROM audit_log ORDER BY entry_id DESC LIMIT 1").fetchone()
    entry, new_head = next_audit_entry(
        AuditHead(*row) if row else None, (last[0], last[1]) if last else None, draft, chain
    )
    conn.execute(
        f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.entry_id, entry.at, entry.actor, entry.action, entry.target, entry.details, entry.prev_hash, entry.hash),
    )
    conn.execute(
        "INSERT INTO audit_head (id, entry_id, hash, mac) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
        " SET entry_id = excluded.entry_id, hash = excluded.hash, mac = excluded.mac",
        (new_head.entry_id, new_head.hash, new_head.mac),
    )
    return entry


def read(conn: sqlite3.Connection, after: int, limit: int) -> list[AuditEntry]:
    rows = conn.execute(_SELECT_AUDIT + " WHERE entry_id > ? ORDER BY entry_id LIMIT ?", (after, limit))
    return [AuditEntry(*row) for row in rows]


def latest(conn: sqlite3.Connection, limit: int, action: str | None) -> list[AuditEntry]:
    if action is None:
        rows = conn.execute(_SELECT_AUDIT + " ORDER BY entry_id DESC LIMIT ?", (limit,))
    else:
        rows = conn.execute(_SELECT_AUDIT + " WHERE action = ? ORDER BY entry_id DESC LIMIT ?", (action, limit))
    return [AuditEntry(*row) for row in reversed(rows.fetchall())]


def head(conn: sqlite3.Connection) -> AuditHead | None:
    row = conn.execute("SELECT entry_id, hash, mac FROM audit_head WHERE id = 1").fetchone()
    return AuditHead(*row) if row else None
