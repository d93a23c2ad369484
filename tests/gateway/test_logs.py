"""``logs.info_lines``: the access lines of a loop turn, written together, are the lines structlog would write."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import structlog

from tests.gateway.conftest import LogSinkFactory
from xinyong_gateway.logs import configure_logging, info_lines, reset_logging


def _written(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _without_time(lines: list[dict[str, Any]]) -> list[tuple[list[str], dict[str, Any]]]:
    """Each line's key order (timestamps differ) and its members other than the timestamp."""
    return [(list(line), {k: v for k, v in line.items() if k != "timestamp"}) for line in lines]


@pytest.mark.parametrize("fields", [None, {"worker": 2, "pid": 4242}])
def test_lines_written_together_equal_lines_written_one_by_one(
    log_sink: LogSinkFactory, fields: dict[str, Any] | None
) -> None:
    lines = [
        {"request_id": "a-1", "method": "POST", "status": 202, "ms": 1.25, "type": "merchant.registered"},
        {"request_id": "a-2", "method": "GET", "status": 404, "ms": 0.5, "problem": "not-found", "pid": 7},
    ]
    one_by_one = log_sink(fields=fields)
    log = structlog.get_logger("test.lines.one")
    for line in lines:
        log.info("request", **line)
    together = log_sink(fields=fields)
    info_lines(structlog.get_logger("test.lines.together"), "request", [dict(line) for line in lines])

    expected, got = _written(one_by_one), _written(together)
    assert len(got) == 2
    assert _without_time(got) == _without_time(expected)
    assert all(line["timestamp"].endswith("Z") for line in got)
    assert got[1]["pid"] == 7  # a line's own field wins over the process's, as with structlog


def test_lines_below_the_configured_level_are_not_written(log_sink: LogSinkFactory) -> None:
    stream = log_sink("json", "warning")
    info_lines(structlog.get_logger("test.lines.level"), "request", [{"status": 200}])
    assert stream.getvalue() == ""


def test_on_the_console_the_lines_go_through_structlog(log_sink: LogSinkFactory) -> None:
    stream = log_sink("console")
    info_lines(structlog.get_logger("test.lines.console"), "request", [{"status": 200}, {"status": 201}])
    text = stream.getvalue()
    assert text.count("request") == 2 and "status=201" in text


def test_bound_context_variables_are_kept(log_sink: LogSinkFactory) -> None:
    stream = log_sink()
    with structlog.contextvars.bound_contextvars(job="import-7"):
        info_lines(structlog.get_logger("test.lines.context"), "request", [{"status": 200}])
    assert _written(stream)[0]["job"] == "import-7"


def test_a_logger_used_under_one_configuration_follows_the_next(log_sink: LogSinkFactory) -> None:
    """Loggers configured with a stream are not cached: a module-level logger writes where logging points now."""
    log = structlog.get_logger("test.lines.module_level")
    first = log_sink()
    log.info("first")
    second = log_sink()
    log.info("second")
    assert [line["event"] for line in _written(first)] == ["first"]
    assert [line["event"] for line in _written(second)] == ["second"]


def test_reset_logging_undoes_the_configuration() -> None:
    configure_logging("json", stream=io.StringIO())
    assert structlog.is_configured()
    assert logging.getLogger("aiohttp").propagate is False
    reset_logging()
    assert not structlog.is_configured()
    assert logging.getLogger("aiohttp").propagate is True
    assert not logging.getLogger("aiohttp").handlers
