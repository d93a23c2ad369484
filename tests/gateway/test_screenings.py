"""``POST /v1/screenings``: statuses of 1 to 1000 subjects in request order, from real projected credit files."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event, make_ric, make_uscc, with_wrong_check
from tests.gateway.conftest import DEFAULT_POLICY_TEXT, Gateway, assert_problem, eventually
from xinyong import ScreeningResponse, problems
from xinyong.queries import MAX_SCREENING_SUBJECTS
from xinyong.subjects import mask_id
from xinyong_gateway.credit.policy import default_policy, parse_policy
from xinyong_gateway.credit.projector import Projector
from xinyong_gateway.store import PartitionAdvance, ProjectionCommit
from xinyong_gateway.web.query import _restamped

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

POLICY = default_policy()
PERSON_NAME = "王小明"


@dataclass
class Population:
    black: dict[str, Any]
    watch: dict[str, Any]
    red: dict[str, Any]
    person: dict[str, Any]
    unknown: dict[str, Any]


def uscc_subject(seed: int, name: str) -> dict[str, Any]:
    return {"id_type": "uscc", "id": make_uscc(random.Random(seed)), "name": name}


async def populate(gateway: Gateway) -> Population:
    """Subjects on each list, from events posted as a marketplace would and projected."""
    black, watch, red = uscc_subject(1, "假货旗舰店"), uscc_subject(2, "刷单小店"), uscc_subject(3, "诚信老店")
    person = {"id_type": "ric", "id": make_ric(random.Random(4)), "name": PERSON_NAME}
    long_ago = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    bodies = [
        event("listing.violation", merchant=black, kind="counterfeit", confirmed=True),
        event("review.manipulation_detected", merchant=watch, kind="fake_order", order_count=12, confirmed=True),
        event("merchant.registered", merchant=red, registered_at=long_ago),
        event("commitment.published", merchant=red),
        event("review.manipulation_detected", merchant=person, kind="malicious_review", order_count=0, confirmed=True),
    ]
    await gateway.post_and_project(bodies, "msg_pop")
    return Population(black, watch, red, person, uscc_subject(5, "从未上报"))


async def post_screening(gateway: Gateway, body: Any, *, key: str | None = None, **headers: str) -> Any:
    if key is None:
        key = (await gateway.add_api_key(["screen"])).api_key
    data = io.BytesIO(body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode())
    return await gateway.client.post(
        "/v1/screenings",
        data=data,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
    )


async def screen(gateway: Gateway, subjects: list[dict[str, Any]], **headers: str) -> list[dict[str, Any]]:
    response = await post_screening(gateway, {"subjects": subjects}, **headers)
    text = await response.text()
    assert response.status == 200, text
    ScreeningResponse.model_validate_json(text)  # the wire model (and so the schema) holds
    results: list[dict[str, Any]] = json.loads(text)["results"]
    return results


async def test_results_come_in_request_order_with_list_grade_measures_and_reasons(gateway: Gateway) -> None:
    population = await populate(gateway)
    before = datetime.now(UTC)
    order = [population.unknown, population.black, population.watch, population.red, population.person]
    results = await screen(gateway, order)
    assert [r["subject"]["id"] for r in results] == [mask_id(s["id_type"], s["id"]) for s in order]
    assert [r["list"] for r in results] == ["none", "black", "watch", "red", "watch"]

    unknown, black, watch, red, _person = results
    assert (unknown["grade"], unknown["score"], unknown["measures"], unknown["reasons"]) == (None, None, [], [])
    assert unknown["subject"] == {"id_type": "uscc", "id": population.unknown["id"], "name": None}
    assert black["grade"] == "D"
    assert "refuse_onboarding" in black["measures"]
    assert [(r["code"], r["list"], r["severity"]) for r in black["reasons"]] == [
        ("LISTING_COUNTERFEIT", "black", "serious"),
        ("LISTING_VIOLATION", "watch", "general"),
    ]
    assert all(r["source_events"] for r in black["reasons"])
    assert black["subject"] == {"id_type": "uscc", "id": population.black["id"], "name": "假货旗舰店"}
    assert watch["measures"] == list(POLICY.measures.watch)
    assert [r["code"] for r in watch["reasons"]] == ["MANIPULATION_CONFIRMED"]
    assert red["measures"] == list(POLICY.measures.red)
    assert (red["grade"], red["score"]) == ("A", 100)
    for result in results:
        assert result["policy_version"] == POLICY.version
        assert result["disputed"] is False
        assert before <= datetime.fromisoformat(result["as_of"]) <= datetime.now(UTC)


async def test_a_person_is_shown_masked_and_never_in_clear(gateway: Gateway) -> None:
    population = await populate(gateway)
    response = await post_screening(gateway, {"subjects": [population.person]})
    text = await response.text()
    [result] = json.loads(text)["results"]
    assert result["subject"] == {
        "id_type": "ric",
        "id": mask_id("ric", population.person["id"]),
        "name": PERSON_NAME[0] + "*" * (len(PERSON_NAME) - 1),
    }
    assert population.person["id"] not in text
    assert PERSON_NAME not in text


async def test_duplicates_and_a_full_batch_of_1000_answer_one_result_each(gateway: Gateway) -> None:
    population = await populate(gateway)
    rng = random.Random(7)
    subjects = [
        population.black if i % 100 == 0 else {"id_type": "uscc", "id": make_uscc(rng)}
        for i in range(MAX_SCREENING_SUBJECTS)
    ]
    results = await screen(gateway, subjects)
    assert len(results) == MAX_SCREENING_SUBJECTS
    assert [r["list"] == "black" for r in results] == [i % 100 == 0 for i in range(MAX_SCREENING_SUBJECTS)]
    assert [r["subject"]["id"] for r in results] == [s["id"] for s in subjects]


async def test_an_invalid_id_is_a_422_naming_its_index_and_never_its_value(gateway: Gateway) -> None:
    good = {"id_type": "uscc", "id": make_uscc(random.Random(1))}
    bad_ric = with_wrong_check(make_ric(random.Random(2)), "0123456789X")
    response = await post_screening(
        gateway,
        {
            "subjects": [
                good,
                good,
                {"id_type": "ric", "id": bad_ric, "name": PERSON_NAME},
                {"id_type": "vat", "id": "1"},
            ]
        },
    )
    problem = await assert_problem(response, 422, problems.REQUEST_INVALID)
    assert [e["pointer"] for e in problem["errors"]] == ["/subjects/2/id", "/subjects/3/id_type"]
    assert problem["errors"][0]["detail"] == "RIC check digit is wrong"
    assert "nothing was looked up" in problem["detail"]
    assert bad_ric not in json.dumps(problem)
    assert PERSON_NAME not in json.dumps(problem, ensure_ascii=False)


async def test_more_than_1000_subjects_is_a_422_that_says_to_split(gateway: Gateway) -> None:
    subjects = [{"id_type": "uscc", "id": make_uscc(random.Random(i))} for i in range(MAX_SCREENING_SUBJECTS + 1)]
    problem = await assert_problem(await post_screening(gateway, {"subjects": subjects}), 422, problems.REQUEST_INVALID)
    assert problem["detail"].startswith("At most 1000 subjects per screening (this request has 1001)")
    assert [e["pointer"] for e in problem["errors"]] == ["/subjects"]


@pytest.mark.parametrize(
    ("body", "pointers"),
    [
        ({"subjects": []}, ["/subjects"]),
        ({}, ["/subjects"]),
        ([], [""]),
        ("subjects", [""]),
        ({"subjects": {"id_type": "uscc"}}, ["/subjects"]),
        ({"subjects": [None]}, ["/subjects/0"]),
        ({"subjects": [{"id_type": "uscc"}]}, ["/subjects/0/id"]),
        ({"subjects": [{"id_type": "uscc", "id": 91320706}]}, ["/subjects/0/id"]),
        ({"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "nmae": "x"}]}, ["/subjects/0/nmae"]),
        ({"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "name": ""}]}, ["/subjects/0/name"]),
        ({"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}], "extra": 1}, ["/extra"]),
    ],
)
async def test_bodies_of_the_wrong_shape_are_422_with_pointers(
    gateway: Gateway, body: Any, pointers: list[str]
) -> None:
    problem = await assert_problem(await post_screening(gateway, body), 422, problems.REQUEST_INVALID)
    assert [e["pointer"] for e in problem["errors"]] == pointers


async def test_body_not_json_media_type_and_size_have_their_own_problems(gateway: Gateway) -> None:
    key = (await gateway.add_api_key(["screen"])).api_key
    await assert_problem(await post_screening(gateway, b"{not json", key=key), 400, problems.BODY_NOT_JSON)
    await assert_problem(await post_screening(gateway, b"\xff\xfe", key=key), 400, problems.BODY_NOT_JSON)
    response = await gateway.client.post(
        "/v1/screenings",
        data=b'{"subjects": []}',
        headers={"Authorization": f"Bearer {key}", "Content-Type": "text/plain"},
    )
    await assert_problem(response, 415, problems.UNSUPPORTED_MEDIA_TYPE)
    huge = b'{"subjects": [' + b" " * (1 << 20) + b"]}"
    await assert_problem(await post_screening(gateway, huge, key=key), 413, problems.BODY_TOO_LARGE)

    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 65536

    response = await gateway.client.post(
        "/v1/screenings",
        data=chunks(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    await assert_problem(response, 413, problems.BODY_TOO_LARGE)


async def test_a_query_parameter_is_a_400_and_nothing_is_looked_up(gateway: Gateway) -> None:
    """Subjects travel in the body only: a resident id in a URL would end up in proxies' and browsers' logs."""
    key = (await gateway.add_api_key(["screen"])).api_key
    response = await gateway.client.post(
        "/v1/screenings?id_type=uscc&id=91320706MA1Y2N6Q47",
        json={"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    await assert_problem(response, 400, problems.QUERY_INVALID)


async def test_an_idempotency_key_is_accepted_and_ignored(gateway: Gateway) -> None:
    population = await populate(gateway)
    first = await screen(gateway, [population.black], **{"Idempotency-Key": "same"})
    second = await screen(gateway, [population.watch], **{"Idempotency-Key": "same"})
    assert (first[0]["list"], second[0]["list"]) == ("black", "watch")


async def test_a_status_that_time_changed_is_computed_now_when_the_projector_has_not_swept(gateway: Gateway) -> None:
    """A file due for a time-driven change (its ``next_change_at`` has passed) is recomputed from its records."""
    population = await populate(gateway)
    key = gateway.master_key.subject_key("uscc", population.black["id"])
    row = (await gateway.store.load_subjects([key]))[key]
    stale = json.loads(row.status) | {"list": "none", "grade": "A", "measures": []}
    states = await gateway.store.partition_states()
    partition = int(key[0], 16)
    await gateway.store.commit_projection(
        ProjectionCommit(
            partitions=(PartitionAdvance(partition, states[partition], states[partition].position),),
            subjects=(row._replace(status=json.dumps(stale), next_change_at=1),),
            changes=(),
            recorded_at=1,
        )
    )
    [result] = await screen(gateway, [population.black])
    assert (result["list"], result["grade"]) == ("black", "D")


async def test_screening_switches_to_a_newly_adopted_policy(gateway: Gateway) -> None:
    """After ``policy apply``, a subject never reported names the adopted version, and a file due for a time-driven
    change is recomputed under the adopted rules (within the gateway's refresh interval)."""
    population = await populate(gateway)
    text = DEFAULT_POLICY_TEXT.replace(f'version = "{POLICY.version}"', 'version = "lyg-2026.9"').replace(
        '"public_exposure"]', '"public_exposure", "deposit_forfeit"]'
    )
    adopted = parse_policy(text)
    assert "deposit_forfeit" in adopted.measures.black
    await Projector(gateway.store, gateway.master_key, POLICY).reproject(adopted, text)
    key = gateway.master_key.subject_key("uscc", population.black["id"])
    row = (await gateway.store.load_subjects([key]))[key]
    stale = json.loads(row.status) | {"list": "none", "grade": "A", "measures": [], "policy_version": POLICY.version}
    partition = int(key[0], 16)
    state = (await gateway.store.partition_states())[partition]
    await gateway.store.commit_projection(
        ProjectionCommit(
            partitions=(PartitionAdvance(partition, state, state.position),),
            subjects=(row._replace(status=json.dumps(stale), next_change_at=1),),
            changes=(),
            recorded_at=1,
        )
    )
    api_key = (await gateway.add_api_key(["screen"])).api_key

    async def switched() -> bool:
        response = await post_screening(gateway, {"subjects": [population.unknown, population.black]}, key=api_key)
        unknown, black = json.loads(await response.text())["results"]
        return (unknown["policy_version"], black["policy_version"], black["measures"]) == (
            "lyg-2026.9",
            "lyg-2026.9",
            list(adopted.measures.black),
        )

    await eventually(switched, within=10)


async def test_the_log_line_counts_subjects_and_carries_no_identifier(
    gateway: Gateway, gateway_log: io.StringIO
) -> None:
    population = await populate(gateway)
    gateway_log.seek(0)
    gateway_log.truncate()
    await screen(gateway, [population.person, population.black, population.unknown])
    text = gateway_log.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    [request] = [line for line in lines if line.get("path") == "/v1/screenings"]
    assert request["subjects"] == 3
    for subject in (population.person, population.black, population.unknown):
        assert subject["id"] not in text
        assert mask_id(subject["id_type"], subject["id"]) not in text
    assert PERSON_NAME not in text


@given(
    name=st.one_of(st.none(), st.text(max_size=40), st.just(', "as_of": "x"}')),
    codes=st.lists(st.text(max_size=12), max_size=3),
    as_of=st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()),
)
def test_restamping_a_stored_status_equals_parsing_and_serialising_it(
    name: str | None, codes: list[str], as_of: str
) -> None:
    """The fast path that puts ``as_of`` on stored statuses gives exactly what ``json`` would, whatever they hold."""
    reasons = [
        {"code": code, "list": "watch", "severity": "general", "source_events": [1], "effective_from": as_of}
        for code in codes
    ]
    document = {
        "subject": {"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "name": name},
        "list": "watch",
        "reasons": reasons,
        "as_of": "2026-01-01T00:00:00+00:00",
    }
    stored = json.dumps(document, ensure_ascii=False)
    restamped = _restamped(stored, "2030-05-06T07:08:09.101112+00:00")
    assert json.loads(restamped) == document | {"as_of": "2030-05-06T07:08:09.101112+00:00"}
    assert json.loads(_restamped('{"as_of": "x", "list": "none"}', as_of)) == {"as_of": as_of, "list": "none"}
