"""The public site in a real browser: Debian's Chromium driven by Playwright (its async API, on the test's loop; the
gateway is the test's real HTTP server on localhost). Never `playwright install`: the browser is the system's.

Without Chromium these tests skip, saying how to install it, except under ``CI=true`` (.ci/run installs it), where
they must run. ``XINYONG_SCREENSHOTS=DIR`` also writes the screenshots the README shows into DIR (``docs``)."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import Gateway

RUN_PROJECTOR = False
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOP = {"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "name": "海州区速达数码店"}
PERSON = {"id_type": "ric", "id": make_ric(random.Random(4)), "name": "王小明"}

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # rendering, not storage


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).exists() or os.environ.get("CI") == "true":
        return CHROMIUM
    # Outside CI only (CI installs Chromium, and under CI=true a skip fails the run: tests/conftest.py).
    pytest.skip("Chromium is not installed: apt-get install -y chromium fonts-noto-cjk (CI installs it)")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = _chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()


class Console:
    """Errors a page reported: console messages of type error, and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", self._error)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} {message.location}")

    def _error(self, error: Any) -> None:
        self.errors.append(str(error))


async def _populate(gateway: Gateway) -> None:
    regulator = await gateway.add_source("regulator")
    await gateway.post_and_project(
        [
            event("penalty.imposed", subject=SHOP, severity="serious", decision_no="连市监罚〔2026〕88号"),
            event("penalty.imposed", subject=PERSON, severity="serious", decision_no="连市监罚〔2026〕89号"),
        ],
        "msg_penalty",
        source=regulator,
    )
    others = [
        {"id_type": "uscc", "id": make_uscc(random.Random(40 + n)), "name": name}
        for n, name in enumerate(["新浦区茶叶小铺", "连云区水晶饰品商行", "赣榆区海鲜干货店"])
    ]
    await gateway.post_and_project(
        [
            event("merchant.registered", merchant=SHOP, shop_name="速达数码旗舰店"),
            event("commitment.published", merchant=SHOP, commitment_id="CM-2026-001", items=["保证正品", "如实描述"]),
            *(event("listing.violation", merchant=other, kind="counterfeit") for other in others),
        ],
        "msg_market",
    )


async def test_search_leads_to_the_subject_page_with_the_black_list_banner_and_reason(
    gateway: Gateway, browser: Any, tmp_path: Path
) -> None:
    await _populate(gateway)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    console = Console(page)
    await page.goto(f"{gateway.base_url}/public/")
    await page.fill("#q", "速达")
    await page.click("button[type=submit]")
    await page.click(f"a[href='/public/subjects/uscc/{SHOP['id']}']")
    assert page.url.endswith(f"/public/subjects/uscc/{SHOP['id']}")
    banner = page.locator(".banner-black")
    assert await banner.is_visible()
    assert "该主体已列入严重失信主体名单" in await banner.inner_text()
    assert "受到严重行政处罚" in await page.locator("table.records").inner_text()
    assert await page.locator("img[src$='.svg']").evaluate("img => img.naturalWidth") > 0
    shots = [tmp_path]
    if os.environ.get("XINYONG_SCREENSHOTS"):
        shots.append(Path(os.environ["XINYONG_SCREENSHOTS"]))
    await page.screenshot(path=tmp_path / "public-subject.png", full_page=True)
    await page.goto(f"{gateway.base_url}/public/lists/black")
    await page.screenshot(path=tmp_path / "public-black-list.png", full_page=True)
    for name in ("public-subject.png", "public-black-list.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        for folder in shots[1:]:
            shutil.copyfile(tmp_path / name, folder / name)
    assert console.errors == []


async def test_the_badge_renders_inside_a_page_of_another_origin(gateway: Gateway, browser: Any) -> None:
    await _populate(gateway)
    badge, subject = f"{gateway.base_url}/public/badge/{SHOP['id']}.svg", f"{gateway.base_url}/public/subjects/uscc/"

    async def shop_page(request: web.Request) -> web.Response:
        snippet = (
            f'<a id="badge" href="{subject}{SHOP["id"]}"><img src="{badge}" alt="信用公示" width="212" height="40"></a>'
        )
        return web.Response(text=f"<!DOCTYPE html><html><body><h1>某电商平台店铺页</h1>{snippet}</body></html>",
                            content_type="text/html")  # fmt: skip

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    marketplace = web.Application()
    marketplace.router.add_get("/shop", shop_page)
    marketplace.router.add_get("/favicon.ico", no_icon)
    server = TestServer(marketplace)
    await server.start_server()
    try:
        page = await browser.new_page()
        console = Console(page)
        shop_url = str(server.make_url("/shop"))
        assert shop_url.split("/")[2] != gateway.base_url.split("/")[2]  # another origin (another port)
        await page.goto(shop_url)
        image = page.locator("#badge img")
        await image.wait_for()
        assert await image.evaluate("img => img.complete && img.naturalWidth") == 212
        await page.click("#badge")
        await page.wait_for_url(f"{subject}{SHOP['id']}")
        assert "该主体已列入严重失信主体名单" in await page.locator(".banner-black").inner_text()
        assert console.errors == []
    finally:
        await server.close()


async def test_a_phone_viewport_has_no_horizontal_scroll(gateway: Gateway, browser: Any) -> None:
    await _populate(gateway)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    console = Console(page)
    for path in ("/public/", f"/public/subjects/uscc/{SHOP['id']}", "/public/lists/black", "/public/search?q=速达"):
        await page.goto(f"{gateway.base_url}{path}")
        widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], (path, widths)
    assert console.errors == []


async def test_the_search_box_is_reachable_and_usable_by_keyboard(gateway: Gateway, browser: Any) -> None:
    await _populate(gateway)
    page = await browser.new_page()
    console = Console(page)
    await page.goto(f"{gateway.base_url}/public/")
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement && document.activeElement.id") == "q":
            break
    else:
        pytest.fail("ten presses of Tab never reached the search box")
    await page.keyboard.type("速达数码")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/public/search")
    assert SHOP["id"] in await page.locator("ul.results").inner_text()
    assert console.errors == []


async def _populate_agency(gateway: Gateway) -> str:
    """An agency declared with a practitioner, evaluated A, then black-listed by a false report: its code."""
    firm = {"id_type": "uscc", "id": make_uscc(random.Random(2501)), "name": "海州工程咨询有限公司"}
    at = "2026-01-05T09:00:00+08:00"
    agency = await gateway.add_source("intermediary", uscc=firm["id"])
    declaration = event(
        "intermediary.declared",
        agency=firm,
        practitioners=[{"person": PERSON, "certificate_no": "ZJ-320700-0001"}],
        qualifications=[
            {"name": "工程咨询单位甲级资信", "certificate_no": "ZX-2021-0088", "valid_until": "2030-12-31"},
            {"name": "工程造价咨询乙级资质", "certificate_no": "ZJ-2020-0153", "valid_until": "2025-06-30"},
        ],
        declared_at=at,
    )
    await gateway.post_and_project([declaration], "msg_declare", source=agency)
    regulator = await gateway.add_source("regulator")
    evaluation = event("intermediary.evaluated", subject=firm, grade="A", period="2025", evaluated_at=at)
    violation = event(
        "intermediary.violation", agency=firm, practitioners=[PERSON], found_at="2026-02-01T10:00:00+08:00"
    )
    await gateway.post_and_project([evaluation, violation], "msg_regulator", source=regulator)
    return firm["id"]


async def test_the_intermediaries_column_and_an_agencys_page_fit_a_phone(
    gateway: Gateway, browser: Any, tmp_path: Path
) -> None:
    code = await _populate_agency(gateway)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    console = Console(page)
    for path in ("/public/intermediaries", f"/public/subjects/uscc/{code}"):
        await page.goto(f"{gateway.base_url}{path}")
        widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], (path, widths)
    assert "ZJ-320700-0001" in await page.locator("table.practitioners").inner_text()
    assert PERSON["id"] not in await page.content()
    await page.screenshot(path=tmp_path / "public-agency-phone.png", full_page=True)
    wide = await browser.new_page(viewport={"width": 1280, "height": 900})
    await wide.goto(f"{gateway.base_url}/public/")
    await wide.click("nav.mainnav a[href='/public/intermediaries']")
    await wide.screenshot(path=tmp_path / "public-intermediaries.png", full_page=True)
    await wide.click(f"a[href='/public/subjects/uscc/{code}']")
    assert "已过期" in await wide.locator("table.qualifications").inner_text()
    await wide.screenshot(path=tmp_path / "public-agency.png", full_page=True)
    for name in ("public-agency-phone.png", "public-intermediaries.png", "public-agency.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        if os.environ.get("XINYONG_SCREENSHOTS"):
            shutil.copyfile(tmp_path / name, Path(os.environ["XINYONG_SCREENSHOTS"]) / name)
    assert console.errors == []
