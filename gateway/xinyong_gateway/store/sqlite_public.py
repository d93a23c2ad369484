"""The SQLite store's statements for the public site (``store.public`` says what they answer and why so).

Names go in ``public_names`` (a trigger copies each new row into the FTS5 index ``public_names_fts``); commitments
in ``public_commitments``; lists are read through the expression index ``subjects_by_list``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from xinyong_gateway.store.public import fts_phrase, keep_matches, name_grams
from xinyong_gateway.store.records import Commitment, ListedSubject, NameMatch, ProjectionCommit

__all__ = ["agencies", "commitments", "listed", "search", "write"]

_CANDIDATES = 4
"""Candidates read per subject asked for (a subject has a few names; a phrase of bigrams rarely misleads)."""


def write(conn: sqlite3.Connection, commit: ProjectionCommit) -> None:
    """(Writer thread, inside the projection's transaction) the names and commitments of ``commit``."""
    if commit.names:
        conn.executemany(
            "INSERT INTO public_names (subject_key, kind, name, grams) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(n.subject_key, n.kind, n.name, " ".join(name_grams(n.name))) for n in commit.names],
        )
    if commit.commitments:
        conn.executemany(
            "INSERT INTO public_commitments (subject_key, commitment_id, published_at, items) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (subject_key, commitment_id) DO UPDATE SET published_at = excluded.published_at,"
            " items = excluded.items WHERE excluded.published_at >= public_commitments.published_at",
            [
                (c.subject_key, c.commitment_id, c.published_at, json.dumps(c.items, ensure_ascii=False))
                for c in commit.commitments
            ],
        )


def search(conn: sqlite3.Connection, text: str, limit: int) -> list[NameMatch]:
    rows = conn.execute(
        "SELECT n.subject_key, s.display_id, s.display_name, n.name FROM public_names_fts f"
        " JOIN public_names n ON n.rowid = f.rowid JOIN subjects s ON s.subject_key = n.subject_key"
        " WHERE public_names_fts MATCH ? LIMIT ?",
        (fts_phrase(text), limit * _CANDIDATES),
    )
    return keep_matches((NameMatch(*row) for row in rows), text, limit)


def listed(
    conn: sqlite3.Connection, list_name: str, id_types: Sequence[str], offset: int, limit: int
) -> tuple[int, list[ListedSubject]]:
    types = json.dumps(list(id_types))
    where = " WHERE json_extract(status, '$.list') = ? AND id_type IN (SELECT value FROM json_each(?))"
    (total,) = conn.execute("SELECT count(*) FROM subjects" + where, (list_name, types)).fetchone()
    rows = conn.execute(
        "SELECT subject_key, id_type, display_id, display_name, status, updated_at FROM subjects"
        + where
        + " ORDER BY updated_at DESC, subject_key LIMIT ? OFFSET ?",
        (list_name, types, limit, offset),
    )
    return total, [ListedSubject(*row) for row in rows]


def agencies(conn: sqlite3.Connection, offset: int, limit: int) -> tuple[int, list[ListedSubject]]:
    where = " WHERE id_type = 'uscc' AND json_extract(status, '$.intermediary.kind') = 'intermediary'"
    (total,) = conn.execute("SELECT count(*) FROM subjects" + where).fetchone()
    rows = conn.execute(
        "SELECT subject_key, id_type, display_id, display_name, status, updated_at FROM subjects"
        + where
        + " ORDER BY updated_at DESC, subject_key LIMIT ? OFFSET ?",
        (limit, offset),
    )
    return total, [ListedSubject(*row) for row in rows]


def commitments(conn: sqlite3.Connection, subject_key: str) -> list[Commitment]:
    rows = conn.execute(
        "SELECT subject_key, commitment_id, published_at, items FROM public_commitments WHERE subject_key = ?"
        " ORDER BY published_at DESC, commitment_id",
        (subject_key,),
    )
    return [Commitment(key, cid, at, tuple(json.loads(items))) for key, cid, at, items in rows]
