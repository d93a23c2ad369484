"""Never lose or double a user's data: ``xinyong send`` and ``xinyong-gateway import`` derive one webhook id for one
line (``xinyong.ndjson``), so a file sent and then imported, or the other way round, is stored once; the id of a
line about a person does not depend on the person; a file that is not NDJSON is refused by both before any work."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import JSON_VALUES, event, make_ric, make_uscc, person
from tests.gateway.conftest import Gateway
from xinyong import EVENT_TYPES
from xinyong.cli import main as xinyong_main
from xinyong.events import ALLOWED_EVENT_TYPES, OWN_SUBJECT_FIELDS, SOURCE_KINDS, SourceKind
from xinyong.ndjson import (
    LINE_ID_PREFIX,
    NotNdjsonError,
    _blanked,
    _only_businesses,
    check_first_line,
    line_webhook_id,
    webhook_id_and_body,
)
from xinyong_gateway.cli.importer import IMPORT_SIGNATURE, LEGACY_ID_PREFIX, Importer, ImportProgress, check_lines
from xinyong_gateway.errors import GatewayError
from xinyong_gateway.store import InboxEntry

RUN_PROJECTOR = False
SUBJECT_FIELDS = ("merchant", "subject", "courier")
KIND_OF = {
    event_type: next(k for k in SOURCE_KINDS if event_type in ALLOWED_EVENT_TYPES[k]) for event_type in EVENT_TYPES
}


@pytest.fixture(autouse=True)
def _gateway_lines_dropped() -> Iterator[None]:
    """The gateway serving these tests logs through structlog, unconfigured here, which would print on the stdout
    the command's output is read from."""
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.reset_defaults()


@st.composite
def event_lines(draw: st.DrawFn) -> bytes:
    """A valid event as one NDJSON line: any type, its subjects businesses or persons, with or without an ``"id"``,
    written compactly or not, with non-ASCII text escaped or not, members in any order."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    body = event(event_type, rng)
    for field in SUBJECT_FIELDS:
        if field in body["data"] and draw(st.booleans()):
            body["data"][field] = person(rng, name=draw(st.sampled_from(["王五", "欧阳娜娜", "李"])))
    if draw(st.booleans()):
        body = {"id": f"ev-{rng.randrange(10**9)}", **body}
    if draw(st.booleans()):
        body = dict(reversed(body.items()))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return json.dumps(body, ensure_ascii=draw(st.booleans()), separators=separators).encode()


def import_verdict(line: bytes) -> Any:
    """What the importer (its line checks, which run in worker processes) makes of a line."""
    document = json.loads(line)
    kind: SourceKind = KIND_OF[document["type"]]
    own = OWN_SUBJECT_FIELDS.get(kind, {}).get(document["type"])  # an intermediary imports about itself only
    (verdict,) = check_lines([(1, line)], kind, 1 << 20, time.time(), document["data"][own]["id"] if own else None)
    return verdict


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(event_lines())
def test_send_and_import_derive_the_same_id_and_body_for_the_same_line(line: bytes) -> None:
    sent_id, sent_body = webhook_id_and_body(line)
    verdict = import_verdict(line)
    assert verdict.webhook_id == sent_id
    assert (verdict.body if verdict.body is not None else line) == sent_body
    assert verdict.derived == ("id" not in json.loads(line))


@given(event_lines(), st.data())
def test_the_id_of_a_line_about_a_person_does_not_depend_on_the_person(line: bytes, data: st.DataObject) -> None:
    document = json.loads(line)
    document.pop("id", None)
    people = [field for field in SUBJECT_FIELDS if document["data"].get(field, {}).get("id_type") == "ric"]
    if not people:
        return
    other = json.loads(json.dumps(document))
    for field in people:
        other["data"][field] = person(random.Random(data.draw(st.integers(0, 2**32))), name="张三丰")
    mine = line_webhook_id(json.dumps(document, ensure_ascii=False).encode())
    theirs = line_webhook_id(json.dumps(other, ensure_ascii=False).encode())
    assert mine == theirs
    assert mine.startswith(LINE_ID_PREFIX) and len(mine) == len(LINE_ID_PREFIX) + 32


def test_a_line_about_businesses_only_keeps_the_id_xinyong_send_always_gave_it() -> None:
    line = json.dumps(event("complaint.filed"), ensure_ascii=False).encode()
    assert line_webhook_id(line) == "line-" + hashlib.sha256(line).hexdigest()[:32]
    about_a_person = json.dumps(event("complaint.filed", merchant=person()), ensure_ascii=False).encode()
    assert line_webhook_id(about_a_person) != "line-" + hashlib.sha256(about_a_person).hexdigest()[:32]


SUBJECTISH = st.fixed_dictionaries(
    {"id_type": st.sampled_from(["uscc", "ric", "RIC", "passport", 7]), "id": st.text(max_size=18)},
    optional={"name": st.text(max_size=4)},
)
OBJECTS = st.dictionaries(
    st.sampled_from(["type", "data", "id_type", "merchant", "x", "id_type "]),
    st.one_of(JSON_VALUES, SUBJECTISH, st.lists(SUBJECTISH, max_size=2), st.just("id_type")),
    max_size=5,
)


@given(OBJECTS, st.booleans(), st.sampled_from([(",", ":"), (", ", ": "), (" , ", " : ")]))
def test_reading_the_bytes_never_takes_a_line_about_a_person_for_one_about_businesses(
    document: dict[str, Any], ascii_only: bool, separators: tuple[str, str]
) -> None:
    """The shortcut that skips parsing (every ``"id_type"`` member is ``"uscc"``) agrees with the parsed line."""
    line = json.dumps(document, ensure_ascii=ascii_only, separators=separators).encode()
    if _only_businesses(line):
        assert not _blanked(json.loads(line))[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"id_type,id,name\r\nuscc,91320706MA1Y2N6Q47,x\r\n",
            "Line 1 of {} is not JSON — is this NDJSON, one event a line?",
        ),
        ("id_type,id\nric,320706198605174597\n".encode("utf-16"), "Line 1 of {} is not UTF-8 text — is this NDJSON"),
        ("\n\n名称,代码\n".encode("gb18030"), "Line 3 of {} is not UTF-8 text"),
        (b'{\n  "type": "complaint.filed"\n}\n', "Line 1 of {} is not JSON — is this NDJSON"),
        (b'[{"type": "complaint.filed"}]\n', "Line 1 of {} is JSON but not an object — is this NDJSON"),
    ],
    ids=["csv", "utf-16", "gb18030", "pretty-json", "json-array"],
)
def test_a_file_that_is_not_ndjson_is_named_by_its_first_line(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "deliveries.ndjson"
    path.write_bytes(content)
    lines = [line for line in content.removeprefix(b"\xef\xbb\xbf").split(b"\n")]
    number = next(n for n, line in enumerate(lines, 1) if line.strip())
    with pytest.raises(NotNdjsonError) as caught:
        check_first_line(number, lines[number - 1].rstrip(b"\r"), str(path))
    assert str(caught.value).startswith(message.format(path))
    assert "320706198605174597" not in str(caught.value)


# -- against the gateway and the importer -------------------------------------------------------------------------


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def send_file(
    capsys: pytest.CaptureFixture[str], path: Path, source_id: str, secret_file: Path, url: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    argv = ["send", str(path), "--source", source_id, "--secret-file", str(secret_file), "--url", url, "--json"]
    status = await asyncio.to_thread(xinyong_main, argv)
    out, err = capsys.readouterr()
    return status, out, err


async def import_file(gateway: Gateway, path: Path, source_id: str) -> ImportProgress:
    source = await gateway.store.get_source(source_id)
    assert source is not None
    importer = Importer(gateway.store, gateway.master_key, source, body_limit=gateway.settings.body_limit)
    with path.open("rb") as stream:
        return await importer.run(stream, on_rejections=lambda rejections: None)


def history(rng: random.Random) -> list[dict[str, Any]]:
    """Events of a marketplace, some about persons, some with an ``"id"``."""
    lines = []
    for n in range(12):
        merchant = person(rng, name="王五") if n % 3 == 0 else {"id_type": "uscc", "id": make_uscc(rng)}
        body = event("complaint.filed", rng, merchant=merchant, complaint_id=f"cmp-{n}")
        lines.append({"id": f"hist-{n}", **body} if n % 4 == 1 else body)
    return lines


def write_ndjson(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


async def test_a_file_sent_and_then_imported_is_stored_once(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await gateway.add_source("marketplace")
    secret_file = tmp_path / "secret"
    secret_file.write_text(str(source.key))
    path = write_ndjson(tmp_path / "history.ndjson", history(random.Random(1)))
    status, out, err = await send_file(capsys, path, source.source_id, secret_file, gateway.base_url)
    assert (status, json.loads(out)["accepted"]) == (0, 12), err
    imported = await import_file(gateway, path, source.source_id)
    assert (imported.accepted, imported.duplicate, imported.rejected) == (0, 12, 0)
    assert await gateway.store.inbox_count() == 12


async def test_a_file_imported_and_then_sent_is_stored_once(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await gateway.add_source("marketplace")
    secret_file = tmp_path / "secret"
    secret_file.write_text(str(source.key))
    path = write_ndjson(tmp_path / "history.ndjson", history(random.Random(2)))
    imported = await import_file(gateway, path, source.source_id)
    assert (imported.accepted, imported.duplicate) == (12, 0)
    status, out, err = await send_file(capsys, path, source.source_id, secret_file, gateway.base_url)
    assert (status, json.loads(out)["duplicate"]) == (0, 12), err
    assert await gateway.store.inbox_count() == 12


async def test_a_line_an_earlier_import_stored_under_its_legacy_id_is_a_duplicate_not_a_second_copy(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Imports before the shared scheme stored a line without ``"id"`` as ``import-`` + its keyed digest."""
    source = await gateway.add_source("marketplace")
    lines = history(random.Random(3))
    path = write_ndjson(tmp_path / "history.ndjson", lines)
    old = [json.dumps(line, ensure_ascii=False).encode() for line in lines if "id" not in line][:4]
    master = gateway.master_key
    legacy = []
    for line in old:  # as the earlier importer stored them
        digest = master.body_digest(line)
        webhook_id = LEGACY_ID_PREFIX + digest[:16].hex()
        legacy.append(webhook_id)
        entry = InboxEntry(
            source.source_id,
            webhook_id,
            digest,
            "complaint.filed",
            int(time.time()),
            IMPORT_SIGNATURE,
            int(time.time() * 1e6),
            master.seal_body(source.source_id, webhook_id, line),
        )
        await gateway.store.append_many([entry])
    imported = await import_file(gateway, path, source.source_id)
    assert (imported.accepted, imported.duplicate, imported.rejected) == (8, 4, 0)
    rows = await gateway.store.read_inbox(0, 100)
    assert len(rows) == 12 and {row.webhook_id for row in rows} >= set(legacy)
    again = await import_file(gateway, path, source.source_id)
    assert (again.accepted, again.duplicate) == (0, 12)


async def test_send_and_import_refuse_a_file_that_is_not_ndjson_before_any_work(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await gateway.add_source("marketplace")
    secret_file = tmp_path / "secret"
    secret_file.write_text(str(source.key))
    sheet = tmp_path / "merchants.csv"
    rng = random.Random(4)
    sheet.write_bytes(("id_type,id,name\r\n" + "".join(f"ric,{make_ric(rng)},王五\r\n" for _ in range(500))).encode())
    # Against a closed port: had it sent anything, it would say it cannot reach the gateway.
    status, out, err = await send_file(capsys, sheet, source.source_id, secret_file, closed_url())
    assert (status, out) == (2, "")
    assert err == f"xinyong send: Line 1 of {sheet} is not JSON — is this NDJSON, one event a line?\n"
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob("merchants.csv.*")))  # no rejects file either
    with pytest.raises(GatewayError, match=r"^Line 1 of .*merchants.csv is not JSON — is this NDJSON"):
        await import_file(gateway, sheet, source.source_id)
    assert await gateway.store.inbox_count() == 0


async def test_a_later_line_that_is_not_an_object_is_rejected_by_send_without_a_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only lines that are JSON objects get an id or a request; the others are listed as rejected."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"{}\n[1, 2]\nric,320706198605174597\n")
    rejects = tmp_path / "rejects.ndjson"
    capsys.readouterr()
    argv = ["send", str(path), "--source", "src_x", "--secret-file", str(secret_file), "--url", closed_url()]
    status = await asyncio.to_thread(xinyong_main, [*argv, "--rejects", str(rejects)])
    _, err = capsys.readouterr()
    assert status == 2 and "Cannot reach" in err  # line 1 went out (and found nobody)
    found = [json.loads(line) for line in io.StringIO(rejects.read_text())]
    assert [(r["line"], r["status"], r["webhook_id"], r["problem"]) for r in found] == [
        (2, None, None, "urn:xinyong:problem:schema-invalid"),
        (3, None, None, "urn:xinyong:problem:body-not-json"),
    ]
