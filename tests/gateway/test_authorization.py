"""Who gets in where: every endpoint by every kind of credential, and nothing leaked in an error.

Credentials: none; bad API keys of every shape (unknown id, wrong secret, malformed, altered, another scheme, no
scheme); a revoked key; a key without the endpoint's scope; a source's secrets used as a key (its ``whsec_`` webhook
secret, a courier's ``whsk_`` signing key) and a key's lookup secret (``xyls_``); and a good key, the control. The
answers, on each backend:

================================  ==========================================================================
``POST /v1/screenings``           401 ``api-key-invalid`` (one document for every bad credential, with a
``GET /v1/lists/changes``         ``Bearer`` challenge) · 403 ``scope-missing`` without the scope · 200 good
``GET /v1/objections/{id}``       (``cases``: 404 ``not-found`` to a good key for a case none of its sources
``GET /v1/repairs/{id}``          filed; ``test_cases_api.py`` has the rest)
``POST /v1/attestations``
``/v1/subscriptions…``            (scope ``subscribe``: 201 a subscription made, 404 for an id of nobody's)
``POST /v1/webhooks/{source}``    400 ``malformed-webhook-headers`` whatever the ``Authorization``: evidence
                                  comes only with a source's signature (``test_signature_attacks.py``)
``GET /openapi.json``,            200 whatever the credentials: public, and a bad key is not an error there
``/healthz``, ``/readyz``,
``/.well-known/jwks.json``
================================  ==========================================================================

No answer carries a secret, a key id or a hint of which keys exist (the 401 documents are equal but for their
request ids), and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.factories import event
from tests.gateway.conftest import Gateway, Source, assert_problem
from xinyong import problems
from xinyong_gateway.access import IssuedApiKey, parse_api_key
from xinyong_gateway.store import API_SCOPES, to_micros
from xinyong_gateway.web.app import API_KEYS

RUN_PROJECTOR = False
"""Nothing here needs credit files."""

REALM = 'Bearer realm="xinyong"'


@dataclass
class Holders:
    """Every credential a caller might present, issued on the test's gateway."""

    good: IssuedApiKey
    only: dict[str, IssuedApiKey]
    """A key holding just this one scope."""
    revoked: IssuedApiKey
    marketplace: Source
    courier: Source

    def secrets(self) -> list[str]:
        """Texts no answer may contain: every secret and key id issued."""
        texts = []
        for issued in (self.good, *self.only.values(), self.revoked):
            key_id, secret = parse_api_key(issued.api_key) or ("", "")
            texts += [key_id, secret, issued.lookup_secret]
        for source in (self.marketplace, self.courier):
            texts.append(str(source.key).split("_", 1)[1])
        return texts


async def issue(gateway: Gateway) -> Holders:
    revoked = await gateway.add_api_key()
    await gateway.store.revoke_api_key(revoked.record.key_id, now=to_micros(datetime.now(UTC)))
    marketplace = await gateway.add_source("marketplace")
    sources = [marketplace.source_id]
    holders = Holders(
        good=await gateway.add_api_key(API_SCOPES, sources=sources),
        only={scope: await gateway.add_api_key([scope], sources=sources) for scope in API_SCOPES},
        revoked=revoked,
        marketplace=marketplace,
        courier=await gateway.add_source("courier", ed25519=True),
    )
    app = gateway.client.app
    assert app is not None
    await app[API_KEYS].refresh()  # the revocation is known now (a running gateway sees it within 2 s)
    return holders


def _wrong_secret(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("0" if last != "0" else "1")


def _unknown_id(key: str) -> str:
    return "xyk_" + "a" * 16 + "_" + key.rsplit("_", 1)[1]


@dataclass(frozen=True)
class Credential:
    id: str
    kind: str
    """``none``, ``bad``, ``revoked``, ``unscoped``, ``source-secret`` or ``good``."""
    authorization: Callable[[Holders, str], str | None]
    """The ``Authorization`` header for an endpoint needing the given scope (None: no header)."""


def _unscoped(holders: Holders, scope: str) -> str:
    other = next(key for held, key in holders.only.items() if held != scope)
    return f"Bearer {other.api_key}"


def _only_this_scope(holders: Holders, scope: str) -> str:
    return holders.only[scope].api_key


CREDENTIALS = [
    Credential("none", "none", lambda h, s: None),
    Credential("unknown-key-id", "bad", lambda h, s: f"Bearer {_unknown_id(h.good.api_key)}"),
    Credential("wrong-secret", "bad", lambda h, s: f"Bearer {_wrong_secret(h.good.api_key)}"),
    Credential("malformed", "bad", lambda h, s: "Bearer nope"),
    Credential("key-with-a-byte-more", "bad", lambda h, s: f"Bearer {h.good.api_key}x"),
    Credential("key-upper-cased", "bad", lambda h, s: f"Bearer {h.good.api_key.upper()}"),
    Credential("basic-scheme", "bad", lambda h, s: f"Basic {h.good.api_key}"),
    Credential("bearer-without-a-key", "bad", lambda h, s: "Bearer"),
    Credential("key-without-a-scheme", "bad", lambda h, s: h.good.api_key),
    Credential("revoked-key", "revoked", lambda h, s: f"Bearer {h.revoked.api_key}"),
    Credential("key-without-the-scope", "unscoped", _unscoped),
    Credential("webhook-secret-as-key", "source-secret", lambda h, s: f"Bearer {h.marketplace.key}"),
    Credential("signing-key-as-key", "source-secret", lambda h, s: f"Bearer {h.courier.key}"),
    Credential("lookup-secret-as-key", "source-secret", lambda h, s: f"Bearer {h.good.lookup_secret}"),
    Credential("key-with-only-this-scope", "good", lambda h, s: f"Bearer {_only_this_scope(h, s)}"),
    Credential("good-key", "good", lambda h, s: f"Bearer {h.good.api_key}"),
]


@dataclass(frozen=True)
class Endpoint:
    id: str
    method: str
    path: str
    """``{source}``: the marketplace source's id."""
    scope: str | None
    """The API key scope it needs (None: not an API key endpoint)."""
    body: Any = None
    granted: tuple[int, str | None] = (200, None)
    """The answer to a good key (status, problem type)."""
    example: str | None = None
    """The path to request when ``path`` is a template of the route's (the public site's)."""
    status: int = 200
    """The answer to any credential at an endpoint that takes none."""


_NOT_MINE = (404, problems.NOT_FOUND)
"""A good key asking for a case none of its sources filed."""

ENDPOINTS = [
    Endpoint(
        "screenings",
        "POST",
        "/v1/screenings",
        "screen",
        {"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}]},
    ),
    Endpoint("changes", "GET", "/v1/lists/changes", "changes"),
    Endpoint(
        "objection", "GET", "/v1/objections/{case_id}", "cases", example="/v1/objections/obj-1", granted=_NOT_MINE
    ),
    Endpoint("repair", "GET", "/v1/repairs/{case_id}", "cases", example="/v1/repairs/rep-1", granted=_NOT_MINE),
    Endpoint(
        "attestations",
        "POST",
        "/v1/attestations",
        "attest",
        {"subject": {"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}},
    ),
    Endpoint("jwks", "GET", "/.well-known/jwks.json", None),
    Endpoint(
        "subscribe",
        "POST",
        "/v1/subscriptions",
        "subscribe",
        {"url": "https://8.8.8.8/hook", "lists": ["black"]},  # a literal public address: nothing is resolved
        granted=(201, None),
    ),
    Endpoint("subscriptions", "GET", "/v1/subscriptions", "subscribe"),
    *(
        Endpoint(
            f"subscription-{method.lower()}{suffix}",
            method,
            f"/v1/subscriptions/{{subscription_id}}{suffix}",
            "subscribe",
            body,
            example=f"/v1/subscriptions/sub_nobodys{suffix}",
            granted=(404, problems.SUBSCRIPTION_NOT_FOUND),
        )
        for method, suffix, body in (
            ("GET", "", None),
            ("DELETE", "", None),
            ("POST", "/rotate-secret", {}),
            ("POST", "/replay", {"since": "2026-01-01T00:00:00+00:00"}),
        )
    ),
    Endpoint("webhooks", "POST", "/v1/webhooks/{source}", None, event("complaint.filed")),
    Endpoint("openapi", "GET", "/openapi.json", None),
    Endpoint("healthz", "GET", "/healthz", None),
    Endpoint("readyz", "GET", "/readyz", None),
    # The public site takes no credential: whatever is sent, the same page (and never an API key echoed back).
    Endpoint("public-root", "GET", "/public", None),  # a 308 to /public/, which the client follows
    Endpoint("public-home", "GET", "/public/", None),
    Endpoint("public-css", "GET", "/public/site.css", None),
    Endpoint("public-icon", "GET", "/public/favicon.svg", None),
    Endpoint("public-search", "GET", "/public/search", None, example="/public/search?q=速达"),
    Endpoint("public-search-form", "POST", "/public/search", None),
    Endpoint(
        "public-subject",
        "GET",
        "/public/subjects/uscc/{code}",
        None,
        example="/public/subjects/uscc/91320706MA1Y2N6Q47",
        status=404,
    ),
    Endpoint("public-list", "GET", "/public/lists/{list}", None, example="/public/lists/black"),
    Endpoint("public-intermediaries", "GET", "/public/intermediaries", None, example="/public/intermediaries?page=1"),
    Endpoint("public-badge", "GET", "/public/badge/{file}", None, example="/public/badge/91320706MA1Y2N6Q47.svg"),
    Endpoint("public-other", "GET", "/public/{path}", None, example="/public/nothing", status=404),
]


def expected(endpoint: Endpoint, credential: Credential) -> tuple[int, str | None]:
    """(status, problem type) of ``credential`` at ``endpoint``."""
    if endpoint.id == "webhooks":
        return 400, problems.MALFORMED_HEADERS
    if endpoint.scope is None:
        return endpoint.status, None
    if credential.kind == "good":
        return endpoint.granted
    if credential.kind == "unscoped":
        return 403, problems.SCOPE_MISSING
    return 401, problems.API_KEY_INVALID


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[endpoint.id for endpoint in ENDPOINTS])
async def test_every_credential_gets_the_right_answer_and_nothing_leaks(gateway: Gateway, endpoint: Endpoint) -> None:
    holders = await issue(gateway)
    secrets = holders.secrets()
    path = endpoint.example or endpoint.path.format(source=holders.marketplace.source_id)
    refusals: dict[str, dict[str, Any]] = {}
    for credential in CREDENTIALS:
        authorization = credential.authorization(holders, endpoint.scope or "screen")
        headers = {"Authorization": authorization} if authorization is not None else {}
        data = json.dumps(endpoint.body).encode() if endpoint.body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = await gateway.client.request(endpoint.method, path, data=data, headers=headers)
        status, problem_type = expected(endpoint, credential)
        where = f"{credential.id} at {endpoint.id}"
        text = await response.text()
        if problem_type is None:
            assert response.status == status, f"{where}: {text}"
        else:
            problem = await assert_problem(response, status, problem_type)
            if status == 401:
                challenge = response.headers["WWW-Authenticate"]
                assert challenge == REALM if credential.kind == "none" else challenge.startswith(REALM), where
                refusals[credential.id] = {name: value for name, value in problem.items() if name != "request_id"}
            if status == 403:
                assert f"'{endpoint.scope}'" in problem["detail"], where
                assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"], where
        exposed = text + "".join(f"{name}: {value}" for name, value in response.headers.items())
        for secret in secrets:
            assert secret not in exposed, f"{where}: the answer holds {secret!r}"
    if refusals:  # one answer for every bad credential: nothing tells which keys exist, or were revoked
        documents = list(refusals.values())
        assert all(document == documents[0] for document in documents), refusals
        assert set(refusals) == {c.id for c in CREDENTIALS if c.kind in {"none", "bad", "revoked", "source-secret"}}
    assert await gateway.store.inbox_count() == 0


def test_the_matrix_covers_every_route_of_the_application() -> None:
    """A route added later without a row here fails this test."""
    from xinyong_gateway.settings import GatewaySettings
    from xinyong_gateway.web.app import create_app

    app = create_app(GatewaySettings(database_url="sqlite:///unused.db"))
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "*") and route.resource is not None  # "*": the 404 and 405 refusals
    }
    covered = {(endpoint.method, endpoint.path.replace("{source}", "{source_id}")) for endpoint in ENDPOINTS}
    assert routes == covered
