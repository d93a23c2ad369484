"""The PostgreSQL store's statements for the public site (``store.public`` says what they answer and why so).

Names go in ``public_names`` with their bigrams in a ``text[]`` under a GIN index; commitments in
``public_commitments``; lists are read through the expression index ``subjects_by_list``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

from xinyong_gateway.store.public import commitments_of, keep_matches, name_grams
from xinyong_gateway.store.records import (
    Commitment,
    ListedSubject,
    NameMatch,
    ProjectionCommit,
    PublicSubject,
    Standing,
    SubjectRow,
)
from xinyong_gateway.store.rows import SUBJECT_COLUMNS

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["agencies", "listed", "public_commitments", "public_subject", "search", "standing", "write"]

_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
_CANDIDATES = 4
"""Candidates read per subject asked for (the bigrams are all present, but not necessarily consecutive)."""
_LIST = "(status::jsonb ->> 'list')"
"""The expression ``subjects_by_list`` indexes (migration 0009): a query must say it the same way."""


async def write(conn: _Connection, commit: ProjectionCommit) -> None:
    """(Inside the projection's transaction) the names and commitments of ``commit``."""
    if commit.names:
        await conn.executemany(
            "INSERT INTO public_names (subject_key, kind, name, grams) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [(n.subject_key, n.kind, n.name, name_grams(n.name)) for n in commit.names],
        )
    if commit.commitments:
        await conn.executemany(
            "INSERT INTO public_commitments (subject_key, commitment_id, published_at, items) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (subject_key, commitment_id) DO UPDATE SET published_at = excluded.published_at,"
            " items = excluded.items WHERE excluded.published_at >= public_commitments.published_at",
            [
                (c.subject_key, c.commitment_id, c.published_at, json.dumps(c.items, ensure_ascii=False))
                for c in commit.commitments
            ],
        )


async def search(conn: _Connection, text: str, limit: int) -> list[NameMatch]:
    rows = await conn.fetch(
        "SELECT n.subject_key, s.display_id, s.display_name, n.name FROM public_names n"
        " JOIN subjects s ON s.subject_key = n.subject_key WHERE n.grams @> $1::text[] LIMIT $2",
        sorted(set(name_grams(text))),
        limit * _CANDIDATES,
    )
    return keep_matches((NameMatch(*row) for row in rows), text, limit)


async def listed(
    conn: _Connection, list_name: str, id_types: Sequence[str], offset: int, limit: int
) -> tuple[int, list[ListedSubject]]:
    where = f" WHERE {_LIST} = $1 AND id_type = ANY($2::text[])"
    total = await conn.fetchval("SELECT count(*) FROM subjects" + where, list_name, list(id_types))
    rows = await conn.fetch(
        "SELECT subject_key, id_type, display_id, display_name, status, updated_at FROM subjects"
        + where
        + " ORDER BY updated_at DESC, subject_key LIMIT $3 OFFSET $4",
        list_name,
        list(id_types),
        limit,
        offset,
    )
    return int(total), [ListedSubject(*row) for row in rows]


async def agencies(conn: _Connection, offset: int, limit: int) -> tuple[int, list[ListedSubject]]:
    where = " WHERE id_type = 'uscc' AND status::jsonb -> 'intermediary' ->> 'kind' = 'intermediary'"
    total = await conn.fetchval("SELECT count(*) FROM subjects" + where)
    rows = await conn.fetch(
        "SELECT subject_key, id_type, display_id, display_name, status, updated_at FROM subjects"
        + where
        + " ORDER BY updated_at DESC, subject_key LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    return int(total), [ListedSubject(*row) for row in rows]


_COMMITMENTS = (
    "(SELECT coalesce(json_agg(json_build_array(commitment_id, published_at, items::json)), '[]')::text"
    " FROM public_commitments c WHERE c.subject_key = {})"
)
_PUBLIC_SUBJECT = (
    f"SELECT {SUBJECT_COLUMNS}, {_COMMITMENTS.format('s.subject_key')} FROM subjects s WHERE s.subject_key = $1"
)
_PUBLIC_COMMITMENTS = "SELECT " + _COMMITMENTS.format("$1")
_STANDING = (
    "SELECT status::jsonb ->> 'list', status::jsonb ->> 'grade', next_change_at FROM subjects WHERE subject_key = $1"
)


async def public_subject(conn: _Connection, subject_key: str) -> PublicSubject | None:
    """The subject's file and commitments in one statement (one snapshot, one round trip)."""
    found = await conn.fetchrow(_PUBLIC_SUBJECT, subject_key)
    if found is None:
        return None
    return PublicSubject(SubjectRow(*found[:-1]), commitments_of(subject_key, found[-1]))


async def public_commitments(conn: _Connection, subject_key: str) -> tuple[Commitment, ...]:
    """The subject's published commitments, newest first."""
    return commitments_of(subject_key, await conn.fetchval(_PUBLIC_COMMITMENTS, subject_key))


async def standing(conn: _Connection, subject_key: str) -> Standing | None:
    found = await conn.fetchrow(_STANDING, subject_key)
    return None if found is None else Standing(*found)
