"""A library must not print: the SDK's log lines go through the standard library's ``logging`` and are silent until
the application configures it; the ``xinyong`` command writes one sentence on stderr and nothing on stdout."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xinyong import EventSender, TransportError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
XINYONG = Path(sys.executable).parent / "xinyong"


def closed_port() -> int:
    """A localhost port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def no_wait(_: float) -> None:
    return None


def test_a_script_using_the_sdk_against_a_closed_port_prints_nothing() -> None:
    """EventSender, Client and SyncClient retry, log their retries and give up: the script's stdout and stderr stay
    its own (structlog left unconfigured would print the retries on stdout)."""
    script = textwrap.dedent(
        f"""
        import asyncio
        from xinyong import Client, EventSender, SyncClient, TransportError

        URL = "http://127.0.0.1:{closed_port()}"
        OPTIONS = dict(max_attempts=3, backoff_initial=0.01, backoff_max=0.02)

        async def main():
            async with EventSender(URL, "src_x", "{SECRET}", **OPTIONS) as sender:
                try:
                    await sender.send({{"type": "merchant.registered"}})
                except TransportError:
                    pass
            async with Client(URL, "xyk_test", **OPTIONS) as client:
                try:
                    await client.check_onboarding({{"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}})
                except TransportError:
                    pass

        asyncio.run(main())
        with SyncClient(URL, "xyk_test", **OPTIONS) as client:
            try:
                client.changes_page()
            except TransportError:
                pass
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


async def test_an_application_that_configures_logging_sees_the_retries(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The retries are standard-library records of ``xinyong.sender`` at level info, with their fields."""
    url = f"http://127.0.0.1:{closed_port()}"
    with caplog.at_level(logging.INFO, logger="xinyong"):
        async with EventSender(url, "src_x", SECRET, max_attempts=3, sleep=no_wait) as sender:
            with pytest.raises(TransportError):
                await sender.send(b"{}")
    retries = [record for record in caplog.records if record.name == "xinyong.sender"]
    assert [record.levelno for record in retries] == [logging.INFO, logging.INFO]
    assert [record.attempt for record in retries] == [1, 2]  # type: ignore[attr-defined]
    assert retries[0].getMessage().startswith("xinyong.send.retry source_id=src_x attempt=1 ")
    assert retries[0].xinyong_event == "xinyong.send.retry"  # type: ignore[attr-defined]
    assert capsys.readouterr() == ("", "")


async def test_without_configuration_not_even_warnings_reach_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """The package logger's NullHandler keeps Python's last-resort handler from printing the SDK's warnings."""
    from xinyong._logs import get_logger

    get_logger("xinyong.test").warning("xinyong.test.warning", path="x")
    assert capsys.readouterr() == ("", "")


def test_xinyong_send_against_a_closed_port_writes_one_sentence_on_stderr_and_nothing_on_stdout(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text('{"type": "merchant.registered", "timestamp": "2026-01-01T00:00:00Z", "data": {}}\n' * 40)
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    url = f"http://127.0.0.1:{closed_port()}"
    done = subprocess.run(
        [str(XINYONG), "send", str(events), "--source", "src_x", "--secret-file", str(secret), "--url", url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    err = done.stderr.decode()
    assert (done.returncode, done.stdout) == (2, b"")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"xinyong send: The upload stopped: Cannot reach {url} (connection refused) after 5 tries")
