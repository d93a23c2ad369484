"""The intermediaries column of the public site (中介机构信息), over HTTP on both backends: an agency's page shows its
declared services, qualifications (expired ones marked), tier and measures, evaluations and truthfulness commitment;
its practitioners appear by masked name and certificate number only while the policy's ``[disclosure]`` shows persons
on the agency's list, else as a count; ``/public/intermediaries`` pages the agencies newest first. No resident id of
a practitioner, masked or not, is ever in a page."""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.factories import event, make_ric, make_uscc
from tests.gateway.conftest import DEFAULT_POLICY_TEXT, Gateway
from xinyong_gateway.web.app import create_app

RUN_PROJECTOR = False
"""These tests project the inbox themselves."""

FIRM = {"id_type": "uscc", "id": make_uscc(random.Random(2301)), "name": "海州工程咨询有限公司"}
PLAIN_SHOP = {"id_type": "uscc", "id": make_uscc(random.Random(2302)), "name": "新浦区茶叶小铺"}
ALICE = {"id_type": "ric", "id": make_ric(random.Random(2303)), "name": "王小明"}
BOB = {"id_type": "ric", "id": make_ric(random.Random(2304)), "name": "李大为"}
PEOPLE = (ALICE, BOB)


def _at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


def _masked_id(person: dict[str, str]) -> str:
    return person["id"][:6] + "*" * 8 + person["id"][-4:]


def _assert_no_resident_id(text: str) -> None:
    for person in PEOPLE:
        assert person["id"] not in text and _masked_id(person) not in text
        assert person["id"][:6] not in text  # not even the start of one
        assert person["name"] not in text


async def _page(gateway: Gateway, path: str) -> tuple[int, str]:
    response = await gateway.client.get(path, allow_redirects=False)
    return response.status, await response.text()


async def _declare(gateway: Gateway, firm: dict[str, str] = FIRM, *, minutes_ago: float = 60) -> None:
    agency = await gateway.add_source("intermediary", uscc=firm["id"])
    expired = (date.today() - timedelta(days=3)).isoformat()
    declaration = event(
        "intermediary.declared",
        agency=firm,
        services=["design_consulting", "assessment"],
        practitioners=[{"person": ALICE, "certificate_no": "ZJ-0001"}, {"person": BOB, "certificate_no": "ZJ-0002"}],
        qualifications=[
            {"name": "工程咨询甲级资信", "certificate_no": "ZX-001", "valid_until": "2030-12-31"},
            {"name": "造价咨询乙级资质", "certificate_no": "ZX-002", "valid_until": expired},
        ],
        commitment={"accepted": True, "items": ["申报信息真实有效", "不出具虚假报告"], "signatory": "法定代表人"},
        declared_at=_at(minutes_ago),
    )
    await gateway.post_and_project([declaration], f"declare_{firm['id']}", source=agency)


async def _seed(gateway: Gateway) -> Any:
    """An agency declared with two practitioners and evaluated A; returns the regulator."""
    await _declare(gateway)
    regulator = await gateway.add_source("regulator")
    evaluation = event(
        "intermediary.evaluated", subject=FIRM, grade="A", period="2026", evaluator="市发展改革委", evaluated_at=_at(30)
    )
    await gateway.post_and_project([evaluation], "evaluate", source=regulator)
    return regulator


async def _false_report(gateway: Gateway, regulator: Any) -> None:
    violation = event("intermediary.violation", agency=FIRM, practitioners=[ALICE], kind="false_report",
                      severity="serious", confirmed=True, found_at=_at(5))  # fmt: skip
    await gateway.post_and_project([violation], "violation", source=regulator)


async def test_an_agencys_page_shows_declaration_tier_evaluations_commitment_and_counts_practitioners(
    gateway: Gateway,
) -> None:
    await _seed(gateway)
    status, text = await _page(gateway, f"/public/subjects/uscc/{FIRM['id']}")
    assert status == 200, text
    assert "中介机构信息" in text and "海州工程咨询有限公司" in text
    assert "设计咨询类、评估类" in text
    assert "工程咨询甲级资信" in text and "ZX-001" in text and "2030-12-31" in text
    expired_row = re.search(r'<tr class="expired">\s*<td>造价咨询乙级资质 <span class="tag tag-expired">已过期', text)
    assert expired_row is not None
    assert text.count("已过期") == 1  # the valid one is not marked
    assert "A 级（守信）" in text and "绿色通道、政府采购优先" in text
    assert "市发展改革委" in text and "2026" in text
    assert "申报信息真实有效" in text and "不出具虚假报告" in text and "法定代表人" in text
    # not on a list the policy shows persons on (default: black only): a count, no names, no certificates
    assert "在册从业人员 2 名" in text and "ZJ-0001" not in text and "王**" not in text
    _assert_no_resident_id(text)


async def test_on_the_black_list_practitioners_appear_masked_by_certificate_number_only(gateway: Gateway) -> None:
    regulator = await _seed(gateway)
    await _false_report(gateway, regulator)
    status, text = await _page(gateway, f"/public/subjects/uscc/{FIRM['id']}")
    assert status == 200, text
    assert "该主体已列入严重失信主体名单" in text
    assert "D 级（严重失信）" in text and "因列入严重失信主体名单调整，评价结果 A 级" in text
    assert "限制进入中介服务市场" in text
    practitioners = text.split("<h3>从业人员</h3>", 1)[1].split("</section>", 1)[0]
    assert "王**" in practitioners and "李**" in practitioners
    assert "ZJ-0001" in practitioners and "ZJ-0002" in practitioners
    _assert_no_resident_id(text)


async def test_a_policy_that_shows_no_person_keeps_practitioners_a_count(gateway: Gateway, aiohttp_client: Any) -> None:
    regulator = await _seed(gateway)
    await _false_report(gateway, regulator)
    policy_file = gateway.folder / "no-persons.toml"
    policy_file.write_text(DEFAULT_POLICY_TEXT.replace('persons = ["black"]', "persons = []"), encoding="utf-8")
    strict = Gateway(
        await aiohttp_client(create_app(gateway.settings.model_copy(update={"policy_file": policy_file}))),
        gateway.settings,
        gateway.folder,
    )
    status, text = await _page(strict, f"/public/subjects/uscc/{FIRM['id']}")
    assert status == 200, text
    assert "该主体已列入严重失信主体名单" in text and "在册从业人员 2 名" in text
    assert "ZJ-0001" not in text and "王**" not in text
    _assert_no_resident_id(text)


async def test_a_merchant_that_is_no_agency_has_no_intermediary_section(gateway: Gateway) -> None:
    await _seed(gateway)
    await gateway.post_and_project([event("merchant.registered", merchant=PLAIN_SHOP)], "plain")
    status, text = await _page(gateway, f"/public/subjects/uscc/{PLAIN_SHOP['id']}")
    assert status == 200 and "中介机构信息</h2>" not in text


async def test_the_column_lists_agencies_newest_first_with_tier_and_list_and_pages(gateway: Gateway) -> None:
    status, text = await _page(gateway, "/public/intermediaries")
    assert status == 200 and "暂无中介机构信息" in text and "共 0 家" in text
    regulator = await _seed(gateway)
    firms = [
        {"id_type": "uscc", "id": make_uscc(random.Random(2400 + n)), "name": f"测试评估事务所{n:02d}"}
        for n in range(21)
    ]
    for firm in firms:  # one projection each: each is written after the one before
        await _declare(gateway, firm)
    await gateway.post_and_project([event("merchant.registered", merchant=PLAIN_SHOP)], "plain")
    await _false_report(gateway, regulator)  # FIRM is written last: first on the first page

    status, first = await _page(gateway, "/public/intermediaries")
    assert status == 200, first
    assert "共 22 家中介机构" in first and "第 1 / 2 页" in first and "下一页" in first
    assert f'href="/public/subjects/uscc/{FIRM["id"]}"' in first
    assert first.index(FIRM["name"]) < first.index("测试评估事务所20")
    assert "D 级（严重失信）" in first and "严重失信主体名单" in first and "未评价" in first
    assert re.findall(r"测试评估事务所(\d\d)", first) == [f"{n:02d}" for n in range(20, 1, -1)]
    assert PLAIN_SHOP["name"] not in first  # a merchant is no agency
    status, second = await _page(gateway, "/public/intermediaries?page=2")
    assert status == 200 and re.findall(r"测试评估事务所(\d\d)", second) == ["01", "00"] and "上一页" in second
    for page in (first, second):
        _assert_no_resident_id(page)
    for bad in ("0", "x", "501", "-1"):
        status, text = await _page(gateway, f"/public/intermediaries?page={bad}")
        assert status == 400 and "页码应为" in text


async def test_the_navigation_and_home_page_link_to_the_column(gateway: Gateway) -> None:
    for path in ("/public/", "/public/lists/black", "/public/intermediaries"):
        status, text = await _page(gateway, path)
        assert status == 200 and 'href="/public/intermediaries"' in text
