"""structlog, configured once at the entrypoint.

JSON lines in production (or whenever stderr is not a terminal), a console renderer on a terminal.
The request middleware writes one canonical line per request; nothing ever logs a body, a secret or a
personal identifier (validation problems are logged as JSON Pointers, never values).

The JSON path is built for the ingest hot path: a cached-per-second timestamp, pydantic-core's JSON encoder
(Rust), and a writer that hands lines to the stream in batches, at least every 0.2 s, instead of one
``write`` and ``flush`` per request. A process killed with SIGKILL can lose its last 0.2 s of log lines,
never an acknowledged event: the inbox, not the log, is the record.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any, BinaryIO, Literal, TextIO

import pydantic_core
import structlog

__all__ = ["configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_FLUSH_INTERVAL = 0.2
_FLUSH_BYTES = 64 * 1024


class _LineSink:
    """The binary file structlog's ``BytesLogger`` writes JSON lines to, in front of a text stream.

    Batched (production): ``flush``, which the logger calls after every line, writes only when the batch
    is big or older than ``interval``; a daemon thread writes the rest every ``interval`` seconds, and at
    exit. Unbatched (a stream passed in, as tests do): every line is written and flushed at once.
    """

    def __init__(self, stream: TextIO, *, batched: bool, interval: float = _FLUSH_INTERVAL) -> None:
        self._stream = stream
        self._binary: BinaryIO | None = getattr(stream, "buffer", None) if batched else None
        self._batched = batched
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
                if self._binary is not None:
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


def configure_logging(
    log_format: Literal["auto", "json", "console"] = "auto",
    level: Literal["debug", "info", "warning", "error"] = "info",
    *,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process: JSON lines (batched) to stderr, or each line at once to
    ``stream`` when one is given; the console renderer when asked, or on a terminal with ``auto``."""
    target = stream if stream is not None else sys.stderr
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _SecondTimestamper(),
        structlog.processors.format_exc_info,
    ]
    factory: Any
    if log_format == "console" or (log_format == "auto" and target.isatty()):
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.WriteLoggerFactory(file=target)
    else:
        processors.append(_render_json)
        factory = structlog.BytesLoggerFactory(file=_LineSink(target, batched=stream is None))  # type: ignore[arg-type]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
