"""NDJSON files of events, as ``xinyong send`` (a sender's upload) and ``xinyong-gateway import`` (an operator's load)
read them: one event envelope a line. Both use this module, so a line gets the same webhook id from either, and a
file that is not NDJSON is refused by both before any work.

**Lines.** :func:`numbered_lines` yields the non-blank lines with their numbers (as in the file: blank lines count)
and the end of line removed; a UTF-8 byte-order mark before line 1 is dropped. :func:`check_first_line` refuses a
file whose first line is not a JSON object, with one sentence (``Line 1 of deliveries.csv is not JSON — is this
NDJSON, one event a line?``): a CSV, a GB18030 file or a pretty-printed JSON document would otherwise become as
many requests, or rejections, as it has lines.

**Webhook ids.** A line is stored under :func:`webhook_id_and_body`:

- its top-level ``"id"`` member, when it has one (checked as a ``webhook-id`` header is: 1 to 256 printable ASCII
  characters without spaces); the body is then the rest of the object as compact JSON, exactly
  ``json.dumps(rest, separators=(",", ":"), ensure_ascii=False)``;
- else :func:`line_webhook_id`: ``line-`` and 32 hex digits of a SHA-256 of the line, and the body is the line,
  byte for byte.

So sending a file twice, importing it twice, or sending it and then importing it stores each line once.

**Privacy of derived ids.** Webhook ids are not secret: the gateway logs them with every request and keeps them in
the clear beside the sealed bodies, and senders keep them in rejects files. An unkeyed hash of a whole line would
let anyone who sees one confirm a guess of the line, and a resident identity number is easy to guess once the rest
of an event is known: its region, birth date and check digit leave a few thousand candidates. No key can help
here: the only secrets a sender and the gateway share are signing secrets, which rotate (and an Ed25519 source has
none the gateway knows), while an id must never change. So the digest **leaves personal data out**: in a line with
a subject that is not a business (an object with an ``"id_type"`` other than ``"uscc"``: a person's ``"ric"``, or a
mistake), that subject's ``"id"`` and ``"name"`` are blanked before hashing (the line is then hashed as compact
JSON, after a domain tag). An id cannot give away what it was not computed from. A line with no such subject is
hashed byte for byte, as ``xinyong send`` always did, so the ids of those lines did not change.

The price: two lines that differ **only** in a person's id or name get the same id, and the second one is refused
as a conflict (``webhook-id-conflict``, listed in the rejects file), never silently dropped. Events of one case
about two people normally differ elsewhere too (a case or waybill number, a time); where they may not, give each
line its own ``"id"``. Free-text fields (a penalty's ``violation``, a ``reason``) are hashed as they are: they are
not the place for a resident id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import IO, Any, Final

from xinyong.errors import MalformedHeadersError, NotNdjsonError
from xinyong.webhooks import check_webhook_id

__all__ = [
    "LINE_ID_PREFIX",
    "NotNdjsonError",
    "check_first_line",
    "line_webhook_id",
    "numbered_lines",
    "webhook_id_and_body",
]

LINE_ID_PREFIX: Final = "line-"
"""Of every webhook id derived from a line (:func:`line_webhook_id`)."""

_BOM: Final = b"\xef\xbb\xbf"
_PERSONAL_TAG: Final = b"xinyong line id, personal data left out, v1\n"
"""Hashed before the blanked form of a line that names a person, so it never meets the hash of a raw line."""
_BLANK: Final = "-"
_ID_TYPE_KEY: Final = re.compile(rb'"id_type"\s*:')
_USCC_ID_TYPE: Final = re.compile(rb'"id_type"\s*:\s*"uscc"')


def numbered_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """``(line number, line without its end of line, bytes read so far)`` of each non-blank line of ``stream``."""
    offset = 0
    for number, raw in enumerate(stream, 1):
        offset += len(raw)
        line = raw.rstrip(b"\r\n")
        if number == 1:
            line = line.removeprefix(_BOM)
        if line.strip():
            yield number, line, offset


def check_first_line(number: int, line: bytes, name: str) -> None:
    """Raise :class:`NotNdjsonError` unless ``line`` (the first non-blank line of the file ``name``, at ``number``)
    is a JSON object: one sentence that says what the file seems to be instead."""
    try:
        document = json.loads(line)
    except ValueError:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise NotNdjsonError(
                f"Line {number} of {name} is not UTF-8 text — is this NDJSON, one event a line?"
            ) from None
        raise NotNdjsonError(f"Line {number} of {name} is not JSON — is this NDJSON, one event a line?") from None
    if not isinstance(document, dict):
        raise NotNdjsonError(
            f"Line {number} of {name} is JSON but not an object — is this NDJSON, one event envelope"
            ' ({"type", "timestamp", "data"}) a line?'
        )


def _blanked(value: Any) -> tuple[Any, bool]:
    """``value`` with the ``id`` and ``name`` of every subject that is not a business blanked, and whether any was."""
    if isinstance(value, dict):
        found = "id_type" in value and value["id_type"] != "uscc"
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if found and key in ("id", "name"):
                copy[key] = _BLANK
            else:
                copy[key], inner = _blanked(item)
                found = found or inner
        return copy, found
    if isinstance(value, list):
        items = [_blanked(item) for item in value]
        return [item for item, _ in items], any(inner for _, inner in items)
    return value, False


def _only_businesses(line: bytes) -> bool:
    """True when every ``"id_type"`` member of the line is ``"uscc"``, read from the bytes (no parse): with no
    backslash in the line every quote delimits a string, so each ``"id_type":`` is a member name; any doubt
    (an escape, an ``"id_type"`` that is a value) is False, and the line is parsed."""
    if b"\\" in line:
        return False
    keys = len(_ID_TYPE_KEY.findall(line))
    return keys == len(_USCC_ID_TYPE.findall(line)) and keys == line.count(b'"id_type"')


def line_webhook_id(line: bytes) -> str:
    """The webhook id of a line that is a JSON object without an ``"id"`` member (see the module's docstring):
    ``line-`` and 32 hex digits of the SHA-256 of the line, or, when it names a subject that is not a business, of
    the line with that subject's ``id`` and ``name`` blanked. Raises ``ValueError`` for a line that is not a JSON
    object (such a line is refused, and needs no id)."""
    if not _only_businesses(line):
        document = json.loads(line)
        if not isinstance(document, dict):
            raise ValueError("a line's webhook id is derived only from a JSON object")
        blanked, personal = _blanked(document)
        if personal:
            canonical = json.dumps(blanked, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
            return LINE_ID_PREFIX + hashlib.sha256(_PERSONAL_TAG + canonical).hexdigest()[:32]
    return LINE_ID_PREFIX + hashlib.sha256(line).hexdigest()[:32]


def webhook_id_and_body(line: bytes) -> tuple[str, bytes]:
    """The webhook id a line is stored under, and the body stored (see the module's docstring), for a line that is
    a JSON object. Raises :class:`~xinyong.errors.MalformedHeadersError` when the line's ``"id"`` cannot be a webhook
    id, ``ValueError`` when the line is not a JSON object."""
    document = json.loads(line)
    if not isinstance(document, dict):
        raise ValueError("the line is not a JSON object")
    if "id" in document:
        webhook_id = document.pop("id")
        if not isinstance(webhook_id, str):
            raise MalformedHeadersError("The webhook id must be a non-empty string")
        check_webhook_id(webhook_id, what="The webhook id")
        return webhook_id, json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return line_webhook_id(line), line
