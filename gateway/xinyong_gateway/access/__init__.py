"""Who may send events and who may ask: sources and API keys, issued, kept in memory, and rate-limited.

    sources.py    sources (marketplaces, couriers, regulators) and their keys: issuing and rotating them, and the
                  in-memory registry of ready verifiers that ingest checks signatures with
    api_keys.py   API keys of the query side: issuing them (digest and sealed lookup secret) and their registry
    signing_keys.py the gateway's attestation signing keys (Ed25519, sealed under the master key): making and
                  rotating them, and the keyring that signs attestations and publishes the JWKS
    registry.py   the mechanism both registries share: reloads every few seconds, and at once for an unknown id
    ratelimit.py  token buckets, a guard against a runaway client

The HTTP edge (``web``) authenticates with the registries; the command line issues, rotates, disables and revokes.
"""

from __future__ import annotations

from xinyong_gateway.access.api_keys import (
    API_KEY_PREFIX,
    ActiveApiKey,
    ApiKeyRegistry,
    IssuedApiKey,
    add_api_key,
    parse_api_key,
)
from xinyong_gateway.access.ratelimit import TokenBucket
from xinyong_gateway.access.registry import MISS_RELOAD_INTERVAL, Registry, refresh_every
from xinyong_gateway.access.signing_keys import (
    SigningKeyring,
    ensure_signing_key,
    jwk_of,
    new_attestation_id,
    rotate_signing_key,
)
from xinyong_gateway.access.sources import (
    OPERATOR_SOURCE_ID,
    ActiveSource,
    SourceRegistry,
    add_source,
    ensure_operator_source,
    new_source_id,
    rotate_source,
)

__all__ = [
    "API_KEY_PREFIX",
    "MISS_RELOAD_INTERVAL",
    "OPERATOR_SOURCE_ID",
    "ActiveApiKey",
    "ActiveSource",
    "ApiKeyRegistry",
    "IssuedApiKey",
    "Registry",
    "SigningKeyring",
    "SourceRegistry",
    "TokenBucket",
    "add_api_key",
    "add_source",
    "ensure_operator_source",
    "ensure_signing_key",
    "jwk_of",
    "new_attestation_id",
    "new_source_id",
    "parse_api_key",
    "refresh_every",
    "rotate_signing_key",
    "rotate_source",
]
