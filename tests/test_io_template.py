"""Data-entry templates: layout, validation, and the round trip through read_data."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import polars as pl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from polars.testing import assert_frame_equal

from kaohe.errors import InputErrors
from kaohe.io.dataset import OrgUnits
from kaohe.io.read import read_data
from kaohe.io.template import (
    ANNUAL_SHEET,
    BLANK_ROWS,
    HELP_SHEET,
    STEP_SHEET,
    variable_header,
    write_template,
)
from kaohe.io.units import read_units
from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook, load_rulebook_text

DATA = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def rb() -> LoadedRulebook:
    return load_rulebook("village-1000")


@pytest.fixture(scope="module")
def org() -> OrgUnits:
    return read_units(DATA / "village-1000-units.csv")


def sheet(wb: openpyxl.Workbook, name: str) -> Worksheet:
    ws = wb[name]
    assert isinstance(ws, Worksheet)
    return ws


def header(ws: Worksheet) -> list[str]:
    return [c.value for c in ws[1]]


def column(ws: Worksheet, j: int) -> list[object]:
    return [ws.cell(r, j).value for r in range(2, ws.max_row + 1)]


def test_year_template_layout(tmp_path: Path, rb: LoadedRulebook, org: OrgUnits) -> None:
    path = tmp_path / "t.xlsx"
    write_template(rb, Period.parse("2022"), path, org)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [ANNUAL_SHEET, STEP_SHEET, HELP_SHEET]
    annual = [c for c, v in rb.variables.items() if v.kind == "annual"]
    flows = [c for c, v in rb.variables.items() if v.kind == "flow"]

    ws = sheet(wb, ANNUAL_SHEET)
    assert header(ws) == ["单位代码", "单位名称", "期间"] + [
        variable_header(c, rb.variables[c]) for c in annual
    ]
    assert header(ws)[4] == "年初户籍人口 (population)"
    # leaf units only (no townships), names from the org file, the year period
    assert column(ws, 1) == [f"V00{i}" for i in range(6)]
    assert column(ws, 2) == [f"村V00{i}" for i in range(6)]
    assert column(ws, 3) == ["2022"] * 6
    assert ws.freeze_panes == "D2"
    assert (ws.column_dimensions["D"].width or 0) >= 12

    ws = sheet(wb, STEP_SHEET)
    assert header(ws)[3:] == [variable_header(c, rb.variables[c]) for c in flows]
    assert ws.max_row == 1 + 6 * 3
    assert column(ws, 1)[:3] == ["V000"] * 3
    assert column(ws, 3)[:4] == ["2022T1", "2022T2", "2022T3", "2022T1"]
    assert ws.freeze_panes == "D2"

    # every input cell has a '≥ min' validation: whole numbers for counts
    dvs = ws.data_validations.dataValidation
    assert len(dvs) == len(flows)
    covered = set()
    kinds = {}
    for dv in dvs:
        kinds[flows[next(iter(dv.sqref.ranges)).min_col - 4]] = dv.type
        assert dv.operator == "greaterThanOrEqual"
        assert dv.formula1 == "0"
        for rng in dv.sqref.ranges:
            assert (rng.min_row, rng.max_row) == (2, 19)
            covered.add(rng.min_col)
    assert covered == set(range(4, 4 + len(flows)))
    assert kinds == {v: "whole" if rb.variables[v].integer else "decimal" for v in flows}
    assert kinds["births_total"] == "whole" and kinds["fee_first_due"] == "decimal"

    help_ws = sheet(wb, HELP_SHEET)
    text = [c for row in help_ws.iter_rows(values_only=True) for c in row if c]
    assert "population" in text and "fine_for_birth_cases" in text
    assert any(str(t).startswith(rb.model.name) for t in text)


def test_step_template_has_only_that_step(
    tmp_path: Path, rb: LoadedRulebook, org: OrgUnits
) -> None:
    path = tmp_path / "t2.xlsx"
    write_template(rb, Period.parse("2022T2"), path, org)
    wb = openpyxl.load_workbook(path)
    assert column(sheet(wb, STEP_SHEET), 3) == ["2022T2"] * 6
    assert column(sheet(wb, ANNUAL_SHEET), 3) == ["2022"] * 6


def test_template_without_units_has_blank_validated_rows(
    tmp_path: Path, rb: LoadedRulebook
) -> None:
    path = tmp_path / "blank.xlsx"
    write_template(rb, Period.parse("2022"), path)
    wb = openpyxl.load_workbook(path)
    ws = sheet(wb, ANNUAL_SHEET)
    assert ws.cell(2, 1).value is None
    ranges = [r for dv in ws.data_validations.dataValidation for r in dv.sqref.ranges]
    assert {r.max_row for r in ranges} == {BLANK_ROWS + 1}


def test_period_not_made_of_steps(tmp_path: Path, rb: LoadedRulebook) -> None:
    with pytest.raises(InputErrors, match="tertial"):
        write_template(rb, Period.parse("2022Q1"), tmp_path / "x.xlsx")


def test_bounds_become_validation(tmp_path: Path) -> None:
    mini = load_rulebook_text(
        """
code: mini
name: 迷你
periods: {step: year}
variables:
  score: {label: 评分, kind: annual, min: 0, max: 10}
  delta: {label: 差值, kind: flow, min: null}
  moves: {label: 变动次数, kind: flow, min: null, integer: true}
items:
  - {code: X1, name: 评分, points: 10, rule: {clamp: {value: score}}}
""",
        file="mini.yaml",
    )
    path = tmp_path / "m.xlsx"
    write_template(mini, Period.parse("2022"), path)
    wb = openpyxl.load_workbook(path)
    # a yearly scheme: one data sheet with every variable
    assert wb.sheetnames == [ANNUAL_SHEET, HELP_SHEET]
    ws = sheet(wb, ANNUAL_SHEET)
    assert header(ws)[3:] == ["评分 (score)", "差值 (delta)", "变动次数 (moves)"]
    dvs = ws.data_validations.dataValidation
    by_col = {next(iter(dv.sqref.ranges)).min_col: dv for dv in dvs}
    # 'between' is the default operator of a data validation (written as no operator)
    assert by_col[4].operator in (None, "between")
    assert (by_col[4].formula1, by_col[4].formula2) == ("0", "10")
    assert by_col[5].type == "decimal"
    # a whole number without bounds (integer: true)
    assert by_col[6].type == "whole"
    assert (by_col[6].formula1, by_col[6].formula2) == ("-1000000000000000", "1000000000000000")
    assert "整数" in (by_col[6].error or "")


def test_round_trip(tmp_path: Path, rb: LoadedRulebook, org: OrgUnits) -> None:
    """Fill the template with the example's values; read_data gives back the example."""
    expected = read_data(DATA / "village-1000-data.csv", rb, org).frame
    values = {(r["unit"], r["period"]): r for r in expected.iter_rows(named=True)}
    path = tmp_path / "t.xlsx"
    write_template(rb, Period.parse("2022"), path, org)
    wb = openpyxl.load_workbook(path)
    for name in (ANNUAL_SHEET, STEP_SHEET):
        ws = sheet(wb, name)
        codes = [str(h).rsplit("(", 1)[1].rstrip(")") for h in header(ws)[3:]]
        for r in range(2, ws.max_row + 1):
            rec = values[(ws.cell(r, 1).value, ws.cell(r, 3).value)]
            for j, code in enumerate(codes, start=4):
                v = rec[code]
                ws.cell(r, j).value = int(v) if v is not None and float(v).is_integer() else v
    filled = tmp_path / "filled.xlsx"
    wb.save(filled)

    got = read_data(filled, rb, org).frame
    assert set(got["_sheet"].to_list()) == {ANNUAL_SHEET, STEP_SHEET}

    def norm(f: pl.DataFrame) -> pl.DataFrame:
        # the CSV's counts are Int32, the workbook's numbers Float64: compare the values
        f = f.drop("_row", "_sheet").sort("unit", "period")
        return f.with_columns(pl.exclude("unit", "period").cast(pl.Float64))

    assert_frame_equal(norm(got), norm(expected))


def test_a_filled_template_with_a_gap_is_reported(
    tmp_path: Path, rb: LoadedRulebook, org: OrgUnits
) -> None:
    path = tmp_path / "t.xlsx"
    write_template(rb, Period.parse("2022T1"), path, org)
    wb = openpyxl.load_workbook(path)
    for name in (ANNUAL_SHEET, STEP_SHEET):
        ws = sheet(wb, name)
        for row in ws.iter_rows(min_row=2, min_col=4):
            for c in row:
                c.value = 1
    sheet(wb, STEP_SHEET).cell(3, 4).value = None  # V001 2022T1 meeting_absences
    wb.save(path)
    with pytest.raises(InputErrors) as info:
        read_data(path, rb, org)
    (err,) = info.value.errors
    assert (err.sheet, err.row, err.column) == (STEP_SHEET, 3, "例会缺席次数 (meeting_absences)")
