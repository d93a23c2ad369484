"""``xinyong-gateway verify``: what can be checked in a database without trusting it (after a restore, say).

1. **The inbox**: every body opens with the master key and, unless retention erased it (``credit/inbox.py``),
   hashes to the keyed digest stored beside it; an erased body opens and parses (its digest stays as evidence of
   the body that was).
2. **The audit log**: its chain holds (``audit.verify``).
3. **The credit files**: a full replay of the inbox under the policy in force equals every stored file, and no file
   is missing or extra. Only when the projector has caught up with the inbox: otherwise the files are reported as
   not compared (run ``xinyong-gateway project --once`` first).

Nothing is written. Subjects are named by their file key (the blind index), never by an identifier.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from xinyong.subjects import Subject
from xinyong_gateway import audit
from xinyong_gateway.credit.engine import LoggedEvent, project
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.inbox import is_erased, read_logged
from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import GatewayError
from xinyong_gateway.store import Store

__all__ = ["Verification", "verify_database"]

_PAGE = 2000
_SHOWN = 10
"""Problems named by position or key, at most (the counts are complete)."""


@dataclass(slots=True)
class Verification:
    bodies: int = 0
    erased: int = 0
    bad_bodies: list[int] = field(default_factory=list)
    """Inbox positions (seq) of bodies that do not open, parse or hash to their digest."""
    bad_body_count: int = 0
    audit: audit.AuditVerification | None = None
    files: int = 0
    files_compared: bool = False
    behind: str | None = None
    """Why the files were not compared (the projector has not caught up)."""
    differing: list[str] = field(default_factory=list)
    """File keys whose stored file differs from the replay, or is missing or extra."""
    differing_count: int = 0

    @property
    def intact(self) -> bool:
        audit_intact = self.audit is not None and self.audit.intact
        return not self.bad_body_count and audit_intact and self.files_compared and not self.differing_count

    def lines(self) -> list[str]:
        """One line per check, as a person reads them."""
        bodies = f"inbox: {self.bodies} bodies open and match their digests ({self.erased} erased by retention)"
        if self.bad_body_count:
            shown = ", ".join(str(seq) for seq in self.bad_bodies)
            bodies = f"inbox: {self.bad_body_count} of {self.bodies} bodies BROKEN (positions {shown})"
        audit_line = self.audit.summary() if self.audit is not None else "audit log: not checked"
        if not self.files_compared:
            files = f"credit files: not compared ({self.behind})"
        elif self.differing_count:
            files = f"credit files: {self.differing_count} DIFFER from a replay (keys {', '.join(self.differing)})"
        else:
            files = f"credit files: all {self.files} equal a full replay of the inbox"
        return [bodies, audit_line, files]


def _note(found: list[str] | list[int], item: str | int) -> None:
    if len(found) < _SHOWN:
        found.append(item)  # type: ignore[arg-type]


async def verify_database(
    store: Store, master: MasterKey, configured: Policy, *, progress: Callable[[str], None] | None = None
) -> Verification:
    """Run the three checks of the module docstring on ``store``."""
    result = Verification()
    events: list[LoggedEvent] = []
    after = 0
    while rows := await store.read_inbox(after, _PAGE):
        for row in rows:
            result.bodies += 1
            try:
                body = master.open_body(row.source_id, row.webhook_id, row.sealed_body or b"")
                erased = is_erased(body)
                if not erased and not hmac.compare_digest(master.body_digest(body), row.body_digest):
                    raise GatewayError("digest")
                events.append(read_logged(row, master))
                result.erased += erased
            except (GatewayError, ValueError):
                result.bad_body_count += 1
                _note(result.bad_bodies, row.seq)
        after = rows[-1].seq
        if progress is not None:
            progress(f"inbox: {result.bodies:,} bodies checked")
    result.audit = await audit.verify(store, master)
    states = await store.partition_states()
    behind = [partition for partition, state in states.items() if state.position < after]
    if behind:
        result.behind = f"the projector is behind the inbox in {len(behind)} partitions: run `project --once` first"
        return result
    policy = await PolicyInForce(store, configured).refresh()
    replayed = project(events, policy, lambda subject: _key_of(master, subject))
    stored_keys = set()
    last = ""
    while pages := await store.lifecycle().subject_states(last, _PAGE):
        for key, state in pages:
            stored_keys.add(key)
            replay = replayed.get(key)
            if replay is None or replay.to_json() != state:
                result.differing_count += 1
                _note(result.differing, key)
        last = pages[-1][0]
        if progress is not None:
            progress(f"credit files: {len(stored_keys):,} compared")
    for key in replayed.keys() - stored_keys:
        result.differing_count += 1
        _note(result.differing, key)
    result.files, result.files_compared = len(stored_keys), True
    return result


def _key_of(master: MasterKey, subject: Subject) -> str:
    return master.subject_key(subject.id_type, subject.id)
