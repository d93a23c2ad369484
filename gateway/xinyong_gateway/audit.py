"""The audit log of operator actions: append-only, hash-chained, keyed.

Every command that acts as an operator records one entry with :func:`record`: who acted (``actor``), what was done
(``action``, dotted: ``sources.add``, ``subjects.reveal``), to what (``target``: a source or key id, a policy version,
a subject by its masked identifier) and a JSON object of ``details``. An entry never holds a secret, a resident id or
a person's name: callers pass what identifies the thing acted on, never a value it revealed.

**The chain.** Entry *n*'s hash is HMAC-SHA256, under the master key's ``audit`` key (``crypto``), of entry *n-1*'s
hash (64 hex digits; :data:`AUDIT_GENESIS`, 64 zeros, for the first entry) followed by the entry's canonical JSON:
``{"action", "actor", "at", "details", "entry_id", "target"}`` with sorted keys, no spaces and UTF-8 text
(``ensure_ascii=False``). The store appends an entry and moves a head record to it in one transaction, appenders
taking turns (``Store.append_audit``), so ids run 1, 2, 3 ... without gaps and concurrent writers keep one chain. The
head record carries a MAC of its own (``head:<entry_id>:<hash>`` under the same key).

**What verification proves** (:func:`verify`, ``xinyong-gateway audit verify``): read in entry order, every entry's id
follows the one before it, its previous hash is the hash of the entry before it, and its hash matches its contents;
the head record's MAC is valid and its entry is there with its hash. An entry changed, deleted, inserted or moved
breaks one of these at the first entry concerned, and nobody without the master key can compute hashes that mend
it. What it cannot prove alone: that the newest entries were not deleted together with the head record being set
back to an older value copied earlier (or the whole log dropped); a head hash noted outside the database and passed
back (``anchor``) catches that too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import AUDIT_GENESIS, AuditDraft, AuditEntry, AuditHead, Store, to_micros

__all__ = ["AUDIT_GENESIS", "AuditVerification", "ChainCheck", "KeyedChain", "canonical_json", "record", "verify"]

_ACTION = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_MAX_ACTION = 64
_MAX_ACTOR = 128
_MAX_TARGET = 256
_PAGE = 1000
"""Entries read per query while verifying."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no spaces, UTF-8 text as it is (``ensure_ascii=False``), no NaN or infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class KeyedChain:
    """The gateway's :class:`~xinyong_gateway.store.AuditChain`: HMAC-SHA256 under the master key's audit key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def entry_hash(self, entry_id: int, prev_hash: str, draft: AuditDraft) -> str:
        """Raises ``ValueError`` when ``draft.details`` is not JSON (a stored entry that was altered)."""
        document = {
            "entry_id": entry_id,
            "at": draft.at,
            "actor": draft.actor,
            "action": draft.action,
            "target": draft.target,
            "details": json.loads(draft.details),
        }
        message = prev_hash.encode() + canonical_json(document).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def head_mac(self, entry_id: int, entry_hash: str) -> str:
        # No entry's message can equal this one: an entry's holds the canonical JSON's "{".
        return hmac.new(self._key, f"head:{entry_id}:{entry_hash}".encode(), hashlib.sha256).hexdigest()


def _text(value: str, what: str, limit: int) -> str:
    cleaned = value.strip()
    if not cleaned or len(cleaned) > limit:
        raise ValueError(f"The audit entry's {what} must be 1 to {limit} characters.")
    if any(unicodedata.category(char) == "Cc" for char in cleaned):
        raise ValueError(f"The audit entry's {what} must not contain control characters.")
    return cleaned


async def record(
    store: Store,
    master: MasterKey,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> AuditEntry:
    """Append one operator action to the audit log and return the entry as stored.

    ``action`` is dotted lower-case (``sources.add``); ``details`` a JSON object (no secret, resident id or person's
    name). Raises ``ValueError`` for an empty or over-long actor or target, or a malformed action, and the store's
    errors when it cannot commit (a command that must not act unrecorded, ``subjects show --reveal``, records first).
    """
    if len(action) > _MAX_ACTION or not _ACTION.fullmatch(action):
        raise ValueError(f"Not an audit action: {action!r} (dotted lower-case words, e.g. sources.add).")
    draft = AuditDraft(
        at=to_micros(now or datetime.now(UTC)),
        actor=_text(actor, "actor", _MAX_ACTOR),
        action=action,
        target=_text(target, "target", _MAX_TARGET),
        details=canonical_json(dict(details or {})),
    )
    return await store.append_audit(draft, KeyedChain(master.audit_key))


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """What :func:`verify` found: the entries checked up to the first problem, and that problem (None: intact)."""

    entries: int
    """Entries found intact, from entry 1."""
    head: str
    """The hash of the last of them (:data:`AUDIT_GENESIS` when there is none): note it to pass back as ``anchor``."""
    head_entry: int
    """The id of the last of them (0 when there is none)."""
    broken_at: int | None = None
    """The first entry found wrong (missing, altered, out of place), when the problem names one."""
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        """One sentence: ``audit log intact: N entries, head <hash>`` or ``audit log broken at entry K: <what>``."""
        if self.problem is None:
            return f"audit log intact: {self.entries} entries, head {self.head}"
        if self.broken_at is not None:
            return f"audit log broken at entry {self.broken_at}: {self.problem}"
        return f"audit log broken: {self.problem}"


class ChainCheck:
    """The rules of the chain, applied to entries fed in entry order (pure: :func:`verify` feeds it from the store).

    ``head``: the head record, read before the entries (appends that commit meanwhile only add entries after it);
    ``anchor``: a head hash noted earlier, which must be the hash of one of the entries."""

    def __init__(self, key: bytes, head: AuditHead | None, *, anchor: str | None = None) -> None:
        self._chain = KeyedChain(key)
        self._head = head
        self._head_ok = head is not None and _equal(self._chain.head_mac(head.entry_id, head.hash), head.mac)
        self._anchor = anchor
        self._anchor_found = anchor is None
        self._checked = 0
        self._prev_hash = AUDIT_GENESIS
        self._broken: AuditVerification | None = None

    @property
    def checked(self) -> int:
        """The id of the last entry found intact (0 before the first)."""
        return self._checked

    def feed(self, entry: AuditEntry) -> bool:
        """Check the next entry; False once the log is found broken (then feed no more)."""
        if self._broken is not None:
            return False
        problem = self._problem_of(entry)
        if problem is not None:
            self._broken = self._break(*problem)
            return False
        if self._anchor is not None and _equal(entry.hash, self._anchor):
            self._anchor_found = True
        self._checked, self._prev_hash = entry.entry_id, entry.hash
        return True

    def result(self) -> AuditVerification:
        """The verdict once every entry was fed (or the first problem found)."""
        if self._broken is not None:
            return self._broken
        head, last = self._head, self._checked
        if head is None and last:
            return self._break(None, f"the head record is missing, with {last} entries in the log (deleted)")
        if head is not None and not self._head_ok:
            return self._break(head.entry_id, "the head record naming it does not match its MAC (altered)")
        if head is not None and head.entry_id > last:
            return self._break(
                last + 1,
                f"deleted from the end of the log (the head record names entry {head.entry_id} as the last written)",
            )
        if not self._anchor_found:
            return self._break(
                None,
                f"the head noted earlier, {self._anchor}, is not in it (entries were deleted from its end, or it was"
                " replaced)",
            )
        return AuditVerification(last, self._prev_hash, last)

    def _break(self, entry_id: int | None, problem: str) -> AuditVerification:
        return AuditVerification(self._checked, self._prev_hash, self._checked, entry_id, problem)

    def _problem_of(self, entry: AuditEntry) -> tuple[int, str] | None:
        checked, expected = self._checked, self._checked + 1
        if entry.entry_id != expected:
            where = f"the log goes from entry {checked} to" if checked else "the log starts at"
            return expected, f"deleted ({where} entry {entry.entry_id})"
        if entry.prev_hash != self._prev_hash:
            before = f"the hash of entry {checked}" if checked else "the genesis value"
            return (
                entry.entry_id,
                f"its previous hash is not {before} (an entry was inserted, deleted or moved before it)",
            )
        draft = AuditDraft(entry.at, entry.actor, entry.action, entry.target, entry.details)
        try:
            expected_hash = self._chain.entry_hash(entry.entry_id, entry.prev_hash, draft)
        except (ValueError, TypeError):  # details that are no longer JSON, a value of another type than written
            expected_hash = ""
        if not _equal(expected_hash, entry.hash):
            return entry.entry_id, "its contents do not match its hash (altered, or written without the master key)"
        head = self._head
        if head is not None and self._head_ok and head.entry_id == entry.entry_id and head.hash != entry.hash:
            return entry.entry_id, "its hash is not the one the head record holds (replaced)"
        return None


def _equal(expected: str, stored: object) -> bool:
    """Whether a stored hash or MAC (whatever a tampered row holds in its place) is the expected one."""
    return isinstance(stored, str) and hmac.compare_digest(expected.encode(), stored.encode())


async def verify(store: Store, master: MasterKey, *, anchor: str | None = None) -> AuditVerification:
    """Check the whole audit log in entry order (:class:`ChainCheck`; see the module docstring) and report the first
    problem. ``anchor``: a head hash noted earlier; the log is broken unless an entry with that hash is still in it."""
    check = ChainCheck(master.audit_key, await store.audit_head(), anchor=anchor)
    while entries := await store.read_audit_log(check.checked, _PAGE):
        if not all(check.feed(entry) for entry in entries):  # stops at the first problem
            break
    return check.result()
