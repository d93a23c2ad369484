"""The gateway's one error tree.

Domain errors are raised by the store, the key handling and the command line; the web layer maps the
ones a client can cause to ``application/problem+json`` in one middleware (``web_middlewares``)::

    GatewayError
     ├── ConfigError                settings that cannot work (bad database URL, bad option values)
     ├── MasterKeyError             master key missing, malformed, or not the key this database was sealed with
     ├── StoreError                 the storage layer failed (driver errors are translated here, once)
     │    ├── StoreUnavailableError cannot reach the database or cannot commit right now (HTTP 503)
     │    ├── SchemaNotReadyError   migrations are pending: run ``xinyong-gateway migrate``
     │    └── ProjectionConflictError another projector moved the position first (retry from the new one)
     └── SourceNotFoundError        no source with that id

Messages are one sentence a person can act on, and never contain a secret or a personal identifier.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GatewayError",
    "MasterKeyError",
    "ProjectionConflictError",
    "SchemaNotReadyError",
    "SourceNotFoundError",
    "StoreError",
    "StoreUnavailableError",
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


class SchemaNotReadyError(StoreError):
    """The database schema is not at the version this gateway needs."""


class ProjectionConflictError(StoreError):
    """Another projector committed from the same position first; nothing was written."""


class SourceNotFoundError(GatewayError):
    """No source with that id."""
