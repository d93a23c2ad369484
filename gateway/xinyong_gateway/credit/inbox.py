"""The inbox as the credit engine reads it: an event's projection partitions, and a stored row decoded.

:func:`event_partitions` is the bit mask stored with an inbox row (ingest computes it when the event arrives), so a
projector can skip rows about other partitions without opening them; :func:`read_logged` opens and parses a row's
sealed body into the :class:`~xinyong_gateway.credit.engine.LoggedEvent` the engine applies.

**Erased bodies** (retention, ``credit/retention.py``): :func:`erased_body` is what replaces a body once its time is
up: the event as received, except that every natural person it names (a ``ric`` subject) is a stand-in, an
identifier of the right form that names nobody (region ``000000``, born 1900-01-01) and no name, with the file key
(blind index) of the person it stood for. :func:`read_logged` gives the engine that event and those keys, so a replay
applies the same facts to the same files as before, and the log no longer holds who the person was.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from stdnum.cn import ric as stdnum_ric

from xinyong.events import EVENT_TYPES, EventBase
from xinyong_gateway.credit.engine import LoggedEvent, subjects_of
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import StoreError
from xinyong_gateway.store import StoredEvent, partition_mask

__all__ = ["ERASED_PREFIX", "erased_body", "event_partitions", "is_erased", "read_logged"]

ERASED_PREFIX = b"\x00erased v1\x00"
"""How an erased body begins (no JSON body can: it starts with a NUL byte)."""

# Events were validated (including "not dated in the future") when they were received; replaying them later
# must not refuse them because the clock has moved, so the projector validates against a distant "now".
_REPLAY_CONTEXT = {"now": datetime(9999, 1, 1, tzinfo=UTC)}


def event_partitions(event: EventBase, master: MasterKey) -> int:
    """The bit mask of the projection partitions of the subjects ``event`` is about (stored with its inbox row)."""
    return partition_mask(master.subject_key(subject.id_type, subject.id) for subject in subjects_of(event).values())


def read_logged(row: StoredEvent, master: MasterKey) -> LoggedEvent:
    """An inbox row as the engine takes it: its body unsealed and parsed (as received, whatever the clock says)."""
    if row.sealed_body is None:
        raise StoreError(f"Inbox row {row.seq} was read without its body.")
    body = master.open_body(row.source_id, row.webhook_id, row.sealed_body)
    model = EVENT_TYPES[row.event_type]
    if is_erased(body):
        document = json.loads(body[len(ERASED_PREFIX) :])
        event = model.model_validate(document["event"], context=_REPLAY_CONTEXT)
        return LoggedEvent(row.seq, row.source_id, row.webhook_id, event, document["file_keys"])
    return LoggedEvent(row.seq, row.source_id, row.webhook_id, model.model_validate_json(body, context=_REPLAY_CONTEXT))


def is_erased(body: bytes) -> bool:
    """Whether an opened body is an erased one (:func:`erased_body`)."""
    return body.startswith(ERASED_PREFIX)


def _stand_in(number: int) -> str:
    first17 = f"00000019000101{number:03d}"
    return first17 + str(stdnum_ric.calc_check_digit(first17 + "0"))


def erased_body(logged: LoggedEvent, master: MasterKey) -> bytes | None:
    """The body that replaces ``logged``'s once its time is up: its natural persons erased (module docstring), or
    None when it names none (nothing to erase)."""
    document: dict[str, Any] = logged.event.model_dump(mode="json", by_alias=True)
    file_keys = dict(logged.file_keys or {})
    persons = 0
    for field_name, subject in subjects_of(logged.event).items():
        if subject.id_type != "ric" or field_name in file_keys:
            continue
        file_keys[field_name] = master.subject_key(subject.id_type, subject.id)
        persons += 1
        document["data"][field_name] = {"id_type": "ric", "id": _stand_in(persons)}
    if not persons:
        return None
    return ERASED_PREFIX + json.dumps({"event": document, "file_keys": file_keys}, ensure_ascii=False).encode()
