"""Data-entry pages: the unit list, the entry form (save, inline check, submit, review),
the review queue, the audit log, and the Excel round trip (template, dry-run preview
with every change and every error by sheet/row/column, confirm)."""

from __future__ import annotations

import io
import re

import openpyxl
import pytest
from sqlalchemy import select

from kaohe.store.db import transaction
from kaohe.store.models import DataValue, OrgUnit
from kaohe.web.app import create_app
from tests.web import Client


@pytest.fixture
def app(db_url: str):  # type: ignore[no-untyped-def]
    return create_app(db_url)


def client_for(app, user: str | None = None) -> Client:  # type: ignore[no-untyped-def]
    c = Client(app)
    if user:
        c.sign_in_as(user)
    return c


def stored(app, unit: str, period: str, variable: str) -> float | None:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        return s.scalar(
            select(DataValue.value)
            .join(OrgUnit, OrgUnit.id == DataValue.unit_id)
            .where(OrgUnit.code == unit, DataValue.period == period, DataValue.variable == variable)
        )


def test_data_list_shows_own_unit_to_a_reporter_and_the_subtree_to_an_assessor(app) -> None:  # type: ignore[no-untyped-def]
    r = client_for(app, "reporter_v0000").get("/data")
    assert r.status_code == 200
    assert "/data/V0000/2022T1" in r.text and '/data/V0000/2022"' in r.text
    assert "V0001" not in r.text and "template.xlsx" not in r.text
    r = client_for(app, "assessor_t000").get("/data")
    assert "/data/V0001/2022T3" in r.text and "V0010" not in r.text
    assert "/data/group/T000/2022/template.xlsx" in r.text
    r = client_for(app, "assessor_st01").get("/data")
    assert "/data/ST01/2022-03" in r.text and "/data/C01/2022-12" in r.text


def test_pages_need_a_signed_in_user(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app)
    for url in ("/data", "/data/V0000/2022T1", "/review", "/audit"):
        r = c.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_form_shows_labels_units_and_previous_values(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "reporter_v0000")
    r = c.get("/data/V0000/2022T2")
    assert r.status_code == 200
    assert "核实出生数" in r.text and "2022年第1考核期" in r.text  # previous period's column
    prev = stored(app, "V0000", "2022T1", "phones_checked")
    now = stored(app, "V0000", "2022T2", "phones_checked")
    assert prev != now
    row = re.search(
        r'name="v_phones_checked" value="([^"]*)".*?<td class="num">([^<]*)</td>', r.text, re.S
    )
    assert row is not None
    assert row.group(1) == str(int(now or 0)) and row.group(2) == str(int(prev or 0))


def test_reporter_cannot_read_or_write_another_unit(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "reporter_v0000")
    assert c.get("/data/V0001/2022T1").status_code == 403
    before = stored(app, "V0001", "2022T1", "births_total")
    r = c.post("/data/V0001/2022T1", data={"v_births_total": "77"})
    assert r.status_code == 403
    assert c.post("/data/V0001/2022T1/submit", data={}).status_code == 403
    assert c.get("/data/group/T000/2022/template.xlsx").status_code == 403
    assert c.get("/review").status_code == 403
    assert c.get("/audit?unit=V0001").status_code == 403
    assert stored(app, "V0001", "2022T1", "births_total") == before


def test_save_with_errors_shows_messages_and_writes_nothing(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "reporter_v0000")
    before = stored(app, "V0000", "2022T2", "births_total")
    r = c.post(
        "/data/V0000/2022T2",
        data={"v_births_total": "8", "v_births_late": "-1", "v_births_missed": "很多"},
    )
    assert r.status_code == 422
    assert "为负数" in r.text and "不是数字" in r.text
    assert 'value="很多"' in r.text  # what was typed is kept
    assert stored(app, "V0000", "2022T2", "births_total") == before


def test_inline_check(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "reporter_v0000")
    assert "负数" in c.get("/data/V0000/2022T2/check?v_births_total=-3").text
    assert "整数" in c.get("/data/V0000/2022T2/check?v_births_total=2.5").text
    assert c.get("/data/V0000/2022T2/check?v_births_total=3").text == ""


def test_save_submit_review_and_audit_pages(app) -> None:  # type: ignore[no-untyped-def]
    rep = client_for(app, "reporter_v0000")
    r = rep.post("/data/V0000/2022T2", data={"v_births_total": "8", "reason": "补录"})
    assert r.status_code == 303 and "saved=1" in r.headers["location"]
    assert stored(app, "V0000", "2022T2", "births_total") == 8
    assert rep.post("/data/V0000/2022T2/submit", data={}).status_code == 303
    # locked for the reporter now
    r = rep.post("/data/V0000/2022T2", data={"v_births_total": "9"})
    assert r.status_code == 409 and "已提交" in r.text
    ass = client_for(app, "assessor_t000")
    q = ass.get("/review")
    assert "/data/V0000/2022T2/approve" in q.text
    # a return needs a comment
    r = ass.post("/data/V0000/2022T2/return", data={"text": ""})
    assert r.status_code == 409
    r = ass.post("/data/V0000/2022T2/return", data={"text": "请核对", "next": "/review"})
    assert r.status_code == 303 and r.headers["location"] == "/review"
    assert "请核对" in rep.get("/data/V0000/2022T2").text
    rep.post("/data/V0000/2022T2/submit", data={})
    assert ass.post("/data/V0000/2022T2/approve", data={}).status_code == 303
    r = ass.post("/data/V0000/2022T2", data={"v_births_total": "10"})
    assert r.status_code == 409 and stored(app, "V0000", "2022T2", "births_total") == 8
    assert ass.post("/data/V0000/2022T2/reopen", data={"text": ""}).status_code == 409
    assert ass.post("/data/V0000/2022T2/reopen", data={"text": "复查"}).status_code == 303
    log = rep.get("/audit?unit=V0000&period=2022T2")
    assert log.status_code == 200
    for text in ("补录", "请核对", "复查", "births_total", "审核通过", "重新打开"):
        assert text in log.text
    only = rep.get("/audit?unit=V0000&period=2022T2&action=data.set").text
    assert "复查" not in only and "补录" in only


# ====================================================================== Excel round trip


def _download(c: Client, group: str, period: str) -> openpyxl.Workbook:
    r = c.get(f"/data/group/{group}/{period}/template.xlsx")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml"
    )
    return openpyxl.load_workbook(io.BytesIO(r.content))


def _cell(
    wb: openpyxl.Workbook, sheet: str, unit: str, period: str, variable: str
) -> openpyxl.cell.Cell:  # type: ignore[name-defined]
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    col = next(
        i for i, h in enumerate(header) if isinstance(h, str) and h.endswith(f"({variable})")
    )
    for row in ws.iter_rows(min_row=2):
        if row[0].value == unit and row[2].value == period:
            return row[col]
    raise AssertionError(f"no row {unit} {period}")


def _upload(c: Client, group: str, period: str, wb: openpyxl.Workbook):  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    wb.save(buf)
    return c.post(
        f"/data/group/{group}/{period}/upload",
        files={"file": ("填报表.xlsx", buf.getvalue(), "application/octet-stream")},
    )


def test_template_is_prefilled_with_stored_values(app) -> None:  # type: ignore[no-untyped-def]
    wb = _download(client_for(app, "assessor_t000"), "T000", "2022T1")
    assert wb.sheetnames[:2] == ["年度数据", "期间数据"]
    cell = _cell(wb, "期间数据", "V0001", "2022T1", "births_total")
    assert cell.value == stored(app, "V0001", "2022T1", "births_total")
    assert _cell(wb, "年度数据", "V0001", "2022", "population").value == stored(
        app, "V0001", "2022", "population"
    )
    codes = {r[0].value for r in wb["期间数据"].iter_rows(min_row=2)}
    assert "V0010" not in codes and "V0000" in codes


def test_excel_round_trip_preview_lists_exactly_the_changes_then_confirm_applies(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "assessor_t000")
    wb = _download(c, "T000", "2022T1")
    # unchanged upload: nothing to do
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 200 and "没有需要修改的数值" in r.text
    old_births = stored(app, "V0001", "2022T1", "births_total")
    old_pop = stored(app, "V0001", "2022", "population")
    _cell(wb, "期间数据", "V0001", "2022T1", "births_total").value = (old_births or 0) + 5
    _cell(wb, "年度数据", "V0001", "2022", "population").value = 4321
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 200
    assert "将修改 2 个数值" in r.text
    body = r.text.split('class="grid changes"')[1]
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", body, re.S)
    assert len(rows) == 2
    joined = " ".join(rows)
    assert "births_total" in joined and "population" in joined and "4321" in joined
    assert str(int((old_births or 0) + 5)) in joined and str(int(old_pop or 0)) in joined
    # nothing written by the preview
    assert stored(app, "V0001", "2022", "population") == old_pop
    token = re.search(r'name="token" value="([^"]+)"', r.text)
    fingerprint = re.search(r'name="fingerprint" value="([^"]+)"', r.text)
    assert token and fingerprint
    # another user cannot confirm this upload
    other = client_for(app, "admin")
    r2 = other.post(
        "/data/group/T000/2022T1/upload/confirm",
        data={"token": token.group(1), "fingerprint": fingerprint.group(1)},
    )
    assert r2.status_code == 404
    assert stored(app, "V0001", "2022", "population") == old_pop
    r = c.post(
        "/data/group/T000/2022T1/upload/confirm",
        data={"token": token.group(1), "fingerprint": fingerprint.group(1), "reason": "年中核查"},
    )
    assert r.status_code == 303 and "imported=2" in r.headers["location"]
    assert stored(app, "V0001", "2022", "population") == 4321
    assert stored(app, "V0001", "2022T1", "births_total") == (old_births or 0) + 5
    log = c.get("/audit?unit=V0001&action=data.set").text
    assert "年中核查" in log and "4321" in log
    # the token is used up
    r = c.post(
        "/data/group/T000/2022T1/upload/confirm",
        data={"token": token.group(1), "fingerprint": fingerprint.group(1)},
    )
    assert r.status_code == 404


def test_excel_upload_with_errors_names_sheet_row_column_and_writes_nothing(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "assessor_t000")
    wb = _download(c, "T000", "2022T1")
    before = stored(app, "V0001", "2022T1", "births_late")
    neg = _cell(wb, "期间数据", "V0001", "2022T1", "births_late")
    neg.value = -2
    text = _cell(wb, "期间数据", "V0002", "2022T1", "births_total")
    text.value = "五"
    ws = wb["期间数据"]
    ws.cell(row=ws.max_row + 1, column=1, value="V9999")
    ws.cell(row=ws.max_row, column=3, value="2022T1")
    ws.cell(row=ws.max_row, column=4, value=1)
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 422
    assert "未写入任何数据" in r.text and 'name="token"' not in r.text
    errors = re.findall(
        r"<tr><td>(.*?)</td><td class=\"num\">(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", r.text
    )
    by_row = {(s, int(row)): (col, why) for s, row, col, why in errors}
    assert by_row[("期间数据", neg.row)][0].endswith("(births_late)")
    assert "negative" in by_row[("期间数据", neg.row)][1]
    assert by_row[("期间数据", text.row)][0].endswith("(births_total)")
    assert "not a number" in by_row[("期间数据", text.row)][1]
    assert "V9999" in by_row[("期间数据", ws.max_row)][1]
    # reasons are Chinese first (the reader's English wording follows in parentheses)
    assert by_row[("期间数据", neg.row)][1].startswith("-2 是负数（须 ≥ 0）")
    assert by_row[("期间数据", text.row)][1].startswith("&#39;五&#39; 不是数字")
    assert by_row[("期间数据", ws.max_row)][1].startswith(
        "单位代码 &#39;V9999&#39; 不是本单位的下属单位"
    )
    assert stored(app, "V0001", "2022T1", "births_late") == before


def test_excel_upload_refuses_changes_to_approved_data(app) -> None:  # type: ignore[no-untyped-def]
    rep = client_for(app, "reporter_v0001")
    assert rep.post("/data/V0001/2022T1/submit", data={}).status_code == 303
    c = client_for(app, "assessor_t000")
    assert c.post("/data/V0001/2022T1/approve", data={}).status_code == 303
    wb = _download(c, "T000", "2022T1")
    cell = _cell(wb, "期间数据", "V0001", "2022T1", "births_total")
    before = cell.value
    cell.value = (before or 0) + 1
    _cell(wb, "期间数据", "V0002", "2022T1", "births_total").value = 99
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 422 and "锁定" in r.text
    assert re.search(rf"<td>期间数据</td><td class=\"num\">{cell.row}</td>", r.text)
    assert stored(app, "V0002", "2022T1", "births_total") != 99


def test_pages_in_english(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "assessor_t000")
    c.get("/lang/en?next=/")
    for url in ("/data", "/data/V0000/2022T2", "/review", "/audit", "/data/group/T000/2022/upload"):
        r = c.get(url)
        assert r.status_code == 200 and 'lang="en"' in r.text
    assert "Previous period" in c.get("/data/V0000/2022T2").text
    review = c.get("/review").text.split("<main>")[1]
    assert "待审核" not in review and "已审核（锁定）" not in review


# ====================================================================== whole numbers (integer)


def test_excel_upload_rejects_a_count_with_a_fraction(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "assessor_t000")
    wb = _download(c, "T000", "2022T1")
    before = stored(app, "V0001", "2022T1", "births_total")
    births = _cell(wb, "期间数据", "V0001", "2022T1", "births_total")
    births.value = 2.5  # a count (例)
    _cell(wb, "年度数据", "V0001", "2022", "association_score").value = 17.5  # a score: fine
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 422
    assert "未写入任何数据" in r.text and 'name="token"' not in r.text
    errors = re.findall(
        r"<tr><td>(.*?)</td><td class=\"num\">(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", r.text
    )
    assert [(s, int(row), col) for s, row, col, _ in errors] == [
        ("期间数据", births.row, "核实出生数 (births_total)")
    ]
    why = errors[0][3]
    assert why.startswith("&#39;2.5&#39; 不是整数（births_total 是计数，须为整数）")
    assert "is not a whole number (births_total is a count, 例)" in why
    assert stored(app, "V0001", "2022T1", "births_total") == before


def _store_variant(app, changes: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """A new version of village-1000 (the current one from now on) with texts replaced."""
    from kaohe.rulebook.loader import resolve_path
    from kaohe.workflow.rulebooks import store_rulebook

    text = resolve_path("village-1000").read_text(encoding="utf-8")
    for old, new in changes.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    with transaction(app.state.sessions) as s:
        store_rulebook(s, "village-1000.yaml", text)


def test_forms_and_uploads_follow_the_integer_flag_not_the_unit(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "assessor_t000")
    assert "整数" in c.get("/data/V0001/2022T1/check?v_births_total=2.5").text
    assert c.get("/data/V0001/2022/check?v_association_score=17.5").text == ""
    # births_total (例) may now be fractional, association_score (分) may not
    _store_variant(
        app,
        {
            "unit: 例}\n  births_reported": "unit: 例, integer: false}\n  births_reported",
            "unit: 分}\n  # flows": "unit: 分, integer: true}\n  # flows",
        },
    )
    assert c.get("/data/V0001/2022T1/check?v_births_total=2.5").text == ""
    assert "整数" in c.get("/data/V0001/2022/check?v_association_score=17.5").text
    form = c.get("/data/V0001/2022T1").text
    births = re.search(r'<input[^>]*name="v_births_total"[^>]*>', form)
    assert births is not None and 'pattern="[0-9]+"' not in births.group(0)
    # the upload takes 2.5 for births_total now, and no longer 17.5 for association_score
    wb = _download(c, "T000", "2022T1")
    _cell(wb, "期间数据", "V0001", "2022T1", "births_total").value = 2.5
    score = _cell(wb, "年度数据", "V0001", "2022", "association_score")
    score.value = 17.5
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 422
    errors = re.findall(
        r"<tr><td>(.*?)</td><td class=\"num\">(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", r.text
    )
    rows = {(s, int(row), col) for s, row, col, _ in errors}
    assert ("年度数据", score.row, "协会工作评分 (association_score)") in rows
    assert all(s == "年度数据" and col.endswith("(association_score)") for s, _, col in rows)
    del wb["年度数据"]
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 200 and "将修改 1 个数值" in r.text
