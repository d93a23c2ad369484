"""The public disclosure site (信用公示) under ``/public/``, and the credit badge (亮标).

    site.py        the handlers: home, search, subject page, list pages, badge, stylesheet; headers and ETags
    views.py       what a page shows, in Chinese, from a status, a credit file, commitments and the policy (pure)
    badge.py       the badge's SVG
    standings.py   every organisation's badge standing (and summary-only page) in memory, following the store
    summaries.py   summary-only subject pages answered from that book: cached frames, tags of what they show
    answers.py     answers kept for a while (a segmented LRU)
    agencies.py    the intermediaries column
    templates/     Jinja2 templates (autoescaping on); static/site.css the one stylesheet

docs/wire-contract.md, "Public site", lists the URLs; SECURITY.md says what the site shows and never shows.
"""

from xinyong_gateway.web.public.badge import badge_svg
from xinyong_gateway.web.public.site import PAGE_SIZE, SECURITY_HEADERS, PublicSite

__all__ = ["PAGE_SIZE", "SECURITY_HEADERS", "PublicSite", "badge_svg"]
