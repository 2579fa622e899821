"""Browser tests of the contraceptive-supplies pages (Playwright in Debian's chromium,
see tests/browser_harness.py): the public finder of distribution points without
signing in (keyword, township filter, the offline ECharts map, the JSON download),
and a keeper's stock page as of a date with an issue recorded through its form."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from kaohe.supplies import service as sv
from kaohe.supplies.ledger import today
from kaohe.supplies.models import SupplyEvent, SupplyLocation
from tests.browser_harness import LiveServer, log_in, screenshot, screenshot_top

pytestmark = pytest.mark.browser


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    """The live server over the seeded database plus the supplies demo (a station, an
    office per township, points under them, two years of movements, one point closed)."""
    from kaohe.supplies.demo import seed_supplies_demo

    with live_server.session() as s:
        seed_supplies_demo(s)
    yield live_server


def open_points(server: LiveServer, township: str | None = None) -> dict[str, str]:
    """code -> name of the open distribution points (of one township)."""
    from kaohe.store.models import OrgUnit

    with server.session() as s:
        q = (
            select(SupplyLocation.code, SupplyLocation.name)
            .join(OrgUnit, OrgUnit.id == SupplyLocation.org_unit_id)
            .where(SupplyLocation.kind == "point", SupplyLocation.is_open.is_(True))
        )
        if township:
            q = q.where(OrgUnit.code == township)
        return {code: name for code, name in s.execute(q)}


def shown_codes(page: Page) -> list[str]:
    return page.locator("#points-table tr.point-row").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-code'))"
    )


def click_and_wait(page: Page, locator: object) -> None:
    with page.expect_navigation():
        locator.click()  # type: ignore[attr-defined]


# ====================================================================== public finder


def test_public_finder_search_filter_map_and_json(server: LiveServer, page: Page) -> None:
    everything = open_points(server)
    with server.session() as s:
        closed = s.scalars(
            select(SupplyLocation.code).where(
                SupplyLocation.kind == "point", SupplyLocation.is_open.is_(False)
            )
        ).all()
    assert len(everything) >= 10 and closed

    page.goto("/")
    expect(page.locator("header .who")).to_have_count(0)  # nobody signed in
    click_and_wait(page, page.locator("header nav a[href='/points']"))
    expect(page.locator("h1")).to_have_text("免费避孕药具发放点查询")
    expect(page.locator("#points-count")).to_have_text(f"共 {len(everything)} 个开放的发放点")
    assert sorted(shown_codes(page)) == sorted(everything)
    assert not set(closed) & set(shown_codes(page))  # a closed point is not listed
    # the offline map: ECharts draws a canvas with the points
    expect(page.locator("#points-map canvas")).to_be_visible()
    screenshot(page, "points-finder")

    # keyword: one village's point by part of its name
    code, name = next((c, n) for c, n in sorted(everything.items()) if c.startswith("V0000"))
    page.fill("#q", name[:3])
    click_and_wait(page, page.locator("#points-search"))
    assert shown_codes(page) == [code]
    expect(page.locator("#points-table")).to_contain_text(name)
    expect(page.locator("#q")).to_have_value(name[:3])

    # township filter (keyword cleared): the street's points only
    street = open_points(server, "ST01")
    assert street
    page.fill("#q", "")
    page.select_option("#township", "ST01")
    click_and_wait(page, page.locator("#points-search"))
    assert sorted(shown_codes(page)) == sorted(street)
    towns = page.locator("#points-table tr.point-row td:nth-child(2)").all_inner_texts()
    assert set(towns) == {"城关街道"}
    expect(page.locator("#points-map canvas")).to_be_visible()

    # a keyword matching nothing
    page.fill("#q", "没有这个地方")
    click_and_wait(page, page.locator("#points-search"))
    expect(page.locator("#points-empty")).to_have_text("没有符合条件的发放点")
    expect(page.locator("#points-map")).to_be_hidden()

    # the JSON download of the filtered list
    page.fill("#q", "")
    click_and_wait(page, page.locator("#points-search"))
    with page.expect_response(lambda r: "/api/public/points?" in r.url) as resp:
        page.locator("#points-json").click()
    assert resp.value.status == 200
    assert resp.value.headers["content-type"].startswith("application/json")
    doc = resp.value.json()
    assert doc["count"] == len(street) == len(doc["points"])
    assert {p["code"] for p in doc["points"]} == set(street)
    assert {p["township_code"] for p in doc["points"]} == {"ST01"}
    first = doc["points"][0]
    assert {"name", "address", "hours", "phone", "latitude", "longitude"} <= set(first)
    expect(page.locator("body")).to_contain_text('"count"')


# ====================================================================== stock and an issue


def test_keeper_stock_as_of_a_date_an_issue_and_the_township_stock(
    server: LiveServer, page: Page
) -> None:
    from kaohe.auth.users import user_by_name
    from kaohe.workflow.units import unit_by_code

    with server.session() as s:
        kept = sv.kept_ids(s, user_by_name(s, "reporter_v0000"))
        assert len(kept) == 1
        point = s.get(SupplyLocation, next(iter(kept)))
        point_code, point_name = point.code, point.name
        now = today()
        lines = sv.stock_lines(s, now, kept)
        earlier = now - dt.timedelta(days=365)
        then = sv.stock_lines(s, earlier, kept)
        product, product_name = lines[0].product.code, lines[0].product.name
        on_hand = sum(ln.qty for ln in lines if ln.product.code == product)
        then_total = sum(ln.qty for ln in then)
        n_events = s.scalar(select(func.count(SupplyEvent.id)))
    assert on_hand >= 2

    # ---- the keeper (the village's reporter) opens the stock page
    log_in(page, "reporter_v0000")
    click_and_wait(page, page.locator("header nav a[href='/supplies']"))
    expect(page.locator("h1")).to_have_text("避孕药具管理")
    click_and_wait(page, page.locator("#supplies-nav a[href='/supplies/stock']"))
    expect(page.locator("h1")).to_contain_text(f"截至 {now.isoformat()}")
    rows = page.locator("#stock-table tr:has(td.num)")
    expect(rows).to_have_count(len(lines))
    assert set(rows.locator("td:first-child").all_inner_texts()) == {point_name}

    # ---- stock on hand as of a year ago
    page.fill("#as_of", earlier.isoformat())
    click_and_wait(page, page.locator("#stock-filter button"))
    expect(page.locator("h1")).to_contain_text(f"截至 {earlier.isoformat()}")
    expect(page.locator("#as_of")).to_have_value(earlier.isoformat())
    expect(rows).to_have_count(len(then))
    qtys = rows.locator("td:nth-child(5)").all_inner_texts()
    assert sum(int(q.split()[0]) for q in qtys) == then_total

    # ---- more than on hand is refused with the reason, nothing written
    click_and_wait(page, page.locator("#supplies-nav a[href='/supplies/issue']"))
    expect(page.locator("h1")).to_have_text("发放登记")
    expect(page.locator("#location option")).to_have_count(1)  # only its own point
    page.select_option("#product", product)
    page.fill("#qty", str(on_hand + 1))
    click_and_wait(page, page.locator("#submit"))
    expect(page.locator("#form-error")).to_be_visible()
    with server.session() as s:
        assert s.scalar(select(func.count(SupplyEvent.id))) == n_events

    # ---- an issue of 2 through the form
    page.select_option("#product", product)
    page.fill("#qty", "2")
    page.fill("#note", "村卫生室发放")
    click_and_wait(page, page.locator("#submit"))
    expect(page.locator("h1")).to_have_text("出入库单据")
    expect(page.locator("#flash")).to_contain_text("已登记单据")
    doc_no = page.locator("#flash").inner_text().split()[-1]
    event = page.locator(f"#event-{doc_no}")
    expect(event).to_contain_text(point_name)
    expect(event).to_contain_text(product_name)
    expect(event).to_contain_text("-2")
    expect(event).to_contain_text("村卫生室发放")

    # ---- the stock page shows 2 fewer today
    click_and_wait(page, page.locator("#supplies-nav a[href='/supplies/stock']"))
    page.select_option("#product", product)
    click_and_wait(page, page.locator("#stock-filter button"))
    qtys = rows.locator("td:nth-child(5)").all_inner_texts()
    assert sum(int(q.split()[0]) for q in qtys) == on_hand - 2
    with server.session() as s:
        assert s.scalar(select(func.count(SupplyEvent.id))) == n_events + 1
        after = sv.stock_lines(s, today(), [sv.location_by_code(s, point_code).id])
        assert sum(ln.qty for ln in after if ln.product.code == product) == on_hand - 2

    # ---- the township's assessor sees its office and points (not another township's)
    with server.session() as s:
        t000 = unit_by_code(s, "T000").id
        own = set(s.scalars(select(SupplyLocation.name).where(SupplyLocation.org_unit_id == t000)))
    log_in(page, "assessor_t000")
    click_and_wait(page, page.locator("header nav a[href='/supplies']"))
    click_and_wait(page, page.locator("#supplies-nav a[href='/supplies/stock']"))
    places = set(rows.locator("td:first-child").all_inner_texts())
    assert len(places) > 1 and places <= own
    assert point_name in places
    screenshot_top(page, "stock", 1000)
