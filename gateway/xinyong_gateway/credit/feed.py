"""A change-feed entry as one API key sees it: in ``GET /v1/lists/changes`` and in the notifications of its
subscriptions alike (``data`` of a ``list.changed`` message is this entry plus its ``sequence``).

The stored snapshot with its ``cursor`` and ``effective_at``; its subject a USCC by code and name, or a person only by
pseudonym: the hex HMAC-SHA256 of the number, unsealed here, under the lookup secret of the API key
(``xinyong.ric_pseudonym``); a person retention forgot (their identity no longer sealed anywhere) by a pseudonym of
their file key, which matches no number any more. :func:`shown_subject` is that rule for any answer naming a subject
to a key (the feed, notifications, objections and repairs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from xinyong.queries import ric_pseudonym
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import StatusChange, from_micros

__all__ = ["feed_entry", "shown_subject"]


def shown_subject(
    id_type: str,
    subject_key: str,
    sealed_id: bytes,
    shown_id: str,
    name: str | None,
    master: MasterKey,
    lookup_key: bytes,
) -> dict[str, Any]:
    """A subject as it is named to the API key whose lookup secret is ``lookup_key``."""
    if id_type != "ric":
        return {"id_type": "uscc", "id": shown_id, "name": name}
    if not sealed_id:  # forgotten by retention
        forgotten = hmac.new(lookup_key, b"forgotten:" + subject_key.encode(), hashlib.sha256).hexdigest()
        return {"id_type": "ric", "pseudonym": forgotten}
    return {"id_type": "ric", "pseudonym": ric_pseudonym(master.open_identity(subject_key, sealed_id), lookup_key)}


def feed_entry(row: StatusChange, master: MasterKey, lookup_key: bytes) -> dict[str, Any]:
    """The feed entry of ``row`` for the API key whose lookup secret is ``lookup_key``."""
    snapshot = json.loads(row.snapshot)
    shown = snapshot.pop("subject")
    subject = shown_subject(row.id_type, row.subject_key, row.sealed_id, shown["id"], shown["name"], master, lookup_key)
    return {
        "cursor": str(row.change_id),
        "effective_at": from_micros(row.effective_at).isoformat(),
        "subject": subject,
        **snapshot,
    }
