"""The XLSX reader: fastexcel (calamine) with the same results and errors as the
cell-by-cell openpyxl reader it replaced (kept as the fallback for error cells).

Every workbook here is read both ways and must give the same dataset or the
same errors (file, sheet, row, column, reason)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from polars.testing import assert_frame_equal

from kaohe.errors import InputError, InputErrors
from kaohe.io import read as read_module
from kaohe.io.dataset import Dataset
from kaohe.io.read import read_data
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook_text

DATA = Path(__file__).parent / "fixtures" / "data"

MINI = """
code: mini
name: 迷你考核
periods: {step: month, cumulative: true}
variables:
  target: {label: 任务, kind: annual}
  score: {label: 评分, kind: annual, max: 10}
  done: {label: 完成数, kind: flow}
  delta: {label: 差值, kind: flow, min: -5}
items:
  - {code: X1, name: 完成任务, points: 10, rule: {ratio: {done: done, target: target}}}
"""

HEADER = ["单位代码", "期间", "任务 (target)", "评分 (score)", "完成数 (done)", "差值 (delta)"]


@pytest.fixture(scope="module")
def mini() -> LoadedRulebook:
    return load_rulebook_text(MINI, file="mini.yaml")


def both(path: Path, rb: LoadedRulebook) -> tuple[Dataset | list[InputError], ...]:
    """The result of the fastexcel reader and of the openpyxl reader."""
    out: list[Dataset | list[InputError]] = []
    for fallback in (False, True):
        orig = read_module._read_xlsx_sheets
        if fallback:
            read_module._read_xlsx_sheets = read_module._read_xlsx_sheets_openpyxl  # type: ignore[assignment]
        try:
            out.append(read_data(path, rb))
        except InputErrors as e:
            out.append(e.errors)
        finally:
            read_module._read_xlsx_sheets = orig  # type: ignore[assignment]
    return tuple(out)


def same(path: Path, rb: LoadedRulebook) -> Dataset | list[InputError]:
    fast, slow = both(path, rb)
    if isinstance(fast, Dataset):
        assert isinstance(slow, Dataset), slow
        assert_frame_equal(fast.frame, slow.frame)
        return fast
    assert not isinstance(slow, Dataset)
    assert [(e.file, e.sheet, e.row, e.column, e.reason) for e in fast] == [
        (e.file, e.sheet, e.row, e.column, e.reason) for e in slow
    ]
    return fast


def workbook(path: Path, sheets: dict[str, list[list[object]]], *, first_col: int = 0) -> Path:
    wb = xlsxwriter.Workbook(str(path))
    month = wb.add_format({"num_format": "yyyy-mm"})
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, v in enumerate(row, start=first_col):
                if v is None:
                    continue
                if isinstance(v, dt.datetime):
                    ws.write_datetime(r, c, v, month)
                else:
                    ws.write(r, c, v)
    wb.close()
    return path


def test_good_fixture_is_read_the_same(mini: LoadedRulebook) -> None:
    from kaohe.rulebook.loader import load_rulebook

    rb = load_rulebook("village-1000")
    ds = same(DATA / "good-small.xlsx", rb)
    assert isinstance(ds, Dataset) and ds.frame.height > 0
    errs = same(DATA / "bad-sheets.xlsx", rb)
    assert isinstance(errs, list) and len(errs) == 3


def test_exact_fractions_blank_rows_dates_and_text_numbers(
    tmp_path: Path, mini: LoadedRulebook
) -> None:
    f = workbook(
        tmp_path / "a.xlsx",
        {
            "说明": [["填表说明"], ["请填写"]],
            "数据": [
                HEADER,
                ["V1", 2022, 1 / 3, 9.87654321012345, None, None],
                [None, None, None, None, None, None],  # blank row: skipped, numbering kept
                ["V1", dt.datetime(2022, 3, 1), None, None, " 12 ", -2.5],
                ["  ", "   ", None, None, None, None],  # only spaces: skipped
                [1001, "2022-04", None, None, 123456789.125, 0],
            ],
        },
    )
    ds = same(f, mini)
    assert isinstance(ds, Dataset)
    frame = ds.frame.sort("_row")
    assert frame["_row"].to_list() == [2, 4, 6]
    assert frame["period"].to_list() == ["2022", "2022-03", "2022-04"]
    assert frame["unit"].to_list() == ["V1", "V1", "1001"]
    assert frame["target"][0] == 1 / 3  # exact, not fastexcel's rounded text
    assert frame["score"][0] == 9.87654321012345
    assert frame["done"].to_list()[1:] == [12.0, 123456789.125]


def test_errors_match_the_openpyxl_reader(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = workbook(
        tmp_path / "b.xlsx",
        {
            "数据": [
                [*HEADER, None, "备注"],
                ["V1", 2022, "五", 11, None, None, None, "x"],
                ["V1", "2022-03", None, None, True, -9, "stray"],
                ["V1", dt.datetime(2022, 4, 15), None, None, dt.datetime(2022, 1, 1), None],
            ],
            "第二张": [HEADER, ["V2", 2022, -1, 1, None, None]],
        },
    )
    errs = same(f, mini)
    assert isinstance(errs, list)
    got = {(e.sheet, e.row, e.column, e.reason) for e in errs}
    assert ("数据", 2, "任务 (target)", "'五' is not a number") in got
    assert ("数据", 3, "完成数 (done)", "'TRUE' is not a number") in got
    assert ("数据", 4, "完成数 (done)", "'2022-01-01T00:00:00' is not a number") in got
    assert any(e.sheet == "数据" and e.row == 1 and e.column == "G" for e in errs)
    assert any(e.sheet == "数据" and e.row == 4 and e.column == "期间" for e in errs)
    assert any(e.sheet == "第二张" and e.row == 2 and "negative" in e.reason for e in errs)


def test_a_leading_empty_column_keeps_the_letters(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = workbook(
        tmp_path / "c.xlsx",
        {"数据": [[*HEADER, None], ["V1", 2022, 1, 1, None, None, "x"]]},
        first_col=1,
    )
    errs = same(f, mini)
    assert isinstance(errs, list)
    # the blank-header column is H (A is empty, the header starts at B)
    assert [(e.row, e.column) for e in errs] == [(1, "H")]


def test_header_errors_and_no_data_sheet(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = workbook(
        tmp_path / "d.xlsx", {"数据": [["单位代码", "期间", "任务 (targt)"], ["V1", 2022, 1]]}
    )
    errs = same(f, mini)
    assert isinstance(errs, list) and "did you mean 'target'" in errs[0].reason
    f = workbook(tmp_path / "e.xlsx", {"说明": [[None], ["单位代码", "期间"]]})
    errs = same(f, mini)  # header not on row 1: not a data sheet
    assert isinstance(errs, list) and "no sheet" in errs[0].reason


def test_error_cells_are_reported_not_dropped(tmp_path: Path, mini: LoadedRulebook) -> None:
    """calamine reads #DIV/0! as an empty cell; such workbooks take the openpyxl path."""
    path = tmp_path / "f.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("数据")
    ws.write_row(0, 0, HEADER)
    ws.write_row(1, 0, ["V1", "2022"])
    ws.write_formula(1, 2, "=1/0", None, "#DIV/0!")
    wb.close()
    errs = same(path, mini)
    assert isinstance(errs, list)
    err = errs[0]  # (then score, required on the year row, is missing)
    assert (err.sheet, err.row, err.column) == ("数据", 2, "任务 (target)")
    assert err.reason == "'#DIV/0!' is not a number"


def test_not_a_workbook(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = tmp_path / "g.xlsx"
    f.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputErrors) as info:
        read_data(f, mini)
    assert info.value.errors[0].reason.startswith("cannot open as an Excel workbook (.xlsx)")


def test_openpyxl_written_workbook(tmp_path: Path, mini: LoadedRulebook) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "数据"
    ws.append(HEADER)
    ws.append(["V1", 2022, 5, 0.1, None, None])
    ws.append(["V1", "2022-01", None, None, "3", "-1"])
    f = tmp_path / "h.xlsx"
    wb.save(f)
    ds = same(f, mini)
    assert isinstance(ds, Dataset)
    assert ds.frame.sort("_row")["delta"].to_list()[1] == -1.0
