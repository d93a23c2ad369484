"""The SDK's log lines: through the standard library's :mod:`logging`, silent unless the application says otherwise.

A library must not print. structlog left unconfigured writes to **stdout**, into the output of whatever program uses
the SDK, so the SDK never logs through structlog's global configuration (which belongs to the application: the
gateway configures it for its JSON lines). Each module gets its logger from :func:`get_logger`: a structlog logger
*bound to* ``logging.getLogger(name)`` with processors of its own, so a line is

- dropped at once unless that standard-library logger is enabled for its level (``filter_by_level``);
- handed to the logger as one record, ``msg`` the event name and its fields as ``key=value`` (readable with any
  formatter), the fields also as attributes of the record (``extra``) for structured handlers.

The package's logger ``xinyong`` carries a ``NullHandler`` (the standard library's advice for libraries), so an
application that configured nothing sees nothing, not even warnings through Python's last-resort handler. To see
the SDK's lines, configure logging as for any library, e.g. ``logging.basicConfig(level=logging.INFO)`` or a
handler on ``logging.getLogger("xinyong")``. The ``xinyong`` command line writes warnings (and, with ``--verbose``,
the retries at level info) to stderr.

Levels: ``info`` for what the SDK handles itself (a retry), ``warning`` for what the caller may want to act on
(a list mirror's background sync failed and will be tried again). Fields never hold a secret or a personal
identifier.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

__all__ = ["get_logger"]

ROOT: Final = "xinyong"

logging.getLogger(ROOT).addHandler(logging.NullHandler())

_RESERVED: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
"""Attribute names of a ``LogRecord``: ``extra`` must not set them (``logging`` raises ``KeyError``)."""


def _to_record(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the standard-library call: the message and the fields as ``extra``."""
    event = str(event_dict.pop("event", ""))
    fields = {key: value for key, value in event_dict.items() if value is not None}
    message = " ".join([event, *(f"{key}={value}" for key, value in fields.items())])
    extra = {key if key not in _RESERVED else f"xinyong_{key}": value for key, value in fields.items()}
    extra["xinyong_event"] = event
    return {"msg": message, "extra": extra}


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger that writes to ``logging.getLogger(name)``; ``name`` starts with ``xinyong.``."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[structlog.stdlib.filter_by_level, _to_record],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger
