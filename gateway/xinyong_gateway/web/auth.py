"""``Authorization: Bearer <API key>`` for the query endpoints: 401, 403 and the per-key rate limit.

    401 ``api-key-invalid``  no Bearer credentials, or a key that is malformed, unknown, revoked or has a wrong
                             secret: one answer for all of them, so a caller learns nothing about which key ids
                             exist (a source's ``whsec_`` secret is just a malformed key); with
                             ``WWW-Authenticate: Bearer`` (RFC 6750)
    403 ``scope-missing``    a working key without the endpoint's scope
    429 ``rate-limited``     over the key's rate (``Retry-After``): a guard against a runaway client

The key's id (never its secret) goes on the request's log line.
"""

from __future__ import annotations

import time

from aiohttp import web

from xinyong import problems
from xinyong_gateway.access import ActiveApiKey, ApiKeyRegistry, parse_api_key
from xinyong_gateway.store import ApiScope
from xinyong_gateway.web.middleware import LOG_FACTS
from xinyong_gateway.web.problems import ProblemError

__all__ = ["authenticate"]

_REALM = 'Bearer realm="xinyong"'
_BAD_KEY = "Send a valid API key as Authorization: Bearer xyk_… (keys come from `xinyong-gateway keys add`)."


def _unauthorised(challenge: str) -> ProblemError:
    return ProblemError(problems.API_KEY_INVALID, _BAD_KEY, headers={"WWW-Authenticate": challenge})


async def authenticate(request: web.Request, registry: ApiKeyRegistry, scope: ApiScope) -> ActiveApiKey:
    """The working key of this request that holds ``scope``, with a token taken from its rate bucket."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorised(_REALM)
    parsed = parse_api_key(token.strip())
    if parsed is None:
        raise _unauthorised(f'{_REALM}, error="invalid_token"')
    key_id, secret = parsed
    key = registry.get(key_id) or await registry.lookup(key_id)
    if key is None or not key.verifies(registry.master, secret):
        raise _unauthorised(f'{_REALM}, error="invalid_token"')
    request[LOG_FACTS]["key_id"] = key_id
    if scope not in key.scopes:
        raise ProblemError(
            problems.SCOPE_MISSING,
            f"This API key lacks the scope {scope!r}; issue one with `keys add --scopes {scope}`.",
            headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope", scope="{scope}"'},
        )
    wait = key.bucket.take(time.monotonic())
    if wait:
        raise ProblemError(
            problems.RATE_LIMITED,
            "This API key is sending faster than its limit.",
            headers={"Retry-After": key.bucket.retry_after_header(wait)},
        )
    return key
