"""The SDK's ``xinyong screen``, ``xinyong send`` and ``xinyong mirror`` against the real gateway (both backends).

``main`` runs in a worker thread (it runs its own event loop, while this test's loop serves the gateway), with
the environment cleared of ``XINYONG_*`` settings. (It lives under ``tests/gateway``: it needs the ``gateway``
fixture of this folder.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import io
import json
import random
import signal
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.factories import event, make_ric, make_uscc, with_wrong_check
from tests.gateway.conftest import Gateway, eventually, free_port, gateway_env
from xinyong import ListMirror, MirrorError, problems
from xinyong.cli import main
from xinyong.webhooks import SigningKey
from xinyong_gateway.credit.policy import default_policy

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

POLICY = default_policy()
BLACK = {"id_type": "uscc", "id": make_uscc(random.Random(51)), "name": "假货旗舰店"}
WATCH = {"id_type": "uscc", "id": make_uscc(random.Random(52)), "name": "刷单小店"}
CLEAN = {"id_type": "uscc", "id": make_uscc(random.Random(53)), "name": "新开小店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(54)), "name": "欧阳娜娜"}
NEVER = {"id_type": "uscc", "id": make_uscc(random.Random(55)), "name": "𪚥记小铺"}  # 𪚥: 4 bytes in GB18030, not GBK


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("XINYONG_URL", "XINYONG_API_KEY", "XINYONG_LOOKUP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    # The gateway serving these tests runs in this process and logs through structlog, unconfigured here, which
    # would print on the stdout the command's output is read from: its lines are dropped.
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.reset_defaults()


@contextlib.contextmanager
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """stderr looks like a terminal (progress is drawn)."""
    with monkeypatch.context() as patch:
        patch.setattr(sys.stderr, "isatty", lambda: True)
        yield


async def xinyong(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``xinyong ARGV``: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def seed(gateway: Gateway) -> None:
    bodies = [
        event("listing.violation", merchant=BLACK, kind="counterfeit", confirmed=True),
        event("review.manipulation_detected", merchant=WATCH, kind="fake_order", order_count=12, confirmed=True),
        event("merchant.registered", merchant=CLEAN),
        event("review.manipulation_detected", merchant=PERSON, kind="fake_traffic", order_count=2, confirmed=True),
    ]
    await gateway.post_and_project(bodies, "msg_cli")


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def read_text(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def read_csv(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(encoding), newline="")))


def merchants_sheet() -> list[list[str]]:
    return [
        ["shop_id", "id_type", "id", "name"],
        *[[f"shop-{n}", s["id_type"], s["id"], s["name"]] for n, s in enumerate((BLACK, WATCH, CLEAN, PERSON, NEVER))],
    ]


# -- screen -------------------------------------------------------------------------------------------------


async def test_screen_writes_the_sheet_back_with_each_merchants_status(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["screen"])
    monkeypatch.setenv("XINYONG_URL", gateway.base_url)
    monkeypatch.setenv("XINYONG_API_KEY", key.api_key)
    source = write_csv(tmp_path / "merchants.csv", merchants_sheet())
    status, out, err = await xinyong(capsys, "screen", str(source), "--out", str(tmp_path / "results.csv"))
    assert (status, out) == (0, ""), err
    assert err.startswith("xinyong screen: screened 5 rows (1 black, 2 watch, 0 red, 2 none); 0 bad rows")
    rows = read_csv(tmp_path / "results.csv")
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header == "shop_id,id_type,id,name,list,grade,score,measures,reasons,error"
    assert [row["shop_id"] for row in rows] == [f"shop-{n}" for n in range(5)]
    assert [row["id"] for row in rows] == [s["id"] for s in (BLACK, WATCH, CLEAN, PERSON, NEVER)]  # the input, kept
    assert [row["list"] for row in rows] == ["black", "watch", "none", "watch", "none"]
    assert [row["grade"] for row in rows] == ["D", "B", "A", "B", ""]
    assert rows[0]["measures"] == ";".join(POLICY.measures.black)
    assert rows[0]["reasons"] == "LISTING_COUNTERFEIT;LISTING_VIOLATION"
    assert (rows[4]["score"], rows[4]["measures"], rows[4]["reasons"]) == ("", "", "")
    assert all(row["error"] == "" for row in rows)


@pytest.mark.parametrize(("encoding", "bom"), [("gb18030", b""), ("utf-8-sig", b"\xef\xbb\xbf")])
async def test_screen_reads_gb18030_and_utf8_with_a_bom_and_writes_the_same_encoding(
    gateway: Gateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    encoding: str,
    bom: bytes,
) -> None:
    await seed(gateway)
    key_file = tmp_path / "api-key"
    key_file.write_text((await gateway.add_api_key(["screen"])).api_key + "\n")
    source = write_csv(tmp_path / "merchants.csv", merchants_sheet(), encoding)
    assert source.read_bytes().startswith(bom + b"shop_id")
    out_path = tmp_path / "results.csv"
    argv = ("screen", str(source), "--out", str(out_path), "--url", gateway.base_url, "--api-key-file", str(key_file))
    status, _, err = await xinyong(capsys, *argv)
    assert status == 0, err
    written = out_path.read_bytes()
    assert written.startswith(bom + b"shop_id,id_type,id,name,list")
    rows = read_csv(out_path, encoding)
    assert [row["name"] for row in rows] == [s["name"] for s in (BLACK, WATCH, CLEAN, PERSON, NEVER)]
    assert [row["list"] for row in rows] == ["black", "watch", "none", "watch", "none"]
    if encoding == "gb18030":
        with pytest.raises(UnicodeDecodeError):
            written.decode("utf-8")


async def test_bad_rows_are_reported_with_their_line_and_kept_out_of_the_batch(
    gateway: Gateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    gateway_log: io.StringIO,
) -> None:
    await seed(gateway)
    monkeypatch.setenv("XINYONG_API_KEY", (await gateway.add_api_key(["screen"])).api_key)
    bad_ric = with_wrong_check(PERSON["id"], "0123456789X")
    text = (
        "id_type,id,name\r\n"  # line 1
        f'uscc,{BLACK["id"]},"假货\r\n旗舰店"\r\n'  # lines 2-3: a quoted name across two lines
        f"company,{CLEAN['id']},x\r\n"  # 4: wrong id_type
        f"uscc,{with_wrong_check(CLEAN['id'])},x\r\n"  # 5: check character
        "\r\n"  # 6: blank, not a row
        f"ric,{bad_ric},王五\r\n"  # 7: RIC check digit
        f"uscc,{WATCH['id']}\r\n"  # 8: missing column
        f"uscc,{WATCH['id']},x,extra\r\n"  # 9: extra column
        "ric,,x\r\n"  # 10: empty id
        f"USCC , {WATCH['id'].lower()} ,刷单小店\r\n"  # 11: fine once normalised
    )
    source = tmp_path / "merchants.csv"
    source.write_text(text, encoding="utf-8")
    out_path = tmp_path / "results.csv"
    status, _, err = await xinyong(capsys, "screen", str(source), "--out", str(out_path), "--url", gateway.base_url)
    assert status == 1
    reported = [line for line in err.splitlines() if "(not screened)" in line]
    assert reported == [
        "xinyong screen: line 4: id_type must be uscc or ric (not screened)",
        "xinyong screen: line 5: id: USCC check character is wrong (not screened)",
        "xinyong screen: line 7: id: RIC check digit is wrong (not screened)",
        "xinyong screen: line 8: missing column: the row has 2 fields, the header 3 (not screened)",
        "xinyong screen: line 9: extra column: the row has 4 fields, the header 3 (not screened)",
        "xinyong screen: line 10: id is empty (not screened)",
    ]
    assert "screened 2 rows (1 black, 1 watch, 0 red, 0 none); 6 bad rows not screened" in err
    assert bad_ric not in err
    requests = [json.loads(line) for line in gateway_log.getvalue().splitlines() if '"/v1/screenings"' in line]
    assert [request["subjects"] for request in requests] == [2]  # the bad rows were never sent
    rows = read_csv(out_path)
    assert [row["list"] for row in rows] == ["black", "", "", "", "", "", "", "watch"]
    assert rows[1]["error"] == "line 4: id_type must be uscc or ric"
    assert rows[0]["name"] == "假货\r\n旗舰店"
    assert [row["error"] == "" for row in rows] == [True, False, False, False, False, False, False, True]


async def test_screen_exits_2_with_one_sentence_when_it_cannot_run(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "merchants.csv", merchants_sheet())
    out_path = tmp_path / "results.csv"
    run = ("screen", str(source), "--out", str(out_path), "--url", gateway.base_url)
    status, _, err = await xinyong(capsys, *run)
    assert (status, err) == (2, "xinyong screen: No API key: set XINYONG_API_KEY or pass --api-key-file FILE.\n")
    monkeypatch.setenv("XINYONG_API_KEY", "xyk_" + "a" * 16 + "_" + "0" * 64)
    status, _, err = await xinyong(capsys, *run)
    assert status == 2
    assert err == (
        f"xinyong screen: The gateway at {gateway.base_url} refused the API key (401): is it the right key, and not"
        " revoked?\n"
    )
    monkeypatch.setenv("XINYONG_API_KEY", (await gateway.add_api_key(["changes"])).api_key)
    status, _, err = await xinyong(capsys, *run)
    assert status == 2 and "(403)" in err and "screen" in err
    status, _, err = await xinyong(capsys, "screen", str(source), "--out", str(source))
    assert (status, err) == (2, "xinyong screen: --out must name another file than the input.\n")
    headless = write_csv(tmp_path / "headless.csv", merchants_sheet()[1:])
    status, _, err = await xinyong(capsys, "screen", str(headless), "--out", str(out_path))
    assert status == 2 and "has no column id_type and id" in err
    assert PERSON["id"] not in err
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"id_type,id\r\n\xff\xfe\xff\r\n")
    status, _, err = await xinyong(capsys, "screen", str(garbage), "--out", str(out_path))
    assert status == 2 and "neither UTF-8 nor GB18030" in err
    status, _, err = await xinyong(capsys, "screen", str(garbage), "--out", str(out_path), "--encoding", "ebcdic-9")
    assert (status, err) == (2, "xinyong screen: Unknown encoding 'ebcdic-9'.\n")
    status, _, err = await xinyong(capsys, "screen", str(garbage), "--out", str(out_path), "--encoding", "utf-8")
    assert (status, err) == (2, f"xinyong screen: {garbage} is not valid utf-8 (byte 12).\n")


async def test_an_unreachable_gateway_stops_screen_and_send_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("XINYONG_URL", base_url)
    monkeypatch.setenv("XINYONG_API_KEY", "xyk_" + "a" * 16 + "_" + "0" * 64)
    source = write_csv(tmp_path / "merchants.csv", merchants_sheet())
    out_path = tmp_path / "results.csv"
    status, out, err = await xinyong(capsys, "screen", str(source), "--out", str(out_path))
    assert (status, out) == (2, "")
    assert (
        err == f"xinyong screen: Cannot reach {base_url} (connection refused) after 5 tries — is the gateway running?\n"
    )
    assert read_text(out_path) is None  # nothing half-written
    status, out, err = await xinyong(capsys, "screen", str(source), "--out", str(out_path), "--verbose")
    *retries, last = err.splitlines()
    assert last.startswith(f"xinyong screen: Cannot reach {base_url}")
    assert len(retries) == 4 and all("xinyong screen: info: xinyong.client.retry" in line for line in retries)

    secret_file = tmp_path / "marketplace.secret"
    secret_file.write_text("whsec_" + base64.b64encode(bytes(32)).decode())
    events = write_ndjson(tmp_path / "reports.ndjson", [event("merchant.registered") for _ in range(3)])
    status, out, err = await xinyong(
        capsys, "send", str(events), "--source", "src_x", "--secret-file", str(secret_file)
    )
    assert (status, out) == (2, "")
    assert err == (
        f"xinyong send: The upload stopped: Cannot reach {base_url} (connection refused) after 5 tries — is the"
        " gateway running? 0 lines were stored (or already were) before; running the same command again is safe"
        " (they answer duplicate).\n"
    )


async def test_secrets_come_from_files_or_the_environment_never_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "merchants.csv", merchants_sheet())
    for argv in (
        ["screen", str(source), "--out", "x.csv", "--api-key", "xyk_secret"],
        ["send", str(source), "--source", "src_x", "--secret-file", "f", "--secret", "whsec_x"],
        ["mirror", "sync", "m.db", "--lookup-secret", "xyls_x"],
    ):
        status, _, err = await xinyong(capsys, *argv)
        assert status == 2 and "unrecognized arguments" in err, argv
    empty = tmp_path / "empty"
    empty.write_text("\n\n")
    status, _, err = await xinyong(capsys, "screen", str(source), "--out", "x.csv", "--api-key-file", str(empty))
    assert (status, err) == (2, f"xinyong screen: The file {empty} is empty; it should hold API key.\n")


async def test_screen_draws_a_progress_bar_on_a_terminal_only(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XINYONG_API_KEY", (await gateway.add_api_key(["screen"])).api_key)
    rng = random.Random(7)
    rows = [["id_type", "id"], *[["uscc", make_uscc(rng)] for _ in range(2500)]]
    source = write_csv(tmp_path / "many.csv", rows)
    run = ("screen", str(source), "--out", str(tmp_path / "out.csv"), "--url", gateway.base_url)
    _, _, plain = await xinyong(capsys, *run)
    assert "\r" not in plain
    with terminal(monkeypatch):
        status, _, drawn = await xinyong(capsys, *run)
    assert status == 0
    assert "\r[########################] 100.0%  2,500/2,500 rows \n" in drawn
    assert len(read_csv(tmp_path / "out.csv")) == 2500


# -- mirror, and screening from it ----------------------------------------------------------------------------


async def test_a_mirror_synced_from_the_command_line_screens_with_the_gateway_stopped(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["changes"])
    secret_file = tmp_path / "lookup-secret"
    secret_file.write_text(key.lookup_secret)
    monkeypatch.setenv("XINYONG_API_KEY", key.api_key)
    mirror = str(tmp_path / "lists.db")
    sync = ("mirror", "sync", mirror, "--url", gateway.base_url, "--lookup-secret-file", str(secret_file))
    status, out, err = await xinyong(capsys, *sync)
    assert status == 0, err
    summary = json.loads(out)
    assert (summary["applied"], summary["entries"], summary["stale"]) == (4, 4, False)
    status, out, _ = await xinyong(capsys, *sync)
    assert (status, json.loads(out)["applied"]) == (0, 0)
    await gateway.client.close()

    monkeypatch.setenv("XINYONG_LOOKUP_SECRET", key.lookup_secret)
    source = write_csv(tmp_path / "merchants.csv", merchants_sheet())
    out_path = tmp_path / "results.csv"
    status, _, err = await xinyong(capsys, "screen", str(source), "--out", str(out_path), "--mirror", mirror)
    assert status == 0, err
    assert "stale" not in err
    assert [row["list"] for row in read_csv(out_path)] == ["black", "watch", "none", "watch", "none"]
    assert read_csv(out_path)[0]["reasons"] == "LISTING_COUNTERFEIT;LISTING_VIOLATION"

    status, out, err = await xinyong(capsys, "screen", str(source), "--out", "-", "--mirror", mirror)
    assert status == 0
    assert out.splitlines()[0] == "shop_id,id_type,id,name,list,grade,score,measures,reasons,error"  # stdout: the CSV
    assert "results in stdout" in err

    status, out, _ = await xinyong(capsys, "mirror", "status", mirror)
    assert (status, json.loads(out)["stale"], json.loads(out)["entries"]) == (0, False, 4)
    with contextlib.closing(sqlite3.connect(mirror)) as connection:  # as if the last sync were 2 hours ago
        old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        connection.execute("UPDATE mirror_meta SET value = ? WHERE name = 'synced_at'", (old,))
        connection.commit()
    status, out, _ = await xinyong(capsys, "mirror", "status", mirror)
    assert (status, json.loads(out)["stale"]) == (1, True)
    status, _, _ = await xinyong(capsys, "mirror", "status", mirror, "--max-age", "3h")
    assert status == 0
    status, _, err = await xinyong(capsys, "screen", str(source), "--out", str(out_path), "--mirror", mirror)
    assert status == 0
    assert "warning: the list mirror" in err and "is stale" in err


async def test_mirror_commands_explain_what_is_missing(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await gateway.add_api_key(["screen"])  # no "changes" scope
    monkeypatch.setenv("XINYONG_API_KEY", key.api_key)
    mirror = str(tmp_path / "lists.db")
    status, _, err = await xinyong(capsys, "mirror", "status", mirror)
    assert (status, err) == (
        2,
        f"xinyong mirror: No list mirror at {mirror}; create it with `xinyong mirror sync {mirror}`.\n",
    )
    status, _, err = await xinyong(capsys, "mirror", "sync", mirror, "--url", gateway.base_url)
    assert (status, err) == (
        2,
        "xinyong mirror: No lookup secret: set XINYONG_LOOKUP_SECRET or pass --lookup-secret-file FILE.\n",
    )
    monkeypatch.setenv("XINYONG_LOOKUP_SECRET", key.lookup_secret)
    status, _, err = await xinyong(capsys, "mirror", "sync", mirror, "--url", gateway.base_url)
    assert status == 2 and "(403)" in err
    status, out, _ = await xinyong(capsys, "mirror", "status", mirror)
    assert (status, json.loads(out)["synced_at"]) == (1, None)
    status, _, err = await xinyong(capsys, "mirror", "status", mirror, "--max-age", "soon")
    assert status == 2 and "is not a duration such as 90s, 30m, 1h or 2d" in err


# -- send -----------------------------------------------------------------------------------------------------


def deliveries(count: int, merchant: dict[str, str], *, with_ids: bool) -> list[dict[str, Any]]:
    courier = {"id_type": "uscc", "id": make_uscc(random.Random(56)), "name": "顺捷快递"}
    lines = []
    for n in range(count):
        body = event(
            "delivery.recorded",
            random.Random(n),
            waybill_no=f"YT{7310000 + n}",
            courier=courier,
            merchant=merchant,
            status="empty_parcel" if n % 3 == 0 else "delivered",
        )
        lines.append({"id": f"wb-YT{7310000 + n}", **body} if with_ids else body)
    return lines


def write_ndjson(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines)
    )
    return path


async def test_send_posts_every_line_and_sending_again_answers_duplicate(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    courier = await gateway.add_source("courier", ed25519=True)
    assert isinstance(courier.key, SigningKey)
    key_file = tmp_path / "courier-key.json"  # what `xinyong keygen --json` writes
    key_file.write_text(json.dumps({"signing_key": str(courier.key), "public_key": str(courier.key.public_key)}))
    lines = deliveries(6, CLEAN, with_ids=True) + deliveries(6, WATCH, with_ids=False)[3:] + [""]
    events = write_ndjson(tmp_path / "deliveries.ndjson", lines)
    run = ("send", str(events), "--source", courier.source_id, "--key-file", str(key_file), "--url", gateway.base_url)
    status, out, err = await xinyong(capsys, *run)
    assert status == 0, err
    first = json.loads(out)
    assert (first["accepted"], first["duplicate"], first["rejected"], first["rejected_file"]) == (9, 0, 0, None)
    status, out, _ = await xinyong(capsys, *run)
    again = json.loads(out)
    assert (status, again["accepted"], again["duplicate"], again["rejected"]) == (0, 0, 9, 0)
    stored = await gateway.store.read_inbox(0, 100)
    hashed = [hashlib.sha256(json.dumps(line, ensure_ascii=False).encode()).hexdigest()[:32] for line in lines[6:9]]
    assert sorted(entry.webhook_id for entry in stored) == sorted(
        [f"line-{digest}" for digest in hashed] + [f"wb-YT{7310000 + n}" for n in range(6)]
    )


async def test_rejected_lines_are_listed_by_number_and_problem_never_by_content(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    market = await gateway.add_source("marketplace")
    secret_file = tmp_path / "marketplace.secret"
    secret_file.write_text(str(market.key) + "\n")
    person_bad = {**PERSON, "id": with_wrong_check(PERSON["id"], "0123456789X")}
    good = event("merchant.registered", merchant=CLEAN)
    lines: list[Any] = [
        good,  # 1 accepted
        event("complaint.filed", merchant=person_bad),  # 2: 422 at /data/merchant/id
        event("delivery.recorded"),  # 3: 403, not a marketplace's event
        "{not json",  # 4: not JSON (refused here: no request)
        {"id": "has spaces", **good},  # 5: an id that cannot be a webhook id (refused here)
        {"id": "case-1", **event("merchant.registered", merchant=WATCH)},  # 6 accepted
        {"id": "case-1", **event("merchant.registered", merchant=BLACK)},  # 7: 409, the id with another body
    ]
    events = write_ndjson(tmp_path / "reports.ndjson", lines)
    run = [
        "send",
        str(events),
        "--source",
        market.source_id,
        "--secret-file",
        str(secret_file),
        "--url",
        gateway.base_url,
    ]
    status, out, err = await xinyong(capsys, *run, "--concurrency", "1")
    assert status == 1, err
    summary = json.loads(out)
    rejects = Path(str(events) + ".send-rejected.ndjson")
    assert (summary["accepted"], summary["rejected"], summary["rejected_file"]) == (2, 5, str(rejects))
    text = read_text(rejects)
    rejected = [json.loads(line) for line in text.splitlines()]
    assert [(r["line"], r["status"], r["problem"]) for r in rejected] == [
        (2, 422, problems.SCHEMA_INVALID),
        (3, 403, problems.EVENT_NOT_ALLOWED),
        (4, None, problems.BODY_NOT_JSON),
        (5, None, problems.SCHEMA_INVALID),
        (7, 409, problems.DUPLICATE_CONFLICT),
    ]
    assert rejected[0]["errors"] == [{"pointer": "/data/merchant/id", "detail": "RIC check digit is wrong"}]
    assert rejected[3]["errors"] == [
        {"pointer": "/id", "detail": "The webhook id must be printable ASCII without spaces"}
    ]
    assert rejected[4]["webhook_id"] == "case-1"
    for secret in (person_bad["id"], PERSON["name"], BLACK["id"]):
        assert secret not in text and secret not in out and secret not in err

    write_ndjson(events, lines[:1])  # fixed: the next complete run leaves no stale rejects file
    status, out, _ = await xinyong(capsys, *run)
    assert (status, json.loads(out)["duplicate"]) == (0, 1)
    assert read_text(rejects) is None


async def test_send_stops_with_exit_2_when_going_on_cannot_help(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    market = await gateway.add_source("marketplace")
    other = await gateway.add_source("marketplace")
    secret_file = tmp_path / "marketplace.secret"
    secret_file.write_text(str(market.key))
    events = write_ndjson(tmp_path / "reports.ndjson", [event("merchant.registered") for _ in range(3)])
    base = ["send", str(events), "--secret-file", str(secret_file), "--url", gateway.base_url]
    status, _, err = await xinyong(capsys, *base, "--source", "src_unknown")
    assert status == 2
    assert err.startswith(f"xinyong send: The upload stopped: the gateway at {gateway.base_url} knows no active source")
    status, _, err = await xinyong(capsys, *base, "--source", other.source_id)
    assert status == 2 and "does not accept the signature" in err
    key_file = tmp_path / "wrong-kind"
    key_file.write_text(str(market.key))
    status, _, err = await xinyong(capsys, *base[:2], "--source", market.source_id, "--key-file", str(key_file))
    assert status == 2 and "does not hold a whsk_ signing key" in err and str(market.key) not in err
    with terminal(monkeypatch):
        status, out, err = await xinyong(capsys, *base, "--source", market.source_id, "--json")
    assert (status, json.loads(out)["accepted"]) == (0, 3)
    assert "\r[########################] 100.0%  3 lines  accepted 3" in err


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["screen", "--help"], ["send", "--help"], ["mirror", "--help"], ["mirror", "sync", "--help"]],
)
async def test_every_command_has_help_with_an_example(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = await xinyong(capsys, *argv)
    assert status == 0
    assert "example" in out
    if argv[0] != "--help":
        assert f"$ xinyong {argv[0]} " in out


async def test_mirror_sync_follow_keeps_the_file_fresh_until_ctrl_c(gateway: Gateway, tmp_path: Path) -> None:
    await seed(gateway)
    key = await gateway.add_api_key(["changes"])
    mirror = tmp_path / "lists.db"
    env = gateway_env(
        XINYONG_URL=gateway.base_url, XINYONG_API_KEY=key.api_key, XINYONG_LOOKUP_SECRET=key.lookup_secret
    )
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "xinyong"),
        *("mirror", "sync", str(mirror), "--follow", "--interval", "0.05"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        regulator = await gateway.add_source("regulator")
        penalty = event("penalty.imposed", subject=CLEAN, severity="serious", decision_no="连市监罚〔2026〕5号")
        assert (await gateway.post(regulator, penalty, webhook_id="msg_penalty")).status == 202
        await gateway.project()

        def black_in_the_mirror() -> bool:
            with contextlib.suppress(MirrorError):
                with ListMirror(mirror, None, key.lookup_secret) as reader:
                    return reader.status(CLEAN).list == "black"
            return False

        async def followed() -> bool:
            # Opening the file may wait for the follower's write lock (up to SQLite's busy timeout): in a thread, so
            # that this loop goes on serving the follower's requests meanwhile.
            return await asyncio.to_thread(black_in_the_mirror)

        await eventually(followed, within=20)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err
    assert "following the change feed" in err.decode()
    summary = json.loads(out)
    assert (summary["applied"], summary["entries"], summary["stale"]) == (None, 4, False)
