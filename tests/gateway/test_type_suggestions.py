""" "Did you mean": an event type that is not in the catalogue but close to one of it is answered with that type, by
the gateway's own 422 (whatever client sent it), the SDK's sender, ``xinyong send`` and ``xinyong-gateway import``;
the suggestion never repeats what was sent, and it is computed only for a body that fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event
from tests.gateway.conftest import Gateway, assert_problem
from xinyong import EVENT_TYPES, EventSender, UnprocessableEntityError, problems
from xinyong.cli import main as xinyong_main
from xinyong.events import type_suggestion
from xinyong_gateway import validation
from xinyong_gateway.cli.importer import Importer, Rejection

RUN_PROJECTOR = False


@pytest.fixture(autouse=True)
def _gateway_lines_dropped() -> Iterator[None]:
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # the in-process gateway's log lines
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("sent", "suggested"),
    [
        ("delivery.recordd", "delivery.recorded"),
        ("Delivery.Recorded", "delivery.recorded"),
        ("delivery_recorded", "delivery.recorded"),
        ("delivery", "delivery.recorded"),
        ("penalty.imposd", "penalty.imposed"),
        ("complaint.filled", "complaint.filed"),
        ("review.manipulation", "review.manipulation_detected"),
        ("listing.violations", "listing.violation"),
        ("complaint", None),  # two types start so: no guess
        ("order.placed", None),
        ("", None),
        (7, None),
    ],
)
def test_a_near_miss_is_answered_with_the_catalogue_type(sent: object, suggested: str | None) -> None:
    assert type_suggestion(sent) == (None if suggested is None else f"Did you mean '{suggested}'?")


@given(st.text(max_size=40))
def test_a_suggestion_names_a_catalogue_type_and_never_repeats_the_input(sent: str) -> None:
    suggestion = type_suggestion(sent)
    if sent in EVENT_TYPES:
        assert suggestion is None
    if suggestion is not None:
        named = suggestion.removeprefix("Did you mean '").removesuffix("'?")
        assert named in EVENT_TYPES and named != sent


async def test_the_gateways_own_422_names_the_type_meant(gateway: Gateway) -> None:
    """A sender without the SDK (curl, another language's webhook library) gets the suggestion from the gateway."""
    source = await gateway.add_source("courier")
    response = await gateway.post(source, {**event("delivery.recorded"), "type": "Delivery.Recordd"})
    problem = await assert_problem(response, 422, problems.UNKNOWN_EVENT_TYPE)
    assert problem["detail"] == "This event type is not in the v1 catalogue. Did you mean 'delivery.recorded'?"
    assert "Recordd" not in json.dumps(problem)
    response = await gateway.post(source, {**event("delivery.recorded"), "type": "order.placed"}, webhook_id="m2")
    problem = await assert_problem(response, 422, problems.UNKNOWN_EVENT_TYPE)
    assert problem["detail"] == "This event type is not in the v1 catalogue."  # nothing close: no guess


async def test_a_valid_event_never_computes_a_suggestion(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest's path for the events that pass costs what it cost before."""

    def never(_: object) -> str | None:
        raise AssertionError("type_suggestion on a valid event")

    monkeypatch.setattr(validation, "type_suggestion", never)
    source = await gateway.add_source("courier")
    assert (await gateway.post(source, event("delivery.recorded"))).status == 202


async def test_the_sender_raises_the_gateways_422_with_the_suggestion(gateway: Gateway) -> None:
    source = await gateway.add_source("courier")
    typo = {**event("delivery.recorded"), "type": "delivery.recordd"}
    async with EventSender(gateway.base_url, source.source_id, str(source.key)) as sender:
        with pytest.raises(UnprocessableEntityError) as caught:
            await sender.send(typo)
    assert caught.value.type == problems.UNKNOWN_EVENT_TYPE
    assert caught.value.detail == "This event type is not in the v1 catalogue. Did you mean 'delivery.recorded'?"
    assert str(caught.value).endswith("Did you mean 'delivery.recorded'?")


async def test_send_and_import_put_the_suggestion_in_their_rejects(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await gateway.add_source("marketplace")
    secret = tmp_path / "secret"
    secret.write_text(str(source.key))
    events = tmp_path / "events.ndjson"
    lines = [event("complaint.filed"), {**event("complaint.filed"), "type": "complaint.filled"}]
    events.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    argv = ["send", str(events), "--source", source.source_id, "--secret-file", str(secret), "--url", gateway.base_url]
    assert await asyncio.to_thread(xinyong_main, argv) == 1
    (rejected,) = [
        json.loads(line) for line in (tmp_path / "events.ndjson.send-rejected.ndjson").read_text().splitlines()
    ]
    assert (rejected["line"], rejected["status"]) == (2, 422)
    assert rejected["detail"].endswith("Did you mean 'complaint.filed'?")

    found: list[Rejection] = []
    record = await gateway.store.get_source(source.source_id)
    assert record is not None
    importer = Importer(gateway.store, gateway.master_key, record, body_limit=gateway.settings.body_limit)
    with events.open("rb") as stream:
        await importer.run(stream, on_rejections=found.extend)
    assert [(r.line, r.problem, r.detail) for r in found] == [
        (2, problems.UNKNOWN_EVENT_TYPE, "This event type is not in the v1 catalogue. Did you mean 'complaint.filed'?")
    ]
