"""Hostile HTTP against the real server: never a 5xx, never a hang, memory bounded, nothing leaked into the log.

``xinyong-gateway serve`` runs in a subprocess on SQLite (``served``: a marketplace source, an API key with both
scopes, a body timeout of 2 s instead of 30 so that stalled bodies end within a test's patience). Requests are written
byte for byte on raw sockets, so what no HTTP client would send can be sent: contradictory framing headers, broken
chunking, header lines over the limit, invalid UTF-8 in headers and bodies, repeated webhook headers, bodies that stop
half-way or trickle in, 10 MB bodies, 100,000 nested brackets. Every answer must arrive within ``DEADLINE`` seconds (a
deadline, never a measurement) and be below 500; a request that is not HTTP at all is refused by aiohttp's parser
with a plain-text 400 before any route, everything else gets a problem document. After each test the server's new log
lines are checked (``clean_log``): all JSON, no 5xx, nothing at level error, and none holding a secret or an
identifier the test sent. A property test throws random requests (method, target, repeated and odd headers, bodies,
framing) at every endpoint while the server's resident memory is watched.

The last section is hostile evidence that is valid HTTP and validly signed: names full of control characters, NUL,
direction overrides. It must be stored and projected on both backends (a NUL once stopped the PostgreSQL projector
for good: a ``text`` column refuses it).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import encode, event, make_ric
from tests.gateway.conftest import (
    PROBLEM_JSON,
    Gateway,
    admin,
    eventually,
    serving,
)
from xinyong import problems
from xinyong.webhooks import SigningSecret, signature_headers

pytestmark = pytest.mark.slow

DEADLINE = 30.0
"""Seconds any answer may take on a loaded 2-core machine (a deadline for "no hang", never a measurement)."""
BODY_TIMEOUT = 2
"""The served gateway's body timeout (``XINYONG_BODY_TIMEOUT``), in seconds."""
RSS_GROWTH_LIMIT_KIB = 192 * 1024
"""How much the server's resident memory may grow over a test that sends it hundreds of megabytes: a generous
bound that an unbounded buffer (one 10 MB body held per request) would break many times over."""
TEN_MB = 10 * 1024 * 1024


@dataclass
class Served:
    """The real gateway in a subprocess, and what a test needs to talk to it."""

    port: int
    source_id: str
    secret: SigningSecret
    api_key: str
    log_path: Path
    process: subprocess.Popen[bytes]
    secrets: list[str] = field(default_factory=list)
    """Texts that must never appear in the log (the test's own markers are added per test)."""

    @property
    def webhook_path(self) -> str:
        return f"/v1/webhooks/{self.source_id}"

    def rss_kib(self) -> int:
        """The server's resident memory (``VmRSS`` from ``/proc/<pid>/status``), in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def signed(self, body: bytes, webhook_id: str | None = None) -> list[tuple[str, str]]:
        """The webhook headers (and ``Content-Type``) of a validly signed ``body``."""
        headers = signature_headers(self.secret, webhook_id or f"msg_{uuid.uuid4().hex}", body)
        return [*headers.items(), ("Content-Type", "application/json")]

    def bearer(self) -> list[tuple[str, str]]:
        return [("Authorization", f"Bearer {self.api_key}")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{folder / 'gateway.db'}"
    source, key = admin(
        url,
        ("sources", "add", "--kind", "marketplace", "--name", "hostile"),
        ("keys", "add", "--name", "hostile", "--scopes", "screen,changes"),
    )
    log_path = folder / "gateway.log"
    with serving(url, log_path, XINYONG_BODY_TIMEOUT=str(BODY_TIMEOUT)) as (port, process):
        secret = source["secret"]
        yield Served(port, source["source_id"], SigningSecret.parse(secret), key["api_key"], log_path, process)


# -- raw HTTP ---------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == PROBLEM_JSON, self
        document: dict[str, Any] = json.loads(self.body)
        assert document["status"] == self.status
        return document


def request_bytes(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    *,
    length: int | None = None,
) -> bytes:
    """A request as written on the wire: ``Content-Length`` is ``length`` (default: the body's; -1: none)."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    for name, value in headers or []:
        lines.append((name.encode() if isinstance(name, str) else name) + b": " + _bytes(value))
    declared = len(body) if length is None else length
    if declared >= 0:
        lines.append(f"Content-Length: {declared}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def chunked(body: bytes, size: int = 4096) -> bytes:
    """``body`` in ``Transfer-Encoding: chunked`` framing."""
    pieces = [body[at : at + size] for at in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def read_answer(sock: socket.socket, *, head_only: bool = False) -> Answer | None:
    """The first final answer on ``sock`` (interim 1xx answers skipped); None when the server closed without one.

    Fails the test when no complete answer arrives within ``DEADLINE`` seconds."""
    end = time.monotonic() + DEADLINE
    data = b""

    def more() -> bytes:
        remaining = end - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no complete answer within {DEADLINE} s (got {data[:200]!r})")
        sock.settimeout(remaining)
        try:
            return sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"no complete answer within {DEADLINE} s (got {data[:200]!r})")
        except ConnectionResetError:
            return b""

    while True:
        while b"\r\n\r\n" not in data:
            chunk = more()
            if not chunk:
                assert not data, f"the connection closed in the middle of an answer: {data[:200]!r}"
                return None
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            continue  # 100 Continue: the final answer follows
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only:
            return Answer(status, headers, b"")
        length = int(headers.get("content-length", "-1"))
        while length < 0 or len(data) < length:
            chunk = more()
            if not chunk:
                assert length < 0, f"the connection closed before the end of the answer: {data[:200]!r}"
                break
            data += chunk
        return Answer(status, headers, data if length < 0 else data[:length])


def exchange(served: Served, raw: bytes, *, head_only: bool = False) -> Answer | None:
    """Write ``raw`` on a new connection and read the answer (a server that answers early and closes is fine)."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=DEADLINE) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered (413, 400) before reading everything: the answer is still there to read
        return read_answer(sock, head_only=head_only)


def answered(served: Served, raw: bytes) -> Answer:
    answer = exchange(served, raw)
    assert answer is not None, "the server closed the connection without an answer"
    return answer


def still_serving(served: Served) -> None:
    """A plain request on a new connection gets its 200: the server is alive and serving others."""
    answer = answered(served, request_bytes("GET", "/healthz"))
    assert answer.status == 200, answer


def signed_webhook(served: Served, body: bytes, *, webhook_id: str | None = None) -> bytes:
    return request_bytes("POST", served.webhook_path, served.signed(body, webhook_id), body)


# -- the log after each test --------------------------------------------------------------------------------------


def log_lines_after(served: Served, offset: int) -> list[str]:
    """The server's log lines written since ``offset``, once a marker request proves they are all written (the
    log is flushed in batches at least every 0.2 s)."""
    marker = f"/log-marker-{uuid.uuid4().hex}"
    assert answered(served, request_bytes("GET", marker)).status == 404
    deadline = time.monotonic() + DEADLINE
    while True:
        with served.log_path.open("rb") as log:
            log.seek(max(0, offset - 1))
            text = log.read().decode(errors="replace")
        if marker in text:
            lines = text.splitlines()
            if offset and not text.startswith("\n"):
                lines = lines[1:]  # the end of a line that was being written when the test began
            return [line for line in lines if line.strip()]
        assert time.monotonic() < deadline, "the marker request never reached the log"
        time.sleep(0.05)


@pytest.fixture
def clean_log(served: Served) -> Iterator[list[str]]:
    """After the test: every new log line is JSON, none is a 5xx or an error, none holds a text of the yielded list
    (the test adds its secrets and identifiers) or the source's and the key's secrets."""
    offset = served.log_path.stat().st_size
    needles: list[str] = []
    yield needles
    lines = log_lines_after(served, offset)
    secrets = [served.api_key.rsplit("_", 1)[1], str(served.secret).removeprefix("whsec_"), *needles]
    for line in lines:
        record = json.loads(line)  # a plain-text traceback here would fail
        assert not (isinstance(record.get("status"), int) and record["status"] >= 500), line
        assert record.get("level") not in ("error", "critical"), line
        for secret in secrets:
            assert secret not in line, f"{secret!r} reached the log: {line}"


# -- framing and headers ----------------------------------------------------------------------------------------


def _valid_event() -> bytes:
    return encode(event("complaint.filed"))


def _with_headers(served: Served, extra: list[tuple[str, str]]) -> bytes:
    body = _valid_event()
    return request_bytes("POST", served.webhook_path, [*served.signed(body), *extra], body)


def _repeated_signature(served: Served) -> bytes:
    body = _valid_event()
    signed = served.signed(body)
    garbage = ("webhook-signature", "v1," + "A" * 43 + "=")
    return request_bytes("POST", served.webhook_path, [garbage, *signed], body)


def _repeated_id(served: Served) -> bytes:
    body = _valid_event()
    signed = served.signed(body, "msg_first")
    return request_bytes("POST", served.webhook_path, [*signed, ("webhook-id", "msg_second")], body)


def _invalid_utf8_header(served: Served, name: bytes) -> bytes:
    body = _valid_event()
    headers = [(key.encode(), value.encode()) for key, value in served.signed(body) if key.lower() != name.decode()]
    return request_bytes("POST", served.webhook_path, [*headers, (name, b"\xff\xfe\xc0\xaf")], body)


FRAMING: list[tuple[str, Callable[[Served], bytes], int, bool]] = [
    # (id, request, status, answered by the application with a problem document)
    (
        "duplicate-content-length",
        lambda s: request_bytes("POST", s.webhook_path, [("Content-Length", "3")], b"{}"),
        400,
        False,
    ),
    (
        "content-length-and-chunked",
        lambda s: request_bytes("POST", s.webhook_path, [("Transfer-Encoding", "chunked")], chunked(b"{}")),
        400,
        False,
    ),
    (
        "chunk-size-not-hex",
        lambda s: request_bytes(
            "POST", s.webhook_path, [("Transfer-Encoding", "chunked")], b"zz\r\n{}\r\n0\r\n\r\n", length=-1
        ),
        400,
        False,
    ),
    (
        "chunk-longer-than-declared",
        lambda s: request_bytes(
            "POST", s.webhook_path, [("Transfer-Encoding", "chunked")], b"2\r\n{}XX0\r\n\r\n", length=-1
        ),
        400,
        False,
    ),
    (
        "unknown-transfer-coding",
        lambda s: request_bytes("POST", "/v1/screenings", [("Transfer-Encoding", "gzip")], b"0\r\n\r\n", length=-1),
        400,
        False,
    ),
    (
        "negative-content-length",
        lambda s: request_bytes("POST", s.webhook_path, [("Content-Length", "-1")], length=-1),
        400,
        False,
    ),
    (
        "overflowing-content-length",
        lambda s: request_bytes("POST", s.webhook_path, [("Content-Length", "9" * 30)], length=-1),
        400,
        False,
    ),
    ("header-line-over-8-kib", lambda s: request_bytes("GET", "/healthz", [("X-Padding", "a" * 9000)]), 400, False),
    (
        "header-too-long-holding-a-key",
        lambda s: request_bytes("POST", "/v1/screenings", [("Authorization", f"Bearer {s.api_key}" + "0" * 9000)]),
        400,
        False,
    ),
    (
        "two-hundred-headers",
        lambda s: request_bytes("GET", "/healthz", [(f"X-H{n}", "x") for n in range(200)]),
        400,
        False,
    ),
    ("obsolete-line-folding", lambda s: request_bytes("GET", "/healthz", [("X-A", "b\r\n c")]), 400, False),
    ("space-in-header-name", lambda s: request_bytes("GET", "/healthz", [("Bad Name", "x")]), 400, False),
    ("nul-in-method", lambda s: b"G\x00T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
    ("unknown-http-version", lambda s: b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, False),
    ("http2-preface", lambda s: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, False),
    ("repeated-host", lambda s: request_bytes("GET", "/healthz", [("Host", "evil.example")]), 400, False),
    ("invalid-utf8-in-query", lambda s: b"GET /v1/lists/changes?after=\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
    (
        "unknown-expectation",
        lambda s: request_bytes("POST", "/v1/screenings", [("Expect", "200-ok")], b"{}"),
        401,
        True,
    ),
    (
        "expectation-not-utf8",
        lambda s: request_bytes("POST", "/v1/screenings", [(b"Expect", b"\x80\xff")], b"{}"),
        401,
        True,
    ),
    ("expectation-not-utf8-elsewhere", lambda s: request_bytes("GET", "/nowhere", [(b"Expect", b"\x80")]), 404, True),
    (
        "expectation-not-utf8-wrong-method",
        lambda s: request_bytes("GET", s.webhook_path, [(b"Expect", b"\x80")]),
        405,
        True,
    ),
    ("invalid-utf8-in-webhook-id", lambda s: _invalid_utf8_header(s, b"webhook-id"), 400, True),
    ("invalid-utf8-in-signature", lambda s: _invalid_utf8_header(s, b"webhook-signature"), 401, True),
    ("invalid-utf8-in-content-type", lambda s: _invalid_utf8_header(s, b"content-type"), 415, True),
    (
        "invalid-utf8-in-authorization",
        lambda s: request_bytes("POST", "/v1/screenings", [(b"Authorization", b"Bearer \xff\xfe")], b"{}"),
        401,
        True,
    ),
    ("repeated-webhook-signature", _repeated_signature, 400, True),
    ("repeated-webhook-id", _repeated_id, 400, True),
    ("undecodable-gzip-body", lambda s: _with_headers(s, [("Content-Encoding", "gzip")]), 400, True),
    ("nul-in-source-id", lambda s: request_bytes("POST", "/v1/webhooks/%00%ff", [], b"{}"), 404, True),
]


@pytest.mark.parametrize(("make", "status", "problem"), [case[1:] for case in FRAMING], ids=[c[0] for c in FRAMING])
def test_broken_framing_and_odd_headers_get_a_4xx_and_the_server_keeps_serving(
    served: Served, clean_log: list[str], make: Callable[[Served], bytes], status: int, problem: bool
) -> None:
    answer = answered(served, make(served))
    assert answer.status == status, answer
    if problem:
        answer.problem()
    still_serving(served)


def test_a_body_whose_framing_breaks_mid_way_never_reaches_the_log(served: Served, clean_log: list[str]) -> None:
    """aiohttp's parser quotes the bytes where framing breaks; the log line keeps only the error's class."""
    ric = make_ric()
    clean_log.append(ric)
    body = json.dumps({"subjects": [{"id_type": "ric", "id": ric}]}).encode()
    framed = b"%x\r\n%s" % (len(body) - 5, body) + b"\r\n0\r\n\r\n"  # the chunk size is 5 bytes short
    answer = answered(
        served, request_bytes("POST", "/v1/screenings", [("Transfer-Encoding", "chunked")], framed, length=-1)
    )
    assert answer.status == 400


# -- big, deep, slow and truncated bodies --------------------------------------------------------------------------


def _stream_chunked(served: Served, head: bytes, total: int) -> Answer | None:
    """Send ``head`` and then ``total`` bytes of chunked body (a JSON string that never ends) for as long as the
    server reads; then read its answer."""
    piece = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
    with socket.create_connection(("127.0.0.1", served.port), timeout=DEADLINE) as sock:
        try:
            sock.sendall(head + b"1\r\n[\r\n")
            for _ in range(total // 65536):
                sock.sendall(piece)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_answer(sock)


def test_ten_megabyte_bodies_are_refused_with_413_and_memory_stays_bounded(
    served: Served, clean_log: list[str]
) -> None:
    """A declared 10 MB body is refused from its headers alone (nothing of it is sent); streamed ones, 16 at once,
    are cut off at the limit."""
    before = served.rss_kib()
    declared_webhook = request_bytes("POST", served.webhook_path, [("Content-Type", "application/json")], length=TEN_MB)
    assert answered(served, declared_webhook).problem()["type"] == problems.BODY_TOO_LARGE
    declared_screening = request_bytes("POST", "/v1/screenings", served.bearer(), length=TEN_MB)
    assert answered(served, declared_screening).problem()["type"] == problems.BODY_TOO_LARGE
    expecting = request_bytes("POST", served.webhook_path, [("Expect", "100-continue")], length=TEN_MB)
    assert answered(served, expecting).status == 413

    heads = [
        request_bytes("POST", served.webhook_path, [*served.signed(b"x"), ("Transfer-Encoding", "chunked")], length=-1),
        request_bytes("POST", "/v1/screenings", [*served.bearer(), ("Transfer-Encoding", "chunked")], length=-1),
    ]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda n: _stream_chunked(served, heads[n % 2], TEN_MB), range(16)))
    for answer in answers:
        assert answer is not None and answer.status == 413, answer
        answer.problem()
    still_serving(served)
    assert served.rss_kib() - before < RSS_GROWTH_LIMIT_KIB


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("webhook", b"[" * 100_000),
        ("webhook", b'{"type": "complaint.filed", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("webhook", b'{"a":' * 40_000 + b"1" + b"}" * 40_000),
        ("screening", b"[" * 1_000_000),
        ("screening", b'{"subjects": [' + b'{"a":' * 150_000 + b"1" + b"}" * 150_000 + b"]}"),
    ],
    ids=[
        "webhook-open-brackets",
        "webhook-nested-data",
        "webhook-nested-objects",
        "screening-1-mb-of-brackets",
        "screening-nested-objects",
    ],
)
def test_deeply_nested_json_is_a_4xx_problem(served: Served, clean_log: list[str], target: str, body: bytes) -> None:
    if target == "webhook":
        raw = signed_webhook(served, body)
    else:
        raw = request_bytes("POST", "/v1/screenings", [*served.bearer(), ("Content-Type", "application/json")], body)
    answer = answered(served, raw)
    assert 400 <= answer.status < 500, answer
    answer.problem()


def test_stalled_and_trickling_bodies_get_408_while_others_are_served(served: Served, clean_log: list[str]) -> None:
    """Twenty connections send a few bytes of a 1000-byte body and stall, one trickles a byte every 0.25 s, one never
    finishes its headers: meanwhile an event is accepted and a screening answered; the bodies end with 408."""
    stalled = []
    for n in range(20):
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=DEADLINE)
        target = served.webhook_path if n % 2 else "/v1/screenings"
        sock.sendall(
            request_bytes("POST", target, [*served.bearer(), ("Content-Type", "application/json")], length=1000)
            + b'{"subj'
        )
        stalled.append(sock)
    slow_head = socket.create_connection(("127.0.0.1", served.port), timeout=DEADLINE)
    slow_head.sendall(b"POST /v1/screenings HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    trickle = socket.create_connection(("127.0.0.1", served.port), timeout=DEADLINE)
    trickle.sendall(request_bytes("POST", served.webhook_path, served.signed(b"x"), length=1000))
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.25):
            try:
                trickle.sendall(b" ")
            except OSError:
                return

    dripping = threading.Thread(target=drip)
    dripping.start()
    try:
        body = _valid_event()
        assert answered(served, signed_webhook(served, body)).status == 202
        screening = json.dumps({"subjects": [{"id_type": "uscc", "id": "91320706MA1Y2N6Q47"}]}).encode()
        raw = request_bytes(
            "POST", "/v1/screenings", [*served.bearer(), ("Content-Type", "application/json")], screening
        )
        assert answered(served, raw).status == 200
        for sock in [*stalled, trickle]:
            answer = read_answer(sock)
            assert answer is not None and answer.status == 408, answer
            assert answer.problem()["title"] == "Request timeout"
    finally:
        stop.set()
        dripping.join()
        for sock in [*stalled, trickle, slow_head]:
            sock.close()
    still_serving(served)


def test_bodies_cut_short_by_a_disconnect_store_nothing_and_log_no_error(served: Served, clean_log: list[str]) -> None:
    offset = served.log_path.stat().st_size
    webhook_id = f"msg_cut_{uuid.uuid4().hex}"
    body = _valid_event()
    requests = [
        request_bytes("POST", served.webhook_path, served.signed(body, webhook_id), length=len(body))
        + body[: len(body) // 2],
        request_bytes("POST", "/v1/screenings", [*served.bearer(), ("Transfer-Encoding", "chunked")], length=-1)
        + b'40\r\n{"subjects"',
        # Gone before the 100 Continue it asked for could be written.
        request_bytes("POST", "/v1/screenings", [*served.bearer(), ("Expect", "100-continue")], length=100),
    ]
    for raw in requests:
        with socket.create_connection(("127.0.0.1", served.port), timeout=DEADLINE) as sock:
            sock.sendall(raw)
    lines = [json.loads(line) for line in log_lines_after(served, offset)]
    cut = [line for line in lines if line.get("outcome") == "client_disconnected"]
    assert len(cut) == len(requests), lines
    # The whole event arriving afterwards is new: the half that came before was never stored.
    assert answered(served, signed_webhook(served, body, webhook_id=webhook_id)).status == 202


# -- random requests at every endpoint ----------------------------------------------------------------------------

_TOKEN = st.text(
    st.sampled_from("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    min_size=1,
    max_size=12,
)
_HEADER_NAMES = (
    st.sampled_from(
        [
            "Content-Type",
            "Authorization",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "Content-Encoding",
            "Expect",
            "Idempotency-Key",
            "Connection",
            "Accept",
            "Upgrade",
        ]
    )
    | _TOKEN
)
_HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=utf-8",
            b"application/json; charset=latin-1",
            b"text/plain",
            b"gzip",
            b"100-continue",
            b"close",
            b"Bearer xyk_",
            b"v1,",
            b"1614265330",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.encode),
    st.text(max_size=20).map(
        lambda text: text.encode(errors="surrogatepass")
    ),  # any UTF-8, CR, LF and NUL removed below
    st.binary(max_size=40),  # invalid UTF-8, control characters
).map(lambda raw: bytes(b for b in raw if b not in b"\r\n\x00").strip())
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=16,
)
_BODIES = st.one_of(
    st.binary(max_size=2048),
    _JSON.map(lambda value: json.dumps(value).encode()),
    st.lists(
        st.fixed_dictionaries({"id_type": st.sampled_from(["uscc", "ric", 7]), "id": st.text(max_size=20)}), max_size=5
    ).map(lambda subjects: json.dumps({"subjects": subjects}).encode()),
    st.integers(min_value=1, max_value=5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.builds(
        lambda kind: encode(event(kind)), st.sampled_from(["complaint.filed", "listing.violation", "penalty.imposed"])
    ),
)


@dataclass
class RandomRequest:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    framing: str


@st.composite
def random_requests(draw: st.DrawFn, served: Served) -> RandomRequest:
    """A request at one of the routes (or none), mostly with the route's method and credentials, so that most get
    past aiohttp's parser and the first checks; headers, body and framing are hostile in every way drawn."""
    route_method, path = draw(
        st.sampled_from(
            [
                ("POST", served.webhook_path),
                ("POST", "/v1/webhooks/src_unknown0000000"),
                ("POST", "/v1/screenings"),
                ("GET", "/v1/lists/changes"),
                ("GET", "/openapi.json"),
                ("GET", "/healthz"),
                ("GET", "/readyz"),
                ("GET", "/nowhere"),
            ]
        )
    )
    odd_method = draw(st.booleans())
    method = draw(st.sampled_from(["PUT", "DELETE", "HEAD", "OPTIONS", "BREW", "G(T"])) if odd_method else route_method
    query = draw(st.none() | st.text(st.sampled_from("abcfilmtr=&%0123456789+"), max_size=20))
    body = draw(_BODIES)
    headers = [
        (name.encode(), value) for name, value in draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=3))
    ]
    if not draw(st.booleans()):  # with the credentials of the route
        if path.startswith("/v1/webhooks/"):
            headers += [(name.encode(), value.encode()) for name, value in served.signed(body)]
        else:
            headers += [(name.encode(), value.encode()) for name, value in served.bearer()]
    framing = draw(st.sampled_from(["length", "length", "length", "chunked", "none", "cut"]))
    return RandomRequest(method, path + (f"?{query}" if query is not None else ""), headers, body, framing)


def _send_random(served: Served, request: RandomRequest) -> Answer | None:
    if request.framing == "chunked":
        raw = request_bytes(
            request.method,
            request.target,
            [*request.headers, (b"Transfer-Encoding", b"chunked")],
            chunked(request.body, 97),
            length=-1,
        )
    elif request.framing == "none":
        raw = request_bytes(request.method, request.target, request.headers, length=-1)
    else:
        raw = request_bytes(request.method, request.target, request.headers, request.body)
    if request.framing == "cut":  # the client hangs up half-way through its body: nobody to answer
        with socket.create_connection(("127.0.0.1", served.port), timeout=DEADLINE) as sock:
            sock.sendall(raw[: len(raw) - max(1, len(request.body) // 2)])
        return None
    return exchange(served, raw, head_only=request.method == "HEAD")


def test_random_requests_at_every_endpoint_never_get_a_5xx_nor_hang(served: Served, clean_log: list[str]) -> None:
    before = served.rss_kib()
    statuses: dict[int, int] = {}

    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=random_requests(served))
    def throw(request: RandomRequest) -> None:
        answer = _send_random(served, request)
        if answer is None:
            return
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        assert answer.status < 500, (request, answer)
        if answer.status >= 400 and answer.headers.get("content-type") == PROBLEM_JSON and request.method != "HEAD":
            answer.problem()

    throw()
    still_serving(served)
    assert served.rss_kib() - before < RSS_GROWTH_LIMIT_KIB
    assert len(statuses) > 3, statuses  # the requests reached more than one kind of answer


# -- hostile evidence: valid HTTP, validly signed, both backends ---------------------------------------------------

HOSTILE_TEXT = [
    "a\x00b",
    "\x1b[31m红\x1b[0m",
    "\u202egnp.exe",
    "\ufeff",
    "\uffff",
    "😀" * 50,
    "\\\"'<>&",
    "\u2028",
    "\x7f\x85\x9f",
]


async def test_names_with_control_characters_are_stored_and_projected(gateway: Gateway) -> None:
    """Every event is accepted and the projector gets past all of them; names are shown with control characters
    replaced (the sealed original keeps them)."""
    source = await gateway.add_source("marketplace")
    for n, text in enumerate(HOSTILE_TEXT):
        body = event("listing.violation", case_id=f"case-{text}"[:128], listing_id=text)
        body["data"]["merchant"]["name"] = text
        response = await gateway.post(source, body, webhook_id=f"msg_{n}")
        assert response.status == 202, await response.text()
    last = (await gateway.store.read_inbox(0, 100))[-1].seq

    async def projected() -> bool:
        return await gateway.store.projector_position() >= last

    await eventually(projected, within=DEADLINE)
    changes = await gateway.store.read_changes(0, 100)
    names = [json.loads(change.snapshot)["subject"]["name"] for change in changes]
    assert len(names) == len(HOSTILE_TEXT)
    assert all(not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name) for name in names), names
    assert "a\ufffdb" in names
