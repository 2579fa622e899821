"""Year-to-date flows are summed in the step columns' own integer type and cast to
Float64 once (kaohe.engine.compile, Compiler.name); kaohe.engine.evaluate.summable
widens the columns whose sum could overflow.  Whatever the integer types and values,
the scores must equal those computed from Float64 columns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaohe.engine import score
from kaohe.engine.evaluate import summable
from kaohe.io.dataset import Dataset
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.rulebook.loader import load_rulebook

EXAMPLE = Path(__file__).parent / "fixtures" / "village-1000-example"
INT32_MAX = 2**31 - 1

#: integer type -> its largest value
LARGEST = {
    pl.Int8: 2**7 - 1, pl.Int16: 2**15 - 1, pl.Int32: 2**31 - 1, pl.Int64: 2**63 - 1,
    pl.UInt8: 2**8 - 1, pl.UInt16: 2**16 - 1, pl.UInt32: 2**32 - 1, pl.UInt64: 2**64 - 1,
}  # fmt: skip
int_types = st.sampled_from(list(LARGEST))


@st.composite
def step_columns(draw: st.DrawFn) -> pl.DataFrame:
    """Three step columns of one flow, each of an integer type, with values that fit it
    (often near its largest value)."""
    n = draw(st.integers(1, 5))
    cols = []
    for j in (1, 2, 3):
        dtype = draw(int_types)
        hi = LARGEST[dtype]
        values = draw(st.lists(st.integers(0, hi) | st.just(hi), min_size=n, max_size=n))
        cols.append(pl.Series(f"x@{j}", values, dtype=dtype))
    return pl.DataFrame(cols)


def _ytd(frame: pl.DataFrame) -> pl.Series:
    # what Compiler.name writes for a year-to-date flow at step 3
    return frame.select(pl.sum_horizontal(pl.col("x@1", "x@2", "x@3")).cast(pl.Float64)).to_series()


def _exact(frame: pl.DataFrame) -> list[float]:
    return [float(sum(row)) for row in frame.iter_rows()]


@settings(max_examples=200, deadline=None)
@given(step_columns(), st.booleans())
def test_sums_never_overflow(frame: pl.DataFrame, told: bool) -> None:
    magnitudes = None
    if told:  # the bound known from reading the file (as read_data gives it)
        magnitudes = {"x": float(max(max(frame.get_column(c).to_list()) for c in frame.columns))}
    got = _ytd(summable(frame, ["x"], magnitudes))
    assert got.to_list() == pytest.approx(_exact(frame), rel=1e-15)


def test_small_int32_columns_stay_as_they_are() -> None:
    frame = pl.DataFrame({f"x@{j}": pl.Series([1, 2], dtype=pl.Int32) for j in (1, 2, 3)})
    assert summable(frame, ["x"]) is frame
    assert summable(frame, ["x"], {"x": 2.0}) is frame


def test_int32_columns_that_could_overflow_are_widened() -> None:
    frame = pl.DataFrame({f"x@{j}": pl.Series([INT32_MAX], dtype=pl.Int32) for j in (1, 2, 3)})
    wide = summable(frame, ["x"])
    assert set(wide.dtypes) == {pl.Int64}
    assert _ytd(wide).item() == 3.0 * INT32_MAX
    # the magnitude known from the file decides without looking at the columns
    assert summable(frame, ["x"], {"x": 2.0}) is frame
    assert set(summable(frame, ["x"], {"x": float(INT32_MAX)}).dtypes) == {pl.Int64}


def test_other_columns_are_left_alone() -> None:
    frame = pl.DataFrame(
        {
            "unit": ["a"],
            "population": pl.Series([INT32_MAX], dtype=pl.Int32),  # annual: never summed
            "y@1": pl.Series([INT32_MAX], dtype=pl.Int32),  # not a flow of the list
            "x@1": pl.Series([1.5]),
        }
    )
    assert summable(frame, ["x"]) is frame


def test_scores_from_huge_integer_counts_equal_those_from_floats() -> None:
    """The worked example with the T1–T3 counts of certificates raised near 2³¹: their
    year-to-date sum overflows Int32, yet every score equals the Float64 computation."""
    rb = load_rulebook("village-1000")
    org = read_units(EXAMPLE / "units.csv")
    ds = read_data(EXAMPLE / "data.csv", rb, org)
    big = 2_000_000_000
    steps = pl.col("period").str.contains("T")
    frame = ds.frame.with_columns(
        pl.when(steps).then(pl.lit(big, pl.Int32)).otherwise(pl.col(v)).alias(v)
        for v in ("certs_done", "prepreg_done")
    )
    as_ints = Dataset(frame, ds.file, ds.variables)
    assert frame.schema["certs_done"] == pl.Int32
    floats = frame.with_columns(pl.col(v).cast(pl.Float64) for v in ds.variables)
    as_floats = Dataset(floats, ds.file, ds.variables)
    for period in ("2022T2", "2022"):
        expected = score(rb, as_floats, period, org).table
        assert score(rb, as_ints, period, org).table.equals(expected)
        told = replace(as_ints, magnitudes={v: float(big) for v in ds.variables})
        assert score(rb, told, period, org).table.equals(expected)


def test_read_data_knows_each_variable_s_largest_magnitude(tmp_path: Path) -> None:
    rb = load_rulebook("village-1000")
    ds = read_data(EXAMPLE / "data.csv", rb, read_units(EXAMPLE / "units.csv"))
    assert ds.magnitudes is not None
    assert set(ds.magnitudes) == set(rb.variables)
    for v in rb.variables:
        col = ds.frame.get_column(v).cast(pl.Float64).abs()
        assert ds.magnitudes[v] >= (col.max() or 0.0)  # type: ignore[operator]
        if col.null_count() < col.len():
            assert ds.magnitudes[v] == col.max()
