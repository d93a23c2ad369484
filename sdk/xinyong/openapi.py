"""The gateway's HTTP API as an OpenAPI 3.1 document, built from the wire models.

The same document is checked in as ``schemas/openapi.json`` (``python -m xinyong.schemas``) and served by the
gateway at ``GET /openapi.json``; both come from :func:`build_openapi`, so neither can drift from the models.
Component schemas are the models' JSON Schemas (draft 2020-12, which OpenAPI 3.1 uses as it is).
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import TypeAdapter

from xinyong.attestations import ATTESTATION_TYPE, Attestation, AttestationRequest, AttestationResponse, Jwks
from xinyong.events import EVENT_ADAPTER
from xinyong.queries import (
    CURSOR_PATTERN,
    MAX_CHANGES_PAGE,
    ListChangesPage,
    ObjectionCase,
    RepairCase,
    ScreeningRequest,
    ScreeningResponse,
)
from xinyong.responses import Problem, WebhookAck
from xinyong.subscriptions import (
    ReplayAccepted,
    ReplayRequest,
    SecretRotated,
    SecretRotation,
    Subscription,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionRequest,
)

__all__ = ["OPENAPI_VERSION", "build_openapi"]

OPENAPI_VERSION: Final = "3.1.0"

_REF_TEMPLATE = "#/components/schemas/{model}"
_PROBLEM_JSON = "application/problem+json"

_PROBLEM_TEXT = {
    400: "Malformed request (headers, a body that is not JSON, or a query parameter); see `type` and `detail`.",
    401: "No valid credentials: a missing, unknown or revoked API key (or, for webhooks, no valid signature).",
    403: "Authenticated, but not allowed: the API key lacks the scope (or the source may not send this type).",
    404: "Unknown or disabled source (for subscriptions: no subscription with this id for this API key).",
    405: "Method not allowed.",
    408: "The body did not arrive in full within the gateway's body timeout (30 s by default).",
    409: "The webhook id was already used with another body.",
    413: "The body is over the limit.",
    415: "The body is not declared as `application/json` (UTF-8).",
    422: "The body does not match its schema; `errors` has a JSON Pointer for each problem.",
    429: "Over the rate limit (a guard against runaway clients); retry after `Retry-After` seconds.",
    503: "The store cannot answer or commit right now; retry shortly.",
}


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _PROBLEM_TEXT[status],
        "content": {_PROBLEM_JSON: {"schema": {"$ref": _REF_TEMPLATE.format(model="Problem")}}},
    }
    if status == 429:
        response["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
    if status == 503:
        response["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
    return response


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _authenticated(status: int) -> dict[str, Any]:
    response = _problem(status)
    response["headers"] = {
        "WWW-Authenticate": {
            "description": "`Bearer …`: how to authenticate.",
            "required": True,
            "schema": {"type": "string"},
        }
    }
    return response


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway's v1 API."""
    refs, top = TypeAdapter.json_schemas(
        [
            ("screening-request", "validation", TypeAdapter(ScreeningRequest)),
            ("screening-response", "validation", TypeAdapter(ScreeningResponse)),
            ("changes-page", "validation", TypeAdapter(ListChangesPage)),
            ("objection", "validation", TypeAdapter(ObjectionCase)),
            ("repair", "validation", TypeAdapter(RepairCase)),
            ("attestation-request", "validation", TypeAdapter(AttestationRequest)),
            ("attestation-response", "validation", TypeAdapter(AttestationResponse)),
            ("attestation-claims", "validation", TypeAdapter(Attestation)),
            ("jwks", "validation", TypeAdapter(Jwks)),
            ("event", "validation", EVENT_ADAPTER),
            ("ack", "validation", TypeAdapter(WebhookAck)),
            ("problem", "validation", TypeAdapter(Problem)),
            ("subscription-request", "validation", TypeAdapter(SubscriptionRequest)),
            ("subscription-created", "validation", TypeAdapter(SubscriptionCreated)),
            ("subscription", "validation", TypeAdapter(Subscription)),
            ("subscription-list", "validation", TypeAdapter(SubscriptionList)),
            ("secret-rotation", "validation", TypeAdapter(SecretRotation)),
            ("secret-rotated", "validation", TypeAdapter(SecretRotated)),
            ("replay-request", "validation", TypeAdapter(ReplayRequest)),
            ("replay-accepted", "validation", TypeAdapter(ReplayAccepted)),
        ],
        ref_template=_REF_TEMPLATE,
    )
    components = dict(top.get("$defs", {}))
    event_schema = refs[("event", "validation")]
    if "$ref" not in event_schema:  # the union itself is inline: give it a name of its own
        components["Event"] = event_schema
        event_schema = {"$ref": _REF_TEMPLATE.format(model="Event")}

    def ref(key: str) -> str:
        return str(refs[(key, "validation")]["$ref"])

    security: list[dict[str, list[str]]] = [{"apiKey": []}]
    screenings = {
        "post": {
            "operationId": "screenSubjects",
            "summary": "Screen 1 to 1000 subjects: their list, grade, score, measures and reasons now",
            "description": (
                "One result per subject, in request order. An invalid identifier is a 422 whose error pointer names"
                " its index (`/subjects/3/id`), and nothing is looked up. Personal identifiers travel only in this"
                " body: never in a URL, and never in the gateway's logs. An `Idempotency-Key` is accepted and"
                " ignored (a screening is a read). Needs the scope `screen`."
            ),
            "tags": ["query"],
            "security": security,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Accepted and ignored: a screening changes nothing.",
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": ref("screening-request")},
                        "examples": {
                            "merchants": {
                                "summary": "A business by its code, and a sole trader by resident id and name",
                                "value": {
                                    "subjects": [
                                        {
                                            "id_type": "uscc",
                                            "id": "91320706MA1Y2N6Q47",
                                            "name": "连云港示例网店有限公司",
                                        },
                                        {"id_type": "ric", "id": "320706198605174597", "name": "王五"},
                                    ]
                                },
                            }
                        },
                    }
                },
            },
            "responses": {
                "200": _json(ref("screening-response"), "One status per subject, in request order."),
                **{str(status): _problem(status) for status in (400, 408, 413, 415, 422, 429, 503)},
                "401": _authenticated(401),
                "403": _problem(403),
            },
        }
    }
    changes = {
        "get": {
            "operationId": "listChanges",
            "summary": "The ordered feed of list, grade and measure changes, a page at a time",
            "description": (
                "Each entry is a full status snapshot, the instant it took effect and its cursor. Without `after`"
                " the feed starts at the beginning; paging with `next` never misses an entry. A RIC subject"
                " appears only as a pseudonym (HMAC-SHA256 under the API key's lookup secret). Needs the scope"
                " `changes`."
            ),
            "tags": ["query"],
            "security": security,
            "parameters": [
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "description": "A cursor (`next`, or an entry's `cursor`): the page starts after it.",
                    "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": f"Entries per page, 1 to {MAX_CHANGES_PAGE}.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CHANGES_PAGE, "default": 100},
                },
            ],
            "responses": {
                "200": _json(ref("changes-page"), "A page of the feed and the cursor to continue from."),
                **{str(status): _problem(status) for status in (400, 429, 503)},
                "401": _authenticated(401),
                "403": _problem(403),
            },
        }
    }

    def case(kind: str, operation: str, model: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation,
                "summary": f"The state and deadlines of an {kind} one of the API key's sources filed",
                "description": (
                    f"Needs the scope `cases`; the key reads the {kind}s filed by the sources it was issued for"
                    " (`keys add --sources`). Another source's case, or one not projected yet, is a 404 like an"
                    " unknown id. Deadlines are the dates of their last day, China Standard Time."
                ),
                "tags": ["query"],
                "security": security,
                "parameters": [
                    {
                        "name": "case_id",
                        "in": "path",
                        "required": True,
                        "description": f"The `{kind}_id` the filing event carried.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                    }
                ],
                "responses": {
                    "200": _json(ref(model), f"The {kind} as its subject's credit file holds it now."),
                    **{str(status): _problem(status) for status in (400, 429, 503)},
                    "401": _authenticated(401),
                    "403": _problem(403),
                    "404": {
                        **_problem(404),
                        "description": f"No {kind} with this id filed by one of the key's sources (yet).",
                    },
                },
            }
        }

    attestations = {
        "post": {
            "operationId": "attestSubject",
            "summary": "A signed attestation of one subject's status now (compact JWS, EdDSA/Ed25519)",
            "description": (
                "The subject's status at this instant, as a screening answers it, signed by the gateway: header"
                f" `alg` `EdDSA`, `kid`, `typ` `{ATTESTATION_TYPE}`; the payload is the schema `Attestation` (JWT"
                " claims `iss`, `sub`, `aud` = the asking key's id, `iat`, `jti`, and the status). A natural person"
                " appears masked with the pseudonym under the key's lookup secret, never by resident id. Verify"
                " offline against `/.well-known/jwks.json` (`xinyong.verify_attestation`). Needs the scope `attest`."
                " 503 also when the gateway has no signing key yet."
            ),
            "tags": ["query"],
            "security": security,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": ref("attestation-request")},
                        "examples": {
                            "shop": {
                                "summary": "An online shop by its code",
                                "value": {
                                    "subject": {
                                        "id_type": "uscc",
                                        "id": "91320706MA1Y2N6Q47",
                                        "name": "连云港示例网店有限公司",
                                    }
                                },
                            }
                        },
                    }
                },
            },
            "responses": {
                "200": _json(ref("attestation-response"), "The signed attestation."),
                **{str(status): _problem(status) for status in (400, 408, 413, 415, 422, 429, 503)},
                "401": _authenticated(401),
                "403": _problem(403),
            },
        }
    }
    jwks = {
        "get": {
            "operationId": "signingKeys",
            "summary": "The public keys attestations are signed with, current and retired (a JWK Set)",
            "description": (
                "Every signing key as a public JWK (`OKP`, `Ed25519`, `kid`, never a private part). Retired keys"
                " stay listed so that what they signed keeps verifying. Cacheable for five minutes; a verifier that"
                " meets an unknown `kid` fetches it again."
            ),
            "tags": ["operations"],
            "responses": {
                "200": {
                    **_json(ref("jwks"), "The JWK Set."),
                    "headers": {"Cache-Control": {"description": "How long to cache.", "schema": {"type": "string"}}},
                }
            },
        }
    }

    subscriptions = _subscription_paths(ref, security)
    webhooks = {
        "post": {
            "operationId": "postEvent",
            "summary": "Post a signed event (Standard Webhooks)",
            "description": (
                "Checked in contract order: 404 unknown source, 413 (408 for a body too slow), 415, 400 webhook"
                " headers (missing, malformed or repeated), 401 signature then"
                " timestamp, 400 body not JSON, 422 unknown type, 403 type not allowed for the source's kind, 422"
                " schema, 429, 503, then 202 accepted, 200 duplicate or 409 conflict. The signature is"
                " `v1,<base64 HMAC-SHA256>` and/or `v1a,<base64 Ed25519>` over `{id}.{timestamp}.{raw body}`."
            ),
            "tags": ["ingest"],
            "parameters": [
                {"name": "source_id", "in": "path", "required": True, "schema": {"type": "string"}},
                *(
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                    for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                ),
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": event_schema}}},
            "responses": {
                "200": _json(ref("ack"), "Stored before (same webhook id, same body): `duplicate`."),
                "202": _json(ref("ack"), "Stored now, durably: `accepted`."),
                **{str(status): _problem(status) for status in (400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503)},
            },
        }
    }
    status_object = {
        "type": "object",
        "properties": {"status": {"type": "string"}, "schema_version": {"type": "integer"}},
        "required": ["status"],
    }
    health = {
        "get": {
            "operationId": "health",
            "summary": "The process is alive",
            "tags": ["operations"],
            "responses": {"200": {"description": "Alive.", "content": {"application/json": {"schema": status_object}}}},
        }
    }
    ready = {
        "get": {
            "operationId": "ready",
            "summary": "The store is reachable and every migration is applied",
            "tags": ["operations"],
            "responses": {
                "200": {"description": "Ready.", "content": {"application/json": {"schema": status_object}}},
                "503": _problem(503),
            },
        }
    }
    openapi = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["operations"],
            "responses": {
                "200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}
            },
        }
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "xinyong credit-information gateway",
            "version": "1",
            "summary": "Signed e-commerce integrity events in; credit status, screening and the list change feed out.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "tags": [
            {"name": "query", "description": "Marketplaces: API key (`Authorization: Bearer xyk_…`) with scopes."},
            {
                "name": "subscriptions",
                "description": "Platforms: signed notifications of list changes (API key scope `subscribe`).",
            },
            {"name": "ingest", "description": "Sources: signed webhooks."},
            {
                "name": "operations",
                "description": "Health, readiness, this document and the signing keys (no authentication).",
            },
        ],
        "paths": {
            "/v1/screenings": screenings,
            "/v1/lists/changes": changes,
            "/v1/objections/{case_id}": case("objection", "getObjection", "objection"),
            "/v1/repairs/{case_id}": case("repair", "getRepair", "repair"),
            "/v1/attestations": attestations,
            **subscriptions,
            "/v1/webhooks/{source_id}": webhooks,
            "/healthz": health,
            "/readyz": ready,
            "/openapi.json": openapi,
            "/.well-known/jwks.json": jwks,
        },
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "An API key from `xinyong-gateway keys add` (`xyk_…`); scopes `screen`, `changes`, `cases`,"
                        " `attest`, `subscribe`."
                    ),
                }
            },
        },
    }


def _subscription_paths(ref: Any, security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The paths of the subscriptions API (scope ``subscribe``)."""
    id_parameter = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"}}
    problems_of_reads = {str(status): _problem(status) for status in (400, 404, 429, 503)}
    problems_of_writes = {str(status): _problem(status) for status in (400, 404, 408, 413, 415, 422, 429, 503)}
    auth = {"401": _authenticated(401), "403": _problem(403)}

    def body(key: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {"schema": {"$ref": ref(key)}}
        if example is not None:
            content["examples"] = {"example": {"value": example}}
        return {"required": True, "content": {"application/json": content}}

    return {
        "/v1/subscriptions": {
            "post": {
                "operationId": "createSubscription",
                "summary": "Subscribe a URL to changes of some lists (and, optionally, only some subjects)",
                "description": (
                    "Each matching change-feed entry is POSTed to `url` as a Standard Webhooks message of type"
                    " `list.changed`, signed `v1` with the returned `whsec_` secret (shown once); `data` is the"
                    " entry as this key's feed shows it plus `sequence` (1, 2, 3 ... per subscription). The URL must"
                    " reach only public addresses (422 `subscription-url-refused` otherwise). Persons are named by"
                    " this key's pseudonyms, never by resident id. Needs the scope `subscribe`."
                ),
                "tags": ["subscriptions"],
                "security": security,
                "requestBody": body(
                    "subscription-request",
                    {"url": "https://platform.example.com/xinyong/notifications", "lists": ["black", "watch"]},
                ),
                "responses": {
                    "201": _json(ref("subscription-created"), "The subscription and its secret (shown once)."),
                    **{key: value for key, value in problems_of_writes.items() if key != "404"},
                    **auth,
                },
            },
            "get": {
                "operationId": "listSubscriptions",
                "summary": "This API key's subscriptions",
                "tags": ["subscriptions"],
                "security": security,
                "responses": {
                    "200": _json(ref("subscription-list"), "The key's own subscriptions, oldest first."),
                    **{key: value for key, value in problems_of_reads.items() if key != "404"},
                    **auth,
                },
            },
        },
        "/v1/subscriptions/{subscription_id}": {
            "parameters": [id_parameter],
            "get": {
                "operationId": "getSubscription",
                "summary": "One of this API key's subscriptions",
                "tags": ["subscriptions"],
                "security": security,
                "responses": {"200": _json(ref("subscription"), "The subscription."), **problems_of_reads, **auth},
            },
            "delete": {
                "operationId": "deleteSubscription",
                "summary": "Delete a subscription and its undelivered messages",
                "tags": ["subscriptions"],
                "security": security,
                "responses": {"204": {"description": "Deleted."}, **problems_of_reads, **auth},
            },
        },
        "/v1/subscriptions/{subscription_id}/rotate-secret": {
            "parameters": [id_parameter],
            "post": {
                "operationId": "rotateSubscriptionSecret",
                "summary": "A new signing secret; the previous one keeps signing beside it for a grace period",
                "tags": ["subscriptions"],
                "security": security,
                "requestBody": {**body("secret-rotation", {"grace_seconds": 86400}), "required": False},
                "responses": {
                    "200": _json(ref("secret-rotated"), "The new secret (shown once)."),
                    **problems_of_writes,
                    **auth,
                },
            },
        },
        "/v1/subscriptions/{subscription_id}/replay": {
            "parameters": [id_parameter],
            "post": {
                "operationId": "replaySubscription",
                "summary": "Send again every matching change that took effect since a time (new sequences)",
                "tags": ["subscriptions"],
                "security": security,
                "requestBody": body("replay-request", {"since": "2026-12-01T00:00:00+08:00"}),
                "responses": {
                    "202": _json(ref("replay-accepted"), "How many notifications were queued."),
                    **problems_of_writes,
                    **auth,
                },
            },
        },
    }
