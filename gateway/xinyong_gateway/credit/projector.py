"""The projector: reads the inbox in order and keeps every subject's credit file and status up to date.

The thin edge around the pure engine (``credit.engine``). One :meth:`Projector.step` reads the next inbox rows
after its position, opens their sealed bodies, applies them to the credit files of the subjects they are
about, and writes the files, their new status, any change-feed entries and the new position in **one**
transaction (``Store.commit_projection``): after a crash it resumes exactly where its last commit left off,
so every event is applied once. :meth:`Projector.sweep` lets time pass: subjects whose records start or end,
or who earn the red list, get their new status (and feed entry) at the exact instant it took effect, with no
new event.

**Sharing the work.** Subjects fall into ``PARTITIONS`` partitions by their key; each partition has its own
position in the inbox. A projector works on the partitions its claims hold (``Store.claim_partitions``: all
of them on SQLite; on PostgreSQL each live projector takes a fair share, and takes over a dead one's): it
reads the inbox from the lowest of their positions and applies each event only to its subjects in those
partitions, past that partition's position. One holder per partition means the events of one subject are
applied in log order; every commit checks that each partition it writes is still in the state it read, so
even two projectors that both believe they hold a partition cannot apply an event twice.

A status snapshot names the subject as it may be shown (a USCC in full, a resident id masked), so the
change feed never carries a resident id; identifiers and names are stored sealed beside the file. A name as shown
has its control characters replaced (``display_text``): a sender's name with a NUL in it would otherwise stop the
PostgreSQL projector for good (a ``text`` column refuses NUL), and one with terminal escapes would reach an
operator's terminal through ``subjects show``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from xinyong.subjects import Subject
from xinyong_gateway.credit.documents import decision_of, display_text, status_document
from xinyong_gateway.credit.engine import CreditFile, LoggedEvent, subjects_of
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.inbox import read_logged
from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.credit.subscribers import SubscriptionRouter
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import ProjectionConflictError, StoreError, SubscriptionsChangedError
from xinyong_gateway.store import (
    ALL_PARTITIONS,
    ArchivedRecord,
    CaseRef,
    Commitment,
    FeedEntry,
    PartitionAdvance,
    PartitionClaims,
    PolicyText,
    ProjectionCommit,
    Store,
    StoredEvent,
    SubjectName,
    SubjectRow,
    from_micros,
    partition_of,
    to_micros,
)

__all__ = ["Projector"]

_log = structlog.get_logger("xinyong_gateway.projector")


def _case_refs(files: dict[str, CreditFile], policy: Policy, now: datetime) -> tuple[CaseRef, ...]:
    """The objections and repairs the files hold, for the index that finds a file by a case's id; a case whose
    outcome ended its record by ``now`` (an upheld objection, a granted repair) is published by this commit (the
    store keeps the first such time)."""
    refs = []
    recorded_at = to_micros(now)
    for key, credit_file in files.items():
        for objection_id in credit_file.objections:
            view = credit_file.objection(objection_id, policy)
            published = view.state == "upheld" and view.decided_at is not None and view.decided_at <= now
            refs.append(CaseRef("objection", objection_id, key, recorded_at if published else None))
        for repair_id in credit_file.repairs:
            repair = credit_file.repair(repair_id, policy)
            published = repair.state == "granted" and repair.decided_at is not None and repair.decided_at <= now
            refs.append(CaseRef("repair", repair_id, key, recorded_at if published else None))
    return tuple(refs)


@dataclass(slots=True)
class _PublicFacts:
    """What the public site shows beyond the files (``web.public``), gathered from one step's events: organisations'
    registered and shop names (for the name search) and their published commitments. Persons' are never kept."""

    names: dict[SubjectName, None] = field(default_factory=dict)
    commitments: dict[tuple[str, str], Commitment] = field(default_factory=dict)

    def add(self, logged: LoggedEvent, field_name: str, key: str, subject: Subject) -> None:
        if subject.id_type != "uscc":
            return
        event, data = logged.event, logged.event.data.__dict__
        if subject.name is not None:
            self.names[SubjectName(key, "name", display_text(subject.name) or "")] = None
        if field_name != "merchant":
            return
        if event.type == "merchant.registered":
            self.names[SubjectName(key, "shop", display_text(data["shop_name"]) or "")] = None
        elif event.type == "commitment.published":
            commitment = Commitment(
                key,
                data["commitment_id"],
                to_micros(data["published_at"]),
                tuple(display_text(item) or "" for item in data["items"]),
            )
            known = self.commitments.get((key, commitment.commitment_id))
            if known is None or known.published_at <= commitment.published_at:
                self.commitments[key, commitment.commitment_id] = commitment


class _RebuildNeededError(Exception):
    """A stored credit file has an empty state: files written by an earlier engine were cleared by a migration
    (store migrations ``*_order_independent_files.sql``) and must be rebuilt from the inbox in one pass."""


class Projector:
    """Applies the inbox to credit files under one policy; safe to stop and restart at any moment."""

    def __init__(
        self,
        store: Store,
        master: MasterKey,
        policy: Policy,
        *,
        claims: PartitionClaims | None = None,
        batch_size: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``claims``: the partitions to work on (every one when None, as for a one-off catch-up)."""
        self._store = store
        self._master = master
        self._policies = PolicyInForce(store, policy)
        self._claims = claims
        self._batch_size = batch_size
        self._clock = clock
        self._router = SubscriptionRouter(store, master)

    async def _commit(self, commit: ProjectionCommit, rows: Mapping[str, SubjectRow]) -> None:
        """Write ``commit`` with the outbox entries of its changes (routed to the active subscriptions; ``rows``: each
        changed subject's row before the commit), in its one transaction."""
        if commit.changes:
            generation, outbox = await self._router.route(commit.changes, rows)
            commit = dataclasses.replace(commit, outbox=outbox, routes_generation=generation)
        try:
            await self._store.commit_projection(commit)
        except SubscriptionsChangedError:
            self._router.invalidate()  # the step is retried (a ProjectionConflictError), routed afresh
            raise

    def _key_of(self, subject: Subject) -> str:
        return self._master.subject_key(subject.id_type, subject.id)

    @property
    def policy(self) -> Policy:
        """The policy in force: the one adopted in the database once there is one (``policy``, until then)."""
        return self._policies.policy

    def _identity(self, key: str, subject: Subject, previous: SubjectRow | None) -> SubjectRow:
        """A row carrying the subject's identity, sealed and as it may be displayed (the latest name wins)."""
        if previous is None:
            sealed_id, display_id = self._master.seal_identity(key, subject.id), subject.masked_id
        else:
            sealed_id, display_id = previous.sealed_id, previous.display_id
        display_name: str | None
        sealed_name: bytes | None
        if subject.name is not None:
            display_name = display_text(subject.masked_name)
            sealed_name = self._master.seal_identity(key, subject.name)
        elif previous is not None:
            display_name, sealed_name = previous.display_name, previous.sealed_name
        else:
            display_name, sealed_name = None, None
        return SubjectRow(
            subject_key=key,
            id_type=subject.id_type,
            display_id=display_id,
            display_name=display_name,
            sealed_id=sealed_id,
            sealed_name=sealed_name,
            state=previous.state if previous else "",
            status=previous.status if previous else "",
            next_change_at=previous.next_change_at if previous else None,
        )

    async def _apply_rows(
        self,
        rows: list[StoredEvent],
        policy: Policy,
        files: dict[str, CreditFile],
        identities: dict[str, SubjectRow],
        stored: dict[str, SubjectRow],
        *,
        fresh: bool,
        public: _PublicFacts,
        positions: dict[int, int] | None = None,
    ) -> None:
        """Apply inbox rows to ``files`` (loading each subject's stored file first, unless ``fresh``).

        With ``positions`` (partition → seq applied so far), only subjects of those partitions are touched,
        and only by rows past their partition's position."""
        keyed: list[tuple[LoggedEvent, str, str, Subject]] = []
        for row in rows:
            if row.sealed_body is None:
                continue  # about none of the partitions asked for
            item = read_logged(row, self._master)
            for field_name, subject in subjects_of(item.event).items():
                key = item.file_key(field_name, subject, self._key_of)
                if positions is not None and row.seq <= positions.get(partition_of(key), row.seq):
                    continue
                keyed.append((item, field_name, key, subject))
        missing = list({key for _, _, key, _ in keyed if key not in stored and key not in files})
        if missing:
            stored.update(await self._store.load_subjects(missing))
        named: dict[str, Subject] = {}  # per subject, its last mention that carries a name (else its first)
        for item, field_name, key, subject in keyed:
            if key not in files:
                previous = None if fresh else stored.get(key)
                if previous is not None and not previous.state:
                    raise _RebuildNeededError
                files[key] = CreditFile.from_json(previous.state) if previous else CreditFile(key)
            if subject.name is not None or key not in named:
                named[key] = subject
            files[key].apply(item, field_name, policy)
            public.add(item, field_name, key, subject)
        for key, subject in named.items():  # sealed once per subject and batch, not once per mention
            identities[key] = self._identity(key, subject, identities.get(key) or stored.get(key))

    def _outcome(
        self,
        policy: Policy,
        files: dict[str, CreditFile],
        identities: dict[str, SubjectRow],
        stored: dict[str, SubjectRow],
        now: datetime,
    ) -> tuple[list[SubjectRow], list[FeedEntry], list[ArchivedRecord]]:
        """The rows to write for ``files`` at ``now``: subjects, feed entries for changed decisions, archive."""
        subjects: list[SubjectRow] = []
        changes: list[FeedEntry] = []
        archived: list[ArchivedRecord] = []
        for key, credit_file in files.items():
            credit_file.settle(policy)  # re-evaluates window rules and moves old records out, before they are read
            archived += [ArchivedRecord(key, json.dumps(r.to_json(), ensure_ascii=False)) for r in credit_file.archived]
            credit_file.archived.clear()
            identity = identities[key]
            status = credit_file.status_at(now, policy)
            document = status_document((identity.id_type, identity.display_id, identity.display_name), status)
            previous = stored.get(key)
            if previous is None or decision_of(json.loads(previous.status)) != status.decision():
                changes.append(FeedEntry(key, json.dumps(document, ensure_ascii=False), to_micros(now)))
            next_change = credit_file.next_change_after(now, policy)
            subjects.append(
                SubjectRow(
                    subject_key=key,
                    id_type=identity.id_type,
                    display_id=identity.display_id,
                    display_name=identity.display_name,
                    sealed_id=identity.sealed_id,
                    sealed_name=identity.sealed_name,
                    state=credit_file.to_json(),
                    status=json.dumps(document, ensure_ascii=False),
                    next_change_at=to_micros(next_change) if next_change else None,
                )
            )
        return subjects, changes, archived

    async def _held(self) -> int:
        return await self._claims.acquire() if self._claims is not None else ALL_PARTITIONS

    async def step(self) -> int:
        """Apply the next batch of inbox rows to the partitions held; return how many rows were read (0: caught
        up, or no partition held)."""
        await self.refresh_policy()
        held = await self._held()
        if not held:
            return 0
        states = await self._store.partition_states()
        mine = {partition: state for partition, state in states.items() if held >> partition & 1}
        positions = {partition: state.position for partition, state in mine.items()}
        rows = await self._store.read_inbox(min(positions.values()), self._batch_size, partitions=held)
        if not rows:
            return 0
        files: dict[str, CreditFile] = {}
        identities: dict[str, SubjectRow] = {}
        stored: dict[str, SubjectRow] = {}
        public = _PublicFacts()
        try:
            await self._apply_rows(
                rows, self.policy, files, identities, stored, fresh=False, public=public, positions=positions
            )
        except _RebuildNeededError:
            _log.info("projector.rebuilding", policy_version=self.policy.version)
            replayed, _ = await self.reproject(self.policy, None)
            return replayed
        now = datetime.fromtimestamp(self._clock(), UTC)
        subjects, changes, archived = self._outcome(self.policy, files, identities, stored, now)
        last = rows[-1].seq
        await self._commit(
            ProjectionCommit(
                partitions=tuple(PartitionAdvance(p, state, max(state.position, last)) for p, state in mine.items()),
                subjects=tuple(subjects),
                changes=tuple(changes),
                recorded_at=to_micros(now),
                archived=tuple(archived),
                cases=_case_refs(files, self.policy, now),
                names=tuple(public.names),
                commitments=tuple(public.commitments.values()),
            ),
            identities,
        )
        return len(rows)

    async def reproject(
        self, policy: Policy, policy_text: str | None, *, progress: Callable[[int], None] | None = None
    ) -> tuple[int, int]:
        """Adopt ``policy`` (when ``policy_text`` is given; else rebuild the files under it): replay the whole inbox
        under it and replace every credit file in one transaction.

        The replay happens in memory; nothing is written until the single commit that replaces every file and
        its status, appends a feed entry (carrying the new version) for each subject whose decision changes,
        archives records afresh, moves the position to the end of the replayed log and records the policy as
        the active one. An interruption before that commit leaves the old policy and files in place; a
        projector that moved meanwhile makes the commit fail (``ProjectionConflictError``) and nothing is
        written. Returns (events replayed, subjects whose decision changed).
        """
        states = await self._store.partition_states()
        files: dict[str, CreditFile] = {}
        identities: dict[str, SubjectRow] = {}
        stored: dict[str, SubjectRow] = {}
        public = _PublicFacts()
        after = replayed = 0
        while rows := await self._store.read_inbox(after, 2000):
            await self._apply_rows(rows, policy, files, identities, stored, fresh=True, public=public)
            after, replayed = rows[-1].seq, replayed + len(rows)
            if progress is not None:
                progress(replayed)
        now = datetime.fromtimestamp(self._clock(), UTC)
        subjects, changes, archived = self._outcome(policy, files, identities, stored, now)
        await self._commit(
            ProjectionCommit(
                partitions=tuple(PartitionAdvance(partition, state, after) for partition, state in states.items()),
                subjects=tuple(subjects),
                changes=tuple(changes),
                recorded_at=to_micros(now),
                archived=tuple(archived),
                replace_archive=True,
                cases=_case_refs(files, policy, now),
                names=tuple(public.names),
                commitments=tuple(public.commitments.values()),
                adopt_policy=PolicyText(policy.version, policy_text) if policy_text is not None else None,
            ),
            identities,
        )
        self._policies.policy = policy
        return replayed, len(changes)

    async def refresh_policy(self) -> None:
        """Switch to the policy adopted in the database (``policy apply``), if it is not the one in use."""
        before = self._policies.policy
        if await self._policies.refresh() is not before:
            _log.info("projector.policy_adopted", version=self.policy.version)

    async def sweep(self, limit: int = 500) -> int:
        """Let time pass: recompute the subjects whose status may have changed by now; return how many.

        (The policy in force is refreshed by :meth:`step`, which :meth:`run` and :meth:`catch_up` call first.)"""
        now_us = int(self._clock() * 1_000_000)
        held = await self._held()
        if not held:
            return 0
        # Read the states first: if another projector rewrites one of these subjects after this read, it
        # bumps its partition's version and this commit fails instead of writing a stale status.
        states = await self._store.partition_states()
        due = await self._store.due_subjects(now_us, limit, partitions=held)
        if not due:
            return 0
        touched = {partition_of(row.subject_key) for row in due}
        subjects: list[SubjectRow] = []
        changes: list[FeedEntry] = []
        files: dict[str, CreditFile] = {}
        for row in due:
            credit_file = files[row.subject_key] = CreditFile.from_json(row.state)
            identity = (row.id_type, row.display_id, row.display_name)
            document = json.loads(row.status)
            decision = decision_of(document)
            moment: datetime | None = from_micros(row.next_change_at) if row.next_change_at else None
            while moment is not None and to_micros(moment) <= now_us:
                status = credit_file.status_at(moment, self.policy)
                document = status_document(identity, status)
                if status.decision() != decision:
                    changes.append(
                        FeedEntry(row.subject_key, json.dumps(document, ensure_ascii=False), to_micros(moment))
                    )
                decision = status.decision()
                moment = credit_file.next_change_after(moment, self.policy)
            subjects.append(
                SubjectRow(
                    subject_key=row.subject_key,
                    id_type=row.id_type,
                    display_id=row.display_id,
                    display_name=row.display_name,
                    sealed_id=row.sealed_id,
                    sealed_name=row.sealed_name,
                    state=row.state,
                    status=json.dumps(document, ensure_ascii=False),
                    next_change_at=to_micros(moment) if moment else None,
                )
            )
        await self._commit(
            ProjectionCommit(
                partitions=tuple(PartitionAdvance(p, states[p], states[p].position) for p in sorted(touched)),
                subjects=tuple(subjects),
                changes=tuple(changes),
                recorded_at=now_us,
                cases=_case_refs(files, self.policy, from_micros(now_us)),  # a ruling dated ahead is published now
            ),
            {row.subject_key: row for row in due},
        )
        return len(due)

    async def catch_up(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Apply everything in the inbox now, then let time pass; return the number of inbox rows read.
        ``progress(rows read so far)`` is called after each committed batch.

        A commit that loses a race with another projector (``ProjectionConflictError``) is retried from the
        states that projector left."""
        applied = 0
        while True:
            try:
                count = await self.step()
            except ProjectionConflictError:
                continue
            applied += count
            if count == 0:
                break
            if progress is not None:
                progress(applied)
        while True:
            try:
                if not await self.sweep():
                    break
            except ProjectionConflictError:
                continue
        return applied

    async def run(self, *, idle_interval: float = 0.25) -> None:
        """Project until cancelled: apply new events as they arrive, sweep due subjects, idle when caught up.
        The claims end with the run."""
        _log.info("projector.started", policy_version=self.policy.version)
        try:
            while True:
                try:
                    applied = await self.step()
                    swept = await self.sweep()
                except ProjectionConflictError as exc:
                    _log.warning("projector.conflict", error=str(exc))
                    continue
                except StoreError as exc:
                    _log.warning("projector.store_error", error=str(exc))
                    applied = swept = 0
                if applied == 0 and swept == 0:
                    await asyncio.sleep(idle_interval)
        finally:
            if self._claims is not None:
                await self._claims.release()
