"""Interrupts speak: Ctrl-C (SIGINT) in ``xinyong send`` and ``xinyong screen`` exits 130 with one sentence on stderr
that says what was done and that running the command again is safe; no traceback, nothing on stdout. The commands
run as subprocesses against slow stand-ins for the gateway on localhost."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.factories import event, make_uscc
from tests.gateway.conftest import eventually, gateway_env
from xinyong.queries import SubjectStatus

XINYONG = Path(sys.executable).parent / "xinyong"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def slow_gateway() -> AsyncIterator[Callable[[str, Handler], Awaitable[str]]]:
    """Start a stand-in answering ``POST route`` with ``handle``; returns its base URL."""
    servers: list[TestServer] = []

    async def start(route: str, handle: Handler) -> str:
        app = web.Application()
        app.router.add_post(route, handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


async def interrupted(argv: list[str], started: Callable[[], bool]) -> tuple[int | None, str, str]:
    """Run ``xinyong ARGV``, send SIGINT once ``started()`` holds: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(XINYONG),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=gateway_env(XINYONG_API_KEY="xyk_test"),
    )
    try:

        async def ready() -> bool:
            return started()

        await eventually(ready, within=30)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, out.decode(), err.decode()


async def test_ctrl_c_in_send_says_what_was_stored_and_that_a_rerun_is_safe(
    slow_gateway: Callable[[str, Handler], Awaitable[str]], tmp_path: Path
) -> None:
    answered = 0

    async def accept(request: web.Request) -> web.Response:
        nonlocal answered
        await asyncio.sleep(0.01)
        answered += 1
        return web.json_response({"status": "accepted", "webhook_id": request.headers["webhook-id"]}, status=202)

    url = await slow_gateway("/v1/webhooks/src_x", accept)
    rng = random.Random(5)
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(event("complaint.filed", rng)) + "\n" for _ in range(50_000)))
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    argv = ["send", str(events), "--source", "src_x", "--secret-file", str(secret), "--url", url]
    status, out, err = await interrupted(argv, lambda: answered >= 1200)
    assert (status, out) == (130, "")
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("xinyong send: Interrupted after ")
    assert err.endswith(
        " duplicate, 0 rejected; lines in flight may or may not be stored, and running the same command again is safe"
        " (stored lines answer duplicate).\n"
    )
    done = int(err.removeprefix("xinyong send: Interrupted after ").split(" ")[0].replace(",", ""))
    assert 1000 <= done <= answered and done % 500 == 0  # whole chunks of 500, each counted when all answered


async def test_ctrl_c_in_screen_says_how_far_it_got_and_that_nothing_was_written(
    slow_gateway: Callable[[str, Handler], Awaitable[str]], tmp_path: Path
) -> None:
    answered = 0

    async def screen(request: web.Request) -> web.Response:
        nonlocal answered
        subjects = (await request.json())["subjects"]
        await asyncio.sleep(0.2)
        answered += 1
        results = [
            SubjectStatus.model_validate(
                {
                    "subject": {"id_type": "uscc", "id": subject["id"], "name": None},
                    "list": "none",
                    "grade": None,
                    "score": None,
                    "measures": [],
                    "reasons": [],
                    "disputed": False,
                    "policy_version": "test",
                    "as_of": "2026-01-01T00:00:00+00:00",
                }
            ).model_dump(mode="json")
            for subject in subjects
        ]
        return web.json_response({"results": results})

    url = await slow_gateway("/v1/screenings", screen)
    rng = random.Random(6)
    sheet = tmp_path / "big.csv"
    sheet.write_text("id_type,id\n" + "".join(f"uscc,{make_uscc(rng)}\n" for _ in range(40_000)))
    out_path = tmp_path / "results.csv"
    status, out, err = await interrupted(
        ["screen", str(sheet), "--out", str(out_path), "--url", url], lambda: answered >= 2
    )
    assert (status, out) == (130, "")
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("xinyong screen: Interrupted after screening ")
    assert err.endswith(
        f" of 40,000 rows; nothing was written to {out_path} (results are written only when complete), and running"
        " the same command again is safe.\n"
    )
    left = await asyncio.to_thread(lambda: [path.name for path in tmp_path.iterdir()])
    assert left == ["big.csv"]  # no output, no temporary file left
