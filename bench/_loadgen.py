"""A lean closed-loop HTTP/1.1 load generator for the ingest benchmark.

One thread, one ``selectors`` loop (epoll on Linux), ``concurrency`` keep-alive connections. Each
connection sends a pre-encoded request, waits for the complete response, records the latency
(``perf_counter_ns``) and sends the next one. Response parsing is the minimum a keep-alive client
needs: the status code, ``Content-Length`` and ``Connection: close``. No asyncio, no HTTP library, no
per-request allocation beyond the receive buffer, so one core drives far more requests per second than
a single-core aiohttp server can answer.

The run stops by itself: when every request has been sent, when ``time_limit`` has passed, or at the
first unexpected status (what is in flight is still collected); answers that never arrive end it after
``drain_timeout`` seconds.
"""

from __future__ import annotations

import gc
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["LoadResult", "percentile", "run_closed_loop"]

_RECV_BYTES = 65536
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CONNECTION_CLOSE = b"\r\nconnection: close"


@dataclass(slots=True)
class LoadResult:
    """What one closed-loop run observed."""

    sent: int
    completed: int
    ok: int
    """Responses with the expected status."""
    statuses: dict[int, int]
    latencies_ns: list[int]
    """Latency of every response with the expected status, in completion order."""
    wall_s: float
    """From the first send to the last response."""
    cpu_s: float
    """CPU time (user + system) this process spent in the run."""
    errors: list[str] = field(default_factory=list)
    """Human-readable descriptions of the first few problems (unexpected status, closed connection …)."""

    @property
    def rate(self) -> float:
        """Responses with the expected status per second of wall time."""
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_share(self) -> float:
        """CPU time over wall time: 1.0 means the generator kept one core fully busy."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class _Connection:
    __slots__ = ("buffer", "pending", "sock", "started_ns")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.pending: memoryview | None = None
        self.started_ns = 0


def _parse_response(buffer: bytearray) -> tuple[int, int, bool] | None:
    """(status, total length, server closes) of the complete response at the start of ``buffer``, or None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    status = int(head[9:12])
    if status in (204, 304):  # no body, whatever the headers say (RFC 9110, 6.4.1)
        return status, head_end + 4, _CONNECTION_CLOSE in head
    at = head.find(_CONTENT_LENGTH)
    if at < 0:
        raise ValueError("response without Content-Length (chunked answers are not expected here)")
    start = at + len(_CONTENT_LENGTH)
    end = head.find(b"\r\n", start)
    length = int(head[start : end if end >= 0 else len(head)])
    total = head_end + 4 + length
    if len(buffer) < total:
        return None
    return status, total, _CONNECTION_CLOSE in head


def run_closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    expected_status: int,
    time_limit: float,
    drain_timeout: float = 15.0,
) -> LoadResult:
    """Send ``requests`` (each a complete HTTP/1.1 request) over ``concurrency`` keep-alive connections."""
    selector = selectors.DefaultSelector()
    connections: list[_Connection] = []
    statuses: dict[int, int] = {}
    latencies: list[int] = []
    errors: list[str] = []
    total = len(requests)
    next_index = 0
    in_flight = 0
    completed = 0
    stop_sending = False
    perf_ns = time.perf_counter_ns

    def send_next(conn: _Connection) -> None:
        nonlocal next_index, in_flight
        request = requests[next_index]
        next_index += 1
        in_flight += 1
        conn.started_ns = perf_ns()
        sent = conn.sock.send(request)
        if sent < len(request):
            conn.pending = memoryview(request)[sent:]
            selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def fail(message: str) -> None:
        nonlocal stop_sending
        stop_sending = True
        if len(errors) < 5:
            errors.append(message)

    for _ in range(min(concurrency, total)):
        sock = socket.create_connection((host, port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Connection(sock)
        connections.append(conn)
        selector.register(sock, selectors.EVENT_READ, conn)

    gc_was_enabled = gc.isenabled()
    gc.disable()
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + time_limit
    last_answer = started
    try:
        for conn in connections:
            send_next(conn)
        while in_flight:
            events = selector.select(timeout=0.5)
            now = time.perf_counter()
            if not events:
                if now - last_answer > drain_timeout:
                    fail(f"{in_flight} request(s) got no answer within {drain_timeout:.0f} s")
                    break
                continue
            if not stop_sending and now >= deadline:
                stop_sending = True
            for key, mask in events:
                conn = key.data
                if mask & selectors.EVENT_WRITE and conn.pending is not None:
                    sent = conn.sock.send(conn.pending)
                    conn.pending = conn.pending[sent:] if sent < len(conn.pending) else None
                    if conn.pending is None:
                        selector.modify(conn.sock, selectors.EVENT_READ, conn)
                if not mask & selectors.EVENT_READ:
                    continue
                chunk = conn.sock.recv(_RECV_BYTES)
                if not chunk:
                    selector.unregister(conn.sock)
                    in_flight -= 1
                    fail("the server closed a keep-alive connection")
                    continue
                conn.buffer += chunk
                try:
                    parsed = _parse_response(conn.buffer)
                except ValueError as exc:
                    selector.unregister(conn.sock)
                    in_flight -= 1
                    fail(f"unreadable response: {exc}")
                    continue
                if parsed is None:
                    continue
                finished_ns = perf_ns()
                status, length, closing = parsed
                in_flight -= 1
                completed += 1
                last_answer = now
                statuses[status] = statuses.get(status, 0) + 1
                if status == expected_status:
                    latencies.append(finished_ns - conn.started_ns)
                else:
                    body = bytes(conn.buffer[:length]).split(b"\r\n\r\n", 1)[-1]
                    fail(f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
                del conn.buffer[:length]
                if closing:
                    selector.unregister(conn.sock)
                    fail("the server answered 'Connection: close'")
                    continue
                if not stop_sending and next_index < total:
                    send_next(conn)
        wall = last_answer - started
    finally:
        cpu = time.process_time() - cpu_started
        if gc_was_enabled:
            gc.enable()
        selector.close()
        for conn in connections:
            conn.sock.close()
    return LoadResult(
        sent=next_index,
        completed=completed,
        ok=len(latencies),
        statuses=statuses,
        latencies_ns=latencies,
        wall_s=wall,
        cpu_s=cpu,
        errors=errors,
    )
