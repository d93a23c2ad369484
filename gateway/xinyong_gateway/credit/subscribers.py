"""Which subscriptions a status change concerns: the routing a projector commit writes to the outbox.

A change-feed entry concerns a subscription when the subject's list before the change or after it is one of the
subscription's ``lists`` (entering, leaving, or changing grade or measures within a watched list), and the subject
is one it asked for (every subject, when it named none). A USCC is matched by its credit file's key; a person is
matched by the pseudonym the subscribing API key's feed gives it (``xinyong.ric_pseudonym`` under the key's lookup
secret), so a platform names persons in its subscription exactly as its feed names them, and never by resident id.

:class:`SubscriptionRouter` keeps the active subscriptions as the store last gave them, with their generation; the
projector routes each commit's changes with it, and the store refuses a commit routed under a generation that is
no longer current (``SubscriptionsChangedError``): the router is then refreshed and the step retried. So a change is
routed to exactly the subscriptions that were active when it was committed, whatever the projectors and the
subscriptions API do meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xinyong.queries import ric_pseudonym
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import FeedEntry, OutboxEntry, Store, SubjectRow, SubscriptionRecord, SubscriptionRoutes

__all__ = ["Route", "SubscriptionRouter", "route_changes", "routes_of"]


@dataclass(frozen=True, slots=True)
class Route:
    """One active subscription as changes are matched against it."""

    subscription_id: str
    lists: frozenset[str]
    subject_keys: frozenset[str] | None
    """Credit-file keys of the USCC subjects asked for; None for every subject."""
    pseudonyms: frozenset[str]
    """The persons asked for, by the key's pseudonyms."""
    lookup_key: bytes | None
    """The subscribing key's lookup secret (only when ``pseudonyms``)."""

    def concerns(self, before: str, after: str, subject_key: str, pseudonym: Callable[[bytes], str | None]) -> bool:
        if before not in self.lists and after not in self.lists:
            return False
        if self.subject_keys is None:
            return True
        if subject_key in self.subject_keys:
            return True
        if self.pseudonyms and self.lookup_key is not None:
            return pseudonym(self.lookup_key) in self.pseudonyms
        return False


def routes_of(
    records: Sequence[SubscriptionRecord], lookup_secrets: Mapping[str, bytes], master: MasterKey
) -> list[Route]:
    """The routes of active subscriptions (lookup secrets sealed, as the store gives them)."""
    routes = []
    for record in records:
        keys: frozenset[str] | None = None
        pseudonyms: frozenset[str] = frozenset()
        lookup: bytes | None = None
        if record.subjects is not None:
            subjects = json.loads(record.subjects)
            keys = frozenset(master.subject_key("uscc", s["id"]) for s in subjects if s["id_type"] == "uscc")
            pseudonyms = frozenset(s["pseudonym"] for s in subjects if s["id_type"] == "ric")
            if pseudonyms and record.key_id in lookup_secrets:
                lookup = master.open_lookup_secret(record.key_id, lookup_secrets[record.key_id])
        routes.append(Route(record.subscription_id, frozenset(record.lists), keys, pseudonyms, lookup))
    return routes


def route_changes(
    routes: Sequence[Route],
    changes: Sequence[FeedEntry],
    lists_before: Mapping[str, str],
    person: Callable[[str], str | None],
) -> tuple[OutboxEntry, ...]:
    """The outbox entries of ``changes`` (in order): each change, for each route it concerns.

    ``lists_before``: each subject's list before the first of these changes (``none`` when absent); a subject with
    several changes moves along them. ``person(subject_key)``: the RIC of a person subject (None for a USCC)."""
    if not routes:
        return ()
    entries: list[OutboxEntry] = []
    current = dict(lists_before)
    for index, change in enumerate(changes):
        after = json.loads(change.snapshot)["list"]
        before = current.get(change.subject_key, "none")
        current[change.subject_key] = after
        ric: list[str | None] = []  # opened at most once per change, and only when a route asks

        def pseudonym(lookup_key: bytes, key: str = change.subject_key, ric: list[str | None] = ric) -> str | None:
            if not ric:
                ric.append(person(key))
            return ric_pseudonym(ric[0], lookup_key) if ric[0] is not None else None

        entries += [
            OutboxEntry(index, route.subscription_id)
            for route in routes
            if route.concerns(before, after, change.subject_key, pseudonym)
        ]
    return tuple(entries)


class SubscriptionRouter:
    """The active subscriptions for a projector's commits, reloaded when the store says they changed."""

    def __init__(self, store: Store, master: MasterKey) -> None:
        self._store = store
        self._master = master
        self._loaded: tuple[int, list[Route]] | None = None

    def invalidate(self) -> None:
        """Reload before the next routing (a commit was refused: the subscriptions changed)."""
        self._loaded = None

    async def _routes(self) -> tuple[int, list[Route]]:
        if self._loaded is None:
            found: SubscriptionRoutes = await self._store.subscription_routes()
            self._loaded = (found.generation, routes_of(found.subscriptions, found.lookup_secrets, self._master))
        return self._loaded

    async def route(
        self, changes: Sequence[FeedEntry], rows: Mapping[str, SubjectRow]
    ) -> tuple[int, tuple[OutboxEntry, ...]]:
        """``(generation, outbox entries)`` for a commit's changes. ``rows``: each changed subject's row as it
        stood before the commit (its status, for the list it leaves) or as the commit writes it (its identity)."""
        generation, routes = await self._routes()
        if not routes:
            return generation, ()
        before = {key: json.loads(row.status)["list"] for key, row in rows.items() if row.status}

        def person(subject_key: str) -> str | None:
            row = rows.get(subject_key)
            if row is None or row.id_type != "ric":
                return None
            return self._master.open_identity(subject_key, row.sealed_id)

        return generation, route_changes(routes, changes, before, person)
