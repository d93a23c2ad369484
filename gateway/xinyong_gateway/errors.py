"""The gateway's one error tree.

Domain errors are raised by the store, the key handling, the policy loader and the command line; the web layer maps
the ones a client can cause to ``application/problem+json`` in one middleware (``web.middleware``)::

    GatewayError
     ├── ConfigError                settings that cannot work (bad database URL, bad option values)
     ├── MasterKeyError             master key missing, malformed, or not the key this database was sealed with
     ├── StoreError                 the storage layer failed (driver errors are translated here, once)
     │    ├── StoreUnavailableError cannot reach the database or cannot commit right now (HTTP 503)
     │    ├── DatabaseNotFoundError no database file where the URL points (only ``migrate`` creates one)
     │    ├── SchemaNotReadyError   migrations are pending: run ``xinyong-gateway migrate``
     │    ├── ProjectionConflictError another projector moved the position first (retry from the new one)
     │    │    └── SubscriptionsChangedError subscriptions changed since the commit's changes were routed
     │    └── PolicyVersionError    a policy version already on record with another text
     ├── SourceNotFoundError        no source with that id
     ├── ApiKeyNotFoundError        no API key with that id
     ├── SigningKeyMissingError     no attestation signing key yet (``migrate`` or ``signing-keys rotate`` makes one)
     ├── SubscriptionNotFoundError  no subscription with that id (or not one of the asking key's)
     ├── OutboundRefusedError       a subscription URL the SSRF guard refuses (scheme, host, a non-public address)
     ├── ServeError                 ``serve`` cannot serve: the port is taken; (``--workers N``) workers keep failing
     ├── EventRejectedError         an event body fails the contract's checks (problem type, detail, pointers)
     └── PolicyError                a policy file that cannot be used (``credit.policy``; also a ``ValueError``)

Messages are one sentence a person can act on, and never contain a secret or a personal identifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "ApiKeyNotFoundError",
    "ConfigError",
    "DatabaseNotFoundError",
    "EventRejectedError",
    "GatewayError",
    "MasterKeyError",
    "OutboundRefusedError",
    "PolicyVersionError",
    "ProjectionConflictError",
    "SchemaNotReadyError",
    "ServeError",
    "SigningKeyMissingError",
    "SourceNotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "SubscriptionNotFoundError",
    "SubscriptionsChangedError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration cannot work."""


class MasterKeyError(GatewayError):
    """The master key is missing, malformed, or does not open this database."""


class StoreError(GatewayError):
    """The storage layer failed."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or cannot commit right now; nothing was acknowledged."""


class DatabaseNotFoundError(StoreError):
    """No database where the URL points: only ``xinyong-gateway migrate`` creates one (any other command on a
    mistyped ``--db``, or run in the wrong directory, must not leave an empty database and a new key behind)."""


class SchemaNotReadyError(StoreError):
    """The database schema is not at the version this gateway needs."""


class ProjectionConflictError(StoreError):
    """Another projector committed from the same position first; nothing was written."""


class SubscriptionsChangedError(ProjectionConflictError):
    """Subscriptions were added, removed, disabled or enabled since the commit's changes were routed to them;
    nothing was written (route again and retry)."""


class PolicyVersionError(StoreError):
    """A policy version is already on record with a different text: versions name one text for ever."""


class ServeError(GatewayError):
    """The gateway cannot serve: the port is already in use, or (``serve --workers N``) workers keep failing right
    after start."""


class SourceNotFoundError(GatewayError):
    """No source with that id."""


class ApiKeyNotFoundError(GatewayError):
    """No API key with that id."""


class SigningKeyMissingError(GatewayError):
    """The database has no attestation signing key (``migrate`` makes the first, ``signing-keys rotate`` a new one)."""


class SubscriptionNotFoundError(GatewayError):
    """No subscription with that id (for an API key: none of its own)."""


class OutboundRefusedError(GatewayError):
    """An outbound URL the SSRF guard refuses: not http(s), credentials in it, or a host that is (or resolves to) a
    loopback, private, link-local or other non-public address outside ``XINYONG_OUTBOUND_ALLOWED_NETWORKS``."""


class EventRejectedError(GatewayError):
    """An event body fails the wire contract's checks; nothing was stored.

    Carries what an answer needs: the problem ``type`` URI (``xinyong.problems``), a detail sentence, the
    JSON Pointers of schema errors, and the event type when it is one of the catalogue (for log lines).
    The detail and pointers never repeat a value from the body."""

    def __init__(
        self,
        problem_type: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] | None = None,
        event_type: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem_type = problem_type
        self.detail = detail
        self.errors = [dict(error) for error in errors] if errors is not None else None
        self.event_type = event_type
