"""The public disclosure site (``/public/``) and the credit badge, over HTTP on both backends: what a visitor sees,
what a visitor never sees (resident ids, persons' names, the query they typed), and how pages are cached."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from tests.factories import event, make_ric, make_uscc, with_wrong_check
from tests.gateway.conftest import DEFAULT_POLICY_TEXT, Gateway
from xinyong_gateway.credit.policy import load_policy
from xinyong_gateway.web.app import create_app
from xinyong_gateway.web.public import SECURITY_HEADERS

RUN_PROJECTOR = False
"""These tests project the inbox themselves."""

SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(11)), "name": "海州区速达数码店"}
CLEAN = {"id_type": "uscc", "id": make_uscc(random.Random(12)), "name": "连云港诚信百货有限公司"}
PERSON_NAME = "王小明"
PERSON = {"id_type": "ric", "id": make_ric(random.Random(13)), "name": PERSON_NAME}
DECISION = "连市监罚〔2026〕88号"


async def _populate(gateway: Gateway) -> None:
    """A shop on the black list by a serious penalty (with an objection filed), a clean organisation with a shop and a
    commitment, and a person on the black list."""
    regulator = await gateway.add_source("regulator")
    await gateway.post_and_project(
        [
            event("penalty.imposed", subject=SHOP, severity="serious", decision_no=DECISION),
            event("penalty.imposed", subject=PERSON, severity="serious", decision_no="连市监罚〔2026〕89号"),
        ],
        "msg_penalty",
        source=regulator,
    )
    await gateway.post_and_project(
        [
            event("merchant.registered", merchant=CLEAN, shop_name="诚信家电专营店"),
            event("commitment.published", merchant=CLEAN, commitment_id="CM-1", items=["保证正品", "七天无理由退货"]),
        ],
        "msg_clean",
    )


async def _page(gateway: Gateway, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    response = await gateway.client.get(path, allow_redirects=False, **kwargs)
    return response.status, await response.text(), response.headers


def _assert_safe_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert "Set-Cookie" not in headers


async def test_the_subject_page_shows_list_banner_reason_label_decision_and_source(gateway: Gateway) -> None:
    await _populate(gateway)
    status, text, headers = await _page(gateway, f"/public/subjects/uscc/{SHOP['id']}")
    assert status == 200, text
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    _assert_safe_headers(headers)
    assert headers["Cache-Control"] == "public, max-age=60" and headers["ETag"].startswith('"')
    assert "该主体已列入严重失信主体名单" in text
    assert "海州区速达数码店" in text and SHOP["id"] in text
    assert "受到严重行政处罚" in text and "PENALTY_SERIOUS" not in text
    assert "严重" in text and DECISION in text and "行政机关（test regulator）" in text
    assert "D 级" in text and "不予入驻" in text
    assert "如何提出异议" in text and "30 日" in text


async def test_a_page_is_revalidated_with_its_etag_and_changes_when_the_file_does(gateway: Gateway) -> None:
    await _populate(gateway)
    path = f"/public/subjects/uscc/{CLEAN['id']}"
    _, _, headers = await _page(gateway, path)
    status, text, again = await _page(gateway, path, headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and text == "" and again["ETag"] == headers["ETag"]
    assert again["Cache-Control"] == headers["Cache-Control"]  # a 304 carries what its 200 says of caching
    _assert_safe_headers(again)
    status, _, _ = await _page(gateway, path, headers={"If-None-Match": '"something-else"'})
    assert status == 200
    await gateway.post_and_project(
        [event("commitment.published", merchant=CLEAN, commitment_id="CM-2", items=["按时发货"])], "msg_more"
    )
    status, text, changed = await _page(gateway, path, headers={"If-None-Match": headers["ETag"]})
    assert status == 200 and "按时发货" in text and changed["ETag"] != headers["ETag"]


async def test_published_commitments_show_their_items_and_date(gateway: Gateway) -> None:
    await _populate(gateway)
    status, text, _ = await _page(gateway, f"/public/subjects/uscc/{CLEAN['id']}")
    assert status == 200
    assert "保证正品" in text and "七天无理由退货" in text and "CM-1" in text
    assert re.search(r"\d{4}-\d{2}-\d{2} 作出", text)
    assert "公示期内无失信记录" in text and "该主体已列入" not in text


async def test_an_objection_under_way_marks_the_record_disputed(gateway: Gateway) -> None:
    await _populate(gateway)
    key = gateway.master_key.subject_key("uscc", SHOP["id"])
    status_document = json.loads((await gateway.store.load_subjects([key]))[key].status)
    record_id = status_document["reasons"][0]["record_id"]
    regulator = await gateway.add_source("regulator")
    await gateway.post_and_project(
        [event("objection.filed", subject=SHOP, objection_id="OBJ-1", record_id=record_id)], "msg_obj", source=regulator
    )
    status, text, _ = await _page(gateway, f"/public/subjects/uscc/{SHOP['id']}")
    assert status == 200
    assert "异议处理中" in text and "针对“受到严重行政处罚”的异议" in text and "前答复" in text


async def test_search_finds_organisations_by_any_part_of_their_name_or_a_shop_name(gateway: Gateway) -> None:
    await _populate(gateway)
    for query in ("速达", "速达数码", "诚信家电", "百货有限"):
        response = await gateway.client.post("/public/search", data={"q": query}, allow_redirects=False)
        text = await response.text()
        assert response.status == 200, text
        assert response.headers["Cache-Control"] == "no-store" and "ETag" not in response.headers
        _assert_safe_headers(response.headers)
        expected = SHOP if query.startswith("速达") else CLEAN
        assert f'href="/public/subjects/uscc/{expected["id"]}"' in text, query
    status, text, _ = await _page(gateway, "/public/search?q=速达")  # a link to a search works too
    assert status == 200 and SHOP["id"] in text
    status, text, _ = await _page(gateway, "/public/search?q=不存在的名称")
    assert status == 200 and "没有找到" in text and "不存在的名称" not in text


async def test_search_by_a_full_uscc_goes_to_the_subject_page(gateway: Gateway) -> None:
    await _populate(gateway)
    response = await gateway.client.post("/public/search", data={"q": SHOP["id"].lower()}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/public/subjects/uscc/{SHOP['id']}"
    unknown = make_uscc(random.Random(99))
    status, text, _ = await _page(gateway, f"/public/search?q={unknown}")
    assert status == 200 and "没有找到" in text and unknown not in text


async def test_a_resident_id_or_a_persons_name_finds_nothing_and_is_never_echoed(gateway: Gateway) -> None:
    await _populate(gateway)
    masked_name = "王*"
    for query in (PERSON["id"], PERSON_NAME, PERSON["id"][:6] + " " + PERSON["id"][6:]):
        response = await gateway.client.post("/public/search", data={"q": query}, allow_redirects=False)
        text = await response.text()
        assert response.status == 200
        assert query not in text and PERSON["id"] not in text and PERSON_NAME not in text, query
        assert masked_name not in text  # not even masked: persons are not searchable
        assert "/public/subjects/" not in text


async def test_a_query_too_short_or_too_long_is_explained(gateway: Gateway) -> None:
    for query in ("速", "", "  ", "速" * 101):
        response = await gateway.client.post("/public/search", data={"q": query})
        assert response.status == 200 and "连续的 2 至 100 个字" in await response.text()


async def test_malformed_codes_are_400_pages_and_unknown_subjects_404_pages(gateway: Gateway) -> None:
    await _populate(gateway)
    for path in (
        f"/public/subjects/uscc/{with_wrong_check(SHOP['id'])}",
        "/public/subjects/uscc/123",
        "/public/subjects/uscc/%3Cscript%3E",
        f"/public/badge/{with_wrong_check(SHOP['id'])}.svg",
        f"/public/badge/{SHOP['id']}.png",
        "/public/lists/black?page=0",
        "/public/lists/black?page=x",
        "/public/lists/black?page=%EF%BC%91",
    ):
        status, text, headers = await _page(gateway, path)
        assert status == 400, path
        assert headers["Content-Type"] == "text/html; charset=utf-8" and "<script>" not in text
        _assert_safe_headers(headers)
    for path in (f"/public/subjects/uscc/{make_uscc(random.Random(98))}", "/public/nothing/here", "/public/lists/x"):
        status, _, headers = await _page(gateway, path)
        assert status == 404 and headers["Content-Type"] == "text/html; charset=utf-8", path
    status, _, headers = await _page(gateway, f"/public/subjects/uscc/{SHOP['id'].lower()}")
    assert status == 308 and headers["Location"] == f"/public/subjects/uscc/{SHOP['id']}"
    status, _, headers = await _page(gateway, "/public")
    assert status == 308 and headers["Location"] == "/public/"


async def test_the_black_list_shows_a_person_only_masked_and_the_red_list_never(gateway: Gateway) -> None:
    await _populate(gateway)
    status, text, headers = await _page(gateway, "/public/lists/black")
    assert status == 200 and "ETag" in headers
    assert f'href="/public/subjects/uscc/{SHOP["id"]}"' in text and "受到严重行政处罚" in text
    masked_id = PERSON["id"][:6] + "*" * 8 + PERSON["id"][-4:]
    assert "王**（自然人）" in text and masked_id in text
    assert PERSON["id"] not in text and PERSON_NAME not in text
    assert "共 2 个主体" in text
    status, text, _ = await _page(gateway, "/public/lists/red")
    assert status == 200 and "自然人" not in text


async def test_a_policy_may_keep_every_person_off_the_site(gateway: Gateway, aiohttp_client: Any) -> None:
    await _populate(gateway)
    policy_file = gateway.folder / "no-persons.toml"
    policy_file.write_text(DEFAULT_POLICY_TEXT.replace('persons = ["black"]', "persons = []"), encoding="utf-8")
    assert load_policy(policy_file).disclosure.persons == []
    strict = Gateway(
        await aiohttp_client(create_app(gateway.settings.model_copy(update={"policy_file": policy_file}))),
        gateway.settings,
        gateway.folder,
    )
    status, page, _ = await _page(strict, "/public/lists/black")
    assert status == 200 and "自然人" not in page and "共 1 个主体" in page
    status, page, _ = await _page(gateway, "/public/lists/black")  # the default policy shows them, masked
    assert status == 200 and "王**（自然人）" in page and "共 2 个主体" in page


async def test_the_black_list_pages_newest_first(gateway: Gateway) -> None:
    shops = [
        {"id_type": "uscc", "id": make_uscc(random.Random(200 + n)), "name": f"假货商店{n:02d}"} for n in range(23)
    ]
    source = await gateway.add_source("marketplace")
    for n, shop in enumerate(shops):  # one projection each: each is written after the one before
        await gateway.post_and_project([event("listing.violation", merchant=shop)], f"msg_lv{n}", source=source)
    status, first, _ = await _page(gateway, "/public/lists/black")
    assert status == 200 and "共 23 个主体" in first and "第 1 / 2 页" in first
    names = re.findall(r"假货商店(\d\d)", first)
    assert names == [f"{n:02d}" for n in range(22, 2, -1)]
    status, second, _ = await _page(gateway, "/public/lists/black?page=2")
    assert re.findall(r"假货商店(\d\d)", second) == ["02", "01", "00"] and "上一页" in second
    status, third, _ = await _page(gateway, "/public/lists/black?page=3")
    assert status == 200 and "名单中暂无主体" in third


async def test_names_are_escaped_never_markup(gateway: Gateway) -> None:
    hostile = {"id_type": "uscc", "id": make_uscc(random.Random(31)), "name": '<script>alert(1)</script>"商行'}
    await gateway.post_and_project([event("listing.violation", merchant=hostile)], "msg_hostile")
    for path in (f"/public/subjects/uscc/{hostile['id']}", "/public/lists/black", "/public/search?q=商行"):
        status, text, _ = await _page(gateway, path)
        assert status == 200, path
        assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;&#34;商行" in text, path


async def test_the_badge_shows_list_or_grade_and_date_links_to_the_page_and_revalidates(gateway: Gateway) -> None:
    await _populate(gateway)
    response = await gateway.client.get(f"/public/badge/{SHOP['id']}.svg")
    svg = await response.text()
    assert response.status == 200 and response.headers["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin" and "Set-Cookie" not in response.headers
    assert "严重失信" in svg and re.search(r"\d{4}-\d{2}-\d{2} 更新", svg)
    assert f'href="{gateway.base_url}/public/subjects/uscc/{SHOP["id"]}"' in svg
    assert "海州区" not in svg  # no sender-written text in the SVG
    etag = response.headers["ETag"]
    again = await gateway.client.get(f"/public/badge/{SHOP['id']}.svg", headers={"If-None-Match": f"W/{etag}"})
    assert again.status == 304 and again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == response.headers["Cache-Control"] == "public, max-age=300"
    clean = await (await gateway.client.get(f"/public/badge/{CLEAN['id']}.svg")).text()
    assert "信用等级 A" in clean
    never = await gateway.client.get(f"/public/badge/{make_uscc(random.Random(97))}.svg")
    assert never.status == 200 and "暂无公示信息" in await never.text()


async def test_the_home_page_explains_search_badge_embedding_and_objections(gateway: Gateway) -> None:
    status, text, headers = await _page(gateway, "/public/")
    assert status == 200 and 'action="/public/search"' in text and 'method="post"' in text
    assert "&lt;img src=" in text and "/public/badge/" in text and "如何提出异议" in text
    _assert_safe_headers(headers)
    response = await gateway.client.get("/public/site.css")
    assert response.status == 200 and response.headers["Content-Type"] == "text/css; charset=utf-8"
    again = await gateway.client.get("/public/site.css", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304 and again.headers["Cache-Control"] == response.headers["Cache-Control"]
    head = await gateway.client.head("/public/")
    assert head.status == 200
    refused = await gateway.client.delete("/public/")
    assert refused.status == 405


async def test_list_and_home_pages_revalidate_and_a_bad_form_is_no_error(gateway: Gateway) -> None:
    await _populate(gateway)
    for path in ("/public/", "/public/lists/black"):
        _, _, headers = await _page(gateway, path)
        status, text, again = await _page(gateway, path, headers={"If-None-Match": headers["ETag"]})
        assert status == 304 and text == "" and again["ETag"] == headers["ETag"], path
    for body, content_type in (
        (b"q=%FF%FE", "application/x-www-form-urlencoded"),
        (b"--x\r\nContent-Disposition: form-data; name=q\r\n\r\n", "multipart/form-data; boundary=x"),
        (b"\xff\xfe\x00", "multipart/form-data"),
        ('{"q": "速达"}'.encode(), "application/json"),
    ):
        response = await gateway.client.post("/public/search", data=body, headers={"Content-Type": content_type})
        assert response.status in (200, 400), (body, response.status)
        assert response.headers["Cache-Control"] == "no-store"
