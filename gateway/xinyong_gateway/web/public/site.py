"""The public disclosure site's handlers (``/public/``): pages rendered by Jinja2 through aiohttp-jinja2 with
autoescaping, one stylesheet, no script, no cookie.

Every answer carries the site's security headers (``SECURITY_HEADERS``); pages and the badge carry an ``ETag`` made
from what they are a function of (the stored file and status, the commitments, the policy, the day), so a
revalidation (``If-None-Match``) is answered 304 without rendering. A malformed code is a 400 page, an unknown
subject a 404 page, a store that cannot answer a 503 page: never a 500. Search answers are ``no-store`` and never
repeat the query (it may be a person's name or a resident id, which find nothing: only organisations are indexed).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from xinyong.subjects import InvalidIdentifierError, normalize_id, validate_uscc
from xinyong_gateway.access import SourceRegistry
from xinyong_gateway.credit.documents import status_document
from xinyong_gateway.credit.engine import CreditFile
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.errors import StoreError
from xinyong_gateway.store import Commitment, Store
from xinyong_gateway.web.public.agencies import agency_context, agency_row
from xinyong_gateway.web.public.answers import AnswerCache
from xinyong_gateway.web.public.badge import badge_svg
from xinyong_gateway.web.public.standings import StandingsBook
from xinyong_gateway.web.public.summaries import SummaryFrames, summary_etag, summary_of, summary_only
from xinyong_gateway.web.public.views import (
    LIST_LABELS,
    cst_day_at,
    etag_of,
    horizon,
    listed_row,
    person_shown,
)
from xinyong_gateway.web.public.views import subject_context as build_subject_context
from xinyong_gateway.web.turn_batch import TurnBatch

__all__ = ["PAGE_SIZE", "SECURITY_HEADERS", "PublicSite"]

PAGE_SIZE = 20
_MAX_PAGE = 500
_SEARCH_LIMIT = 20
_MIN_QUERY = 2
_MAX_QUERY = 100
_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]|[0-9]{15}")
_SITE_VERSION = "3"
"""Part of every entity tag: bump it when templates change what a page shows."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none';"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_BADGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
_HTML = "text/html; charset=utf-8"
_SVG = "image/svg+xml; charset=utf-8"
_PAGE_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=60"}
"""A cacheable page's headers but its type and tag (on its 200 and its 304 alike)."""
_BADGE_ANSWER_HEADERS = {**_BADGE_HEADERS, "Cache-Control": "public, max-age=300"}
_LISTS = ("black", "red")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNREAD = object()
"""The marker and basis of this turn of the loop, before they are read."""
_FOLLOW_INTERVAL = 1.0
"""Seconds between two looks at the store, once the book of standings is current (badges catch it up too)."""
_log = structlog.get_logger("xinyong_gateway.public")


class PublicSite:
    """The site's routes, bound to the store, the master key (for the blind index of a USCC) and the policy."""

    _store: Store
    _master: MasterKey
    _policies: PolicyInForce

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 0.0,
        cache_entries: int = 16_384,
        badge_book: bool = True,
        page_book: bool = True,
    ) -> None:
        self._clock = clock
        self._answers = AnswerCache(ttl=cache_ttl, entries=cache_entries, clock=clock, basis=self._basis)
        self._badge_book = badge_book
        self._page_book = page_book
        self._book: StandingsBook | None = None
        self._summaries = SummaryFrames()
        self._observe_standings: Callable[[int], None] = _ignore
        self._turn_marker: object | None = _UNREAD
        self._turn_basis: object | None = _UNREAD
        self._turn_end: TurnBatch[None] = TurnBatch(self._forget_turn)
        self._templates: dict[str, jinja2.Template] = {}
        static = resources.files("xinyong_gateway.web.public") / "static"
        self._static = {
            name: (body, content_type, etag_of(hashlib.sha256(body).hexdigest()))
            for name, content_type in (("site.css", "text/css"), ("favicon.svg", "image/svg+xml"))
            for body in [(static / name).read_bytes()]
        }

    def setup(self, app: web.Application) -> None:
        """Register the Jinja2 environment (package templates, autoescaping on) with ``app``."""
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.PackageLoader("xinyong_gateway.web.public", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,  # package data: never changes under a running process (no stat() per render)
        )

    def attach(self, store: Store, master: MasterKey, policies: PolicyInForce, sources: SourceRegistry) -> None:
        """Bind the resources opened at start-up (``sources``: who reported a record, from memory)."""
        self._store = store
        self._master = master
        self._policies = policies
        self._sources = sources
        # a store that cannot list the standings in commit order answers None even for none (PostgreSQL)
        if self._badge_book and store.standings_after(0, 0) is not None:
            self._book = StandingsBook(store.standings_after, pages=self._page_book)

    @property
    def follows_standings(self) -> bool:
        """Whether badges are answered from a book of standings (``web.public.standings``) that
        :meth:`follow_standings` must fill."""
        return self._book is not None

    def measure_standings(self, observe: Callable[[int], None]) -> None:
        """Tell ``observe`` how many organisations the book holds each time :meth:`follow_standings` has read
        (``/metrics``: ``xinyong_public_badge_standings``)."""
        self._observe_standings = observe

    async def follow_standings(self) -> None:
        """Fill the book of standings, a chunk per turn of the loop, then look at the store every
        ``_FOLLOW_INTERVAL`` seconds (badges catch the book up on their own turn too). Runs until cancelled."""
        book = self._book
        if book is None:
            return
        started, loaded, failing = time.perf_counter(), False, False
        while book.followable:
            marker = self._store.change_marker()  # None: the store cannot answer now
            try:
                current = book.catch_up(marker)
            except StoreError as exc:  # badges read the store meanwhile, and answer 503 if it cannot either
                if not failing:
                    _log.warning("public.standings_unreadable", error=str(exc))
                current, failing, marker = False, True, None
            else:
                failing = False
            self._observe_standings(len(book))
            if current and not loaded:
                loaded = True
                _log.info("public.standings_loaded", organisations=len(book), s=round(time.perf_counter() - started, 2))
            # a chunk or more behind: on at the next turn; caught up, or the store cannot answer: look again later
            await asyncio.sleep(0 if marker is not None and not current else _FOLLOW_INTERVAL)

    def _marker(self) -> object | None:
        """The store's change marker as of this turn of the loop: read once per turn, at its first use, before any
        read of the turn it vouches for (a marker read earlier than needed only makes what it vouches for look older
        than it is)."""
        marker = self._turn_marker
        if marker is _UNREAD:
            marker = self._turn_marker = self._store.change_marker()
            self._turn_end.add(None)
        return marker

    def _basis(self) -> object | None:
        """What a subject's page and badge are worked out from besides the subject's own row: whether the store
        committed anything (``Store.change_marker``), the policy in force and the sources' records (each replaced
        whole when it changes). None when the store cannot tell: kept answers are then good for the ttl only.

        Made once per turn of the event loop, from the turn's marker (:meth:`_marker`)."""
        basis = self._turn_basis
        if basis is _UNREAD:
            marker = self._marker()
            basis = self._turn_basis = (
                None if marker is None else (marker, self._policies.policy, self._sources.records)
            )
        return basis

    def _forget_turn(self, _: list[None]) -> None:
        self._turn_marker = self._turn_basis = _UNREAD

    def routes(self) -> list[tuple[str, Handler]]:
        """(path, GET handler) of every page; the app adds HEAD and refuses other methods."""
        return [
            ("/public", self.to_home),
            ("/public/", self.home),
            ("/public/site.css", self.static),
            ("/public/favicon.svg", self.static),
            ("/public/search", self.search),
            ("/public/subjects/uscc/{code}", self.subject),
            ("/public/lists/{list}", self.listing),
            ("/public/intermediaries", self.intermediaries),
            ("/public/badge/{file}", self.badge),
        ]

    # -- answers -------------------------------------------------------------------------------------
    def _page(
        self,
        request: web.Request,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        etag: str | None = None,
        cacheable: bool = True,
    ) -> web.Response:
        text = self._render(request, template, context)
        if status == 200 and cacheable:
            etag = etag or etag_of(text)
            cached = self._not_modified(request, etag, _PAGE_HEADERS)
            if cached is not None:
                return cached
        if status == 200 and etag is not None:
            return _html(text.encode(), etag)
        headers = {**SECURITY_HEADERS, "Content-Type": _HTML, "Cache-Control": "no-store"}
        return web.Response(body=text.encode(), status=status, headers=headers)

    def _render(self, request: web.Request, template: str, context: dict[str, Any]) -> str:
        """``template`` rendered with ``context`` alone, as ``Template.render`` does but for the Jinja globals: the
        templates use none, and merging them into every page's context was a third of a subject page's render."""
        found = self._template(request, template)
        try:
            rendered = found.root_render_func(
                found.new_context({**context, "site_version": _SITE_VERSION}, shared=True)
            )
            return found.environment.concat(rendered)
        except Exception:
            found.environment.handle_exception()  # the error with the template's own lines, as render() raises it

    def _template(self, request: web.Request, name: str) -> jinja2.Template:
        """The template ``name`` of the environment ``setup`` registered, loaded once (they are package data)."""
        template = self._templates.get(name)
        if template is None:
            template = self._templates[name] = aiohttp_jinja2.get_env(request.app).get_template(name)
        return template

    def _error(self, request: web.Request, status: int, title: str, detail: str) -> web.Response:
        return self._page(request, "error.html", {"title": title, "detail": detail}, status=status)

    @staticmethod
    def _not_modified(request: web.Request, etag: str, headers: Mapping[str, str]) -> web.Response | None:
        """A 304 with ``headers`` (those of the 200 it stands for, ``Cache-Control`` included) when the request's
        ``If-None-Match`` names ``etag``; else None."""
        asked = request.headers.get("If-None-Match")
        if asked is None:
            return None
        if (
            asked == etag
            or asked.strip() == "*"
            or etag in (tag.strip().removeprefix("W/") for tag in asked.split(","))
        ):
            return web.Response(status=304, headers={**headers, "ETag": etag})
        return None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _guarded(self, request: web.Request, answer: Callable[[], Awaitable[web.Response]]) -> web.Response:
        try:
            return await answer()
        except StoreError:
            response = self._error(request, 503, "服务暂不可用", "信用信息库暂时无法访问，请稍后再试。")
            response.headers["Retry-After"] = "5"
            return response

    # -- pages ---------------------------------------------------------------------------------------
    async def not_found(self, request: web.Request) -> web.Response:
        return self._error(request, 404, "页面不存在", "您访问的页面不存在，请从首页查询。")

    async def to_home(self, request: web.Request) -> web.Response:
        return _redirect(308, "/public/")

    async def home(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return self._page(request, "home.html", {"base": base, "lists": LIST_LABELS})

    async def static(self, request: web.Request) -> web.Response:
        """The stylesheet and the icon (package data, read once)."""
        body, content_type, etag = self._static[request.path.rsplit("/", 1)[1]]
        headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
        cached = self._not_modified(request, etag, headers)
        if cached is not None:
            return cached
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers={**headers, "ETag": etag})

    async def search(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                raw: object = (await request.post()).get("q")
            except (ValueError, UnicodeDecodeError):  # not a form aiohttp can read: no query, the page says so
                raw = None
        else:
            raw = request.query.get("q")
        query = raw.strip() if isinstance(raw, str) else ""
        return await self._guarded(request, lambda: self._search(request, query))

    async def _search(self, request: web.Request, query: str) -> web.Response:
        context: dict[str, Any] = {"results": [], "note": None}
        code = normalize_id(query)
        if len(code) == 18 and _looks_like_uscc(code):
            if await self._store.subject_standing(self._key(code)) is not None:
                return _redirect(303, f"/public/subjects/uscc/{code}")
            context["note"] = "没有找到与该统一社会信用代码对应的公示信息。"
        elif _RESIDENT_ID.fullmatch(code):
            context["note"] = "本平台不提供按身份证号查询自然人信息。"  # looked up nowhere, repeated nowhere
        elif _MIN_QUERY <= len("".join(query.split())) <= _MAX_QUERY:
            matches = await self._store.search_names(query, _SEARCH_LIMIT)
            context["results"] = [
                {"id": m.display_id, "name": m.display_name or m.name, "via": m.name} for m in matches
            ]
            if not matches:
                context["note"] = "没有找到名称中含有该关键词的企业或店铺。"
        else:
            context["note"] = (
                f"请输入完整的统一社会信用代码，或企业（店铺）名称中连续的 {_MIN_QUERY} 至 {_MAX_QUERY} 个字。"
            )
        return self._page(request, "search.html", context, cacheable=False)

    def _key(self, code: str) -> str:
        return self._master.subject_key("uscc", code)

    async def subject(self, request: web.Request) -> web.Response:
        # kept under valid codes only: a code found needs no check
        reused = self._reused(request, ("page", request.match_info["code"]), _PAGE_HEADERS, _html)
        if reused is not None:
            return reused
        if self._book is not None:
            booked = await self._booked_page(self._book, request, request.match_info["code"])
            if booked is not None:
                return booked
        try:
            code = validate_uscc(request.match_info["code"])
        except InvalidIdentifierError:
            return self._error(request, 400, "代码格式有误", "统一社会信用代码应为 18 位，请核对后重新查询。")
        if code != request.match_info["code"]:
            return _redirect(308, f"/public/subjects/uscc/{code}")
        return await self._guarded(request, lambda: self._subject(request, code))

    def _reused(
        self,
        request: web.Request,
        key: tuple[str, ...],
        headers: Mapping[str, str],
        answer: Callable[[bytes, str], web.Response],
    ) -> web.Response | None:
        """The answer to ``request`` from what is kept for ``key`` (``web.public.answers``): a 304 when its tag is
        asked for, else its body (``answer(body, etag)``) when kept; None when nothing kept answers it."""
        kept = self._answers.get(key)
        if kept is None:
            return None
        cached = self._not_modified(request, kept.etag, headers)
        if cached is not None:
            return cached
        return None if kept.body is None else answer(kept.body, kept.etag)

    async def _subject(self, request: web.Request, code: str) -> web.Response:
        basis = self._answers.basis()  # before the read it vouches for
        found = await self._store.public_subject(self._key(code))
        if found is None:
            return self._error(request, 404, "未找到公示信息", "信用信息库中没有该统一社会信用代码的公示信息。")
        row, commitments = found
        now = self._now()
        policy = self._policies.policy
        due = row.next_change_at is not None and row.next_change_at <= int(now.timestamp() * 1_000_000)
        credit_file = CreditFile.from_json(row.state) if row.state else None
        status: dict[str, Any] = json.loads(row.status)
        if due and credit_file is not None:
            status = status_document(
                (row.id_type, row.display_id, row.display_name), credit_file.status_at(now, policy)
            )
        context = build_subject_context(status, credit_file, commitments, policy, self._sources.records, now)
        context["agency"] = agency_context(credit_file, now, policy) if credit_file is not None else None
        day = context["as_of"]
        if summary_only(context):  # tagged by what it shows, as the page from the book of standings is
            subject = status["subject"]
            shown = summary_of(status)
            etag = summary_etag(_SITE_VERSION, subject["id"], subject["name"], shown, commitments, policy, day)
        else:
            etag = etag_of(_SITE_VERSION, row.state, row.status, repr(commitments), policy.version, day, str(due))
        until = horizon(now.timestamp(), row.next_change_at)
        cached = self._not_modified(request, etag, _PAGE_HEADERS)
        if cached is not None:
            self._answers.keep(("page", code), etag, None, basis=basis, until=until)
            return cached
        body = self._render(request, "subject.html", context).encode()
        self._answers.keep(("page", code), etag, body, basis=basis, until=until)
        return _html(body, etag)

    async def _booked_page(self, book: StandingsBook, request: web.Request, code: str) -> web.Response | None:
        """The page of an organisation whose page shows its summary and commitments alone, from the book of standings
        and a read of its commitments if it has any (``web.public.summaries``), under the conditions of
        :meth:`_booked_badge`; else None: the store is read. Answers exactly as :meth:`_subject` does from the
        store's read."""
        if not self._book_current(book):
            return None
        found = book.page(code)  # found: a stored organisation's USCC, valid and in its normal form
        if found is None:
            return None
        now = self._clock()
        due = found.standing.next_change_at
        if due is not None and due <= int(now * 1_000_000):
            return None
        commitments: tuple[Commitment, ...] = ()
        if found.committed:  # read now, after the marker the book is current at: never older than the rest
            try:
                commitments = await self._store.public_commitments(self._key(code))
            except StoreError:
                return None
        day = cst_day_at(now)
        policy = self._policies.policy
        etag = summary_etag(_SITE_VERSION, code, found.name, found.summary, commitments, policy, day)
        cached = self._not_modified(request, etag, _PAGE_HEADERS)
        if cached is not None:  # a page revalidated is kept (its tag), as the store's read keeps it: the next is cheap
            self._answers.keep(("page", code), etag, None, basis=self._answers.basis(), until=horizon(now, due))
            return cached
        render = functools.partial(self._render, request, "subject.html")
        body = self._summaries.page(found.summary, found.name, code, commitments, policy, now, day, render)
        return _html(body, etag)

    def _book_current(self, book: StandingsBook) -> bool:
        """Whether the book holds everything the store committed as of this turn (caught up here if it committed
        since); False too when the store cannot tell or cannot answer."""
        try:
            return book.catch_up(self._marker())
        except StoreError:
            return False

    def _page_number(self, request: web.Request) -> int | web.Response:
        """The ``page`` asked for (1 when none), or the 400 page that explains a bad one."""
        page_text = request.query.get("page", "1")
        if not (page_text.isascii() and page_text.isdigit() and 1 <= int(page_text) <= _MAX_PAGE):
            return self._error(request, 400, "页码有误", f"页码应为 1 至 {_MAX_PAGE} 的整数。")
        return int(page_text)

    async def listing(self, request: web.Request) -> web.Response:
        list_name = request.match_info["list"]
        if list_name not in _LISTS:
            return self._error(request, 404, "页面不存在", "公示名单只有严重失信主体名单和守信激励名单。")
        page = self._page_number(request)
        if isinstance(page, web.Response):
            return page
        return await self._guarded(request, lambda: self._listing(request, list_name, page))

    async def _listing(self, request: web.Request, list_name: str, page: int) -> web.Response:
        policy = self._policies.policy
        id_types = ["uscc", "ric"] if person_shown(policy, list_name) else ["uscc"]
        total, rows = await self._store.listed_subjects(list_name, id_types, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        context = {
            "list": list_name,
            "list_label": LIST_LABELS[list_name],
            "rows": [listed_row(row, json.loads(row.status), policy) for row in rows],
            "total": total,
            "page": page,
            "pages": min(pages, _MAX_PAGE),
            "persons_shown": person_shown(policy, list_name),
        }
        return self._page(request, "list.html", context)

    async def intermediaries(self, request: web.Request) -> web.Response:
        """The intermediaries column (中介机构信息公示): agencies newest first, with their list and tier."""
        page = self._page_number(request)
        if isinstance(page, web.Response):
            return page
        return await self._guarded(request, lambda: self._intermediaries(request, page))

    async def _intermediaries(self, request: web.Request, page: int) -> web.Response:
        total, rows = await self._store.listed_agencies((page - 1) * PAGE_SIZE, PAGE_SIZE)
        context = {
            "rows": [agency_row(row, json.loads(row.status)) for row in rows],
            "total": total,
            "page": page,
            "pages": min(max(1, -(-total // PAGE_SIZE)), _MAX_PAGE),
        }
        return self._page(request, "intermediaries.html", context)

    async def badge(self, request: web.Request) -> web.Response:
        file = request.match_info["file"]
        base = f"{request.scheme}://{request.host}"
        if self._book is not None:
            booked = self._booked_badge(self._book, request, file, base)
            if booked is not None:
                return booked
        # kept under "{valid code}.svg" only: a file found needs no check
        reused = self._reused(request, ("badge", file, base), _BADGE_ANSWER_HEADERS, _svg)
        if reused is not None:
            return reused
        try:
            if not file.endswith(".svg"):
                raise InvalidIdentifierError("not a badge")
            code = validate_uscc(file.removesuffix(".svg"))
        except InvalidIdentifierError:
            return self._error(request, 400, "代码格式有误", "亮标地址应为 /public/badge/{统一社会信用代码}.svg。")
        return await self._guarded(request, lambda: self._badge(request, code, base))

    def _booked_badge(self, book: StandingsBook, request: web.Request, file: str, base: str) -> web.Response | None:
        """The badge from the book of standings (``web.public.standings``) when the book is current (caught up here
        if the store committed since), holds the code and the standing is not due to change by time; else None: the
        store is read. Answers exactly as :meth:`_badge` does from the store's read."""
        if not self._book_current(book):
            return None
        code = file[:-4] if file.endswith(".svg") else ""
        standing = book.get(code)  # found: a stored organisation's USCC, valid and in its normal form
        if standing is None:
            return None
        now = self._clock()
        if standing.next_change_at is not None and standing.next_change_at <= int(now * 1_000_000):
            return None
        day = cst_day_at(now)
        etag = _badge_etag(standing.list, standing.grade, day, base)
        cached = self._not_modified(request, etag, _BADGE_ANSWER_HEADERS)
        if cached is not None:
            return cached
        return _svg(badge_svg(standing.list, standing.grade, day, base, code), etag)

    async def _badge(self, request: web.Request, code: str, base: str) -> web.Response:
        key = self._key(code)
        basis = self._answers.basis()  # before the read it vouches for
        standing = await self._store.subject_standing(key)  # the stored list and grade, without the file
        now = self._now()
        list_name: str = "none"
        grade: str | None = None
        if standing is not None:
            list_name, grade = standing.list, standing.grade
            if standing.next_change_at is not None and standing.next_change_at <= int(now.timestamp() * 1_000_000):
                row = (await self._store.load_subjects([key])).get(key)  # time alone changed it: ask the file
                if row is not None and row.state:
                    current = CreditFile.from_json(row.state).status_at(now, self._policies.policy)
                    list_name, grade = current.list, current.grade
        day = cst_day_at(now.timestamp())
        # What the badge is a function of besides its URL's code: a validator per (list, grade, day, base).
        etag = _badge_etag(list_name, grade, day, base)
        kept_as = ("badge", f"{code}.svg", base)
        known = standing is not None  # an unknown code is not kept: made-up codes push nothing out
        until = horizon(now.timestamp(), standing.next_change_at) if standing is not None else 0.0
        cached = self._not_modified(request, etag, _BADGE_ANSWER_HEADERS)
        if cached is not None:
            if known:
                self._answers.keep(kept_as, etag, None, basis=basis, until=until)
            return cached
        body = badge_svg(list_name, grade, day, base, code)
        if known:
            self._answers.keep(kept_as, etag, body, basis=basis, until=until)
        return _svg(body, etag)


def _ignore(_: int) -> None:
    return None


def _html(body: bytes, etag: str) -> web.Response:
    """A page answered 200 with its entity tag (rendered now or kept: ``web.public.answers``)."""
    return web.Response(body=body, headers={**_PAGE_HEADERS, "Content-Type": _HTML, "ETag": etag})


def _svg(body: bytes, etag: str) -> web.Response:
    """A badge answered 200 with its entity tag."""
    return web.Response(body=body, headers={**_BADGE_ANSWER_HEADERS, "Content-Type": _SVG, "ETag": etag})


@functools.lru_cache(maxsize=1024)
def _badge_etag(list_name: str, grade: str | None, day: str, base: str) -> str:
    return etag_of(_SITE_VERSION, "badge", list_name, str(grade), day, base)


def _redirect(status: int, location: str) -> web.Response:
    """A redirect answered, not raised (the request middleware makes a raised HTTP exception a problem)."""
    return web.Response(status=status, headers={**SECURITY_HEADERS, "Location": location, "Cache-Control": "no-store"})


def _looks_like_uscc(code: str) -> bool:
    try:
        validate_uscc(code)
    except InvalidIdentifierError:
        return False
    return True
