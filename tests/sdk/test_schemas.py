"""The checked-in JSON Schemas under ``schemas/`` match the wire models, and the generator behaves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xinyong.events import EVENT_TYPES
from xinyong.schemas import (
    JSON_SCHEMA_DIALECT,
    OPENAPI_FILE,
    SCHEMA_ID_PREFIX,
    build_files,
    build_schemas,
    check,
    main,
    render,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"


def test_checked_in_schemas_are_up_to_date() -> None:
    """schemas/ holds exactly what the models generate: no stale, missing or extra file."""
    problems = check(SCHEMAS)
    assert not problems, "JSON Schemas are out of date, run `make schemas`:\n" + "\n".join(problems)


def test_every_event_type_has_a_schema_file() -> None:
    """Integrators find one file per catalogue type, plus the union, the subject, the query side, the responses and the
    notification a subscription's receiver gets;
    the generator writes the OpenAPI document beside them."""
    expected = {f"events/{event_type}.json" for event_type in EVENT_TYPES} | {
        "event.json",
        "subject.json",
        "requests/screening.json",
        "responses/webhook-ack.json",
        "responses/problem.json",
        "responses/screening.json",
        "responses/list-changes.json",
        "notifications/list-changed.json",
        "requests/attestation.json",
        "responses/attestation.json",
        "responses/jwks.json",
        "attestation-claims.json",
    }
    assert set(build_schemas()) == expected
    assert set(build_files()) == expected | {OPENAPI_FILE}


def test_every_schema_declares_its_dialect_and_a_stable_id() -> None:
    """``$schema`` is draft 2020-12 and ``$id`` is derived from the file's path."""
    for path, schema in build_schemas().items():
        assert schema["$schema"] == JSON_SCHEMA_DIALECT
        assert schema["$id"] == SCHEMA_ID_PREFIX + path.removesuffix(".json")
    assert (
        build_schemas()["events/merchant.registered.json"]["$id"] == "urn:xinyong:schema:v1:events/merchant.registered"
    )


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_event_schema_is_closed_at_every_level(event_type: str) -> None:
    """Envelope, data and subject objects all say ``additionalProperties: false``, as validation does."""
    schema = build_schemas()[f"events/{event_type}.json"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"type", "timestamp", "data"}
    assert schema["properties"]["type"]["const"] == event_type
    data_ref = schema["properties"]["data"]["$ref"].removeprefix("#/$defs/")
    assert schema["$defs"][data_ref]["additionalProperties"] is False
    assert schema["$defs"]["Subject"]["additionalProperties"] is False


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_event_schema_marks_times_as_date_time(event_type: str) -> None:
    """``timestamp`` and every ``*_at`` field are ``format: date-time`` strings."""
    schema = build_schemas()[f"events/{event_type}.json"]
    data = schema["$defs"][schema["properties"]["data"]["$ref"].removeprefix("#/$defs/")]
    times = [schema["properties"]["timestamp"]] + [p for name, p in data["properties"].items() if name.endswith("_at")]
    assert len(times) == 2
    for prop in times:
        assert (prop["type"], prop["format"]) == ("string", "date-time")


def test_enums_and_constraints_appear_in_the_schemas() -> None:
    """Literal fields are ``enum``s; counts, lists and strings carry their bounds."""
    schemas = build_schemas()
    review = schemas["events/review.manipulation_detected.json"]["$defs"]["ReviewManipulationDetectedData"]
    assert review["properties"]["kind"]["enum"] == ["fake_order", "malicious_review", "fake_traffic", "review_cashback"]
    assert review["properties"]["order_count"]["minimum"] == 0
    assert review["properties"]["case_id"] | {"minLength": 1, "maxLength": 128} == review["properties"]["case_id"]
    registered = schemas["events/merchant.registered.json"]["$defs"]["MerchantRegisteredData"]
    verification = registered["properties"]["verification"]
    assert verification["minItems"] == 1
    assert verification["uniqueItems"] is True
    channel = schemas["events/complaint.filed.json"]["$defs"]["ComplaintFiledData"]["properties"]["channel"]
    assert "12315" in channel["enum"]


def test_union_schema_dispatches_on_type_to_every_event() -> None:
    """event.json is a ``oneOf`` over all event types with a ``type`` discriminator mapping."""
    schema = build_schemas()["event.json"]
    assert len(schema["oneOf"]) == len(EVENT_TYPES)
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)


def test_problem_schema_allows_extension_members_and_ack_does_not() -> None:
    """RFC 9457 problem documents may carry extensions; the 2xx acknowledgement is closed."""
    schemas = build_schemas()
    assert schemas["responses/problem.json"].get("additionalProperties", True) is not False
    assert schemas["responses/webhook-ack.json"]["additionalProperties"] is False
    assert schemas["responses/webhook-ack.json"]["properties"]["status"]["enum"] == ["accepted", "duplicate"]


def test_render_is_stable_sorted_utf8_with_final_newline() -> None:
    """Files are byte-stable: sorted keys, two-space indent, non-ASCII kept, one trailing newline."""
    text = render({"b": 1, "a": "信用"})
    assert text == '{\n  "a": "信用",\n  "b": 1\n}\n'


def test_main_writes_every_file_and_prints_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Generating into an empty directory writes all files, after which --check passes."""
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(build_files())
    for path, schema in build_files().items():
        written = tmp_path.joinpath(*path.split("/"))
        assert json.loads(written.read_text(encoding="utf-8")) == schema
    assert main(["--check", str(tmp_path)]) == 0


def test_check_reports_stale_missing_and_extra_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check exits 1 and names each file that differs, is missing, or is an owned leftover."""
    main([str(tmp_path)])
    (tmp_path / "events" / "penalty.imposed.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "subject.json").unlink()
    (tmp_path / "events" / "penalty.withdrawn.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"extra: {tmp_path / 'events' / 'penalty.withdrawn.json'}",
        f"missing: {tmp_path / 'subject.json'}",
        f"stale: {tmp_path / 'events' / 'penalty.imposed.json'}",
    ]
    assert "make schemas" in captured.err


def test_generation_removes_stale_owned_files_and_keeps_others(tmp_path: Path) -> None:
    """Leftover *.json under events/, requests/ and responses/ go; other top-level and non-JSON files stay."""
    main([str(tmp_path)])
    leftovers = [
        tmp_path / "events" / "penalty.withdrawn.json",
        tmp_path / "responses" / "old.json",
        tmp_path / "requests" / "old.json",
    ]
    kept: dict[Path, str] = {
        tmp_path / "examples.json": '{"note": "kept"}\n',
        tmp_path / "events" / "README.md": "notes\n",
    }
    for path in leftovers:
        path.write_text("{}\n", encoding="utf-8")
    for path, text in kept.items():
        path.write_text(text, encoding="utf-8")
    main([str(tmp_path)])
    assert not any(path.exists() for path in leftovers)
    assert all(path.read_text(encoding="utf-8") == text for path, text in kept.items())
    assert check(tmp_path) == []


@pytest.mark.slow
def test_module_runs_as_a_script_in_check_mode() -> None:
    """``python -m xinyong.schemas --check schemas`` (what CI and ``make schemas`` rely on) exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "xinyong.schemas", "--check", str(SCHEMAS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *(found for value in node.values() for found in _walk(value))]
    if isinstance(node, list):
        return [found for value in node for found in _walk(value)]
    return []


def test_every_object_with_properties_in_the_event_schemas_is_closed() -> None:
    """No nested object in any event schema silently accepts unknown members."""
    for path, schema in build_schemas().items():
        if not path.startswith("events/") and path != "event.json":
            continue
        for node in _walk(schema):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, (path, node.get("title"))
