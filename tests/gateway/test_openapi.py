"""The OpenAPI document, and the live API held to it: schemathesis and a garbage fuzzer against ``xinyong-gateway
serve`` in a subprocess (SQLite, projector on, a few subjects on lists, an API key with every scope).

The document served at ``/openapi.json`` is byte for byte ``schemas/openapi.json``, which an OpenAPI 3.1 validator
accepts. Schemathesis generates requests for the query and operations endpoints from it (schema-valid ones, and
invalid ones that must be refused) and checks every answer: never a 5xx, a documented status and content type,
documented headers, a body that matches the schema, and a 401 when the credentials are left out. The webhook
endpoint is left to ``test_ingest.py``, whose property tests sign what they send (unsigned requests only ever meet
the 404/401 of the first checks). The examples run against the gateway in ``test_examples.py``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import (
    PROBLEM_JSON,
    admin,
    serving,
)
from xinyong import EventSender, ListChangesPage, ScreeningResponse, verify_attestation
from xinyong.attestations import AttestationResponse
from xinyong.openapi import build_openapi
from xinyong.schemas import OPENAPI_FILE, render

REPO = Path(__file__).resolve().parents[2]

BLACK = {"id_type": "uscc", "id": make_uscc(random.Random(31)), "name": "假货旗舰店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(32)), "name": "赵敏"}


@dataclass
class Live:
    base_url: str
    api_key: str
    log_path: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``xinyong-gateway serve`` on a free localhost port with a black-listed shop and a person on watch."""
    folder = tmp_path_factory.mktemp("live")
    url = f"sqlite:///{folder / 'gateway.db'}"
    (source,) = admin(url, ("sources", "add", "--kind", "marketplace", "--name", "fuzz"))
    (key,) = admin(
        url,
        (
            "keys",
            "add",
            "--name",
            "fuzz",
            "--scopes",
            "screen,changes,cases,attest,subscribe",
            "--sources",
            source["source_id"],
        ),
    )
    log_path = folder / "gateway.log"
    # No dispatcher: whatever subscription schemathesis makes, nothing is ever sent anywhere.
    with serving(url, log_path, "--no-dispatcher") as (port, _):
        base_url = f"http://127.0.0.1:{port}"

        async def post() -> None:
            async with EventSender(base_url, source["source_id"], source["secret"]) as sender:
                await sender.send(event("listing.violation", merchant=BLACK, kind="counterfeit", confirmed=True))
                await sender.send(event("review.manipulation_detected", merchant=PERSON, confirmed=True))

        asyncio.run(post())
        live = Live(base_url, key["api_key"], log_path)
        deadline = time.monotonic() + 20
        while len(get_json(live, "/v1/lists/changes")["changes"]) < 2:  # the projector inside serve caught up
            assert time.monotonic() < deadline, "the projector did not catch up"
            time.sleep(0.05)
        yield live


def request(
    live: Live, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """One request on a fresh connection: (status, content type, body)."""
    host, port = live.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            method, path, body=body, headers={"Authorization": f"Bearer {live.api_key}", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def get_json(live: Live, path: str) -> Any:
    status, _, body = request(live, "GET", path)
    assert status == 200, body
    return json.loads(body)


# -- the document ------------------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_openapi()
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


def test_the_served_document_is_the_checked_in_file(live: Live) -> None:
    with urllib.request.urlopen(f"{live.base_url}/openapi.json", timeout=5) as response:  # noqa: S310 -- localhost
        served = response.read()
        assert response.headers["Content-Type"].startswith("application/json")
    assert served == (REPO / "schemas" / OPENAPI_FILE).read_bytes()
    assert served == render(build_openapi()).encode()


def test_the_live_answers_match_the_wire_models(live: Live) -> None:
    body = json.dumps({"subjects": [BLACK, PERSON, {"id_type": "uscc", "id": make_uscc(random.Random(1))}]}).encode()
    status, content_type, answer = request(live, "POST", "/v1/screenings", body, {"Content-Type": "application/json"})
    assert (status, content_type) == (200, "application/json")  # UTF-8, as JSON always is (RFC 8259)
    results = ScreeningResponse.model_validate_json(answer).results
    assert [r.list for r in results] == ["black", "watch", "none"]
    page = ListChangesPage.model_validate_json(request(live, "GET", "/v1/lists/changes?limit=10")[2])
    assert [change.subject.id_type for change in page.changes] == ["uscc", "ric"]
    body = json.dumps({"subject": PERSON}).encode()
    status, content_type, answer = request(live, "POST", "/v1/attestations", body, {"Content-Type": "application/json"})
    assert (status, content_type) == (200, "application/json")
    token = AttestationResponse.model_validate_json(answer).attestation
    claims = verify_attestation(token, request(live, "GET", "/.well-known/jwks.json")[2])
    assert (claims.list, claims.subject.id_type) == ("watch", "ric")


# -- schemathesis ------------------------------------------------------------------------------------------


schema = schemathesis.openapi.from_dict(build_openapi()).exclude(path_regex="^/v1/webhooks/")
"""The query and operations endpoints of the document (the webhook endpoint is ``test_ingest``'s)."""


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_live_api_never_fails_and_never_contradicts_its_document(case: Any, live: Live) -> None:
    case.call_and_validate(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {live.api_key}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
            negative_data_rejection,
            ignored_auth,
        ],
    )


# -- garbage ---------------------------------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
subject_like = st.dictionaries(
    st.sampled_from(["id_type", "id", "name", "nmae"]),
    json_leaves | st.sampled_from(["uscc", "ric", BLACK["id"], PERSON["id"], "91320706MA1Y2N6Q4X"]),
    max_size=4,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.lists(subject_like, max_size=6).map(lambda subjects: json.dumps({"subjects": subjects}).encode()),
    st.lists(json_values, max_size=3).map(lambda subjects: json.dumps({"subjects": subjects}).encode()),
)
content_types = st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain", ""])


@given(body=bodies, content_type=content_types)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_garbage_of_any_shape_gets_a_problem_never_a_500(live: Live, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, answer_type, answer = request(live, "POST", "/v1/screenings", body, headers)
    assert status in (200, 400, 415, 422), answer
    if status == 200:
        ScreeningResponse.model_validate_json(answer)
    else:
        assert answer_type == PROBLEM_JSON
        problem = json.loads(answer)
        assert problem["status"] == status
        for secret in (PERSON["id"], PERSON["name"]):
            assert secret not in answer.decode()


@given(
    after=st.one_of(st.none(), st.text(max_size=25), st.integers(min_value=-5, max_value=10**20).map(str)),
    limit=st.one_of(st.none(), st.text(max_size=6), st.integers(min_value=-5, max_value=2000).map(str)),
)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_cursor_and_limit_get_a_page_or_a_400(live: Live, after: str | None, limit: str | None) -> None:
    query = urllib.parse.urlencode({k: v for k, v in (("after", after), ("limit", limit)) if v is not None})
    status, answer_type, answer = request(live, "GET", f"/v1/lists/changes?{query}")
    assert status in (200, 400), answer
    if status == 200:
        ListChangesPage.model_validate_json(answer)
    else:
        assert answer_type == PROBLEM_JSON
