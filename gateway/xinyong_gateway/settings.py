"""Gateway settings: read once at the entrypoint, then passed in (never global).

Every field can be set from the environment with the ``XINYONG_`` prefix, e.g. ``XINYONG_DATABASE_URL``,
``XINYONG_MASTER_KEY``; command-line flags override the environment. A database URL that cannot work raises
``ConfigError`` with the form meant; any other invalid value a pydantic ``ValidationError``.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xinyong_gateway.store import check_database_url

__all__ = ["DEFAULT_DATABASE_URL", "GatewaySettings"]

DEFAULT_DATABASE_URL = "sqlite:///./var/xinyong.db"


class GatewaySettings(BaseSettings):
    """Everything the gateway needs to run, with defaults for the embedded SQLite set-up."""

    model_config = SettingsConfigDict(env_prefix="XINYONG_", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    """``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, or ``postgresql://user@host:port/db``
    (any number of gateway processes on one database; ``?search_path=schema`` picks the schema, and a password
    in the URL never appears in messages). PostgreSQL needs ``XINYONG_MASTER_KEY``."""
    master_key: SecretStr | None = None
    """Base64 of 32 random bytes. On SQLite it may instead live in a 0600 key file beside the database."""
    master_key_previous: SecretStr | None = None
    """The master key before a rotation (``master-key rotate``): while it is set, sealed data opens with either key
    and new data is sealed under ``master_key`` (README, "Rotating the master key")."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the ``/metrics`` listener (Prometheus text format); None (the default): no metrics are measured at all.
    Never the public port: ``/metrics`` is served on its own listener only."""
    metrics_host: str = "127.0.0.1"
    """Interface of the ``/metrics`` listener (loopback unless told otherwise)."""
    body_limit: int = Field(default=256 * 1024, ge=1024)
    """Largest webhook body accepted, in bytes (256 KiB: docs/wire-contract.md, "Answers")."""
    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request body may take to arrive in full; a slower one is answered 408 (a stalled or trickling
    body cannot hold a connection for ever)."""
    timestamp_tolerance: int = Field(default=300, ge=1)
    """Seconds a webhook timestamp may differ from the gateway's clock."""
    default_source_rate: float = Field(default=10_000.0, gt=0)
    """Verified requests per second a source may send unless it has its own limit."""
    source_refresh_interval: float = Field(default=2.0, gt=0)
    """Seconds between reloads of the source table (new, disabled and rotated sources)."""
    default_key_rate: float = Field(default=10_000.0, gt=0)
    """Query requests per second an API key may make unless it has its own limit (a guard, not a throttle)."""
    api_key_refresh_interval: float = Field(default=2.0, gt=0)
    """Seconds between reloads of the API keys: a revoked key stops working within this interval."""
    issuer: str = Field(default="xinyong-gateway", min_length=1, max_length=200)
    """The ``iss`` of the attestations this gateway signs: set it to the gateway's public URL (where
    ``/.well-known/jwks.json`` is served), so that a verifier knows whose keys to fetch."""
    policy_file: Path | None = None
    """The credit policy (TOML); the shipped default when unset."""
    projector: bool = True
    """Run the projector inside ``serve`` (turn off when ``xinyong-gateway project`` runs separately)."""
    dispatcher: bool = True
    """Run the notification dispatcher inside ``serve`` (turn off when ``xinyong-gateway dispatch`` runs separately)."""
    dispatch_concurrency: int = Field(default=64, ge=1, le=1024)
    """Notifications one dispatcher sends at a time (at most a quarter of them to one subscription)."""
    retry_schedule: tuple[float, ...] = Field(
        default=(0, 5, 300, 1800, 7200, 18000, 36000, 36000), min_length=1, max_length=20
    )
    """Seconds before each delivery attempt after the one before (Standard Webhooks' schedule; a JSON list in
    ``XINYONG_RETRY_SCHEDULE``: benches and tests shorten it)."""
    dispatch_timeout: float = Field(default=15.0, gt=0, le=60)
    """Seconds a delivery attempt may take in all (connecting: at most 5 s of it); the crash bench shortens it."""
    dispatch_lease: float = Field(default=60.0, gt=0)
    """Seconds a dispatcher holds the messages it claimed: a killed dispatcher's messages are sent again after it.
    Must exceed ``dispatch_timeout``."""
    outbound_allowed_networks: str = ""
    """Comma-separated CIDRs that notifications may reach although they are not public (the operator's exceptions to
    the SSRF guard, e.g. ``10.20.0.0/16`` for a platform on the same private network); empty by default."""
    actor: str | None = Field(default=None, max_length=128)
    """Who runs the operator's commands, as the audit log names them (``--actor``); the OS user when unset. Printable
    text, not only spaces."""
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    public_cache_ttl: float = Field(default=1.0, ge=0, le=60)
    """Seconds the public site reuses a subject's page or badge once worked out (``web.public.answers``): how far the
    public may lag the store, at most (0: never reused). Past it, an answer is reused while the store has committed
    nothing since (SQLite)."""
    public_cache_entries: int = Field(default=16_384, ge=1, le=1_000_000)
    """Pages and badges the public site keeps at most: a tag alone is some 300 bytes, a page's body up to 4 KiB, a
    badge's 1 KiB (bodies are kept from a second view on), so at most about 64 MiB by default. Past the ttl, answers
    stay good while nothing is committed (SQLite): this many lets a register's popular pages outlive runs of one-off
    views."""
    public_badge_book: bool = True
    """Whether badges are answered from every organisation's standing kept in memory, following the store
    (``web.public.standings``; each process its own, about 80 MiB per million organisations; SQLite only: on
    PostgreSQL every badge reads the store)."""
    public_page_book: bool = True
    """Whether that book also keeps the summary of every organisation whose public page shows nothing more than it
    and its commitments (no reason in publicity, objection or agency section), so such a page is answered from
    memory, reading at most its commitments (``web.public.summaries``; about 170 bytes more per such organisation).
    Needs ``public_badge_book``."""
    retention_interval: float = Field(default=86_400.0, ge=0)
    """Seconds between two runs of the retention job inside ``serve`` (``retention run``; 0: never inside ``serve``).
    What it erases, and when, is policy (``[retention]``)."""
    progress_interval: float = Field(default=5.0, ge=0)
    """Seconds between the progress lines of long commands (``import``, ``policy diff|apply``, ``project --once``)
    on a stderr that is not a terminal (0: every update); a terminal gets one live line instead."""

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, url: str) -> str:
        """A URL the store can open, checked before anything else is: a bare path is a ``ConfigError`` (raised as
        it is, not as a ``ValidationError``) that shows the URL meant, not a missing master key further on."""
        return check_database_url(url)

    @field_validator("outbound_allowed_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=True)  # a ValueError names the part
        return value

    @field_validator("actor")
    @classmethod
    def _printable_actor(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or any(unicodedata.category(char) == "Cc" for char in value):
            raise ValueError("the actor must be printable text")
        return value.strip()
