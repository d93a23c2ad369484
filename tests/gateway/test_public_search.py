"""The public site's name search: the bigram index (FTS5 on SQLite, a GIN array on PostgreSQL) answers exactly what a
scan of every name would ("the query's search form is a substring of the name's"), and only organisations are in it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xinyong_gateway.store import ProjectionCommit, Store, SubjectName, SubjectRow, open_store
from xinyong_gateway.store.public import keep_matches, name_grams, search_form
from xinyong_gateway.store.records import NameMatch

ALPHABET = "速达数码店海州区百货aB 有限公司"
"""Few characters, so that names and queries share bigrams often (the index's false candidates get exercised)."""


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with open_store(database_url, create=True) as opened:
        await opened.migrate()
        yield opened


def _consecutive(needle: list[str], haystack: list[str]) -> bool:
    """What an FTS5 phrase of bigrams asks: ``needle`` appears in ``haystack`` as a run."""
    return any(haystack[at : at + len(needle)] == needle for at in range(len(haystack) - len(needle) + 1))


@given(name=st.text(ALPHABET, max_size=12), query=st.text(ALPHABET, min_size=2, max_size=5))
def test_a_phrase_of_bigrams_is_exactly_a_substring(name: str, query: str) -> None:
    if len(search_form(query)) < 2:
        return
    assert _consecutive(name_grams(query), name_grams(name)) == (search_form(query) in search_form(name))


@given(names=st.lists(st.text(ALPHABET, min_size=1, max_size=8), max_size=8), query=st.text(ALPHABET, max_size=4))
def test_keep_matches_keeps_one_real_match_per_subject(names: list[str], query: str) -> None:
    candidates = [NameMatch(f"k{n % 3}", "id", None, name) for n, name in enumerate(names)]
    kept = keep_matches(candidates, query, 2)
    assert len(kept) <= 2 and len({m.subject_key for m in kept}) == len(kept)
    assert all(search_form(query) in search_form(m.name) for m in kept)
    expected = list(dict.fromkeys(m.subject_key for m in candidates if search_form(query) in search_form(m.name)))
    assert [m.subject_key for m in kept] == expected[:2]


async def test_the_index_answers_what_a_scan_of_every_name_would(store: Store) -> None:
    rng = random.Random(7)
    names: dict[str, list[str]] = {}
    rows, entries = [], []
    for n in range(150):
        key = f"{n:064x}"
        own = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 10))) for _ in range(rng.randint(1, 3))]
        names[key] = own
        rows.append(SubjectRow(key, "uscc", f"9132{n:014d}", own[0], b"sealed", None, "{}", '{"list": "none"}', None))
        entries += [SubjectName(key, "name" if i == 0 else "shop", text) for i, text in enumerate(own)]
    await store.commit_projection(
        ProjectionCommit(partitions=(), subjects=tuple(rows), changes=(), recorded_at=1, names=tuple(entries))
    )
    queries = ["速达", "有限公司", "ab", "AB", "a b", "店店", "海州区速"]
    queries += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(2, 4))) for _ in range(60)]
    for query in queries:
        if len(search_form(query)) < 2:
            continue
        found = {match.subject_key for match in await store.search_names(query, 1000)}
        scanned = {key for key, own in names.items() if any(search_form(query) in search_form(t) for t in own)}
        assert found == scanned, query
    limited = await store.search_names("速达", 2)
    assert len(limited) <= 2
