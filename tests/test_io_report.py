"""The XLSX report, from a hand-built ScoreResult (independent of the engine)."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import polars as pl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from kaohe.engine.result import ScoreResult
from kaohe.io import xlsx_report
from kaohe.io.units import read_units
from kaohe.io.xlsx_report import (
    ABOUT_SHEET,
    ITEMS_SHEET,
    RANKING_HEADERS,
    RANKING_SHEET,
    rounded,
    write_xlsx_report,
)
from kaohe.numbers import round2
from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook

DATA = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def rb() -> LoadedRulebook:
    return load_rulebook("village-1000")


def make_result(rb: LoadedRulebook) -> ScoreResult:
    items = [i.code for i in rb.model.items]
    adjustments = [a.code for a in rb.model.adjustments]
    table = pl.DataFrame(
        {
            "unit": ["V002", "V000", "V001", "X9"],
            "name": ["村V002", "村V000", "村V001", None],
            "group": ["TOWN0", "TOWN0", "TOWN1", None],
            # 97.265 is 97.26499999999999 in binary: round2 still gives 97.27
            "total": [97.265, 90.0, 2.675, 1.005],
            "rank": [1, 2, 1, 1],
            "rank_bonus": [4.0, 2.0, 4.0, 0.0],
            **{c: [float(k), k + 0.125, 0.0, None] for k, c in enumerate(items)},
            **{c: [0.0, -5.0, 20.0, None] for c in adjustments},
        }
    )
    return ScoreResult(
        rulebook=rb,
        period=Period.parse("2022"),
        table=table,
        item_codes=items,
        adjustment_codes=adjustments,
    )


def sheet(wb: openpyxl.Workbook, name: str) -> Worksheet:
    ws = wb[name]
    assert isinstance(ws, Worksheet)
    return ws


def rows(ws: Worksheet) -> list[tuple[object, ...]]:
    return list(ws.iter_rows(values_only=True))


def test_report_sheets_headers_and_values(tmp_path: Path, rb: LoadedRulebook) -> None:
    path = tmp_path / "out" / "r.xlsx"
    write_xlsx_report(make_result(rb), path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [RANKING_SHEET, ITEMS_SHEET, ABOUT_SHEET]

    ws = sheet(wb, RANKING_SHEET)
    got = rows(ws)
    assert list(got[0]) == RANKING_HEADERS
    assert got[1:] == [
        ("TOWN0", 1, "V002", "村V002", 97.27, 4),
        ("TOWN0", 2, "V000", "村V000", 90, 2),
        ("TOWN1", 1, "V001", "村V001", 2.68, 4),
        ("全部", 1, "X9", "X9", 1.01, 0),
    ]
    assert ws.freeze_panes == "A2"
    assert ws["A1"].font.b
    assert ws["E2"].number_format == "0.00"
    assert ws["F3"].number_format == "0.00"

    ws = sheet(wb, ITEMS_SHEET)
    head = rows(ws)[0]
    assert head[:5] == ("单位代码", "单位名称", "分组/上级", "排名", "总分")
    assert head[5] == "A1 配齐专干、包干责任、健全制度、会议记录"
    assert head[5 + len(rb.model.items)] == "commend_city 受市委、市政府计划生育工作综合表彰"
    assert len(head) == 5 + len(rb.model.items) + len(rb.model.adjustments)
    v000 = rows(ws)[2]
    assert v000[0] == "V000"
    assert v000[5:8] == (0.13, 1.13, 2.13)  # k + 0.125 rounded half-up
    assert v000[5 + len(rb.model.items)] == -5
    assert rows(ws)[4][5] is None  # a null score stays blank
    assert ws.freeze_panes == "C2"

    about = dict((r[0], r[1]) for r in rows(sheet(wb, ABOUT_SHEET))[1:])
    assert about["考核方案"] == rb.model.name
    assert about["版本"] == rb.model.version
    assert about["SHA-256"] == rb.sha256
    assert str(about["考核期"]).startswith("2022")


def test_group_names_from_the_org_units(tmp_path: Path, rb: LoadedRulebook) -> None:
    path = tmp_path / "r.xlsx"
    org = read_units(DATA / "village-1000-units.csv")
    write_xlsx_report(make_result(rb), path, units=org)
    ws = sheet(openpyxl.load_workbook(path), RANKING_SHEET)
    assert [r[0] for r in rows(ws)[1:]] == [
        "乡镇0（TOWN0）",
        "乡镇0（TOWN0）",
        "乡镇1（TOWN1）",
        "全部",
    ]


def test_long_tables_continue_on_further_sheets(
    tmp_path: Path, rb: LoadedRulebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx_report, "MAX_ROWS", 3)
    path = tmp_path / "r.xlsx"
    write_xlsx_report(make_result(rb), path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [RANKING_SHEET, "排名 (2)", ITEMS_SHEET, "分项得分 (2)", ABOUT_SHEET]
    assert [r[2] for r in rows(sheet(wb, "排名 (2)"))] == ["单位代码", "X9"]


def test_rounded_matches_round2() -> None:
    values = [0.005, 1.005, 2.675, -2.675, 97.265, 1 / 3, None, 1e9 + 0.125, 0.0, -0.004]
    got = rounded(pl.Series(values, dtype=pl.Float64)).to_list()
    assert got == [round2(v) for v in values]
    assert got[1] == 1.01 and got[3] == -2.68
