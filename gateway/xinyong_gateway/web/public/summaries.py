"""Subject pages that show an organisation's summary (and its commitments) alone, answered without reading its file.

Most organisations have nothing in publicity: no reason, no objection, no agency section. Their page
(``subject.html``) shows only the summary (name, code, list, grade, score, measures, policy version and date) and
their published commitments, if any. On SQLite the book of standings (``web.public.standings``) keeps that summary
for every such organisation, and whether it has commitments; this module makes the page from it:

- :func:`summary_only` says whether a page's context shows the summary and commitments alone; such a page's entity
  tag is :func:`summary_etag`, made from what it shows, so the page answered from the book and the page rendered
  from the store's read carry the same tag.
- :class:`SummaryFrames` renders the template once per summary, day and policy, with marks in place of the name and
  the code, and keeps the text between the marks: a page without commitments is then those frames joined with the
  escaped name and the code, with no read and no render. A page with commitments (read alone by the caller) is
  rendered from the same context. Jinja2 renders both, so they are the template's own text;
  ``tests/gateway/test_public_standings.py`` holds pages from the book equal, byte for byte and tag for tag, to pages
  rendered from the store's read.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import escape

from xinyong_gateway.credit.policy import Policy
from xinyong_gateway.store import Commitment
from xinyong_gateway.web.public.standings import Summary
from xinyong_gateway.web.public.views import etag_of, subject_context

__all__ = ["SummaryFrames", "summary_etag", "summary_of", "summary_only"]

_NAME = "\ue000name\ue000"
_CODE = "\ue000code\ue000"
"""Marks (private-use characters, which escaping leaves alone) rendered in place of the name and the code."""
_MARKS = re.compile(f"({_NAME}|{_CODE})")
_MAX_FRAMES = 512
"""Frames kept at most (one set per summary shown, each about 2.5 KB); more are dropped all at once."""

Render = Callable[[dict[str, Any]], str]


def summary_only(context: Mapping[str, Any]) -> bool:
    """Whether a subject page's context (``views.subject_context``) shows the summary and commitments alone."""
    return not (context["records"] or context["objections"] or context["agency"])


def summary_of(status: Mapping[str, Any]) -> Summary:
    """The summary a stored status document shows."""
    return Summary(
        status["list"], status["grade"], status["score"], tuple(status["measures"]), status["policy_version"]
    )


def summary_etag(
    site_version: str,
    code: str,
    name: str | None,
    summary: Summary,
    commitments: Sequence[Commitment],
    policy: Policy,
    day: str,
) -> str:
    """The entity tag of a summary-only page: what it shows (the policy in force gives its labels and deadlines)."""
    promised = repr([(c.commitment_id, c.published_at, c.items) for c in commitments]) if commitments else ""
    return etag_of(site_version, "summary", code, name or "", _shown(summary), promised, policy.version, day)


@functools.lru_cache(maxsize=256)
def _shown(summary: Summary) -> str:
    return repr(tuple(summary))


class SummaryFrames:
    """A summary-only page's text around its name and code, rendered once per summary, day and policy."""

    def __init__(self) -> None:
        self._frames: dict[tuple[Summary, bool, str], _Frames] = {}
        self._policy: Policy | None = None

    def page(
        self,
        summary: Summary,
        name: str | None,
        code: str,
        commitments: Sequence[Commitment],
        policy: Policy,
        now: float,
        day: str,
        render: Render,
    ) -> bytes:
        """The page of the organisation ``code`` named ``name`` showing ``summary`` and ``commitments`` on ``day``
        (the China Standard Time day of ``now``, a POSIX time) under ``policy``; ``render`` renders ``subject.html``
        with a context. A page with commitments is rendered whole (frames are for the many without)."""
        if commitments:
            return render(_context(summary, name, code, commitments, policy, now)).encode()
        if policy is not self._policy or len(self._frames) >= _MAX_FRAMES:
            self._frames, self._policy = {}, policy
        key = (summary, bool(name), day)
        frames = self._frames.get(key)
        if frames is None:
            frames = self._frames[key] = _frames(summary, bool(name), policy, now, render)
        literals, named_at = frames
        named = str(escape(name)).encode() if name else b""
        coded = code.encode()
        parts = [literals[0]]
        for is_name, literal in zip(named_at, literals[1:], strict=True):
            parts += (named if is_name else coded, literal)
        return b"".join(parts)


_Frames = tuple[tuple[bytes, ...], tuple[bool, ...]]
"""The text between the marks, and for each mark whether it stands for the name (else the code)."""


def _frames(summary: Summary, named: bool, policy: Policy, now: float, render: Render) -> _Frames:
    pieces = _MARKS.split(render(_context(summary, _NAME if named else None, _CODE, (), policy, now)))
    return tuple(piece.encode() for piece in pieces[::2]), tuple(mark == _NAME for mark in pieces[1::2])


def _context(
    summary: Summary, name: str | None, code: str, commitments: Sequence[Commitment], policy: Policy, now: float
) -> dict[str, Any]:
    """The context ``subject.html`` is rendered with for a page that shows ``summary`` and ``commitments`` alone,
    made by ``views.subject_context`` as the page read from the store is."""
    status = {
        "subject": {"id": code, "name": name},
        "list": summary.list,
        "grade": summary.grade,
        "score": summary.score,
        "measures": list(summary.measures),
        "reasons": [],
        "disputed": False,
        "policy_version": summary.policy_version,
    }
    context = subject_context(status, None, commitments, policy, {}, datetime.fromtimestamp(now, UTC))
    context["agency"] = None
    return context
