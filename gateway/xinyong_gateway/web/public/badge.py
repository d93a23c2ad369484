"""The credit badge (亮标): an SVG a marketplace shows on a shop's page, naming the subject's list or grade and the
day it was true, linking to the subject's page on the public site.

Built from a fixed template: the only texts put in are a list or grade label of our own and a date; the subject's
name never appears (the link names its USCC, public data), so nothing a sender wrote reaches the SVG.
"""

from __future__ import annotations

import functools
from xml.sax.saxutils import quoteattr

__all__ = ["badge_svg"]

_COLOURS = {"black": "#8a1c1c", "watch": "#a05a00", "red": "#b3261e", "none": "#1f4e8c"}
_LABELS = {"black": "严重失信", "watch": "重点关注", "red": "守信激励", "none": "信用等级"}

_TEMPLATE = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" \
width="212" height="40" viewBox="0 0 212 40" role="img" aria-label={aria}>
<title>{title}</title>
<a href={href} xlink:href={href} target="_top">
<rect width="212" height="40" rx="4" fill="#ffffff" stroke="{colour}" stroke-width="2"/>
<rect x="1" y="1" width="74" height="38" rx="3" fill="{colour}"/>
<text x="38" y="25" font-family="'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',sans-serif" \
font-size="14" fill="#ffffff" text-anchor="middle">信用公示</text>
<text x="143" y="18" font-family="'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',sans-serif" \
font-size="13" font-weight="bold" fill="{colour}" text-anchor="middle">{value}</text>
<text x="143" y="33" font-family="sans-serif" font-size="10" fill="#444444" text-anchor="middle">{day}</text>
</a>
</svg>
"""


def badge_svg(list_name: str, grade: str | None, day: str, base: str, code: str) -> bytes:
    """The badge of the subject ``code`` (a valid USCC) on ``list_name`` (``none``: its grade shows instead) as of
    ``day`` (YYYY-MM-DD), linking to its page under ``base`` (``https://host``); a subject the site does not know
    (``grade`` None, list ``none``) shows 暂无公示信息."""
    head, middle, tail = _frame(list_name, grade, day, base)
    code_bytes = code.encode()
    return b"".join((head, code_bytes, middle, code_bytes, tail))


@functools.lru_cache(maxsize=1024)  # a handful of distinct badges a day per host: lists x grades x days
def _frame(list_name: str, grade: str | None, day: str, base: str) -> tuple[bytes, bytes, bytes]:
    """The badge's bytes around the two places its subject's code goes (inside the link, twice).

    A USCC is 18 characters of ``0-9A-Z``, which quoting leaves alone, so the quoted link is the quoted ``base/…/``
    and the code and the closing quote: the same bytes as quoting the whole link each time."""
    colour = _COLOURS.get(list_name, _COLOURS["none"])
    if list_name == "none":
        value = f"信用等级 {grade}" if grade else "暂无公示信息"
    else:
        value = _LABELS.get(list_name, list_name)
    title = f"信用公示：{value}（{day}）"
    quoted = quoteattr(f"{base}/public/subjects/uscc/0")  # ends in the digit and the quote quoteattr chose
    link_open, link_close = quoted[:-2], quoted[-1]
    text = _TEMPLATE.format(
        aria=quoteattr(title),
        title=title,
        href=f"{link_open}<>{link_close}",
        colour=colour,
        value=value,
        day=f"{day} 更新",
    )
    head, middle, tail = text.split("<>")  # nowhere else: quoting turns a "<" of base into "&lt;", and tags have names
    return head.encode(), middle.encode(), tail.encode()
