"""A change-feed entry as one API key sees it: in ``GET /v1/lists/changes`` and in the notifications of its
subscriptions alike (``data`` of a ``list.changed`` message is this entry plus its ``sequence``).

The stored snapshot with its ``cursor`` and ``effective_at``; its subject a USCC by code and name, or a person only by
pseudonym: the hex HMAC-SHA256 of the number, unsealed here, under the lookup secret of the API key
(``xinyong.ric_pseudonym``).
"""

from __future__ import annotations

import json
from typing import Any

from xinyong.queries import ric_pseudonym
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import StatusChange, from_micros

__all__ = ["feed_entry"]


def feed_entry(row: StatusChange, master: MasterKey, lookup_key: bytes) -> dict[str, Any]:
    """The feed entry of ``row`` for the API key whose lookup secret is ``lookup_key``."""
    snapshot = json.loads(row.snapshot)
    shown = snapshot.pop("subject")
    subject: dict[str, Any]
    if row.id_type == "ric":
        ric = master.open_identity(row.subject_key, row.sealed_id)
        subject = {"id_type": "ric", "pseudonym": ric_pseudonym(ric, lookup_key)}
    else:
        subject = {"id_type": "uscc", "id": shown["id"], "name": shown["name"]}
    return {
        "cursor": str(row.change_id),
        "effective_at": from_micros(row.effective_at).isoformat(),
        "subject": subject,
        **snapshot,
    }
