"""Retention: erase the natural persons a raw body names once the policy's time for it is up (``[retention]``).

A body's *last use* is the latest of its own fact time and the end (``Record.ends_at``) of every record that names
it among its sources (``source_seqs``), in a full replay of the inbox under the policy in force, archived records
included. Once ``last use + keep_bodies_for`` has passed, a body that names a natural person (a ``ric`` subject) is
replaced by its erased form (``credit/inbox.py``: the same event with stand-ins for the persons, and their file
keys), sealed like any body; the row keeps its digest, type, source, webhook id and times, so the log stays
verifiable, and a replay applies the same facts to the same files: no list changes. A body that names no person
is left as it is (companies' identities are public).

A person whose every body has been erased is then forgotten: their subject row's sealed identifier and name are
removed (``identity_erased_at``). Their file, status and masked display stay, and a screening by identifier still
finds the file through the blind index (a keyed hash that cannot be turned back into the identifier). After that,
nothing in the database opens to their resident id.

Runs: ``xinyong-gateway retention run [--dry-run]``, and inside ``serve`` every ``XINYONG_RETENTION_INTERVAL``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from xinyong.subjects import Subject
from xinyong_gateway.credit.engine import LoggedEvent, fact_time, project, subjects_of
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.inbox import erased_body, read_logged
from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import Store, to_micros

__all__ = ["RetentionResult", "run_retention"]

_PAGE = 2000
_ERASE_PAGE = 500


@dataclass(frozen=True, slots=True)
class RetentionResult:
    events: int
    """Inbox rows examined."""
    already_erased: int
    due: int
    """Bodies whose time is up and that name a person (erased now, unless a dry run)."""
    erased: int
    subjects_due: int
    """Persons every one of whose bodies is (now) erased."""
    subjects_forgotten: int
    keep_days: int
    dry_run: bool

    @property
    def audit_details(self) -> dict[str, int]:
        """What the audit log records of a run (counts only: no person is named)."""
        return {"erased": self.erased, "forgotten": self.subjects_forgotten, "keep_days": self.keep_days}


async def run_retention(
    store: Store,
    master: MasterKey,
    configured: Policy,
    now: datetime,
    *,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RetentionResult:
    """Erase what is due at ``now`` (module docstring); with ``dry_run``, only count it."""
    policy = await PolicyInForce(store, configured).refresh()
    keep = policy.keep_bodies_for
    events: list[LoggedEvent] = []
    erased_before: set[int] = set()
    after = 0
    while rows := await store.read_inbox(after, _PAGE):
        for row in rows:
            logged = read_logged(row, master)
            events.append(logged)
            if logged.file_keys is not None:
                erased_before.add(row.seq)
        after = rows[-1].seq
        if progress is not None:
            progress(f"reading the inbox: {len(events):,} events")

    def key_of(subject: Subject) -> str:
        return master.subject_key(subject.id_type, subject.id)

    last_use = {logged.seq: fact_time(logged.event) for logged in events}
    for credit_file in project(events, policy, key_of).values():
        for record in (*credit_file.records.values(), *credit_file.archived):
            for seq in record.source_seqs:
                if seq in last_use:
                    last_use[seq] = max(last_use[seq], record.ends_at())
    persons: dict[str, list[int]] = {}
    due: dict[int, bytes] = {}
    for logged in events:
        named = False
        for field_name, subject in subjects_of(logged.event).items():
            if subject.id_type == "ric":
                named = True
                persons.setdefault(logged.file_key(field_name, subject, key_of), []).append(logged.seq)
        if named and logged.seq not in erased_before and last_use[logged.seq] + keep <= now:
            body = erased_body(logged, master)
            if body is not None:
                due[logged.seq] = body
    gone = erased_before | due.keys()
    forgotten = [key for key, seqs in persons.items() if all(seq in gone for seq in seqs)]
    erased = subjects_forgotten = 0
    if not dry_run:
        at = to_micros(now)
        lifecycle = store.lifecycle()
        seqs = sorted(due)
        for start in range(0, len(seqs), _ERASE_PAGE):
            erased += await lifecycle.erase_bodies(
                seqs[start : start + _ERASE_PAGE],
                lambda seq, source_id, webhook_id: master.seal_body(source_id, webhook_id, due[seq]),
                at,
            )
            if progress is not None:
                progress(f"erased {erased:,} of {len(seqs):,} bodies")
        subjects_forgotten = await lifecycle.erase_identities(forgotten, at)
    return RetentionResult(
        events=len(events),
        already_erased=len(erased_before),
        due=len(due),
        erased=erased,
        subjects_due=len(forgotten),
        subjects_forgotten=subjects_forgotten,
        keep_days=keep.days,
        dry_run=dry_run,
    )
