"""Browser tests of the whole assessment workflow through the real UI (Playwright in
Debian's chromium, see tests/browser_harness.py): data entry with inline checks,
submit / return / resubmit / approve, the Excel round trip with errors and a dry-run
preview, publishing, the ranking and a unit's explanation, an appeal and its
answer, payment sign-offs, and the public pages.  Screenshots of the main pages go
to docs/screenshots/ under ``make screenshots``."""

from __future__ import annotations

import re
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from kaohe.store.models import DataValue, OrgUnit
from tests.browser_harness import LiveServer, log_in, open_page, screenshot, screenshot_top

pytestmark = pytest.mark.browser


def stored(server: LiveServer, unit: str, period: str, variable: str) -> float | None:
    with server.session() as s:
        return s.scalar(
            select(DataValue.value)
            .join(OrgUnit, OrgUnit.id == DataValue.unit_id)
            .where(OrgUnit.code == unit, DataValue.period == period, DataValue.variable == variable)
        )


def nav(page: Page, href: str) -> None:
    """Follow a link of the header's navigation."""
    with page.expect_navigation():
        page.locator(f"header nav a[href='{href}']").click()


def click_and_wait(page: Page, locator: object) -> None:
    with page.expect_navigation():
        locator.click()  # type: ignore[attr-defined]


# ====================================================================== data entry and review


def test_enter_submit_return_resubmit_approve(
    live_server: LiveServer, page: Page, browser: object
) -> None:
    from kaohe.auth.users import user_by_name
    from kaohe.workflow import submissions as flow
    from kaohe.workflow.units import unit_by_code

    # other villages of the township have already submitted (a realistic queue)
    with live_server.session() as s:
        admin = user_by_name(s, "admin")
        for code in ("V0003", "V0004", "V0005", "V0006"):
            flow.submit(s, admin, unit_by_code(s, code), "2022T2")

    # ---- the reporter signs in through the form and opens the draft of 2022T2
    page.goto("/login")
    page.fill("#username", "reporter_v0000")
    screenshot(page, "login")
    log_in(page, "reporter_v0000")
    nav(page, "/data")
    expect(page.locator("h1")).to_contain_text("数据填报")
    click_and_wait(page, page.locator("a[href='/data/V0000/2022T2']"))
    expect(page.locator("h1")).to_contain_text("蔡寨村")
    expect(page.locator("h1")).to_contain_text("2022年第2考核期")
    expect(page.locator(".badge.draft")).to_have_text("草稿")

    # an invalid value is reported inline (HTMX check on change) …
    births = page.locator("#v_births_total")
    births.fill("-3")
    births.press("Tab")
    expect(page.locator("#m_births_total .error")).to_contain_text("负数")
    late = page.locator("#v_births_late")
    late.fill("一")
    late.press("Tab")
    expect(page.locator("#m_births_late .error")).to_contain_text("不是数字")
    screenshot_top(page, "data-entry-form")
    # … and goes away once fixed
    births.fill("9")
    births.press("Tab")
    expect(page.locator("#m_births_total")).to_have_text("")
    late.fill("0")
    late.press("Tab")
    expect(page.locator("#m_births_late")).to_have_text("")
    page.fill("#reason", "补录出生数")
    click_and_wait(page, page.locator("form.entry button"))
    expect(page.locator(".flash-ok")).to_contain_text("已保存")
    expect(births).to_have_value("9")
    assert stored(live_server, "V0000", "2022T2", "births_total") == 9

    click_and_wait(page, page.locator("form[action='/data/V0000/2022T2/submit'] button"))
    expect(page.locator(".badge.submitted")).to_have_text("已提交")
    expect(births).to_have_attribute("readonly", "")
    expect(page.locator("form.entry button")).to_have_count(0)

    # ---- the township's assessor returns it from the review queue with a comment
    assessor = open_page(browser, live_server)
    log_in(assessor, "assessor_t000")
    nav(assessor, "/review")
    expect(assessor.locator("h2").first).to_contain_text("待审核 (5)")
    row = assessor.locator("tr", has=assessor.locator("a[href='/data/V0000/2022T2']"))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("城关镇")
    screenshot(assessor, "review-queue")
    comment = "出生人数与花名册不符，请核实后重新上报。"
    row.locator("input[name=text]").fill(comment)
    click_and_wait(assessor, row.locator("button", has_text="退回"))
    expect(assessor.locator("h2").first).to_contain_text("待审核 (4)")
    returned = assessor.locator("tr", has=assessor.locator("a[href='/data/V0000/2022T2']"))
    expect(returned).to_contain_text(comment)

    # ---- the reporter sees the comment, corrects and submits again
    page.reload()
    expect(page.locator(".badge.returned")).to_have_text("已退回")
    expect(page.locator("p.notice")).to_contain_text(comment)
    expect(births).not_to_have_attribute("readonly", "")
    births.fill("10")
    click_and_wait(page, page.locator("form.entry button"))
    expect(page.locator(".flash-ok")).to_contain_text("修改了 1 项")
    click_and_wait(page, page.locator("form[action='/data/V0000/2022T2/submit'] button"))
    expect(page.locator(".badge.submitted")).to_be_visible()

    # ---- the assessor approves it
    assessor.reload()
    row = assessor.locator("tr", has=assessor.locator("a[href='/data/V0000/2022T2']"))
    expect(row.locator("button", has_text="审核通过")).to_have_count(1)
    click_and_wait(assessor, row.locator("button", has_text="审核通过"))
    approved = assessor.locator("table.grid").nth(2)
    expect(approved.locator("a[href='/data/V0000/2022T2']")).to_have_count(1)

    # ---- now the form is locked for the reporter
    page.reload()
    expect(page.locator(".badge.approved")).to_have_text("已审核（锁定）")
    expect(births).to_have_value("10")
    expect(births).to_have_attribute("readonly", "")
    expect(page.locator("form.entry button")).to_have_count(0)
    expect(page.locator("form[action='/data/V0000/2022T2/submit']")).to_have_count(0)
    assert stored(live_server, "V0000", "2022T2", "births_total") == 10


# ====================================================================== Excel round trip


def _cell(wb: openpyxl.Workbook, sheet: str, unit: str, period: str, variable: str):  # type: ignore[no-untyped-def]
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    col = next(
        i for i, h in enumerate(header) if isinstance(h, str) and h.endswith(f"({variable})")
    )
    for row in ws.iter_rows(min_row=2):
        if row[0].value == unit and row[2].value == period:
            return row[col]
    raise AssertionError(f"no row {unit} {period} in {sheet}")


def _upload(page: Page, path: Path) -> None:
    page.set_input_files("input[name=file]", str(path))
    click_and_wait(page, page.locator("button", has_text="上传并预览"))


def test_excel_upload_with_errors_then_a_valid_change(
    live_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    log_in(page, "assessor_t000")
    nav(page, "/data")
    click_and_wait(page, page.locator("a[href='/data/group/T000/2022T1/upload']"))
    expect(page.locator("h1")).to_contain_text("上传填报表")
    with page.expect_download() as dl:
        page.locator("a[href='/data/group/T000/2022T1/template.xlsx']").click()
    template = tmp_path / "template.xlsx"
    dl.value.save_as(template)
    assert dl.value.suggested_filename.endswith(".xlsx")

    # a negative number and text in a number cell
    wb = openpyxl.load_workbook(template)
    assert wb.sheetnames[:2] == ["年度数据", "期间数据"]
    neg = _cell(wb, "期间数据", "V0001", "2022T1", "births_late")
    neg.value = -2
    word = _cell(wb, "期间数据", "V0002", "2022T1", "births_total")
    word.value = "五"
    # and a valid change next to them, which must not be written either
    _cell(wb, "期间数据", "V0003", "2022T1", "births_total").value = 77
    bad = tmp_path / "填报表-有错误.xlsx"
    wb.save(bad)
    before = {
        (u, v): stored(live_server, u, "2022T1", v)
        for u, v in (("V0001", "births_late"), ("V0002", "births_total"), ("V0003", "births_total"))
    }
    _upload(page, bad)
    expect(page.locator("p.error")).to_contain_text("发现 2 处错误，未写入任何数据")
    rows = page.locator("table.errors tbody tr")
    expect(rows).to_have_count(2)
    found = {}
    for i in range(2):
        cells = rows.nth(i).locator("td").all_inner_texts()
        found[(cells[0], int(cells[1]))] = (cells[2], cells[3])
    assert found[("期间数据", neg.row)][0].endswith("(births_late)")
    assert (
        "负数" in found[("期间数据", neg.row)][1] or "negative" in found[("期间数据", neg.row)][1]
    )
    assert found[("期间数据", word.row)][0].endswith("(births_total)")
    assert (
        "数字" in found[("期间数据", word.row)][1] or "number" in found[("期间数据", word.row)][1]
    )
    expect(page.locator("input[name=token]")).to_have_count(0)
    screenshot(page, "upload-preview-errors")
    for (u, v), value in before.items():
        assert stored(live_server, u, "2022T1", v) == value

    # a valid change: the dry-run preview lists old → new, confirm writes it
    click_and_wait(page, page.locator("a", has_text="重新上传"))
    wb = openpyxl.load_workbook(template)
    old = stored(live_server, "V0001", "2022T1", "births_total")
    assert old is not None
    _cell(wb, "期间数据", "V0001", "2022T1", "births_total").value = int(old) + 5
    good = tmp_path / "填报表.xlsx"
    wb.save(good)
    _upload(page, good)
    expect(page.locator("main")).to_contain_text("将修改 1 个数值")
    change = page.locator("table.changes tbody tr")
    expect(change).to_have_count(1)
    cells = change.locator("td").all_inner_texts()
    assert "崔岗村" in cells[0] and "births_total" in cells[2]
    assert cells[3] == str(int(old)) and cells[4] == "→" and cells[5] == str(int(old) + 5)
    screenshot(page, "upload-preview")
    assert stored(live_server, "V0001", "2022T1", "births_total") == old  # a dry run
    page.fill("#reason", "年中核查")
    click_and_wait(page, page.locator("button", has_text="确认导入"))
    expect(page.locator(".flash-ok")).to_contain_text("已导入 1 个数值")
    assert stored(live_server, "V0001", "2022T1", "births_total") == old + 5


# ====================================================================== publish, rank, explain, appeal


def _ranking_units(page: Page) -> list[str]:
    return page.locator("#ranking tbody tr").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-unit'))"
    )


def _ranking_totals(page: Page) -> list[float]:
    return page.locator("#ranking tbody tr td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => parseFloat(c.getAttribute('data-value')))"
    )


def test_publish_rank_explain_and_appeal(
    live_server: LiveServer, page: Page, browser: object
) -> None:
    from kaohe.workflow.units import unit_by_code

    with live_server.session() as s:
        n_villages = len(unit_by_code(s, "T000").children)
    assert n_villages >= 5
    # ---- the assessor publishes T000's first period
    log_in(page, "assessor_t000")
    nav(page, "/results")
    click_and_wait(page, page.locator("a[href='/results/T000/2022T1']"))
    expect(page.locator("h1")).to_contain_text("城关镇")
    expect(page.locator("[data-state=draft]")).to_have_text("草稿（未公布）")
    page.fill("form.publish input[name=note]", "2022年第一期考核结果")
    click_and_wait(page, page.locator("form.publish button"))
    expect(page.locator(".flash-ok")).to_contain_text("已公布第 1 版")
    click_and_wait(page, page.locator("a", has_text="返回排名"))
    expect(page.locator("[data-state=published]")).to_contain_text("已公布 v1")

    # ---- the ranking: sortable columns, heat map drawn by ECharts
    rows = page.locator("#ranking tbody tr")
    expect(rows).to_have_count(n_villages)
    expect(page.locator("#heatmap canvas")).to_be_visible()
    ranked = _ranking_units(page)
    totals = _ranking_totals(page)
    assert totals == sorted(totals, reverse=True)  # best first
    total_th = page.locator("#ranking thead th", has_text="总分")
    total_th.click()
    expect(total_th).to_have_attribute("aria-sort", "ascending")
    assert _ranking_totals(page) == sorted(totals)
    assert _ranking_units(page) != ranked
    total_th.click()
    expect(total_th).to_have_attribute("aria-sort", "descending")
    assert _ranking_totals(page) == sorted(totals, reverse=True)
    rank_th = page.locator("#ranking thead th").first
    expect(rank_th).to_have_text("名次")
    rank_th.click()
    expect(rank_th).to_have_attribute("aria-sort", "ascending")
    assert _ranking_units(page) == ranked
    screenshot(page, "ranking-heatmap")

    # ---- a unit's explanation: item lines with their terms, trend chart
    click_and_wait(page, page.locator("#ranking a[href='/results/T000/2022T1/V0000']"))
    expect(page.locator("h1")).to_contain_text("蔡寨村（V0000）")
    items = page.locator("table.explanation tbody tr")
    assert items.count() >= 10
    expect(page.locator("table.explanation")).to_contain_text("得分")
    expect(items.first.locator("td").nth(3)).to_contain_text("：")  # "term: points" lines
    expect(page.locator("#trend canvas")).to_be_visible()
    total = page.locator("#expl-total").inner_text()
    expect(page.locator("#published-total")).to_have_text(total)
    screenshot_top(page, "unit-explanation", 1400)

    # ---- the reporter files an appeal on the published result
    reporter = open_page(browser, live_server)
    log_in(reporter, "reporter_v0000")
    nav(reporter, "/results")
    click_and_wait(reporter, reporter.locator("a[href='/results/T000/2022T1']"))
    expect(reporter.locator("#ranking tbody tr")).to_have_count(n_villages)
    expect(reporter.locator("form.publish")).to_have_count(0)
    click_and_wait(reporter, reporter.locator("#ranking a[href='/results/T000/2022T1/V0000']"))
    expect(reporter.locator("#appeals + p")).to_contain_text("没有申诉")
    appeal = "我村第一期出生人数应为 5 人，请复核“出生统计”一项的得分。"
    reporter.fill("#appeal-form textarea[name=text]", appeal)
    click_and_wait(reporter, reporter.locator("#appeal-form button"))
    filed = reporter.locator("div.appeal")
    expect(filed).to_have_count(1)
    expect(filed).to_contain_text(appeal)
    expect(filed).to_contain_text("待答复")

    # ---- the assessor answers it
    nav(page, "/results")
    click_and_wait(page, page.locator("main a[href='/appeals']"))
    row = page.locator("tr", has_text=appeal)
    expect(row).to_contain_text("蔡寨村")
    answer = "已复核：出生人数按台账更正为 5 人，重新公布后生效。"
    row.locator("textarea[name=answer]").fill(answer)
    click_and_wait(page, row.locator("button", has_text="答复"))
    expect(page.locator("tr", has_text=appeal)).to_contain_text(answer)
    expect(page.locator("tr", has_text=appeal).locator("textarea")).to_have_count(0)

    # ---- the reporter sees the answer
    reporter.reload()
    expect(reporter.locator("div.appeal")).to_contain_text("已答复")
    expect(reporter.locator("div.appeal .flash-ok")).to_contain_text(answer)
    nav(reporter, "/results")
    click_and_wait(reporter, reporter.locator("main a[href='/appeals']"))
    mine = reporter.locator("tr", has_text=appeal)
    expect(mine).to_contain_text(answer)
    expect(reporter.locator("main tbody tr")).to_have_count(1)  # only its own unit's
    screenshot(reporter, "appeals")

    # ---- the public sees the published result without signing in
    public = open_page(browser, live_server)
    public.goto("/")
    nav(public, "/public")
    expect(public.locator("h1")).to_have_text("公开结果")
    links = public.locator("main table a")
    expect(links).to_have_count(1)
    click_and_wait(public, public.locator("a[href='/public/T000/2022T1']"))
    expect(public.locator("#ranking tbody tr")).to_have_count(n_villages)
    expect(public.locator("#heatmap canvas")).to_be_visible()
    expect(public.locator("form.publish")).to_have_count(0)
    expect(public.locator("a[href^='/downloads/']")).to_have_count(0)
    screenshot(public, "public-results")
    click_and_wait(public, public.locator("#ranking a[href='/public/T000/2022T1/V0000']"))
    expect(public.locator("#published-total")).to_have_text(total)
    expect(public.locator("#appeal-form")).to_have_count(0)
    expect(public.locator("main")).not_to_contain_text(appeal)  # appeals are not public


# ====================================================================== payments


def test_payment_review_and_approval(live_server: LiveServer, page: Page, browser: object) -> None:
    # the community's director (its reporter account) reviews its lines …
    log_in(page, "reporter_c01")
    page.goto("/payments/ST01/2022Q1")
    expect(page.locator("h1")).to_contain_text("经费发放")
    own = page.locator("h2[id^=unit-]")
    expect(own).to_have_count(1)  # only its own community
    badge = page.locator("#unit-C01 .badge")
    expect(badge).to_have_attribute("data-state", "pending")
    click_and_wait(page, page.locator("form[action='/payments/ST01/2022Q1/C01/review'] button"))
    expect(badge).to_have_attribute("data-state", "reviewed")
    expect(page.locator("form[action$='/approve']")).to_have_count(0)

    # … and the street's assessor approves them
    assessor = open_page(browser, live_server)
    log_in(assessor, "assessor_st01")
    nav(assessor, "/results")
    click_and_wait(assessor, assessor.locator("a[href='/payments/ST01/2022Q1']"))
    expect(assessor.locator("h2[id^=unit-]").nth(1)).to_be_visible()
    expect(assessor.locator("#unit-C01 .badge")).to_have_attribute("data-state", "reviewed")
    total = assessor.locator("main p strong").first.inner_text()
    assert re.fullmatch(r"[\d,]+\.\d\d", total), total
    click_and_wait(
        assessor, assessor.locator("form[action='/payments/ST01/2022Q1/C01/approve'] button")
    )
    expect(assessor.locator("#unit-C01 .badge")).to_have_attribute("data-state", "approved")
    expect(assessor.locator("#unit-C01 .badge")).to_have_text("已审批")
    screenshot_top(assessor, "payments", 1100)


def test_the_readme_shows_the_screenshots_the_tests_take() -> None:
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", readme)
    assert len(shown) >= 12
    for rel in shown:
        assert (root / rel).is_file(), f"README shows {rel}, which is missing"
    taken = set()
    for test in ("test_browser_workflow.py", "test_browser_supplies.py"):
        text = (root / "tests" / test).read_text(encoding="utf-8")
        taken |= set(re.findall(r'screenshot(?:_top)?\(\w+, "([\w-]+)"', text))
    assert {Path(p).stem for p in shown} == taken
