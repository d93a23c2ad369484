"""The SQLite store's statements for the public site (``store.public`` says what they answer and why so).

Badge standings and page summaries are kept in ``public_standings`` by triggers on ``subjects`` and
``public_commitments`` (migrations 0017, 0018), in the order written.
Names go in ``public_names`` (a trigger copies each new row into the FTS5 index ``public_names_fts``); commitments
in ``public_commitments``; lists are read through the expression index ``subjects_by_list``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from xinyong_gateway.store.public import commitments_of, fts_phrase, keep_matches, name_grams
from xinyong_gateway.store.records import (
    Commitment,
    ListedSubject,
    NameMatch,
    OrganisationStanding,
    ProjectionCommit,
    PublicSubject,
    Standing,
    SubjectRow,
)
from xinyong_gateway.store.rows import SUBJECT_COLUMNS

__all__ = [
    "agencies",
    "listed",
    "public_commitments",
    "public_subject",
    "search",
    "standing",
    "standings_after",
    "write",
]

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


_COMMITMENTS = (
    "(SELECT json_group_array(json_array(commitment_id, published_at, json(items))) FROM public_commitments c"
    " WHERE c.subject_key = {})"
)
_PUBLIC_SUBJECT = (
    f"SELECT {SUBJECT_COLUMNS}, {_COMMITMENTS.format('s.subject_key')} FROM subjects s WHERE s.subject_key = ?"
)
_PUBLIC_COMMITMENTS = "SELECT " + _COMMITMENTS.format("?")
_STANDING = (
    "SELECT json_extract(status, '$.list'), json_extract(status, '$.grade'), next_change_at FROM subjects"
    " WHERE subject_key = ?"
)


def public_subject(conn: sqlite3.Connection, subject_key: str) -> PublicSubject | None:
    """The subject's file and commitments in one statement (one snapshot)."""
    found = conn.execute(_PUBLIC_SUBJECT, (subject_key,)).fetchone()
    if found is None:
        return None
    return PublicSubject(SubjectRow._make(found[:-1]), commitments_of(subject_key, found[-1]))


def public_commitments(conn: sqlite3.Connection, subject_key: str) -> tuple[Commitment, ...]:
    """The subject's published commitments, newest first."""
    return commitments_of(subject_key, conn.execute(_PUBLIC_COMMITMENTS, (subject_key,)).fetchone()[0])


def standing(conn: sqlite3.Connection, subject_key: str) -> Standing | None:
    found = conn.execute(_STANDING, (subject_key,)).fetchone()
    return None if found is None else Standing._make(found)


_STANDINGS_AFTER = (
    "SELECT seq, code, list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only"
    " FROM public_standings WHERE seq > ? ORDER BY seq LIMIT ?"
)


def standings_after(conn: sqlite3.Connection, seq: int, limit: int) -> list[OrganisationStanding]:
    """The standings written after ``seq``, in the order written (one statement: one snapshot)."""
    make = OrganisationStanding._make
    return [make((*row[:9], bool(row[9]), bool(row[10]))) for row in conn.execute(_STANDINGS_AFTER, (seq, limit))]
