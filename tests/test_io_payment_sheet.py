"""The payment sheet workbook: lines, subtotals per unit, funder totals, status labels."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from kaohe.engine.result import PAYMENT_SCHEMA, STATUS_LABELS, PaymentSheet
from kaohe.io.payment_sheet import (
    ABOUT_SHEET,
    DETAIL_HEADERS,
    DETAIL_SHEET,
    FUNDER_HEADERS,
    FUNDERS_SHEET,
    basis_text,
    payment_sheet_rows,
    write_payment_sheet,
    yuan_text,
)
from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook

FUNDER_LABELS = {"district": "区", "street": "街道", "community": "社区"}
PAYEE_LABELS = {
    "community": "社区工作经费",
    "client": "受术群众",
    "specialist": "计生专干",
    "grid": "网格员",
    "cadre": "街道计生干部",
}


@cache
def rulebook() -> LoadedRulebook:
    return load_rulebook("community-monthly")


def line(
    unit: str,
    name: str,
    code: str,
    label: str,
    payee: str,
    funder: str,
    var: str,
    count: int,
    rate_fen: int,
    status: str = "pending",
    *,
    period: str = "2022-03",
    parent: str | None = "S1",
    amount_fen: int | None = None,
    basis: str = "",
) -> dict[str, Any]:
    return {
        "unit": unit,
        "name": name,
        "parent": parent,
        "period": period,
        "code": code,
        "label": label,
        "payee": payee,
        "payee_label": PAYEE_LABELS[payee],
        "funder": funder,
        "funder_label": FUNDER_LABELS[funder],
        "basis_variable": var,
        "count": count,
        "rate_fen": rate_fen,
        "amount_fen": count * rate_fen if amount_fen is None else amount_fen,
        "basis": basis,
        "clause": "community-monthly §5",
        "status": status,
        "reviewed_by": "张主任" if status in ("reviewed", "approved") else None,
        "approved_by": "李副主任" if status == "approved" else None,
    }


def make_sheet() -> PaymentSheet:
    lines = [
        line("C01", "东风社区", "ligation_work", "结扎手术社区工作经费", "community", "street",
             "ligations", 2, 50_000, "approved"),
        line("C01", "东风社区", "ligation_client", "结扎手术受术者补助", "client", "street",
             "ligations", 2, 50_000, "approved"),
        line("C01", "东风社区", "specialist_subsidy", "计生专干补助", "specialist", "district",
             "staff_specialists", 1, 3_000, "approved"),
        line("C01", "东风社区", "specialist_subsidy", "计生专干补助", "specialist", "street",
             "staff_specialists", 1, 17_000, "approved"),
        line("C01", "东风社区", "specialist_subsidy", "计生专干补助", "specialist", "community",
             "staff_specialists", 1, 10_000, "approved"),
        # odd cents: 0.10 + 0.20 must add up to exactly 0.30, not 0.30000000000000004
        line("C02", "新华社区", "grid_subsidy", "网格员补助", "grid", "community",
             "staff_grid", 1, 10, "reviewed"),
        line("C02", "新华社区", "grid_subsidy", "网格员补助", "grid", "street",
             "staff_grid", 1, 20, "reviewed"),
        line("C02", "新华社区", "preg_over_work", "超任务孕情掌握奖励", "community", "street",
             "over(preg_tracked, preg_target)", 3, 20_000, "pending"),
        line("C02", "新华社区", "reward", "季度考核奖励", "community", "street",
             "rank", 1, 200_000, "pending", period="2022Q1", basis="2022年第1季度排名第1名"),
        line("S1", "东城街道", "cadre_subsidy", "街道计生干部补助", "cadre", "street",
             "street_cadres", 3, 20_000, "pending", parent=None),
    ]  # fmt: skip
    return PaymentSheet(
        rulebook=rulebook(),
        period=Period.parse("2022-03"),
        lines=pl.DataFrame(lines, schema=PAYMENT_SCHEMA),
    )


def read(path: Path, sheet: str) -> list[tuple[Any, ...]]:
    wb = openpyxl.load_workbook(path)
    return [tuple(r) for r in wb[sheet].iter_rows(values_only=True)]


def detail_blocks(rows: list[tuple[Any, ...]]) -> dict[str, tuple[list[dict[str, Any]], Any]]:
    """unit name → (its line rows as dicts, its subtotal amount)."""
    header = list(rows[0])
    out: dict[str, tuple[list[dict[str, Any]], Any]] = {}
    current: list[dict[str, Any]] = []
    for r in rows[1:]:
        rec = dict(zip(header, r, strict=True))
        unit = str(rec["单位"])
        if unit.endswith(" 小计"):
            assert rec["项目"] == f"共{len(current)}笔"
            out[unit[: -len(" 小计")]] = (current, rec["金额(元)"])
            current = []
        elif unit == "合计":
            out["合计"] = ([], rec["金额(元)"])
        else:
            current.append(rec)
    assert not current, "lines after the last subtotal"
    return out


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    path = tmp_path / "sub" / "payments.xlsx"
    write_payment_sheet(make_sheet(), path)
    return path


def test_sheets_and_headers(workbook: Path) -> None:
    wb = openpyxl.load_workbook(workbook)
    assert wb.sheetnames == [DETAIL_SHEET, FUNDERS_SHEET, ABOUT_SHEET]
    assert DETAIL_SHEET == "发放明细" and FUNDERS_SHEET == "资金来源汇总" and ABOUT_SHEET == "说明"
    header = next(wb[DETAIL_SHEET].iter_rows(max_row=1, values_only=True))
    assert list(header) == DETAIL_HEADERS
    for h in ("单位", "期间", "项目", "领取对象", "资金来源", "依据", "数量", "标准(元)",
              "金额(元)", "状态", "审核人", "审批人"):  # fmt: skip
        assert h in header
    assert wb[DETAIL_SHEET]["J2"].number_format == "#,##0.00"


def test_subtotals_equal_sum_of_lines(workbook: Path) -> None:
    sheet = make_sheet()
    blocks = detail_blocks(read(workbook, DETAIL_SHEET))
    assert list(blocks) == ["东风社区", "新华社区", "东城街道", "合计"]
    expected = sheet.subtotals_by_unit()
    for unit, name in (("C01", "东风社区"), ("C02", "新华社区"), ("S1", "东城街道")):
        lines, subtotal = blocks[name]
        n_lines = sheet.lines.filter(pl.col("unit") == unit).height
        assert len(lines) == n_lines
        assert subtotal == expected[unit] / 100
        # the cells' amounts add up (in fen) to the subtotal
        assert sum(round(r["金额(元)"] * 100) for r in lines) == expected[unit]
    assert blocks["新华社区"][1] == 2600.3  # 0.10 + 0.20 + 600.00 + 2,000.00, exact
    assert blocks["合计"][1] == sheet.total() / 100 == 5_500.3


def test_line_contents(workbook: Path) -> None:
    blocks = detail_blocks(read(workbook, DETAIL_SHEET))
    lines, _ = blocks["东风社区"]
    first = lines[0]
    assert first["期间"] == "2022年3月"
    assert first["项目"] == "结扎手术社区工作经费"
    assert first["领取对象"] == "社区工作经费"
    assert first["资金来源"] == "街道"
    assert first["依据"] == "结扎手术（ligations）2例 × 500.00元"
    assert first["数量"] == 2
    assert first["标准(元)"] == 500
    assert first["金额(元)"] == 1000
    assert first["状态"] == "已审批"
    assert first["审核人"] == "张主任" and first["审批人"] == "李副主任"
    x = blocks["新华社区"][0]
    assert [r["状态"] for r in x] == ["已审核待审批", "已审核待审批", "待审核", "待审核"]
    assert x[0]["审批人"] is None
    assert x[2]["依据"] == "over(preg_tracked, preg_target) 3例 × 200.00元"
    assert x[3]["依据"] == "2022年第1季度排名第1名，奖励2,000.00元"
    assert x[3]["期间"] == "2022年第1季度"
    assert x[3]["数量"] == 1 and x[3]["标准(元)"] == 2000 and x[3]["金额(元)"] == 2000
    # every status shown is one of the labels
    shown = {r["状态"] for ls, _ in blocks.values() for r in ls}
    assert shown <= set(STATUS_LABELS.values())


def test_funder_totals(workbook: Path) -> None:
    sheet = make_sheet()
    rows = read(workbook, FUNDERS_SHEET)
    assert list(rows[0]) == FUNDER_HEADERS
    by_funder = {r[0]: r for r in rows[1:5]}
    assert list(by_funder) == ["区", "街道", "社区", "合计"]
    totals = sheet.totals_by_funder()
    for code, label in FUNDER_LABELS.items():
        assert by_funder[label][2] == totals[code] / 100
    # by hand from the lines
    assert by_funder["区"][2] == 30
    assert by_funder["街道"][2] == 1000 + 1000 + 170 + 0.2 + 600 + 2000 + 600
    assert by_funder["社区"][2] == 100.1
    assert by_funder["合计"][1] == sheet.lines.height
    assert by_funder["合计"][2] == sheet.total() / 100
    assert sum(totals.values()) == sheet.total()
    # approved and not yet approved
    assert by_funder["合计"][3] == 2300
    assert by_funder["合计"][4] == 3200.3

    # the per-unit table below: rows add up to the funder totals
    at = next(i for i, r in enumerate(rows) if r[0] == "单位")
    assert list(rows[at][:5]) == ["单位", "区", "街道", "社区", "合计"]
    unit_rows = {r[0]: r for r in rows[at + 1 : at + 5]}
    assert unit_rows["新华社区"][1:5] == (0, 2600.2, 0.1, 2600.3)
    assert unit_rows["合计"][1:5] == (30, 5370.2, 100.1, 5500.3)


def test_about_sheet(workbook: Path) -> None:
    rows = dict(r[:2] for r in read(workbook, ABOUT_SHEET)[1:])
    rb = rulebook()
    assert rows["考核方案"] == "社区人口和计划生育工作月度考核"
    assert rows["版本"] == "2022.1"
    assert rows["SHA-256"] == rb.sha256
    assert "2022年3月" in rows["期间"]
    assert "待审核的款项不得发放" in rows["发放规定"]
    assert "社区主任审核" in rows["发放规定"] and "副主任审批" in rows["发放规定"]
    assert rows["合计金额"] == "5,500.30元"


def test_units_names_override(tmp_path: Path) -> None:
    path = tmp_path / "p.xlsx"
    write_payment_sheet(make_sheet(), path, units_names={"S1": "东城街道办事处"})
    blocks = detail_blocks(read(path, DETAIL_SHEET))
    assert "东城街道办事处" in blocks and "东城街道" not in blocks


def test_empty_sheet(tmp_path: Path) -> None:
    sheet = PaymentSheet(rulebook(), Period.parse("2022-03"), pl.DataFrame(schema=PAYMENT_SCHEMA))
    path = tmp_path / "empty.xlsx"
    write_payment_sheet(sheet, path)
    detail = read(path, DETAIL_SHEET)
    assert detail[1][0] == "合计" and detail[1][9] == 0
    funders = read(path, FUNDERS_SHEET)
    assert [r[0] for r in funders[1:5]] == ["区", "街道", "社区", "合计"]
    assert all(r[2] == 0 for r in funders[1:5])


def test_rows_helper() -> None:
    sheet = make_sheet()
    rows = payment_sheet_rows(sheet, {"C01": "东风"})
    assert len(rows) == sheet.lines.height
    assert rows[0]["name"] == "东风"
    assert rows[0]["amount_yuan"] == "1000.00"
    assert rows[0]["rate_yuan"] == "500.00"
    assert rows[0]["status_label"] == "已审批"
    assert rows[0]["basis_text"] == "结扎手术（ligations）2例 × 500.00元"
    assert rows[5]["amount_yuan"] == "0.10"
    assert sum(r["amount_fen"] for r in rows) == sheet.total()


def test_basis_text_and_money_text() -> None:
    rb = rulebook()
    assert yuan_text(123_456_7) == "12,345.67"
    assert yuan_text(-5) == "-0.05"
    assert (
        basis_text(rb, {"basis_variable": "staff_grid", "count": 4, "rate_fen": 5_000})
        == "在岗网格员（staff_grid）4人 × 50.00元"
    )
    assert (
        basis_text(rb, {"basis_variable": "rank", "count": 2, "rate_fen": 150_000})
        == "排名第2名，奖励1,500.00元"
    )
