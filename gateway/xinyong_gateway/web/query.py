"""The query side: ``POST /v1/screenings`` and ``GET /v1/lists/changes`` (docs/wire-contract.md, "Query side").

**Screening.** Checked in this order: 401/403 API key and scope (``web.auth``) → 429 the key's rate → 400 any query
parameter (``query-parameter-invalid``: subjects travel in the body) → 413 body over 1 MiB (408 when it does not arrive
within the body timeout) → 415 not JSON → 400 body not JSON → 422 schema (1 to 1000 subjects, each id checked as in
events; the pointer names the index, ``/subjects/3/id``, and nothing is looked up) → 503 store. Then every subject is
looked up by its blind index (``MasterKey.subject_key``) in one query (``Store.load_subjects``), and the answer has
one status per subject, in request order, each ``as_of`` now: the stored status of its credit file (recomputed from
the file when time alone changed it and the projector has not swept it yet), or, for a subject never reported, list
``none``, no grade or score, no measures, under the policy in force. Personal ids arrive only in the body and leave
only masked; the log line carries the key id and the number of subjects, never an identifier. An
``Idempotency-Key`` header is accepted and ignored (a screening is a read).

**Change feed.** ``after`` (a cursor; the start without one) and ``limit`` (1 to 1000, default 100) are checked (400
``query-parameter-invalid``, as is any other parameter or a repeated one: a typo must not page from the start), then
one page is read in feed order (``Store.read_changes``: a follower paging with the cursor never misses an entry).
Each entry is built by ``credit.feed.feed_entry`` for the API key asking (a RIC only by its pseudonym), as the
notifications of the key's subscriptions are.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from xinyong import problems
from xinyong.events import error_pointers
from xinyong.queries import CURSOR_PATTERN, MAX_CHANGES_PAGE, MAX_SCREENING_SUBJECTS, ScreeningRequest
from xinyong.subjects import Subject
from xinyong_gateway.access import ApiKeyRegistry
from xinyong_gateway.credit.documents import status_document
from xinyong_gateway.credit.engine import CreditFile, ObjectionView, RepairView
from xinyong_gateway.credit.feed import feed_entry, shown_subject
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.report import held_cases
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import Store, SubjectRow
from xinyong_gateway.web.auth import authenticate
from xinyong_gateway.web.body import is_json_utf8, read_body, validated_json
from xinyong_gateway.web.middleware import LOG_FACTS
from xinyong_gateway.web.problems import ProblemError
from xinyong_gateway.web.turn_batch import TurnBatch, fail_futures

__all__ = ["MAX_CASE_ID", "SCREENING_BODY_LIMIT", "QueryHandler"]


SCREENING_BODY_LIMIT = 1 << 20
"""Bytes of a screening body: 1000 subjects with names of 200 Chinese characters fit (about 700 KB)."""
_SCREENING_TOO_LARGE = f"The body limit of a screening is {SCREENING_BODY_LIMIT} bytes."
_JSON = "application/json"
_CURSOR = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))
_LIMIT = re.compile(r"[0-9]{1,4}")
_DEFAULT_PAGE = 100
_FEED_PARAMETERS = frozenset({"after", "limit"})
MAX_CASE_ID = 128
"""The longest objection or repair id an event may carry (``xinyong.events.Identifier``)."""


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(slots=True)
class _Screening:
    """One screening request's turn: its body, the number of subjects once validated (for the log line), and the
    future that gets its answer (the response body) or its problem."""

    body: bytes
    future: asyncio.Future[bytes]
    subjects: int | None = None


class QueryHandler:
    """The query endpoints, bound to the store, the master key, the API keys and the policy in force."""

    _store: Store
    _master: MasterKey
    _keys: ApiKeyRegistry
    _policies: PolicyInForce

    def __init__(self, *, body_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self._body_timeout = body_timeout
        self._clock = clock
        self._screenings: TurnBatch[_Screening] = TurnBatch(self._screen_batch, fail_futures)
        self._lookups: set[asyncio.Task[None]] = set()

    def attach(self, store: Store, master: MasterKey, keys: ApiKeyRegistry, policies: PolicyInForce) -> None:
        """Bind the resources opened at start-up (routes must exist before the app starts)."""
        self._store = store
        self._master = master
        self._keys = keys
        self._policies = policies

    # -- POST /v1/screenings ----------------------------------------------------------------------------
    async def screen(self, request: web.Request) -> web.Response:
        facts = request[LOG_FACTS]
        await authenticate(request, self._keys, "screen")
        if request.query_string and request.query:
            raise ProblemError(
                problems.QUERY_INVALID, "A screening takes no query parameters: the subjects go in the body."
            )
        body = await read_body(
            request, limit=SCREENING_BODY_LIMIT, seconds=self._body_timeout, too_large=_SCREENING_TOO_LARGE
        )
        if not is_json_utf8(request):
            raise ProblemError(problems.UNSUPPORTED_MEDIA_TYPE, "Send the subjects as application/json (UTF-8).")
        screening = _Screening(body, asyncio.get_running_loop().create_future())
        self._screenings.add(screening)
        try:
            answer = await screening.future
        finally:
            if screening.subjects is not None:
                facts["subjects"] = screening.subjects
        return web.Response(body=answer, content_type=_JSON)

    def _screen_batch(self, batch: list[_Screening]) -> None:
        """(End of a loop turn) Parse and validate every screening of the turn, in order (a failed one gets its
        problem and nothing is looked up for it), then look up the subjects of all the others in one store call."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        valid: list[tuple[_Screening, list[Subject], list[str]]] = []
        subject_key = self._master.subject_key
        for screening in batch:
            if screening.future.done():  # the client went away and its request was cancelled
                continue
            try:
                subjects = _screening_subjects(screening.body, now)
                screening.subjects = len(subjects)
                valid.append((screening, subjects, [subject_key(subject.id_type, subject.id) for subject in subjects]))
            except Exception as exc:  # this request's answer, never the batch's
                screening.future.set_exception(exc)
        if valid:
            task = asyncio.get_running_loop().create_task(self._answer_screenings(valid, now))
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    async def _answer_screenings(self, valid: list[tuple[_Screening, list[Subject], list[str]]], now: datetime) -> None:
        """Look up the subjects of a turn's valid screenings in one store call and settle each with its answer."""
        try:
            rows = await self._store.load_subjects([key for _, _, keys in valid for key in keys])
        except Exception as exc:  # a store error answers every screening of the batch (503)
            for screening, _, _ in valid:
                if not screening.future.done():
                    screening.future.set_exception(exc)
            return
        as_of = _iso(now)
        now_us = int(now.timestamp() * 1_000_000)
        for screening, subjects, keys in valid:
            if screening.future.done():
                continue
            try:
                parts = [
                    self._status_json(rows.get(key), subject, now, now_us, as_of)
                    for key, subject in zip(keys, subjects, strict=True)
                ]
                screening.future.set_result(('{"results": [' + ", ".join(parts) + "]}").encode())
            except Exception as exc:
                screening.future.set_exception(exc)

    async def status_of(self, subject: Subject, now: datetime) -> dict[str, Any]:
        """One subject's status document at ``now``, as a screening answers it (``POST /v1/attestations`` signs it)."""
        key = self._master.subject_key(subject.id_type, subject.id)
        rows = await self._store.load_subjects([key])
        document: dict[str, Any] = json.loads(
            self._status_json(rows.get(key), subject, now, int(now.timestamp() * 1_000_000), _iso(now))
        )
        return document

    def _status_json(self, row: SubjectRow | None, subject: Subject, now: datetime, now_us: int, as_of: str) -> str:
        if row is None:
            # Never reported: the id (validated, so only digits and capitals) and the policy version in a template.
            return _NEVER_REPORTED.format(
                id_type=subject.id_type,
                id=subject.masked_id,
                policy_version=json.dumps(self._policies.policy.version, ensure_ascii=False),
                as_of=as_of,
            )
        if row.next_change_at is not None and row.next_change_at <= now_us:
            # Time alone changed the status and the projector has not swept this file yet: compute it now.
            status = CreditFile.from_json(row.state).status_at(now, self._policies.policy)
            document = status_document((row.id_type, row.display_id, row.display_name), status)
            return json.dumps(document | {"as_of": as_of}, ensure_ascii=False)
        return _restamped(row.status, as_of)

    # -- GET /v1/lists/changes --------------------------------------------------------------------------
    async def changes(self, request: web.Request) -> web.Response:
        facts = request[LOG_FACTS]
        key = await authenticate(request, self._keys, "changes")
        if any(name not in _FEED_PARAMETERS for name in request.query) or len(request.query) > len(set(request.query)):
            # A typo ("afer=42") must not silently page from the start, nor a repeated cursor pick one.
            raise ProblemError(problems.QUERY_INVALID, "Only 'after' and 'limit' may be given, each at most once.")
        after_text = request.query.get("after")
        if after_text is None:
            after = 0
        elif _CURSOR.fullmatch(after_text):
            after = int(after_text)
        else:
            raise ProblemError(
                problems.QUERY_INVALID, "'after' must be a cursor from this feed (an entry's cursor, or 'next')."
            )
        limit_text = request.query.get("limit")
        if limit_text is None:
            limit = _DEFAULT_PAGE
        elif _LIMIT.fullmatch(limit_text) and 1 <= int(limit_text) <= MAX_CHANGES_PAGE:
            limit = int(limit_text)
        else:
            raise ProblemError(problems.QUERY_INVALID, f"'limit' must be a whole number from 1 to {MAX_CHANGES_PAGE}.")
        rows = await self._store.read_changes(after, limit)
        entries = [feed_entry(row, self._master, key.lookup_key) for row in rows]
        facts["changes"] = len(entries)
        next_cursor = str(rows[-1].change_id) if rows else str(after)
        body = json.dumps({"changes": entries, "next": next_cursor}, ensure_ascii=False).encode()
        return web.Response(body=body, content_type=_JSON)

    # -- GET /v1/objections/{case_id}, GET /v1/repairs/{case_id} -------------------------------------------
    async def objection(self, request: web.Request) -> web.Response:
        return await self._case(request, "objection")

    async def repair(self, request: web.Request) -> web.Response:
        return await self._case(request, "repair")

    async def _case(self, request: web.Request, kind: str) -> web.Response:
        """One objection or repair application that one of the key's sources filed: its state and deadlines now.
        Another source's case answers exactly as an unknown one (404), so a key learns nothing of others' cases."""
        key = await authenticate(request, self._keys, "cases")
        if request.query_string and request.query:
            raise ProblemError(problems.QUERY_INVALID, f"Reading an {kind} takes no query parameters.")
        case_id = request.match_info["case_id"]
        if not 1 <= len(case_id) <= MAX_CASE_ID:
            raise ProblemError(problems.QUERY_INVALID, f"An {kind} id is 1 to {MAX_CASE_ID} characters.")
        now = datetime.fromtimestamp(self._clock(), UTC)
        held = await held_cases(self._store, kind, self._policies.policy, now, case_id=case_id)
        mine = [case for case in held if case.view.filed_by is not None and case.view.filed_by in key.sources]
        if not mine:
            raise ProblemError(
                problems.NOT_FOUND,
                f"None of this API key's sources filed an {kind} with this id (or the projector has not applied it"
                " yet).",
            )
        case = max(mine, key=lambda c: (_filed_at(c.view), c.ref.subject_key))  # an id a source used twice
        row = case.row
        document = {
            "subject": shown_subject(
                row.id_type,
                row.subject_key,
                row.sealed_id,
                row.display_id,
                row.display_name,
                self._master,
                key.lookup_key,
            ),
            **case.document(),
            "as_of": _iso(now),
        }
        return web.Response(body=json.dumps(document, ensure_ascii=False).encode(), content_type=_JSON)


def _filed_at(view: ObjectionView | RepairView) -> datetime:
    moment = view.filed_at if isinstance(view, ObjectionView) else view.applied_at
    return moment if moment is not None else datetime.min.replace(tzinfo=UTC)


_AS_OF = ', "as_of": "'
_NEVER_REPORTED = (
    '{{"subject": {{"id_type": "{id_type}", "id": "{id}", "name": null}}, "list": "none", "grade": null,'
    ' "score": null, "measures": [], "reasons": [], "disputed": false, "policy_version": {policy_version},'
    ' "as_of": "{as_of}"}}'
)
"""The status of a subject nothing was ever reported about (``json.dumps`` of it, in the same member order)."""


def _restamped(status: str, as_of: str) -> str:
    """A stored status document (JSON text) with its ``as_of`` replaced.

    Stored statuses are ``json.dumps`` of ``status_document``, whose last member is ``as_of`` (an ISO 8601 time,
    no escapes), so the text is cut there instead of parsed and re-serialised: a thousand results cost
    microseconds instead of milliseconds. Any other text goes the long way."""
    at = status.rfind(_AS_OF)
    if at > 0 and status.endswith('"}') and '"' not in status[at + len(_AS_OF) : -2]:
        return f'{status[:at]}{_AS_OF}{as_of}"}}'
    document = json.loads(status)
    document["as_of"] = as_of
    return json.dumps(document, ensure_ascii=False)


def _screening_subjects(body: bytes, now: datetime) -> list[Subject]:
    """The subjects of a screening body, validated in one pass from the bytes; a body that fails is parsed and
    validated again the long way, which answers in the contract's order: 400 not JSON, then 422 with pointers."""
    return validated_json(ScreeningRequest, body, {"now": now}, _invalid_screening).subjects


def _invalid_screening(exc: ValidationError, document: Any) -> ProblemError:
    errors = error_pointers(exc)
    count = (
        len(document["subjects"]) if isinstance(document, dict) and isinstance(document.get("subjects"), list) else 0
    )
    if count > MAX_SCREENING_SUBJECTS:
        detail = (
            f"At most {MAX_SCREENING_SUBJECTS} subjects per screening (this request has {count}); split the list"
            " (the SDK's Client.screen does). Nothing was looked up."
        )
    else:
        detail = "The screening request does not match its schema; nothing was looked up."
    return ProblemError(problems.REQUEST_INVALID, detail, errors=errors)
