"""structlog, configured once at the entrypoint.

JSON lines in production (or whenever stderr is not a terminal), a console renderer on a terminal.
The request middleware writes one canonical line per request; nothing ever logs a body, a secret or a
personal identifier (validation problems are logged as JSON Pointers, never values).

The JSON path is built for the ingest hot path: a cached-per-second timestamp, pydantic-core's JSON encoder
(Rust), and a writer that hands lines to the stream in batches, at least every 0.2 s, instead of one
``write`` and ``flush`` per request. A process killed with SIGKILL can lose its last 0.2 s of log lines,
never an acknowledged event: the inbox, not the log, is the record.

Under ``serve --workers N`` several processes write to one stream: each is configured with ``fields`` (its
``worker`` number and ``pid``, added to every line) and ``shared=True``, which hands the stream whole lines in
pieces of at most ``PIPE_BUF`` bytes, one ``write`` each, so lines of different processes never interleave
mid-line (a pipe keeps writes of up to ``PIPE_BUF`` bytes whole; processes that inherited one open file
share its offset, which Linux advances write by write).
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, BinaryIO, Literal, TextIO

import pydantic_core
import structlog

__all__ = ["configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_FLUSH_INTERVAL = 0.2
_FLUSH_BYTES = 64 * 1024
_ATOMIC_BYTES = select.PIPE_BUF


class _LineSink:
    """The binary file structlog's ``BytesLogger`` writes JSON lines to, in front of a text stream.

    Batched (production): ``flush``, which the logger calls after every line, writes only when the batch
    is big or older than ``interval``; a daemon thread writes the rest every ``interval`` seconds, and at
    exit. Unbatched (a stream passed in, as tests do): every line is written and flushed at once.
    ``shared``: other processes write to the same stream, so a batch goes out as whole lines, one ``write``
    of at most ``PIPE_BUF`` bytes each (a longer line alone).
    """

    def __init__(
        self, stream: TextIO, *, batched: bool, interval: float = _FLUSH_INTERVAL, shared: bool = False
    ) -> None:
        self._stream = stream
        self._binary: BinaryIO | None = getattr(stream, "buffer", None) if batched else None
        self._batched = batched
        self._shared = shared
        self._chunks: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._interval = interval
        if batched:
            threading.Thread(target=self._tick, name="xinyong-log-flush", daemon=True).start()
            atexit.register(self.drain)

    def write(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)

    def flush(self) -> None:
        if not self._batched or self._size >= _FLUSH_BYTES or time.monotonic() - self._last >= self._interval:
            self.drain()

    def drain(self) -> None:
        with self._lock:
            chunks, self._chunks, self._size = self._chunks, [], 0
            self._last = time.monotonic()
            if not chunks:
                return
            data = b"".join(chunks)
            try:
                if self._binary is not None and self._shared:
                    self._binary.flush()
                    descriptor = self._binary.fileno()
                    for piece in _whole_line_pieces(data, _ATOMIC_BYTES):
                        while piece:
                            piece = piece[os.write(descriptor, piece) :]
                elif self._binary is not None:
                    self._binary.write(data)
                    self._binary.flush()
                else:
                    self._stream.write(data.decode())
                    self._stream.flush()
            except (OSError, ValueError):  # the stream went away (closed pipe, interpreter exit)
                pass

    def _tick(self) -> None:
        while True:
            time.sleep(self._interval)
            self.drain()


def _whole_line_pieces(data: bytes, limit: int) -> Iterator[bytes]:
    """``data`` (newline-terminated lines) cut at line ends into pieces of at most ``limit`` bytes; a line
    longer than ``limit`` is a piece of its own."""
    start, size = 0, len(data)
    while start < size:
        if size - start <= limit:
            yield data[start:]
            return
        cut = data.rfind(b"\n", start, start + limit)
        if cut < 0:  # the first line alone is longer than the limit
            cut = data.find(b"\n", start + limit)
            cut = size - 1 if cut < 0 else cut
        yield data[start : cut + 1]
        start = cut + 1


class _SecondTimestamper:
    """ISO 8601 UTC timestamps (millisecond precision), formatting the date and time once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1000):03d}Z"
        return event_dict


def _render_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> bytes:
    return pydantic_core.to_json(event_dict, fallback=str)


class _Fields:
    """Adds the same fields to every line (those the line does not set itself): a worker's number and pid."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = dict(fields)

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for name, value in self._fields.items():
            event_dict.setdefault(name, value)
        return event_dict


def configure_logging(
    log_format: Literal["auto", "json", "console"] = "auto",
    level: Literal["debug", "info", "warning", "error"] = "info",
    *,
    stream: TextIO | None = None,
    fields: Mapping[str, Any] | None = None,
    shared: bool = False,
) -> Callable[[], None]:
    """Configure structlog for the process: JSON lines (batched) to stderr, or each line at once to
    ``stream`` when one is given; the console renderer when asked, or on a terminal with ``auto``.

    ``fields`` are added to every line; ``shared`` says other processes write to stderr too (see the module
    docstring). Returns a function that writes out the lines still batched: call it before the process ends
    without running ``atexit`` handlers (a ``multiprocessing`` child)."""
    target = stream if stream is not None else sys.stderr
    processors: list[structlog.typing.Processor] = [structlog.contextvars.merge_contextvars]
    if fields:
        processors.append(_Fields(fields))
    processors += [
        structlog.processors.add_log_level,
        _SecondTimestamper(),
        structlog.processors.format_exc_info,
    ]
    factory: Any
    flush: Callable[[], None]
    if log_format == "console" or (log_format == "auto" and target.isatty()):
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.WriteLoggerFactory(file=target)
        flush = target.flush
    else:
        processors.append(_render_json)
        sink = _LineSink(target, batched=stream is None, shared=shared)
        factory = structlog.BytesLoggerFactory(file=sink)  # type: ignore[arg-type]
        flush = sink.drain
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    return flush
