"""The inbox as the credit engine reads it: an event's projection partitions, and a stored row decoded.

:func:`event_partitions` is the bit mask stored with an inbox row (ingest computes it when the event arrives), so a
projector can skip rows about other partitions without opening them; :func:`read_logged` opens and parses a row's
sealed body into the :class:`~xinyong_gateway.credit.engine.LoggedEvent` the engine applies.
"""

from __future__ import annotations

from datetime import UTC, datetime

from xinyong.events import EVENT_TYPES, EventBase
from xinyong_gateway.credit.engine import LoggedEvent, subjects_of
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import StoreError
from xinyong_gateway.store import StoredEvent, partition_mask

__all__ = ["event_partitions", "read_logged"]

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
    event = EVENT_TYPES[row.event_type].model_validate_json(body, context=_REPLAY_CONTEXT)
    return LoggedEvent(row.seq, row.source_id, row.webhook_id, event)
