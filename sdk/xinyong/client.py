"""``Client``: screen subjects, decide onboarding, and follow the list change feed (the query side).

    async with Client("https://credit.example.gov.cn", "xyk_…") as client:
        decision = await client.check_onboarding({"id_type": "uscc", "id": "91320706MA1Y2N6Q47"})
        if decision.decision == "deny": ...
        choice = await client.check_selection(agency)       # an approval department choosing an intermediary
        statuses = await client.screen(merchants)            # any number: batches of 1000, results in order
        async for change in client.changes(after=saved_cursor):
            ...; saved_cursor = change.cursor

Requests follow the SDK's one retry policy (:mod:`xinyong.retries`, as :class:`~xinyong.EventSender` does):
transport errors, 429 (honouring ``Retry-After``) and 5xx are retried with capped, jittered exponential back-off;
any other answer raises a typed :class:`~xinyong.errors.ApiError` carrying the problem document. When the
gateway cannot be reached, a call raises :class:`~xinyong.errors.TransportError`: **no call ever answers "allow"
by default**, a marketplace decides what an outage means for it.

:class:`SyncClient` offers the same calls to code that is not async: it runs a ``Client`` on an event loop in
a background thread of its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from xinyong._session import ClosesOnExit, GatewaySession
from xinyong.attestations import AttestationResponse, Jwks
from xinyong.errors import ApiError, ClientClosedError, InvalidIdentifierError
from xinyong.events import error_pointers
from xinyong.queries import (
    MAX_CHANGES_PAGE,
    MAX_SCREENING_SUBJECTS,
    ListChange,
    ListChangesPage,
    ObjectionCase,
    RepairCase,
    ScreeningResponse,
    StatusReason,
    SubjectStatus,
)
from xinyong.subjects import Subject

__all__ = [
    "REFUSE_ONBOARDING",
    "Client",
    "OnboardingDecision",
    "SelectionDecision",
    "SubjectLike",
    "SyncClient",
    "check_subject",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

SubjectLike = Subject | Mapping[str, Any]
"""A :class:`~xinyong.Subject`, or a mapping such as ``{"id_type": "uscc", "id": "…", "name": "…"}``."""

REFUSE_ONBOARDING: Final = "refuse_onboarding"
"""The measure of the shipped policy's black list that tells platforms not to onboard the subject."""

Decision = Literal["allow", "review", "deny"]


@dataclass(frozen=True, slots=True)
class OnboardingDecision:
    """What to do with a merchant who asks to open a shop, and why.

    - ``deny`` when the policy's measures include ``refuse_onboarding`` (the black list's, in the shipped policy);
    - ``review`` when the subject is on the watch list, or on the black list under a policy whose black-list
      measures do not refuse onboarding (a listed subject is never waved through);
    - ``allow`` otherwise (red list, or on no list, or never reported).

    ``measures`` and ``reasons`` are the status's, so the decision can be explained and recorded; ``status`` is
    the full screening result (with ``as_of`` and ``policy_version``). ``notes`` say in words what made a decision
    more cautious than the status alone (a :class:`~xinyong.ListMirror` past its ``max_age`` answers ``review``
    where the status says ``allow``, and says so here).
    """

    decision: Decision
    measures: tuple[str, ...]
    reasons: tuple[StatusReason, ...]
    status: SubjectStatus
    notes: tuple[str, ...] = ()

    @classmethod
    def from_status(cls, status: SubjectStatus) -> OnboardingDecision:
        decision: Decision
        if REFUSE_ONBOARDING in status.measures:
            decision = "deny"
        elif status.list in ("watch", "black"):
            decision = "review"
        else:
            decision = "allow"
        return cls(decision, tuple(status.measures), tuple(status.reasons), status)


#: Tier measures that keep an approval department from choosing an agency (or a practitioner) at all.
SELECTION_BARS: Final = ("access_restriction", "practice_ban")
#: Tier measures that call for a closer look before choosing.
SELECTION_CAUTIONS: Final = ("early_warning", "spot_check_increase")


@dataclass(frozen=True, slots=True)
class SelectionDecision:
    """Whether an approval department may choose an intermediary agency for a service, and why.

    - ``deny`` when the subject is on the black list, or its tier's measures bar it (``access_restriction``,
      ``practice_ban``);
    - ``review`` when it is on the watch list, its tier calls for caution (``early_warning``,
      ``spot_check_increase``), a reason is under objection, a declared qualification has expired, it has never
      declared or been evaluated, or it is not known as an intermediary agency at all;
    - ``allow`` otherwise.

    ``reasons`` are short codes (``BLACK_LIST``, ``ACCESS_RESTRICTION``, ``QUALIFICATION_EXPIRED`` …), one per
    finding, most serious first; ``measures`` the tier's (``green_channel`` and ``procurement_preference`` for the
    best); ``status`` the full screening result.
    """

    decision: Decision
    reasons: tuple[str, ...]
    measures: tuple[str, ...]
    status: SubjectStatus

    @classmethod
    def from_status(cls, status: SubjectStatus) -> SelectionDecision:
        standing = status.intermediary
        tier = standing.tier if standing is not None else None
        measures = tuple(tier.measures) if tier is not None else ()
        denials = [code for code, found in (("BLACK_LIST", status.list == "black"),) if found]
        denials += [measure.upper() for measure in SELECTION_BARS if measure in measures]
        reviews = [
            code for code, found in (("WATCH_LIST", status.list == "watch"), ("DISPUTED", status.disputed)) if found
        ]
        reviews += [measure.upper() for measure in SELECTION_CAUTIONS if measure in measures]
        if standing is None or standing.kind != "intermediary":
            reviews.append("NOT_AN_INTERMEDIARY")
        else:
            if standing.expired_qualifications:
                reviews.append("QUALIFICATION_EXPIRED")
            if not standing.declared:
                reviews.append("NOT_DECLARED")
            if tier is None or tier.evaluation is None:
                reviews.append("NOT_EVALUATED")
        decision: Decision = "deny" if denials else "review" if reviews else "allow"
        return cls(decision, tuple(denials + reviews), measures, status)


def check_subject(item: SubjectLike) -> Subject:
    """``item`` as a validated :class:`~xinyong.Subject`; :class:`~xinyong.errors.InvalidIdentifierError` otherwise,
    whose message names the fields at fault (``/id: RIC check digit is wrong``), never their values."""
    if isinstance(item, Subject):
        return item
    try:
        return Subject.model_validate(item)
    except ValidationError as exc:
        problems = "; ".join(f"{e['pointer'] or '/'}: {e['detail']}" for e in error_pointers(exc))
        raise InvalidIdentifierError(problems) from None


def _subjects(items: Iterable[SubjectLike]) -> list[Subject]:
    """Validate subjects before anything is sent; an invalid one is named by its position, never its value."""
    subjects = []
    for index, item in enumerate(items):
        try:
            subjects.append(check_subject(item))
        except InvalidIdentifierError as exc:
            raise InvalidIdentifierError(f"Subject {index} is not valid ({exc}).") from None
    return subjects


def _case_path(case_id: str, kind: str) -> str:
    """A case id as one path segment (percent-encoded), checked first: 1 to 128 characters, as events carry it."""
    if not isinstance(case_id, str) or not 1 <= len(case_id) <= 128:
        raise ValueError(f"an {kind} id is a string of 1 to 128 characters")
    return urllib.parse.quote(case_id, safe="")


class Client(GatewaySession):
    """The query API for one API key. Use it with ``async with``; it is not reusable after close.

    ``api_key`` is the ``xyk_…`` key printed by ``xinyong-gateway keys add``; it needs the scope ``screen`` for
    screening, ``changes`` for the feed and ``attest`` for attestations. Pass ``session`` to share an
    ``aiohttp.ClientSession`` you own (it is then never closed here). ``sleep`` (back-off waits) can be injected for
    tests. ``concurrency`` bounds the batches of one :meth:`screen` call in flight at once.
    """

    _closed_message = "This Client is closed; create a new one."
    _logger_name = "xinyong.client"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_initial: float = 0.25,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        concurrency: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("api_key must not be empty")
        super().__init__(
            base_url, session, timeout, max_attempts, backoff_initial, backoff_max, retry_after_max, concurrency, sleep
        )
        self._authorization = f"Bearer {api_key.strip()}"

    def __repr__(self) -> str:
        return f"Client({self._base_url!r}, api_key=…)"

    # -- screening ---------------------------------------------------------------------------------------
    async def screen(self, subjects: Iterable[SubjectLike]) -> list[SubjectStatus]:
        """The status of each subject now, in the order given (any number: sent in batches of 1000).

        Every subject is validated first; an invalid one raises :class:`~xinyong.errors.InvalidIdentifierError`
        naming its position, and nothing is sent."""
        checked = _subjects(subjects)
        batches = [checked[i : i + MAX_SCREENING_SUBJECTS] for i in range(0, len(checked), MAX_SCREENING_SUBJECTS)]
        limit = asyncio.Semaphore(self._concurrency)

        async def one(batch: list[Subject]) -> list[SubjectStatus]:
            async with limit:
                return await self._screen_batch(batch)

        results = await asyncio.gather(*(one(batch) for batch in batches))
        return [status for batch in results for status in batch]

    async def screen_one(self, subject: SubjectLike) -> SubjectStatus:
        """The status of one subject now."""
        return (await self.screen([subject]))[0]

    async def check_onboarding(self, subject: SubjectLike) -> OnboardingDecision:
        """``allow``, ``review`` or ``deny`` for a merchant asking to be onboarded, with the measures and reasons.

        Raises when the gateway cannot answer (after the retries): it never answers ``allow`` by default."""
        return OnboardingDecision.from_status(await self.screen_one(subject))

    # -- attestations ------------------------------------------------------------------------------------
    async def attest(self, subject: SubjectLike) -> str:
        """A signed attestation (compact JWS) of the subject's status now (the scope ``attest``): keep it as proof of
        the check; anyone verifies it offline with :func:`xinyong.verify_attestation` and :meth:`signing_keys`."""
        checked = check_subject(subject)
        body = json.dumps(
            {"subject": checked.model_dump(exclude_none=True)}, ensure_ascii=False, separators=(",", ":")
        ).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        answer = await self._request("POST", "/v1/attestations", data=body, headers=headers)
        return self._parse(AttestationResponse, answer, "an attestation").attestation

    async def signing_keys(self) -> dict[str, Any]:
        """The gateway's public signing keys, current and retired (``/.well-known/jwks.json``, a JWK Set)."""
        answer = await self._request("GET", "/.well-known/jwks.json")
        return self._parse(Jwks, answer, "a JWK Set").model_dump()

    async def check_selection(self, agency: SubjectLike) -> SelectionDecision:
        """``allow``, ``review`` or ``deny`` for an approval department choosing ``agency`` (an intermediary, by
        USCC) for a service, with the reasons and the tier's measures (:class:`SelectionDecision`).

        Raises when the gateway cannot answer (after the retries): it never answers ``allow`` by default."""
        return SelectionDecision.from_status(await self.screen_one(agency))

    async def _screen_batch(self, batch: list[Subject]) -> list[SubjectStatus]:
        body = json.dumps(
            {"subjects": [subject.model_dump(exclude_none=True) for subject in batch]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        # A screening is a read, but like every POST of the SDK it carries an idempotency key, the same on retries.
        headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        answer = await self._request("POST", "/v1/screenings", data=body, headers=headers)
        response = self._parse(ScreeningResponse, answer, "a screening answer")
        if len(response.results) != len(batch):
            unexpected = {"title": "Unexpected answer from the gateway", "detail": "Wrong number of results."}
            raise ApiError(answer[0], unexpected)
        return response.results

    # -- the change feed -----------------------------------------------------------------------------------
    async def changes_page(self, after: str | None = None, *, limit: int = 100) -> ListChangesPage:
        """One page of the change feed: entries after the cursor ``after`` (from the start without one)."""
        if not 1 <= limit <= MAX_CHANGES_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_CHANGES_PAGE}")
        params = {"limit": str(limit)}
        if after is not None:
            params["after"] = after
        answer = await self._request("GET", "/v1/lists/changes", params=params)
        return self._parse(ListChangesPage, answer, "a page of the change feed")

    async def changes(
        self, after: str | None = None, *, limit: int = 100, follow: bool = False, poll_interval: float = 5.0
    ) -> AsyncGenerator[ListChange, None]:
        """Every change-feed entry after the cursor ``after``, in feed order.

        Without ``follow`` the iteration ends at the head of the feed (a page shorter than ``limit``); with it,
        it keeps polling every ``poll_interval`` seconds once at the head. Keep the ``cursor`` of the last entry
        handled to resume from there later."""
        cursor = after
        while True:
            page = await self.changes_page(cursor, limit=limit)
            for change in page.changes:
                yield change
            cursor = page.next
            if len(page.changes) < limit:
                if not follow:
                    return
                await self._sleep(poll_interval)

    # -- objections and repairs ---------------------------------------------------------------------------
    async def objection(self, objection_id: str) -> ObjectionCase:
        """The state and deadlines of an objection one of this key's sources filed (scope ``cases``).

        An objection filed by anybody else answers exactly as an unknown one: :class:`~xinyong.errors.NotFoundError`
        (as does one the gateway has not projected yet)."""
        answer = await self._request("GET", "/v1/objections/" + _case_path(objection_id, "objection"))
        return self._parse(ObjectionCase, answer, "an objection")

    async def repair(self, repair_id: str) -> RepairCase:
        """The state of a credit-repair application one of this key's sources filed (scope ``cases``); see
        :meth:`objection`."""
        answer = await self._request("GET", "/v1/repairs/" + _case_path(repair_id, "repair"))
        return self._parse(RepairCase, answer, "a repair application")

    # -- transport -----------------------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        self._ensure_session()  # a closed client raises here, before any attempt
        return await self._retried(
            self._attempt, method, path, data, headers, params, log_event="xinyong.client.retry", path=path
        )

    async def _attempt(
        self,
        method: str,
        path: str,
        data: bytes | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        request_headers = {"Authorization": self._authorization, "Accept": "application/json", **(headers or {})}
        status, payload, answer_headers = await self._exchange(
            method, self._base_url + path, data=data, headers=request_headers, params=params
        )
        if 200 <= status < 300:
            return status, payload, answer_headers
        raise self._answer_error(status, payload, answer_headers)

    def _parse(self, model: type[M], answer: tuple[int, bytes, Mapping[str, str]], expected: str) -> M:
        status, payload, headers = answer
        try:
            return model.model_validate_json(payload)
        except ValueError as exc:
            raise self._unexpected(status, headers, expected) from exc


class SyncClient(ClosesOnExit):
    """:class:`Client` for code that is not async: the same calls, blocking, with the same errors.

    It runs its own event loop in a background thread (started here, stopped by :meth:`close`); use it with
    ``with``. Calls may come from any thread; each blocks until its answer (or error) is there.

        with SyncClient("http://127.0.0.1:8080", "xyk_…") as client:
            if client.check_onboarding(merchant).decision != "allow": ...
    """

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        """``options`` are :class:`Client`'s (``timeout``, ``max_attempts``, ``backoff_initial`` …)."""
        self._client = Client(base_url, api_key, **options)  # creates nothing bound to a loop yet
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="xinyong-sync-client", daemon=True)
        self._thread.start()
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Sync{self._client!r}"

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise ClientClosedError("This SyncClient is closed; create a new one.")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Close the client and stop its thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def screen(self, subjects: Iterable[SubjectLike]) -> list[SubjectStatus]:
        """See :meth:`Client.screen`."""
        return self._run(self._client.screen(list(subjects)))

    def screen_one(self, subject: SubjectLike) -> SubjectStatus:
        """See :meth:`Client.screen_one`."""
        return self._run(self._client.screen_one(subject))

    def check_onboarding(self, subject: SubjectLike) -> OnboardingDecision:
        """See :meth:`Client.check_onboarding`."""
        return self._run(self._client.check_onboarding(subject))

    def objection(self, objection_id: str) -> ObjectionCase:
        """See :meth:`Client.objection`."""
        return self._run(self._client.objection(objection_id))

    def repair(self, repair_id: str) -> RepairCase:
        """See :meth:`Client.repair`."""
        return self._run(self._client.repair(repair_id))

    def attest(self, subject: SubjectLike) -> str:
        """See :meth:`Client.attest`."""
        return self._run(self._client.attest(subject))

    def signing_keys(self) -> dict[str, Any]:
        """See :meth:`Client.signing_keys`."""
        return self._run(self._client.signing_keys())

    def check_selection(self, agency: SubjectLike) -> SelectionDecision:
        """See :meth:`Client.check_selection`."""
        return self._run(self._client.check_selection(agency))

    def changes_page(self, after: str | None = None, *, limit: int = 100) -> ListChangesPage:
        """See :meth:`Client.changes_page`."""
        return self._run(self._client.changes_page(after, limit=limit))

    def changes(
        self, after: str | None = None, *, limit: int = 100, follow: bool = False, poll_interval: float = 5.0
    ) -> Iterator[ListChange]:
        """See :meth:`Client.changes`; a plain iterator."""
        feed = self._client.changes(after, limit=limit, follow=follow, poll_interval=poll_interval)
        done = object()

        async def following() -> ListChange | object:
            try:
                return await anext(feed)
            except StopAsyncIteration:
                return done

        try:
            while True:
                item = self._run(following())
                if item is done:
                    return
                assert isinstance(item, ListChange)  # noqa: S101 -- narrows the sentinel away for the type checker
                yield item
        finally:
            if not self._closed:
                self._run(feed.aclose())
