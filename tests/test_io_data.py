"""Reading data files: formats, layouts, header forms and every validation rule.

The broken fixtures in tests/fixtures/data are the good two-village file
``good-small.csv`` (V000 rows 2–5, V001 rows 6–9: year, T1, T2, T3) with
deliberate faults; each test asserts the file, sheet, row and column named.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from kaohe.errors import InputError, InputErrors
from kaohe.io import read as read_module
from kaohe.io.dataset import OrgUnits
from kaohe.io.read import MAX_ERRORS, read_data
from kaohe.io.units import read_units
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook, load_rulebook_text

DATA = Path(__file__).parent / "fixtures" / "data"
#: the shared spec sits beside the repository (also in CI clones)
SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "spec"

MINI = """
code: mini
name: 迷你考核
periods: {step: quarter, cumulative: true}
variables:
  target: {label: 任务, kind: annual}
  score: {label: 评分, kind: annual, max: 10}
  done: {label: 完成数, kind: flow}
  extra: {label: 附加数, kind: flow, default: 0}
  delta: {label: 差值, kind: flow, min: -5}
items:
  - {code: X1, name: 完成任务, points: 10, rule: {ratio: {done: done, target: target}}}
"""


@pytest.fixture(scope="module")
def rb() -> LoadedRulebook:
    return load_rulebook("village-1000")


@pytest.fixture(scope="module")
def mini() -> LoadedRulebook:
    return load_rulebook_text(MINI, file="mini.yaml")


@pytest.fixture(scope="module")
def org() -> OrgUnits:
    return read_units(DATA / "village-1000-units.csv")


def errors_of(path: Path, rb: LoadedRulebook, units: OrgUnits | None = None) -> list[InputError]:
    with pytest.raises(InputErrors) as info:
        read_data(path, rb, units)
    return info.value.errors


def where(errs: list[InputError]) -> list[tuple[str | None, int | None, str | None]]:
    return [(e.sheet, e.row, e.column) for e in errs]


def write(tmp_path: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    f = tmp_path / name
    f.write_text(text, encoding=encoding)
    return f


# ---------------------------------------------------------------- good files


def test_example_reads_with_the_right_values(rb: LoadedRulebook, org: OrgUnits) -> None:
    ds = read_data(DATA / "village-1000-data.csv", rb, org)
    f = ds.frame
    assert f.columns == ["unit", "period", "_row", "_sheet", *rb.variables]
    assert ds.variables == list(rb.variables)
    assert f.height == 24
    # counts (integer variables) as Int32, scores and money as Float64
    assert {v: f.schema[v] for v in rb.variables} == {
        v: pl.Int32 if var.integer else pl.Float64 for v, var in rb.variables.items()
    }
    assert f.schema["births_total"] == pl.Int32 and f.schema["org_score"] == pl.Float64
    assert f.schema["_row"] == pl.Int64
    assert f["_row"].to_list() == list(range(2, 26))
    assert f["_sheet"].null_count() == 24
    assert ds.units() == ["V000", "V001", "V002", "V003", "V004", "V005"]
    row = f.filter((pl.col("unit") == "V000") & (pl.col("period") == "2022")).row(0, named=True)
    assert (row["org_score"], row["population"], row["certs_target"], row["prepreg_target"]) == (
        9.0,
        800.0,
        20.0,
        30.0,
    )
    assert row["births_total"] is None  # flows are not given on the year row
    t1 = f.filter((pl.col("unit") == "V000") & (pl.col("period") == "2022T1")).row(0, named=True)
    assert t1["fee_first_due"] == 120000.0
    assert t1["fee_first_collected"] == 70800.0
    assert t1["unplanned_one_boy"] == 3.0
    assert t1["population"] is None
    # every flow is given on every step row, every annual value on every year row
    steps = f.filter(pl.col("period") != "2022")
    flows = [v for v, var in rb.variables.items() if var.kind == "flow"]
    assert steps.select(flows).null_count().sum_horizontal().item() == 0


def test_fixture_copy_matches_the_shared_spec(rb: LoadedRulebook) -> None:
    spec = SPEC / "examples" / "village-1000"
    if not (spec / "data.csv").exists():
        pytest.skip("shared/spec is not beside this checkout")
    for name in ("data.csv", "units.csv"):
        assert (spec / name).read_bytes() == (DATA / f"village-1000-{name}").read_bytes()


def _values(ds_frame: pl.DataFrame) -> pl.DataFrame:
    """The values alone, every variable as Float64 (a CSV's counts are Int32)."""
    frame = ds_frame.drop("_row", "_sheet").sort("unit", "period")
    return frame.with_columns(pl.exclude("unit", "period").cast(pl.Float64))


@pytest.mark.parametrize(
    "name",
    [
        "good-small-zh-bom.csv",  # BOM, CRLF, 单位代码/期间, '标签 (code)' and '标签（code）', 单位名称
        "good-small-trailing.csv",  # a trailing ',,,' line
        "good-small-long.csv",  # long layout
        "good-small.xlsx",  # 填表说明 + 年度数据 + 期间数据
        "good-small.parquet",
    ],
)
def test_every_form_reads_the_same_values(rb: LoadedRulebook, org: OrgUnits, name: str) -> None:
    wide = read_data(DATA / "good-small.csv", rb, org)
    other = read_data(DATA / name, rb, org)
    assert other.frame.columns == wide.frame.columns
    assert_frame_equal(_values(other.frame), _values(wide.frame))
    # counts are Int32 in a wide CSV only (long layout, XLSX and these Parquet floats: Float64)
    counts = pl.Int32 if name.endswith(".csv") and "long" not in name else pl.Float64
    assert other.frame.schema["births_total"] == counts
    assert other.frame.schema["association_score"] == pl.Float64


def test_padded_unit_codes_are_looked_up_stripped(
    tmp_path: Path, rb: LoadedRulebook, org: OrgUnits
) -> None:
    # the org-unit positions are looked up while the unit column is checked for
    # padding: padded codes (and then a dropped empty row) must be looked up again
    good = read_data(DATA / "good-small.parquet", rb, org)
    raw = pl.read_parquet(DATA / "good-small.parquet")
    padded = raw.with_columns((" " + pl.col("unit") + "\t").alias("unit"))
    empty = pl.DataFrame([[None] * raw.width], schema=raw.schema, orient="row")
    for frame in (padded, pl.concat([padded, empty])):
        f = tmp_path / "padded.parquet"
        frame.write_parquet(f)
        ds = read_data(f, rb, org)
        assert_frame_equal(_values(ds.frame), _values(good.frame))
        assert ds.index is not None and good.index is not None
        assert ds.index.positions.to_list() == good.index.positions.to_list()


def test_long_layout_keeps_source_rows(rb: LoadedRulebook) -> None:
    ds = read_data(DATA / "good-small-long.csv", rb)
    # the first line of each unit/period is its row
    first = ds.frame.filter((pl.col("unit") == "V000") & (pl.col("period") == "2022"))
    assert first["_row"].item() == 2


def test_workbook_rows_are_per_sheet(rb: LoadedRulebook) -> None:
    ds = read_data(DATA / "good-small.xlsx", rb)
    f = ds.frame
    assert set(f["_sheet"].to_list()) == {"年度数据", "期间数据"}
    v001_t1 = f.filter((pl.col("unit") == "V001") & (pl.col("period") == "2022T1"))
    assert (v001_t1["_sheet"].item(), v001_t1["_row"].item()) == ("期间数据", 5)


def test_without_units_any_unit_is_accepted(rb: LoadedRulebook) -> None:
    # V999 is only an error when an org-unit file is given
    errs = errors_of(DATA / "bad-unit.csv", rb)
    assert [e.reason for e in errs] == ["empty unit code"]


def test_spaces_around_units_and_periods_are_ignored(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(
        tmp_path,
        "unit,period,target,score,done,extra,delta\n"
        " U1 , 2022 ,5,1,,,\n"
        "U1,2022Q1 , , ,3,1,-2\n"
        "U1,2022.0,,,,,\n",
    )
    errs = errors_of(f, mini)
    # '2022.0' is the year 2022 (spreadsheets write it so): a duplicate of row 2
    assert (errs[0].row, errs[0].column) == (4, "period")
    assert "rows 2 and 4" in errs[0].reason or "row 2 and row 4" in errs[0].reason
    assert "'U1'" in errs[0].reason


def test_defaults_fill_only_rows_where_the_variable_applies(
    tmp_path: Path, mini: LoadedRulebook
) -> None:
    # no 'extra' column at all: it has a default, so that is fine
    f = write(
        tmp_path,
        "unit,period,target,score,done,delta\nU1,2022,5,10,,\nU1,2022Q1,,,3,-5\nU1,2022Q2,,,4,0\n",
    )
    ds = read_data(f, mini)
    assert ds.frame["extra"].to_list() == [None, 0.0, 0.0]
    assert ds.frame["delta"].to_list() == [None, -5.0, 0.0]
    assert ds.frame["period"].to_list() == ["2022", "2022Q1", "2022Q2"]


def test_gb18030_csv_is_read(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(
        tmp_path,
        "单位代码,单位名称,期间,任务 (target),评分 (score),完成数 (done),差值 (delta)\n"
        "U1,东村,2022,5,1,,\nU1,东村,2022Q1,,,3,0\n",
        encoding="gb18030",
    )
    ds = read_data(f, mini)
    assert ds.frame["done"].to_list() == [None, 3.0]


def test_exact_chinese_label_is_a_header(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(tmp_path, "unit,period,任务,评分,完成数,差值\nU1,2022,5,1,,\nU1,2022Q1,,,3,0\n")
    assert read_data(f, mini).frame["target"].to_list() == [5.0, None]


# ---------------------------------------------------------------- broken fixtures


def test_unknown_column_suggests_a_name(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-unknown-column.csv", rb)
    assert where(errs) == [(None, 1, "populaton"), (None, 1, "population")]
    assert "unknown column" in errs[0].reason
    assert "did you mean 'population'" in errs[0].reason
    assert "missing column" in errs[1].reason
    assert all(e.file == str(DATA / "bad-unknown-column.csv") for e in errs)


def test_missing_variable_column(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-missing-column.csv", rb)
    assert where(errs) == [(None, 1, "certs_target")]
    assert "生育服务证任务" in errs[0].reason


def test_non_numeric_values_are_named(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-non-numeric.csv", rb)
    assert where(errs) == [(None, 4, "births_total"), (None, 8, "slogans")]
    assert errs[0].reason == "'abc' is not a number"
    assert errs[1].reason == "'1,5' is not a number"


def test_negative_value(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-negative.csv", rb)
    assert where(errs) == [(None, 7, "checkups_done")]
    assert "-3 is negative" in errs[0].reason


def test_duplicate_unit_and_period_names_both_rows(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-duplicate.csv", rb)
    assert where(errs) == [(None, 9, "period")]
    assert "'V001'" in errs[0].reason and "'2022T2'" in errs[0].reason
    assert "row 8 and row 9" in errs[0].reason


def test_bad_periods(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-period.csv", rb)
    assert where(errs) == [(None, 5, "period"), (None, 9, "period")]
    assert "'2022T4' is not a period" in errs[0].reason
    assert "'2022Q3' is a quarter" in errs[1].reason


def test_values_on_the_wrong_kind_of_row(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-wrong-row.csv", rb)
    assert where(errs) == [(None, 2, "births_total"), (None, 3, "population")]
    assert "is a flow" in errs[0].reason and "year row 2022" in errs[0].reason
    assert "is an annual variable" in errs[1].reason and "2022T1" in errs[1].reason


def test_missing_values_without_default(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-missing-value.csv", rb)
    assert where(errs) == [(None, 6, "population"), (None, 8, "slogans")]
    assert all("missing value" in e.reason for e in errs)
    assert "year rows" in errs[0].reason and "tertial rows" in errs[1].reason


def test_units_missing_from_the_org_file_and_empty_units(rb: LoadedRulebook, org: OrgUnits) -> None:
    errs = errors_of(DATA / "bad-unit.csv", rb, org)
    assert where(errs) == [(None, r, "unit") for r in (3, 6, 7, 8, 9)]
    assert errs[0].reason == "empty unit code"
    assert "'V999' is not in the org-unit file" in errs[1].reason


def test_long_layout_errors(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-long.csv", rb)
    got = [(e.row, e.column) for e in errs]
    assert got == [(2, "variable"), (3, "value"), (5, "value"), (364, "variable")]
    assert "did you mean 'org_score'" in errs[0].reason
    # org_score of V000 2022 was on the unknown line: it is now missing
    assert "no value for 'org_score'" in errs[1].reason
    assert errs[2].reason == "'x' is not a number"
    assert "more than once (rows 12 and 364)" in errs[3].reason


def test_workbook_errors_name_the_sheet(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-sheets.xlsx", rb)
    assert where(errs) == [
        ("年度数据", 3, "年初户籍人口 (population)"),
        ("期间数据", 5, "核实出生数 (births_total)"),
        ("期间数据", 7, "期间"),
    ]
    assert "-5 is negative" in errs[0].reason
    assert errs[1].reason == "'十二' is not a number"
    assert "'2022T5' is not a period" in errs[2].reason
    assert "sheet '期间数据', row 7, column '期间'" in str(errs[2])


def test_workbook_without_a_data_sheet(rb: LoadedRulebook) -> None:
    (err,) = errors_of(DATA / "bad-no-data-sheet.xlsx", rb)
    assert "no sheet" in err.reason


def test_parquet_errors_count_rows_like_a_sheet(rb: LoadedRulebook) -> None:
    errs = errors_of(DATA / "bad-negative.parquet", rb)
    # the third record (V000 2022T2) is row 4, as if the header were row 1
    assert where(errs) == [(None, 4, "iud_done")]


# ---------------------------------------------------------------- more rules, made on the fly


def test_range_and_non_finite_values(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(
        tmp_path,
        "unit,period,target,score,done,extra,delta\n"
        "U1,2022,5,11,,,\n"
        "U1,2022Q1,,,NaN,inf,-6\n"
        "U1,2022Q2,,,1,0,-5\n",
    )
    errs = errors_of(f, mini)
    assert [(e.row, e.column, e.reason) for e in errs] == [
        (2, "score", "11 is above the maximum 10"),
        (3, "done", "'nan' is not a finite number"),
        (3, "extra", "'inf' is not a finite number"),
        (3, "delta", "-6 is below the minimum -5"),
    ]


def test_missing_unit_or_period_column(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(tmp_path, "unit,target\nU1,5\n")
    (err,) = errors_of(f, mini)
    assert (err.row, err.column) == (1, "period")


def test_duplicate_and_headerless_columns(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(
        tmp_path,
        "unit,period,target,任务 (target),score,done,delta,\nU1,2022,5,5,1,,,\nU1,2022Q1,,,,1,0,x\n",
    )
    errs = errors_of(f, mini)
    assert [(e.row, e.column) for e in errs] == [(1, "任务 (target)"), (1, "H")]
    assert "duplicate column" in errs[0].reason
    assert "no header" in errs[1].reason and "row 3" in errs[1].reason


def test_no_data_rows(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(tmp_path, "unit,period,target,score,done,delta\n")
    (err,) = errors_of(f, mini)
    assert err.row == 2 and "no data rows" in err.reason


def test_errors_are_capped(tmp_path: Path, rb: LoadedRulebook) -> None:
    src = (DATA / "good-small.csv").read_text(encoding="utf-8").splitlines()
    header = src[0].split(",")
    lines = [src[0]]
    for i in range(30):  # 30 step rows, every flow negative: 30 × 58 errors
        cells = [f"U{i}", "2022T1"] + [
            "-1" if rb.variables[h].kind == "flow" else "" for h in header[2:]
        ]
        lines.append(",".join(cells))
    f = write(tmp_path, "\n".join(lines) + "\n")
    errs = errors_of(f, rb)
    assert len(errs) == MAX_ERRORS + 1
    assert errs[0].row == 2
    assert [e.row for e in errs[:-1]] == sorted(e.row or 0 for e in errs[:-1])
    total = 30 * sum(1 for v in rb.variables.values() if v.kind == "flow")
    assert errs[-1].reason.startswith(f"{total - MAX_ERRORS} more errors not shown")


def test_missing_file_and_unsupported_type(tmp_path: Path, rb: LoadedRulebook) -> None:
    (err,) = errors_of(tmp_path / "none.csv", rb)
    assert err.file == str(tmp_path / "none.csv") and "no such file" in err.reason
    f = write(tmp_path, "x", name="data.json")
    (err,) = errors_of(f, rb)
    assert "unsupported file type" in err.reason


def test_error_path_in_a_workbook_with_numeric_units(tmp_path: Path, mini: LoadedRulebook) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "数据"
    ws.append(["单位代码", "期间", "target", "score", "done", "delta"])
    ws.append([1001, 2022, 5, 1, None, None])
    ws.append([1001, "2022Q1", None, None, 3, 0])
    ws.append([1001, "2022Q2", None, None, None, 0])
    f = tmp_path / "d.xlsx"
    wb.save(f)
    errs = errors_of(f, mini)
    assert [(e.sheet, e.row, e.column) for e in errs] == [("数据", 4, "done")]
    # fixed: the unit 1001 is read as text, the year 2022 as '2022'
    ws["E4"] = 2
    wb.save(f)
    ds = read_data(f, mini)
    assert ds.frame["unit"].to_list() == ["1001"] * 3
    assert ds.frame["period"].to_list() == ["2022", "2022Q1", "2022Q2"]


def test_read_is_not_confused_by_a_copied_file_name(tmp_path: Path, rb: LoadedRulebook) -> None:
    # errors name the path as given
    f = tmp_path / "数据 2022.csv"
    shutil.copy(DATA / "bad-negative.csv", f)
    (err,) = errors_of(f, rb)
    assert str(err).startswith(f"{f}, row 7, column 'checkups_done': ")


def test_clean_files_never_take_the_error_path(
    rb: LoadedRulebook, org: OrgUnits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vectorised checks alone accept clean data (the cell-by-cell path is for errors)."""

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("error path taken for a clean file")

    monkeypatch.setattr(read_module, "_detailed_errors", boom)
    monkeypatch.setattr(read_module, "_read_csv_strings", boom)
    for name in ("village-1000-data.csv", "good-small.csv", "good-small-zh-bom.csv"):
        read_data(DATA / name, rb, org)
    read_data(DATA / "good-small.parquet", rb, org)


def test_a_line_with_too_many_cells(tmp_path: Path, mini: LoadedRulebook) -> None:
    f = write(
        tmp_path,
        "unit,period,target,score,done,delta\n"
        "U1,2022,5,1,,\n"
        "U1,2022Q1,,,3,0,7\n"  # a comma inside a value, say
        "U1,2022Q2,,,3,0,\n",  # an empty extra cell is harmless
    )
    errs = errors_of(f, mini)
    assert [(e.row, e.column) for e in errs] == [(3, None)]
    assert "7 cells but the header has 6 columns" in errs[0].reason


# ---------------------------------------------------------------- whole numbers (integer variables)

INTS = """
code: ints
name: 整数
periods: {step: quarter, cumulative: true}
variables:
  cases: {label: 例数, kind: flow, unit: 例}
  avg: {label: 平均在岗人数, kind: flow, unit: 人, integer: false}
  marks: {label: 次数, kind: flow, integer: true}
  extra: {label: 附加例数, kind: flow, unit: 例, default: 2}
  score: {label: 评分, kind: flow, unit: 分}
items:
  - {code: X1, name: 甲, points: 10, rule: full}
"""


@pytest.fixture(scope="module")
def ints() -> LoadedRulebook:
    return load_rulebook_text(INTS, file="ints.yaml")


def edited(tmp_path: Path, changes: dict[tuple[int, str], str], name: str = "data.csv") -> Path:
    """good-small.csv with cells changed: (sheet row, column) -> text."""
    lines = (DATA / "good-small.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    for (row, column), text in changes.items():
        rows[row - 2][header.index(column)] = text
    return write(tmp_path, "\n".join(",".join(r) for r in [header, *rows]) + "\n", name)


class _Spy:
    """Records the schemas of the typed CSV reads (and still reads)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.schemas: list[dict[str, pl.DataType]] = []
        self.real = read_module._read_csv_typed
        monkeypatch.setattr(read_module, "_read_csv_typed", self)

    def __call__(
        self, source: Path | bytes, schema: dict[str, pl.DataType], wanted: list[int]
    ) -> pl.DataFrame | None:
        self.schemas.append(dict(schema))
        return self.real(source, schema, wanted)


def _no_text_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the CSV is read as text or the cells are searched for errors (clean files)."""

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CSV was read as text or took the error path")

    monkeypatch.setattr(read_module, "_read_csv_strings", boom)
    monkeypatch.setattr(read_module, "_detailed_errors", boom)


def test_csv_counts_are_parsed_as_int32_in_one_read(
    rb: LoadedRulebook, org: OrgUnits, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch)
    _no_text_path(monkeypatch)
    ds = read_data(DATA / "good-small.csv", rb, org)
    (schema,) = spy.schemas  # no second read
    assert schema["births_total"] == pl.Int32 and schema["population"] == pl.Int32
    assert schema["association_score"] == pl.Float64  # 分
    assert schema["fee_first_due"] == pl.Float64  # 元
    assert schema["unit"] == pl.String
    assert ds.frame.schema["births_total"] == pl.Int32
    assert ds.frame.schema["fee_first_due"] == pl.Float64


def test_counts_written_3_0_are_read_again_as_float64(
    tmp_path: Path, rb: LoadedRulebook, org: OrgUnits, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every number written with a decimal point, as pandas writes a float column
    f = tmp_path / "floats.csv"
    frame = pl.read_csv(DATA / "good-small.csv")
    frame.with_columns(pl.col(pl.Int64).cast(pl.Float64)).write_csv(f)
    assert ",3.0," in f.read_text(encoding="utf-8")
    spy = _Spy(monkeypatch)
    _no_text_path(monkeypatch)
    ds = read_data(f, rb, org)
    assert [s["births_total"] for s in spy.schemas] == [pl.Int32, pl.Float64]
    assert ds.frame.schema["births_total"] == pl.Float64
    assert_frame_equal(
        _values(ds.frame), _values(read_data(DATA / "good-small.csv", rb, org).frame)
    )


def test_a_count_beyond_int32_is_read_as_float64(tmp_path: Path, rb: LoadedRulebook) -> None:
    f = edited(tmp_path, {(2, "population"): "3000000000"})
    ds = read_data(f, rb)
    assert ds.frame.schema["population"] == pl.Float64
    assert ds.frame.filter(pl.col("_row") == 2)["population"].item() == 3e9


def test_a_count_with_a_fraction_is_an_error(rb: LoadedRulebook, org: OrgUnits) -> None:
    # row 5: births_total 2.5 (a count, 例); row 8: slogans '3.0' and row 6: the score
    # association_score 17.5 (分) are fine
    errs = errors_of(DATA / "bad-fraction.csv", rb, org)
    assert where(errs) == [(None, 5, "births_total")]
    assert errs[0].reason == "'2.5' is not a whole number (births_total is a count, 例)"
    assert str(errs[0]).startswith(f"{DATA / 'bad-fraction.csv'}, row 5, column 'births_total': ")


def test_every_error_is_collected_with_fractions(tmp_path: Path, rb: LoadedRulebook) -> None:
    f = edited(
        tmp_path,
        {
            (3, "births_total"): "1.5",
            (3, "births_late"): "-2.5",  # negative: reported as such, once
            (4, "slogans"): "abc",  # not a number: the file is read as text
            (7, "checkups_done"): "NaN",  # not finite: reported as such, once
            (8, "iud_done"): "0.25",
            (9, "fee_first_due"): "0.5",  # money (元): fractions are fine
        },
    )
    errs = errors_of(f, rb)
    assert [(e.row, e.column, e.reason) for e in errs] == [
        (3, "births_total", "'1.5' is not a whole number (births_total is a count, 例)"),
        (3, "births_late", "-2.5 is negative (must be ≥ 0)"),
        (4, "slogans", "'abc' is not a number"),
        (7, "checkups_done", "'nan' is not a finite number"),
        (8, "iud_done", "'0.25' is not a whole number (iud_done is a count, 例)"),
    ]


def test_the_integer_flag_decides_not_the_unit(tmp_path: Path, ints: LoadedRulebook) -> None:
    f = write(
        tmp_path,
        "unit,period,cases,avg,marks,extra,score\nU1,2022Q1,3,2.5,4,,1.5\nU1,2022Q2,1,0.5,2,7,2\n",
    )
    ds = read_data(f, ints)
    types = {v: ds.frame.schema[v] for v in ints.variables}
    assert types == {
        "cases": pl.Int32,  # 例
        "avg": pl.Float64,  # 人, but integer: false
        "marks": pl.Int32,  # no unit, but integer: true
        "extra": pl.Int32,  # 例, with a default
        "score": pl.Float64,  # 分
    }
    assert ds.frame["avg"].to_list() == [2.5, 0.5]
    assert ds.frame["extra"].to_list() == [2, 7]  # the default filled in an Int32 column
    f = write(
        tmp_path,
        "unit,period,cases,avg,marks,score\nU1,2022Q1,3,2.5,4.5,1\nU1,2022Q2,1.5,0.5,2,1\n",
    )
    errs = errors_of(f, ints)
    assert [(e.row, e.column, e.reason) for e in errs] == [
        (2, "marks", "'4.5' is not a whole number (marks is a count)"),
        (3, "cases", "'1.5' is not a whole number (cases is a count, 例)"),
    ]


def test_a_default_too_large_for_int32_makes_the_column_float64(tmp_path: Path) -> None:
    rb = load_rulebook_text(INTS.replace("default: 2}", "default: 5000000000}"), file="x.yaml")
    f = write(tmp_path, "unit,period,cases,avg,marks,extra,score\nU1,2022Q1,3,2,4,,1\n")
    ds = read_data(f, rb)
    assert ds.frame.schema["extra"] == pl.Float64 and ds.frame["extra"].to_list() == [5e9]


def test_parquet_float_count_with_a_fraction(tmp_path: Path, rb: LoadedRulebook) -> None:
    frame = pl.read_parquet(DATA / "good-small.parquet")
    assert frame.schema["births_total"] == pl.Float64
    third = pl.int_range(pl.len()) == 2  # V000 2022T2, row 4
    f = tmp_path / "d.parquet"
    frame.with_columns(
        pl.when(third).then(2.5).otherwise(pl.col("births_total")).alias("births_total")
    ).write_parquet(f)
    errs = errors_of(f, rb)
    assert [(e.row, e.column, e.reason) for e in errs] == [
        (4, "births_total", "'2.5' is not a whole number (births_total is a count, 例)")
    ]
    # whole Float64 values are fine (and kept as Float64)
    ds = read_data(DATA / "good-small.parquet", rb)
    assert ds.frame.schema["births_total"] == pl.Float64


def test_workbook_count_with_a_fraction(tmp_path: Path, rb: LoadedRulebook) -> None:
    wb = openpyxl.load_workbook(DATA / "good-small.xlsx")
    ws = wb["期间数据"]
    header = [c.value for c in ws[1]]
    ws.cell(5, header.index("births_total") + 1).value = 2.5  # V001 2022T1
    ws.cell(6, header.index("slogans") + 1).value = 3.0  # a whole float: fine
    f = tmp_path / "d.xlsx"
    wb.save(f)
    errs = errors_of(f, rb)
    assert [(e.sheet, e.row, e.column, e.reason) for e in errs] == [
        ("期间数据", 5, "births_total", "'2.5' is not a whole number (births_total is a count, 例)")
    ]


def test_long_layout_count_with_a_fraction(tmp_path: Path, rb: LoadedRulebook) -> None:
    lines = (DATA / "good-small-long.csv").read_text(encoding="utf-8").splitlines()
    n = next(i for i, line in enumerate(lines) if ",births_total," in line)
    lines[n] = lines[n].rsplit(",", 1)[0] + ",2.5"
    f = write(tmp_path, "\n".join(lines) + "\n")
    errs = errors_of(f, rb)
    assert [(e.row, e.column, e.reason) for e in errs] == [
        (n + 1, "value", "'2.5' is not a whole number (births_total is a count, 例)")
    ]
