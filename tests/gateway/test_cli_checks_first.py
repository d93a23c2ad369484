"""Check before long work, and never lose a user's data: ``xinyong screen`` refuses an output it cannot write and an
input column it would overwrite before it screens anything; ``xinyong send`` and ``xinyong-gateway import`` keep
their rejects in files of their own."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.factories import make_uscc
from tests.gateway.conftest import TEST_MASTER_KEY, Gateway
from xinyong.cli import main as xinyong_main
from xinyong_gateway.cli import main as gateway_main

RUN_PROJECTOR = False


@pytest.fixture(autouse=True)
def _quiet_gateway_and_clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("XINYONG_"):
            monkeypatch.delenv(name)
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # the in-process gateway's lines
    yield
    structlog.reset_defaults()


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def xinyong(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = await asyncio.to_thread(xinyong_main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def sheet(path: Path, header: list[str], rows: int, seed: int = 1) -> Path:
    rng = random.Random(seed)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for n in range(rows):
        values = {"id_type": "uscc", "id": make_uscc(rng), "name": f"店{n}"}
        writer.writerow([values.get(column, f"{column}-{n}") for column in header])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


async def test_screen_refuses_an_output_it_cannot_write_before_screening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a closed port and without a key: had it screened first, it would say so, not this."""
    big = sheet(tmp_path / "big.csv", ["id_type", "id", "name"], 2000)
    status, out, err = await xinyong(capsys, "screen", str(big), "--out", str(tmp_path / "nodir" / "x.csv"))
    assert (status, out) == (2, "")
    nodir = tmp_path / "nodir" / "x.csv"
    assert err == f"xinyong screen: Cannot write the results to {nodir} (no such directory); nothing was screened.\n"
    status, _, err = await xinyong(capsys, "screen", str(big), "--out", str(tmp_path))
    assert (status, err) == (2, f"xinyong screen: Cannot write the results to {tmp_path}: it is a directory.\n")
    monkeypatch.setenv("XINYONG_API_KEY", "xyk_test")
    status, _, err = await xinyong(capsys, "screen", str(big), "--out", str(tmp_path / "x.csv"), "--url", closed_url())
    assert status == 2 and "Cannot reach" in err  # a writable output: it went on to screen
    left = await asyncio.to_thread(lambda: sorted(path.name for path in tmp_path.iterdir()))
    assert left == ["big.csv"]  # the temporary output file is gone


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (["id_type", "id", "list"], "a column named list"),
        (["Grade", "id_type", "id", "Score"], "columns named grade and score"),
        (["id_type", "id", "error", "reasons", "measures"], "columns named measures, reasons and error"),
    ],
)
async def test_screen_refuses_an_input_column_it_would_overwrite(
    header: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sheet(tmp_path / "merchants.csv", header, 3)
    status, out, err = await xinyong(capsys, "screen", str(source), "--out", str(tmp_path / "out.csv"))
    assert (status, out) == (2, "")
    assert err == (
        f"xinyong screen: The input has {named}, where xinyong screen writes its results (list, grade, score,"
        f" measures, reasons, error): rename {'it' if named.startswith('a ') else 'them'}, so nothing is overwritten.\n"
    )


async def test_a_results_file_screened_again_has_its_result_columns_refreshed(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XINYONG_API_KEY", (await gateway.add_api_key(["screen"])).api_key)
    source = sheet(tmp_path / "merchants.csv", ["shop", "id_type", "id", "name"], 5)
    first, again = tmp_path / "first.csv", tmp_path / "again.csv"
    status, _, err = await xinyong(capsys, "screen", str(source), "--out", str(first), "--url", gateway.base_url)
    assert status == 0, err
    status, _, err = await xinyong(capsys, "screen", str(first), "--out", str(again), "--url", gateway.base_url)
    assert status == 0, err
    rows = list(csv.reader(io.StringIO(again.read_text(encoding="utf-8"))))
    assert rows[0] == ["shop", "id_type", "id", "name", "list", "grade", "score", "measures", "reasons", "error"]
    assert all(row[4] == "none" for row in rows[1:])


async def test_send_and_import_of_one_file_keep_their_rejects_apart(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text('{"type": "complaint.filed"}\n[1]\n')
    secret = tmp_path / "secret"
    secret.write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    monkeypatch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)

    def run_import() -> int:
        assert gateway_main(["--db", database_url, "migrate"]) == 0
        assert (
            gateway_main(["--db", database_url, "--json", "sources", "add", "--kind", "marketplace", "--name", "x"])
            == 0
        )
        source_id = json.loads(capsys.readouterr().out.splitlines()[-1])["source_id"]
        return gateway_main(["--db", database_url, "--json", "import", str(events), "--source", source_id])

    assert await asyncio.to_thread(run_import) == 1
    status, _, _ = await xinyong(
        capsys, "send", str(events), "--source", "src_x", "--secret-file", str(secret), "--url", closed_url()
    )
    assert status == 2  # line 1 found nobody; line 2 was rejected here, without a request
    imported = (tmp_path / "events.ndjson.import-rejected.ndjson").read_text().splitlines()
    sent = (tmp_path / "events.ndjson.send-rejected.ndjson").read_text().splitlines()
    assert [json.loads(line)["line"] for line in imported] == [1, 2]
    assert [json.loads(line)["line"] for line in sent] == [2]
