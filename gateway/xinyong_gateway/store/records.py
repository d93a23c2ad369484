"""The records that cross the storage interface, and how subjects fall into projection partitions.

Records are named (a frozen dataclass, or a named tuple where one is built per subject on a hot path), never bare
tuples, and every instant in them is :data:`Micros`, Unix time in microseconds, as the databases keep it. The
interface that takes and returns them is :class:`~xinyong_gateway.store.base.Store`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

__all__ = [
    "ALL_PARTITIONS",
    "API_SCOPES",
    "AUDIT_GENESIS",
    "PARTITIONS",
    "ApiKeyRecord",
    "ApiScope",
    "AppendResult",
    "AppendStatus",
    "ArchivedRecord",
    "AuditDraft",
    "AuditEntry",
    "AuditHead",
    "Commitment",
    "Delivery",
    "DeliveryOutcome",
    "FeedEntry",
    "InboxEntry",
    "KeyScheme",
    "ListedSubject",
    "Micros",
    "Migration",
    "NameMatch",
    "NewSourceKey",
    "OperationsState",
    "OrganisationStanding",
    "OutboxEntry",
    "OutboxState",
    "PartitionAdvance",
    "PartitionState",
    "PolicyAdoption",
    "PolicyText",
    "PoolUsage",
    "ProjectionCommit",
    "PublicSubject",
    "SchemaStatus",
    "SigningKeyRecord",
    "SourceKey",
    "SourceRecord",
    "Standing",
    "StatusChange",
    "StoredEvent",
    "SubjectName",
    "SubjectRow",
    "SubscriptionRecord",
    "SubscriptionRoutes",
    "from_micros",
    "partition_mask",
    "partition_of",
    "partitions_in",
    "to_micros",
]

KeyScheme = Literal["v1", "v1a"]
ApiScope = Literal["screen", "changes", "cases", "attest", "subscribe"]
API_SCOPES: tuple[ApiScope, ...] = ("screen", "changes", "cases", "attest", "subscribe")
"""What an API key may be allowed: ``screen`` (``POST /v1/screenings``), ``changes`` (``GET /v1/lists/changes``),
``cases`` (``GET /v1/objections/{id}``, ``GET /v1/repairs/{id}``: the key's own sources' filings), ``attest``
(``POST /v1/attestations``), ``subscribe`` (``/v1/subscriptions``: signed notifications of status changes)."""

PARTITIONS = 16
"""Subjects are split into this many projection partitions by their key's first hex digit. Each partition has
its own position in the inbox, and one projector at a time holds it, so projectors share the work while the
events of one subject are applied in order (see ``Projector``)."""
ALL_PARTITIONS = (1 << PARTITIONS) - 1
"""The bit mask of every partition: an inbox row that may concern any subject."""


def partition_of(subject_key: str) -> int:
    """The projection partition of a subject (its blind-index key is hex, so the first digit is uniform)."""
    return int(subject_key[0], 16) % PARTITIONS


def partition_mask(subject_keys: Iterable[str]) -> int:
    """The bit mask of the partitions of these subjects."""
    mask = 0
    for key in subject_keys:
        mask |= 1 << partition_of(key)
    return mask


def partitions_in(mask: int) -> list[int]:
    """The partitions whose bits are set in ``mask``, in order."""
    return [partition for partition in range(PARTITIONS) if mask >> partition & 1]


Micros = int
"""Unix time in microseconds: every instant that crosses the store interface, as the databases keep it."""


def to_micros(moment: datetime) -> Micros:
    """Unix time in microseconds (how instants are stored)."""
    return int(moment.timestamp() * 1_000_000)


def from_micros(micros: Micros) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


class AppendStatus(enum.Enum):
    ACCEPTED = "accepted"
    """Stored now, durably."""
    DUPLICATE = "duplicate"
    """The same source already stored this webhook-id with the same body."""
    CONFLICT = "conflict"
    """The same source already stored this webhook-id with a different body; nothing was written."""


@dataclass(frozen=True, slots=True)
class CaseRef:
    """An objection or repair (``kind``: ``objection`` or ``repair``) and the credit file that holds it."""

    kind: str
    case_id: str
    subject_key: str
    published_at: Micros | None = None
    """When the projector first wrote the file in which the case ended its record (an upheld objection's
    correction, a granted repair): the moment the change was published. None until then."""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One verified, validated webhook, ready to append to the inbox (the raw event log)."""

    source_id: str
    webhook_id: str
    body_digest: bytes
    event_type: str
    webhook_timestamp: int
    signature: str
    received_at: Micros
    sealed_body: bytes
    partitions: int = ALL_PARTITIONS
    """Bit mask of the projection partitions of the subjects the event is about (a hint that lets a projector
    skip rows of other partitions without opening them; all bits when unknown)."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    status: AppendStatus
    seq: int | None
    """Position in the inbox of the stored row (the existing one for a duplicate)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A row of the inbox, in log order."""

    seq: int
    source_id: str
    webhook_id: str
    event_type: str
    webhook_timestamp: int
    signature: str
    received_at: Micros
    body_digest: bytes
    sealed_body: bytes | None
    """None when the row concerns none of the partitions asked for (``read_inbox(partitions=…)``)."""
    partitions: int


@dataclass(frozen=True, slots=True)
class NewSourceKey:
    scheme: KeyScheme
    material: bytes
    """v1: the secret sealed under the master key; v1a: the raw 32-byte Ed25519 public key."""
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SourceKey:
    key_id: int
    scheme: KeyScheme
    material: bytes
    fingerprint: str
    created_at: Micros
    expires_at: Micros | None
    """None for a current key; the end of its grace period for a rotated-out key."""

    def valid_at(self, at: Micros) -> bool:
        return self.expires_at is None or at < self.expires_at


@dataclass(frozen=True, slots=True)
class SourceRecord:
    source_id: str
    kind: Literal["marketplace", "courier", "regulator", "intermediary"]
    name: str
    uscc: str | None
    rate_limit: float | None
    status: Literal["active", "disabled"]
    created_at: Micros
    disabled_at: Micros | None
    keys: tuple[SourceKey, ...]


class SubjectRow(NamedTuple):
    """A subject's credit file as stored: identity (sealed and displayable), state, status.

    A named tuple rather than a frozen dataclass: a screening builds one per subject it finds, and a tuple is cheaper
    to build (``SubjectRow._make`` straight from a database row)."""

    subject_key: str
    id_type: Literal["uscc", "ric"]
    display_id: str
    display_name: str | None
    sealed_id: bytes
    sealed_name: bytes | None
    state: str
    status: str
    next_change_at: Micros | None
    """None when time alone cannot change the status."""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An entry of the change feed: a full status snapshot and the instant it took effect, with the subject's
    identity as its credit file holds it (the feed names a RIC subject by a pseudonym computed from it)."""

    change_id: int
    subject_key: str
    snapshot: str
    effective_at: Micros
    recorded_at: Micros
    id_type: Literal["uscc", "ric"]
    sealed_id: bytes
    """The identifier, sealed under the master key (``MasterKey.open_identity(subject_key, …)``)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key of the query side as stored: never the key itself, only a keyed digest of its secret."""

    key_id: str
    name: str
    scopes: tuple[ApiScope, ...]
    rate_limit: float | None
    """Requests per second; None for the gateway's default."""
    secret_digest: bytes
    """``MasterKey.api_key_digest(key_id, secret)``."""
    sealed_lookup_secret: bytes
    """The key's lookup secret (RIC pseudonyms in the change feed), sealed under the master key."""
    created_at: Micros
    revoked_at: Micros | None
    sources: tuple[str, ...] = ()
    """The sources the key speaks for: with the ``cases`` scope it reads the objections and repair applications
    these sources filed, and no others."""

    @property
    def status(self) -> Literal["active", "revoked"]:
        return "active" if self.revoked_at is None else "revoked"


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """An attestation signing key as stored: its public half, and its private half only sealed under the master key
    (``MasterKey.seal_signing_key``, bound to the ``kid``)."""

    kid: str
    algorithm: str
    """``EdDSA`` (Ed25519), the JWS ``alg`` it signs with."""
    public_key: bytes
    """The raw 32-byte Ed25519 public key."""
    sealed_private_key: bytes
    created_at: Micros
    retired_at: Micros | None
    """When a rotation replaced it (None for the current key, the one that signs)."""

    @property
    def status(self) -> Literal["current", "retired"]:
        return "current" if self.retired_at is None else "retired"


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Where a projection partition stands: the seq of the last inbox row applied to it, and a counter of the
    commits that touched it (so a commit can tell that nobody else wrote the partition since it read)."""

    position: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class PartitionAdvance:
    """A partition a projection commit writes for: the state its step read, and the position it moves to."""

    partition: int
    expected: PartitionState
    """The commit fails unless the partition is still in this state (then its version is bumped)."""
    position: int


class FeedEntry(NamedTuple):
    """An entry to append to the change feed: a full status snapshot and the instant it took effect."""

    subject_key: str
    snapshot: str
    effective_at: Micros


class ArchivedRecord(NamedTuple):
    """A record leaving its credit file for the archive (JSON)."""

    subject_key: str
    record: str


@dataclass(frozen=True, slots=True)
class PolicyText:
    """A credit policy as it is adopted and kept: its version and its TOML text, comments and all."""

    version: str
    text: str


@dataclass(frozen=True, slots=True)
class PolicyAdoption:
    """One adoption of a policy (``policy apply``)."""

    version: str
    adopted_at: Micros
    active: bool


@dataclass(frozen=True, slots=True)
class ProjectionCommit:
    """What one projector step writes, in one transaction: its effects and its new positions together."""

    partitions: tuple[PartitionAdvance, ...]
    """Every partition the step wrote for (see :func:`check_partitions`)."""
    subjects: tuple[SubjectRow, ...]
    changes: tuple[FeedEntry, ...]
    """In order."""
    recorded_at: Micros
    archived: tuple[ArchivedRecord, ...] = ()
    replace_archive: bool = False
    """Empty the archive first (a re-projection rebuilds it)."""
    adopt_policy: PolicyText | None = None
    """Record this policy as the active one, in the same transaction (see :func:`check_policy_version`)."""
    cases: tuple[CaseRef, ...] = ()
    """Objections and repairs the written files hold, for the index that finds a subject by the case's id."""
    names: tuple[SubjectName, ...] = ()
    """Organisations' names and shop names seen in the step's events, for the public site's name search."""
    commitments: tuple[Commitment, ...] = ()
    """Credit commitments (``commitment.published``) of organisations, as the public site shows them."""
    outbox: tuple[OutboxEntry, ...] = ()
    """Notifications of ``changes`` to write to the outbox in the same transaction (``credit.subscribers``)."""
    routes_generation: int | None = None
    """The subscriptions' generation ``outbox`` was routed under: the commit fails (``SubscriptionsChangedError``)
    when it carries changes and subscriptions changed since, so no change is routed against a stale set."""


# -- the public disclosure site (``web.public``) ---------------------------------------------------------
class SubjectName(NamedTuple):
    """A name an organisation (a USCC subject, never a person) is found by: its registered name or a shop's."""

    subject_key: str
    kind: Literal["name", "shop"]
    name: str


class Commitment(NamedTuple):
    """A published credit commitment (信用承诺): the latest version by ``published_at`` wins."""

    subject_key: str
    commitment_id: str
    published_at: Micros
    items: tuple[str, ...]


class PublicSubject(NamedTuple):
    """What a subject's public page is made of, read at one instant: its stored file and its published commitments,
    newest first."""

    row: SubjectRow
    commitments: tuple[Commitment, ...]


class Standing(NamedTuple):
    """A subject's list and grade in its stored status, and when time alone may change them (the credit badge):
    read without its file."""

    list: str
    grade: str | None
    next_change_at: Micros | None


class OrganisationStanding(NamedTuple):
    """An organisation's :class:`Standing` by its USCC, as written at ``seq`` (``Store.standings_after``: the
    standings written since a reader last looked, in the order written), with what its public page shows when that
    page is its summary and commitments alone (``summary_only``: no reason in publicity, objection or agency
    section)."""

    seq: int
    code: str
    list: str
    grade: str | None
    next_change_at: Micros | None
    name: str | None
    """The name its status shows (the page's and the badge's subject)."""
    score: int | None
    measures: str | None
    """The status's measures, a JSON array."""
    policy_version: str | None
    committed: bool
    """Whether it has published commitments (``Store.public_commitments`` reads them)."""
    summary_only: bool


class NameMatch(NamedTuple):
    """A subject found by name: its identity as shown and the name that matched."""

    subject_key: str
    display_id: str
    display_name: str | None
    name: str


class ListedSubject(NamedTuple):
    """A subject on a list page: its identity as shown, its stored status (JSON) and when it was last updated."""

    subject_key: str
    id_type: Literal["uscc", "ric"]
    display_id: str
    display_name: str | None
    status: str
    updated_at: Micros


@dataclass(frozen=True, slots=True)
class Migration:
    """A numbered migration of one backend (``migrations/<backend>/NNNN_name.sql``)."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int
    pending: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.pending


AUDIT_GENESIS = "0" * 64
"""The previous hash of the audit log's first entry."""


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An operator action to append to the audit log; the store gives it its place in the chain (``append_audit``)."""

    at: Micros
    actor: str
    """Who acted: the operator's name as the command line was given it (``--actor``, ``XINYONG_ACTOR``, the OS user)."""
    action: str
    """What was done, dotted: ``sources.add``, ``subjects.reveal``, ``policy.apply`` ..."""
    target: str
    """What it was done to: a source or key id, a policy version, a subject by its masked identifier."""
    details: str
    """A JSON object, in canonical form (never a secret, a resident id or a person's name)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An entry of the audit log as stored: the draft, its place (``entry_id``: 1, 2, 3 ... without gaps) and its
    link in the chain (``prev_hash``: the previous entry's ``hash``, or :data:`AUDIT_GENESIS`)."""

    entry_id: int
    at: Micros
    actor: str
    action: str
    target: str
    details: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The last entry the audit log was given (a record of its own beside the log), with a MAC that binds the two:
    entries deleted from the end of the log leave the head pointing past it."""

    entry_id: int
    hash: str
    mac: str


@dataclass(frozen=True, slots=True)
class OperationsState:
    """What an operator watches, read in one go (``Store.operations_state``; ``/metrics`` and ``status``)."""

    inbox_head: int
    """The seq of the last inbox row (0 while the inbox is empty)."""
    positions: dict[int, int]
    """Every projection partition's position: the seq of the last inbox row applied to it."""
    oldest_unapplied: dict[int, Micros]
    """For each partition behind the head, when the first inbox row past its position was received."""
    change_feed_head: int
    """The id of the last change-feed entry (0 while the feed is empty)."""
    subjects_by_list: dict[str, int]
    """Credit files by the list their stored status names (``black``, ``watch``, ``red``, ``none``)."""
    active_sources: dict[str, int]
    """Active sources by kind."""
    outbox_pending: dict[str, tuple[int, Micros]] = field(default_factory=dict)
    """Undelivered notifications by their subscription's status (``active``, ``disabled``): how many, and when the
    oldest was written."""


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """The store's database connections in this process: in use, open and idle, and the most it opens."""

    in_use: int
    idle: int
    max_size: int


# -- subscriptions and the outbox ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """A platform's subscription to status changes, as stored (``POST /v1/subscriptions``)."""

    subscription_id: str
    key_id: str
    """The API key that subscribed: only it sees and changes the subscription, and deliveries name persons by its
    pseudonyms."""
    url: str
    lists: tuple[str, ...]
    subjects: str | None
    """A JSON list of the subjects asked for (``{"id_type": "uscc", "id"}`` or ``{"id_type": "ric", "pseudonym"}``);
    None for every subject."""
    sealed_secret: bytes
    """``MasterKey.seal_subscription_secret``: the ``whsec_`` secret deliveries are signed with."""
    sealed_previous_secret: bytes | None
    previous_expires_at: Micros | None
    """While a rotation's grace period runs, deliveries are signed with both secrets."""
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    last_sequence: int
    failing_since: Micros | None
    created_at: Micros
    disabled_at: Micros | None


@dataclass(frozen=True, slots=True)
class SubscriptionRoutes:
    """The active subscriptions as the projector routes changes to them, with the generation they were read at."""

    generation: int
    subscriptions: tuple[SubscriptionRecord, ...]
    lookup_secrets: dict[str, bytes]
    """The sealed lookup secret of each subscribing key (``key_id``), for subscriptions that name persons."""


class OutboxEntry(NamedTuple):
    """A notification to write with a projection commit: the commit's change ``change`` (an index into
    ``ProjectionCommit.changes``) for ``subscription_id``. The store gives it its sequence."""

    change: int
    subscription_id: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox message leased to a dispatcher, with all it needs to sign and send it."""

    message_id: int
    subscription_id: str
    sequence: int
    attempts: int
    """Attempts made before this one."""
    created_at: Micros
    url: str
    key_id: str
    sealed_secret: bytes
    sealed_previous_secret: bytes | None
    previous_expires_at: Micros | None
    sealed_lookup_secret: bytes
    key_revoked: bool
    change: StatusChange


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of one delivery attempt (``Store.finish_deliveries``)."""

    message_id: int
    subscription_id: str
    delivered: bool
    status: int | None
    """The HTTP status answered, None when none was (a timeout, a refused connection, a guard's refusal)."""
    error: str | None
    next_attempt_at: Micros | None
    """When to try again; None when the message is given up (the schedule is spent) or delivered."""
    disable: str | None = None
    """Disable the subscription with this reason (``gone``: a 410; ``failing``: failing for days; ...)."""


@dataclass(frozen=True, slots=True)
class OutboxState:
    """A subscription's messages by state, for the operator (``subscriptions show``)."""

    pending: int
    delivered: int
    failed: int
    last_error: str | None
