"""What the public disclosure site (``web.public``) asks of the store, as both backends answer it.

**Name search.** An organisation is found by any part of its registered name or of a shop's name (``速达`` finds
海州区速达数码店), at 1,000,000 subjects, without a scan. Each name is indexed by its *bigrams*: the pairs of
consecutive characters of its search form (:func:`search_form`: case folded, white space dropped), each written as
the hex of its UTF-8 bytes (:func:`name_grams`), so that a tokenizer sees one plain token per pair whatever the
script or punctuation. A query of two characters or more is looked up by its own bigrams (SQLite: an FTS5 phrase
of them, that is the bigrams consecutive, in the external-content index ``public_names_fts``; PostgreSQL: a GIN
index on the ``grams`` array, all of them present) and every candidate is then checked against the name itself
(:func:`keep_matches`), so the answer is exactly "the query is a substring of the name's search form", the slow
path a property test holds it to. A one-character query is refused before the store (``MIN_QUERY``): it would
match most of the register. Trigram indexes (FTS5 ``trigram``, ``pg_trgm``) were the alternative: they cannot use
their index for the two-character queries that Chinese names mostly are, and ``pg_trgm`` skips non-ASCII
characters under the C locale; bench/README.md, "Public site", has the figures.

Only organisations (``uscc``) are indexed: a person's name or resident id finds nothing, by construction.

**Lists.** ``listed_subjects`` pages a list (``black``, ``red``, ...) newest first by the time the subject's file was
last written, through an index on the stored status's ``list`` (an expression index on each backend).
``listed_agencies`` pages the intermediary agencies the same way, by the stored status's ``intermediary.kind``,
through a partial index of the agencies' files in the page's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from xinyong_gateway.store.records import Commitment, NameMatch

__all__ = ["MIN_QUERY", "commitments_of", "fts_phrase", "keep_matches", "name_grams", "search_form"]

MIN_QUERY = 2
"""Characters a name query needs (its search form): one bigram."""


def search_form(text: str) -> str:
    """``text`` as names are compared: case folded and without white space (no Unicode normalisation: full-width
    and half-width letters stay apart, as the register keeps names as sent)."""
    return "".join(text.casefold().split())


def name_grams(text: str) -> list[str]:
    """The bigrams of ``text``'s search form, in order, each as the hex of its UTF-8 bytes (``速达`` →
    ``['e9809fe8bebe']``); none for a text shorter than two characters."""
    form = search_form(text)
    return [form[at : at + 2].encode().hex() for at in range(len(form) - 1)]


def fts_phrase(text: str) -> str:
    """An FTS5 query matching names whose bigram text holds ``text``'s bigrams consecutively (hex tokens need no
    escaping)."""
    return '"' + " ".join(name_grams(text)) + '"'


def keep_matches(candidates: Iterable[NameMatch], text: str, limit: int) -> list[NameMatch]:
    """The candidates whose name really holds ``text`` (search forms compared), one per subject, at most ``limit``."""
    wanted = search_form(text)
    seen: set[str] = set()
    found: list[NameMatch] = []
    for match in candidates:
        if match.subject_key in seen or wanted not in search_form(match.name):
            continue
        seen.add(match.subject_key)
        found.append(match)
        if len(found) == limit:
            break
    return found


def commitments_of(subject_key: str, aggregated: str) -> tuple[Commitment, ...]:
    """A subject's commitments from the JSON array both backends aggregate them into (``[[id, published_at, [items]],
    ...]``), newest first (then by id): the order is set here, not by the aggregate."""
    found = [Commitment(subject_key, cid, at, tuple(items)) for cid, at, items in json.loads(aggregated)]
    found.sort(key=lambda c: (-c.published_at, c.commitment_id))
    return tuple(found)
