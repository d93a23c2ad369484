"""structlog, configured once at the entrypoint.

JSON lines in production (or whenever stderr is not a terminal), a console renderer on a terminal.
The request middleware writes one canonical line per request; nothing ever logs a body, a secret or a
personal identifier (validation problems are logged as JSON Pointers, never values).

The JSON path is built for the ingest hot path: a cached-per-second timestamp, pydantic-core's JSON encoder
(Rust), and a writer that hands lines to the stream in batches, at least every 0.2 s, instead of one
``write`` and ``flush`` per request. A process killed with SIGKILL can lose its last 0.2 s of log lines,
never an acknowledged event: the inbox, not the log, is the record.

Libraries that log through the standard library (aiohttp's server, asyncio) are bridged into the same JSON lines
(:class:`_LibraryRecords`), with the error's class and stack frames but never its message or arguments: aiohttp's
parser errors quote the raw request bytes (a header line, a piece of a chunked body), which may hold an API key or a
resident identity number. A request that is not valid HTTP is an ``http.malformed_request`` line at level info
with its status, not an error with a traceback.

Under ``serve --workers N`` several processes write to one stream: each is configured with ``fields`` (its
``worker`` number and ``pid``, added to every line) and ``shared=True``, which hands the stream whole lines in
pieces of at most ``PIPE_BUF`` bytes, one ``write`` each, so lines of different processes never interleave
mid-line (a pipe keeps writes of up to ``PIPE_BUF`` bytes whole; processes that inherited one open file
share its offset, which Linux advances write by write).

Everything :func:`configure_logging` sets lives in structlog's configuration and the standard library's loggers,
never in a variable of this module, so :func:`reset_logging` undoes all of it. Loggers are cached on first use only
when the lines go to the process's stderr (an entry point, configured once): a logger cached while lines went to a
stream passed in would keep writing there after the next configuration.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, BinaryIO, Literal, TextIO

import pydantic_core
import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

__all__ = ["configure_logging", "info_lines", "reset_logging"]

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


class _JsonLines:
    """Many info lines of one event rendered at once, exactly as the JSON processor chain renders each (the keys
    in the same order: the line's fields, ``event``, the process's ``fields``, ``level``, ``timestamp``), and
    handed to the sink in one write. For the access log, whose lines come a loop turn at a time."""

    def __init__(self, sink: _LineSink, fields: Mapping[str, Any], enabled: bool, stamp: _SecondTimestamper) -> None:
        self._sink = sink
        self._fields = dict(fields)
        self._enabled = enabled
        self._stamp = stamp

    def write(self, event: str, lines: Iterable[dict[str, Any]]) -> None:
        if not self._enabled:
            return
        timestamp = self._stamp(None, "", {})["timestamp"]
        rendered = []
        for line in lines:
            line["event"] = event
            for name, value in self._fields.items():
                line.setdefault(name, value)
            line["level"] = "info"
            line["timestamp"] = timestamp
            rendered.append(pydantic_core.to_json(line, fallback=str))
        if rendered:
            self._sink.write(b"\n".join(rendered) + b"\n")
            self._sink.flush()


class _JsonLoggerFactory(structlog.BytesLoggerFactory):
    """structlog's factory of loggers that write JSON lines to a sink, holding the :class:`_JsonLines` of the same
    sink for :func:`info_lines`: it is part of structlog's configuration, and goes with it."""

    __slots__ = ("json_lines",)

    def __init__(self, sink: _LineSink, json_lines: _JsonLines) -> None:
        super().__init__(file=sink)  # type: ignore[arg-type]
        self.json_lines = json_lines


def info_lines(log: Any, event: str, lines: list[dict[str, Any]]) -> None:
    """Log ``event`` at level info once for each dict of fields in ``lines`` (the dicts are consumed).

    The same lines as ``log.info(event, **fields)`` for each, written together: with JSON output (configured by
    :func:`configure_logging`) they skip structlog's per-line processor chain (:class:`_JsonLines`); on the
    console, or with context variables bound, they go through it."""
    factory = structlog.get_config()["logger_factory"]
    fast = factory.json_lines if isinstance(factory, _JsonLoggerFactory) else None
    if fast is None or structlog.contextvars.get_contextvars():
        for fields in lines:
            log.info(event, **fields)
    else:
        fast.write(event, lines)


class _Fields:
    """Adds the same fields to every line (those the line does not set itself): a worker's number and pid."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = dict(fields)

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for name, value in self._fields.items():
            event_dict.setdefault(name, value)
        return event_dict


_LIBRARY_LOGGERS = ("aiohttp", "asyncio")


class _LibraryRecords(logging.Handler):
    """Standard-library log records of aiohttp and asyncio, as structlog lines that carry nothing a client sent.

    A record becomes a line named by the first line of its message template (``"Error handling request from %s"``;
    the arguments are dropped), with ``logger``, and for an exception its class and stack frames
    (``traceback.format_tb``: code locations, no message). aiohttp's answer to a request that is not HTTP
    (``HttpProcessingError``: bad framing, oversized or duplicate headers; ``RequestPayloadError``: a body that does
    not decode, met again while aiohttp drains it after the answer) is logged as ``http.malformed_request`` at level
    info with its status, and a client gone while aiohttp answered it as ``http.client_disconnected``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc = record.exc_info[1] if record.exc_info else None
            log = structlog.get_logger(record.name)
            fields: dict[str, Any] = {"logger": record.name}
            if isinstance(exc, HttpProcessingError | RequestPayloadError):
                status = exc.code if isinstance(exc, HttpProcessingError) else 400
                log.info("http.malformed_request", status=status, error=type(exc).__name__, **fields)
                return
            if isinstance(exc, ConnectionResetError):  # the client went away while aiohttp was answering it
                log.info("http.client_disconnected", error=type(exc).__name__, **fields)
                return
            if exc is not None:
                fields["error"] = type(exc).__name__
                fields["frames"] = "".join(traceback.format_tb(exc.__traceback__))
            event = record.msg.split("\n", 1)[0] if isinstance(record.msg, str) else type(record.msg).__name__
            log.log(record.levelno, event, **fields)
        except Exception:  # a log record must never take the server down
            self.handleError(record)


def _bridge_library_logs() -> None:
    """Route aiohttp's and asyncio's standard-library records through :class:`_LibraryRecords` (once)."""
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(handler, _LibraryRecords) for handler in logger.handlers):
            logger.addHandler(_LibraryRecords())
        logger.propagate = False  # nor also to the last-resort handler, as plain text


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
    docstring). Loggers are cached on first use only without ``stream``. Returns a function that writes out the
    lines still batched: call it before the process ends without running ``atexit`` handlers (a
    ``multiprocessing`` child)."""
    target = stream if stream is not None else sys.stderr
    processors: list[structlog.typing.Processor] = [structlog.contextvars.merge_contextvars]
    if fields:
        processors.append(_Fields(fields))
    stamp = _SecondTimestamper()
    processors += [
        structlog.processors.add_log_level,
        stamp,
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
        factory = _JsonLoggerFactory(sink, _JsonLines(sink, fields or {}, _LEVELS[level] <= logging.INFO, stamp))
        flush = sink.drain
    _bridge_library_logs()
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=stream is None,
    )
    return flush


def reset_logging() -> None:
    """Undo :func:`configure_logging` (and any other configuration of structlog): structlog's defaults, no context
    variables bound, aiohttp's and asyncio's records back to the standard library's handling."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in [handler for handler in logger.handlers if isinstance(handler, _LibraryRecords)]:
            logger.removeHandler(handler)
        logger.propagate = True
