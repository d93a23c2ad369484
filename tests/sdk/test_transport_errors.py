"""One sentence for a failure, in the user's terms: what the SDK raises when the gateway cannot be reached, or when
something else answers at its address (real servers on localhost)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from xinyong import (
    ApiError,
    Client,
    EventSender,
    NotFoundError,
    RequestTimeout,
    ServerError,
    TransportError,
)
from xinyong.cli import main

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MERCHANT = {"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}
PAGE = "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>" + "x" * 2000


async def no_wait(_: float) -> None:
    return None


Call = Callable[[str, int], Awaitable[Any]]


async def send(url: str, attempts: int, **options: Any) -> Any:
    async with EventSender(url, "src_x", SECRET, max_attempts=attempts, sleep=no_wait, **options) as sender:
        return await sender.send(b'{"type": "merchant.registered"}')


async def screen(url: str, attempts: int, **options: Any) -> Any:
    async with Client(url, "xyk_test", max_attempts=attempts, sleep=no_wait, **options) as client:
        return await client.check_onboarding(MERCHANT)


CALLS = pytest.mark.parametrize("call", [send, screen], ids=["EventSender", "Client"])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def web_server() -> AsyncIterator[Callable[[web.Response], Awaitable[str]]]:
    """A web server that is not the gateway: every request gets a copy of one answer. Returns its base URL."""
    servers: list[TestServer] = []

    async def start(answer: web.Response) -> str:
        async def handle(_: web.Request) -> web.Response:
            return web.Response(status=answer.status, text=answer.text, content_type=answer.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def tcp_server() -> AsyncIterator[Callable[[bytes | None, bool], Awaitable[str]]]:
    """A TCP server that reads the request, answers ``reply`` (raw bytes; None: nothing) and hangs up, or with
    ``stall`` never answers until the test ends. Returns its base URL."""
    servers: list[asyncio.Server] = []
    handlers: list[asyncio.Task[None]] = []
    end = asyncio.Event()

    async def start(reply: bytes | None, stall: bool = False) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.append(asyncio.current_task())  # type: ignore[arg-type]
            await reader.read(65536)
            if stall:
                await end.wait()
            if reply is not None:
                writer.write(reply)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    end.set()
    await asyncio.gather(*handlers, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


def one_sentence(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "<" not in text and "ssl:default" not in text and "Connect call" not in text, text
    return text


@CALLS
async def test_a_closed_port_is_named_with_the_reason_and_the_number_of_tries(call: Call) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(TransportError) as caught:
        await call(url, 4)
    assert (
        one_sentence(caught.value) == f"Cannot reach {url} (connection refused) after 4 tries — is the gateway running?"
    )
    assert (caught.value.url, caught.value.reason, caught.value.attempts) == (url, "connection refused", 4)
    assert isinstance(caught.value.__cause__, aiohttp.ClientError)  # aiohttp's error, for whoever wants it


@CALLS
async def test_one_try_says_no_count(call: Call) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(TransportError, match=r"^Cannot reach http://\S+ \(connection refused\) — is the gateway"):
        await call(url, 1)


@CALLS
async def test_an_unknown_host_asks_whether_the_url_is_right(call: Call) -> None:
    with pytest.raises(TransportError) as caught:
        await call("http://gateway.invalid", 1)
    assert one_sentence(caught.value) == "Cannot reach http://gateway.invalid (host name not found) — is the URL right?"


@CALLS
async def test_an_html_error_page_is_one_sentence_naming_status_and_content_type(
    call: Call, web_server: Callable[[web.Response], Awaitable[str]]
) -> None:
    url = await web_server(web.Response(status=404, text=PAGE, content_type="text/html"))
    with pytest.raises(NotFoundError) as caught:
        await call(url, 3)
    assert one_sentence(caught.value) == (
        f"{url} answered 404 Not Found with text/html, not a problem document of the gateway — is {url} the"
        " gateway's URL?"
    )
    assert not caught.value.from_gateway


@CALLS
async def test_a_proxys_502_page_is_retried_and_then_one_sentence(
    call: Call, web_server: Callable[[web.Response], Awaitable[str]]
) -> None:
    url = await web_server(web.Response(status=502, text=PAGE, content_type="text/html"))
    with pytest.raises(ServerError) as caught:
        await call(url, 2)
    assert one_sentence(caught.value) == (
        f"{url} answered 502 Bad Gateway with text/html, not a problem document of the gateway — is the gateway"
        " behind it running?"
    )


@CALLS
async def test_a_2xx_page_that_is_not_the_contract_says_so(
    call: Call, web_server: Callable[[web.Response], Awaitable[str]]
) -> None:
    url = await web_server(web.Response(status=200, text=PAGE, content_type="text/html"))
    with pytest.raises(ApiError) as caught:
        await call(url, 1)
    assert one_sentence(caught.value).startswith(f"Unexpected answer from {url}: 200 OK with text/html that is not a")


@CALLS
async def test_bytes_that_are_not_http_are_not_repeated(
    call: Call, tcp_server: Callable[[bytes | None, bool], Awaitable[str]]
) -> None:
    url = await tcp_server(b"SSH-2.0-OpenSSH_9.6 resident 320102198001011234\r\n", False)
    with pytest.raises(TransportError) as caught:
        await call(url, 2)
    assert one_sentence(caught.value) == (
        f"Cannot reach {url} (the answer is not HTTP) after 2 tries — is that the gateway's address?"
    )


@CALLS
async def test_a_connection_closed_without_an_answer(
    call: Call, tcp_server: Callable[[bytes | None, bool], Awaitable[str]]
) -> None:
    url = await tcp_server(None, False)
    with pytest.raises(TransportError) as caught:
        await call(url, 1)
    assert one_sentence(caught.value) == (
        f"Cannot reach {url} (the connection was closed without an answer) — is the gateway running?"
    )


@CALLS
async def test_a_timeout_names_the_time_waited(
    call: Call, tcp_server: Callable[[bytes | None, bool], Awaitable[str]]
) -> None:
    url = await tcp_server(None, True)
    with pytest.raises(RequestTimeout) as caught:
        await call(url, 2, timeout=0.2)
    assert one_sentence(caught.value) == (
        f"Cannot reach {url} (no answer within 0.2 s) after 2 tries — is the gateway running, and not overloaded?"
    )
    assert isinstance(caught.value, TimeoutError)


async def test_xinyong_screen_against_another_web_server_says_so_in_one_sentence(
    web_server: Callable[[web.Response], Awaitable[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = await web_server(web.Response(status=404, text=PAGE, content_type="text/html"))
    sheet = tmp_path / "merchants.csv"
    sheet.write_text(f"id_type,id\nuscc,{MERCHANT['id']}\n")
    monkeypatch.setenv("XINYONG_API_KEY", "xyk_test")
    status = await asyncio.to_thread(main, ["screen", str(sheet), "--out", str(tmp_path / "out.csv"), "--url", url])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err == (
        f"xinyong screen: {url} answered 404 Not Found with text/html, not a problem document of the gateway — is"
        f" {url} the gateway's URL?\n"
    )
