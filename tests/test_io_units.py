"""Reading org-unit files: formats, Chinese headers, and every validation rule."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from kaohe.errors import InputError, InputErrors
from kaohe.io.units import read_units

DATA = Path(__file__).parent / "fixtures" / "data"


def errors_of(path: Path) -> list[InputError]:
    with pytest.raises(InputErrors) as info:
        read_units(path)
    return info.value.errors


def test_example_units() -> None:
    org = read_units(DATA / "village-1000-units.csv")
    assert org.frame.columns == ["code", "name", "parent"]
    assert org.frame.height == 8
    assert org.parent_of()["TOWN0"] is None
    assert org.parent_of()["V001"] == "TOWN1"
    assert org.name_of()["V003"] == "村V003"
    assert org.leaves() == {f"V00{i}" for i in range(6)}
    assert org.file == str(DATA / "village-1000-units.csv")


def test_xlsx_with_chinese_headers() -> None:
    org = read_units(DATA / "units-zh.xlsx")
    assert org.frame.rows() == [
        ("TOWN0", "乡镇0", None),
        ("V000", "村V000", "TOWN0"),
        # a numeric cell is read as its text; an empty name is the code
        ("1001", "1001", "TOWN0"),
    ]


def test_csv_with_chinese_headers_bom_and_spaces(tmp_path: Path) -> None:
    f = tmp_path / "org.csv"
    f.write_text(
        "\ufeff单位代码,单位名称,上级代码\r\n T1 ,乡1,\r\nA, ,T1\r\n\r\n", encoding="utf-8"
    )
    org = read_units(f)
    assert org.frame.rows() == [("T1", "乡1", None), ("A", "A", "T1")]


def test_cells_of_only_spaces_are_empty_in_every_column(tmp_path: Path) -> None:
    # a cell of spaces (also the full-width space U+3000) is empty once stripped: an
    # empty parent is a root, an empty name is the code, an empty code is an error
    f = tmp_path / "org.csv"
    f.write_text("code,name,parent\nT1,\u3000,\u3000\nV1,\t,T1 \n", encoding="utf-8")
    assert read_units(f).frame.rows() == [("T1", "T1", None), ("V1", "V1", "T1")]
    f.write_text("code,name,parent\nT1,乡,\n  ,村,T1\n", encoding="utf-8")
    assert [(e.row, e.column, e.reason) for e in errors_of(f)] == [(3, "code", "empty unit code")]


def test_label_code_headers_and_gb18030(tmp_path: Path) -> None:
    f = tmp_path / "org.csv"
    f.write_text("代码 (code),名称,上级\nT1,城关镇,\nV1,东村,T1\n", encoding="gb18030")
    org = read_units(f)
    assert org.name_of() == {"T1": "城关镇", "V1": "东村"}


def test_every_rule_in_one_broken_file() -> None:
    errs = errors_of(DATA / "units-bad.csv")
    got = [(e.row, e.column, e.reason) for e in errs]
    assert got == [
        (4, "code", "empty unit code"),
        (5, "code", "duplicate code 'V1' (also on row 3)"),
        (6, "parent", "parent 'T9' of 'V3' is not a code in this file"),
        (7, "parent", "cycle in the org tree: C1 → C2 → C3 → C1"),
        (10, "parent", "cycle in the org tree: S1 → S1"),
    ]
    assert all(e.file == str(DATA / "units-bad.csv") for e in errs)


def test_missing_required_column() -> None:
    (err,) = errors_of(DATA / "units-missing-parent.csv")
    assert (err.row, err.column) == (1, "parent")
    assert "missing column 'parent'" in err.reason


def test_missing_code_column_in_workbook(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    assert wb.active is not None
    wb.active.append(["名称", "上级"])
    wb.active.append(["乡1", None])
    f = tmp_path / "org.xlsx"
    wb.save(f)
    (err,) = errors_of(f)
    assert err.row == 1
    assert "code column" in err.reason


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path / "nope.csv")
    assert err.file == str(tmp_path / "nope.csv")
    assert "no such file" in str(err)


def test_unsupported_suffix(tmp_path: Path) -> None:
    f = tmp_path / "org.json"
    f.write_text("{}", encoding="utf-8")
    (err,) = errors_of(f)
    assert "unsupported file type" in err.reason


def test_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "org.csv"
    f.write_text("", encoding="utf-8")
    (err,) = errors_of(f)
    assert err.row == 1
    assert "empty" in err.reason


def test_deep_tree_is_not_a_cycle(tmp_path: Path) -> None:
    lines = ["code,name,parent", "L0,,"] + [f"L{i},,L{i - 1}" for i in range(1, 30)]
    f = tmp_path / "org.csv"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    org = read_units(f)
    assert org.leaves() == {"L29"}
    assert org.name_of()["L7"] == "L7"


def test_units_under_a_cycle_are_not_cycles_themselves(tmp_path: Path) -> None:
    f = tmp_path / "org.csv"
    f.write_text("code,name,parent\nA,,B\nB,,A\nC,,A\nD,,C\n", encoding="utf-8")
    errs = errors_of(f)
    assert [(e.row, e.reason) for e in errs] == [(2, "cycle in the org tree: A → B → A")]
