"""Request ids: a sane ``X-Request-Id`` is kept, anything else is replaced by one of ours; the id is answered, put in
every problem document and written on the request's log line, so a sender's support ticket finds its line."""

from __future__ import annotations

import io
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import make_ric
from tests.gateway.conftest import Gateway, assert_problem
from xinyong import problems
from xinyong_gateway.web.middleware import _DIGIT_RUN, _SANE_REQUEST_ID

RUN_PROJECTOR = False


def log_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def request_line(buffer: io.StringIO, request_id: str) -> dict[str, object]:
    (line,) = [
        line for line in log_lines(buffer) if line.get("event") == "request" and line["request_id"] == request_id
    ]
    return line


@pytest.mark.parametrize("given_id", ["ticket-4711", "0f8e2c7a-1b3d-4e5f-8a9b-0c1d2e3f4a5b", "a", "x" * 128, "a.b:c_d"])
async def test_a_sane_request_id_is_kept_in_the_answer_the_problem_and_the_log_line(
    gateway: Gateway, gateway_log: io.StringIO, given_id: str
) -> None:
    response = await gateway.client.post("/v1/webhooks/src_nobody", data=b"{}", headers={"X-Request-Id": given_id})
    problem = await assert_problem(response, 404, problems.SOURCE_NOT_FOUND)
    assert response.headers["X-Request-Id"] == given_id
    assert problem["request_id"] == given_id
    line = request_line(gateway_log, given_id)
    assert (line["status"], line["problem"]) == (404, "source-not-found")


@pytest.mark.parametrize(
    "given_id",
    [
        "",
        "x" * 129,
        "-leading-dash",
        "has space",
        "semi;colon",
        'quote"d',
        "order/42",
        make_ric(random.Random(7)),  # a resident identity number must never reach a log line
        "req-123456789012345",  # a run of 15 digits: it could be an old resident identity number
    ],
)
async def test_an_insane_request_id_is_replaced_everywhere_and_never_logged(
    gateway: Gateway, gateway_log: io.StringIO, given_id: str
) -> None:
    response = await gateway.client.get("/nowhere", headers={"X-Request-Id": given_id})
    problem = await assert_problem(response, 404, problems.NOT_FOUND)
    ours = response.headers["X-Request-Id"]
    assert ours != given_id and problem["request_id"] == ours
    request_line(gateway_log, ours)
    if given_id:
        assert given_id not in gateway_log.getvalue()


async def test_every_answer_carries_a_request_id_and_each_of_ours_is_new(gateway: Gateway) -> None:
    ids = set()
    for _ in range(3):
        response = await gateway.client.get("/healthz")
        assert response.status == 200
        ids.add(response.headers["X-Request-Id"])
    assert len(ids) == 3


@given(st.one_of(st.text(max_size=140), st.text(alphabet="0123456789a.-", max_size=140)))
def test_the_sanity_rule_keeps_only_short_plain_ids_without_long_digit_runs(given_id: str) -> None:
    """The rule, held against its statement: 1 to 128 of ``A-Z a-z 0-9 . _ : -``, a letter or digit first, no run of
    15 digits."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
    expected = (
        1 <= len(given_id) <= 128
        and all(char in allowed for char in given_id)
        and given_id[0].isascii()
        and given_id[0].isalnum()
        and not any(
            given_id[i : i + 15].isdigit() and given_id[i : i + 15].isascii() for i in range(len(given_id) - 14)
        )
    )
    kept = bool(_SANE_REQUEST_ID.fullmatch(given_id)) and not _DIGIT_RUN.search(given_id)
    assert kept == expected
