"""The fast paths of reading, scoring and explaining give the same results as the plain ones.

read_data keeps Parquet integers (and reads a CSV's counts as Int32) and records each
row's org position (Dataset.index); build_frame gathers rows by position;
narrow_to_group uses positions (and a slice of the data when it is in the org file's
order).  These tests compare each with the path taken without those lookups
(hand-built Float64 datasets, shuffled rows, odd org files).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kaohe.demo.synth import synth_village
from kaohe.engine.evaluate import referenced_variables, score
from kaohe.engine.explain import explain_unit, narrow_to_group, to_json
from kaohe.errors import EvaluationError
from kaohe.io.dataset import Dataset, OrgUnits, UnitIndex
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook

RB = load_rulebook("village-1000")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    data, units = synth_village(120, 6, seed=7)
    d = tmp_path_factory.mktemp("perf")
    out = {"csv": d / "data.csv", "parquet": d / "data.parquet", "units": d / "units.csv"}
    data.write_csv(out["csv"])
    data.write_parquet(out["parquet"])
    units.write_csv(out["units"])
    # the same data with rows and org units in another order
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=3)
    out["shuffled"] = d / "shuffled.parquet"
    shuffled.write_parquet(out["shuffled"])
    out["units_shuffled"] = d / "units-shuffled.csv"
    units.sample(fraction=1.0, shuffle=True, seed=5).write_csv(out["units_shuffled"])
    return out


def plain(ds: Dataset) -> Dataset:
    """The dataset as a hand-built one: Float64 variables, no index."""
    f = ds.frame.with_columns(pl.col(v).cast(pl.Float64) for v in ds.variables)
    return Dataset(f, ds.file, ds.variables)


def plain_units(org: OrgUnits) -> OrgUnits:
    return OrgUnits(org.frame.clone(), org.file)


def table(rb: LoadedRulebook, ds: Dataset, org: OrgUnits | None, period: str) -> pl.DataFrame:
    return score(rb, ds, period, org).table


@pytest.mark.parametrize("period", ["2022", "2022T2"])
def test_parquet_integers_score_as_csv_floats(files: dict[str, Path], period: str) -> None:
    org = read_units(files["units"])
    from_csv = read_data(files["csv"], RB, org)
    from_parquet = read_data(files["parquet"], RB, org)
    assert from_parquet.frame.schema["population"] == pl.Int32
    assert from_csv.frame.schema["population"] == pl.Int32  # a count, read as Int32
    assert from_csv.frame.schema["org_score"] == pl.Float64
    assert from_parquet.index is not None and from_csv.index is not None
    expected = table(RB, plain(from_csv), plain_units(org), period)
    assert table(RB, from_csv, org, period).equals(expected)
    assert table(RB, from_parquet, org, period).equals(expected)
    assert table(RB, plain(from_parquet), plain_units(org), period).equals(expected)


def test_rows_and_units_in_any_order(files: dict[str, Path]) -> None:
    org = read_units(files["units"])
    expected = table(RB, plain(read_data(files["csv"], RB, org)), plain_units(org), "2022")
    for data, units in (("shuffled", "units"), ("parquet", "units_shuffled")):
        other = read_units(files[units])
        ds = read_data(files[data], RB, other)
        assert table(RB, ds, other, "2022").equals(expected)


@pytest.mark.parametrize("period", ["2022", "2022T2"])
@pytest.mark.parametrize(
    "data,units", [("parquet", "units"), ("shuffled", "units"), ("parquet", "units_shuffled")]
)
def test_a_handed_over_dataset_is_consumed_and_scores_the_same(
    files: dict[str, Path], data: str, units: str, period: str
) -> None:
    # in a list, the dataset is handed over: its variable columns are dropped as their
    # period columns are taken (a few variables at a time: village-1000 has 67)
    org = read_units(files[units])
    expected = table(RB, read_data(files[data], RB, org), org, period)
    ds = read_data(files[data], RB, org)
    assert score(RB, [ds], period, org).table.equals(expected)
    assert not referenced_variables(RB) & set(ds.frame.columns)


def test_a_handed_over_dataset_with_a_period_row_missing(
    files: dict[str, Path], tmp_path: Path
) -> None:
    # a unit without its 2022T2 row: that period's columns take the slow path, read
    # before any column is dropped; a flow without default then stops the scoring
    raw = pl.read_parquet(files["parquet"])
    gap = tmp_path / "gap.parquet"
    raw.filter(~((pl.col("unit") == "V0007") & (pl.col("period") == "2022T2"))).write_parquet(gap)
    org = read_units(files["units"])
    errors = []
    for data in (read_data(gap, RB, org), [read_data(gap, RB, org)]):
        with pytest.raises(EvaluationError) as info:
            score(RB, data, "2022", org)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "V0007" in errors[0] and "2022T2" in errors[0]


def test_without_org_units(files: dict[str, Path]) -> None:
    ds = read_data(files["shuffled"], RB)
    expected = table(RB, plain(ds), None, "2022T3")
    assert table(RB, ds, None, "2022T3").equals(expected)


def test_the_index_is_not_used_for_other_frames_or_units(files: dict[str, Path]) -> None:
    org = read_units(files["units"])
    ds = read_data(files["parquet"], RB, org)
    assert ds.unit_positions(org) is not None
    assert ds.unit_positions(plain_units(org)) is None
    assert Dataset(ds.frame.reverse(), ds.file, ds.variables).unit_positions(org) is None
    # a dataset whose frame was replaced is scored from its new frame
    changed = Dataset(ds.frame, ds.file, ds.variables, index=ds.index)
    changed.frame = ds.frame.filter(pl.col("unit") != "V0005")
    assert changed.unit_positions(org) is None
    assert "V0005" not in table(RB, changed, org, "2022")["unit"].to_list()


def narrowed(rb: LoadedRulebook, ds: Dataset, org: OrgUnits, unit: str) -> tuple[list, list]:
    d, o = narrow_to_group(rb, ds, org, unit)
    assert o is not None
    rows = d.frame.select("unit", "period", "_row").rows()
    return rows, o.frame.rows()


@pytest.mark.parametrize("data,units", [("parquet", "units"), ("shuffled", "units_shuffled")])
def test_narrow_to_group_by_position_or_by_code(
    files: dict[str, Path], data: str, units: str
) -> None:
    org = read_units(files[units])
    ds = read_data(files[data], RB, org)
    for unit in ("V0000", "V0061", "V0119", "T0003"):
        assert narrowed(RB, ds, org, unit) == narrowed(RB, plain(ds), plain_units(org), unit)


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 4, 2]])
def test_narrow_with_a_sibling_that_has_children_and_roots(
    tmp_path: Path, order: list[int]
) -> None:
    (tmp_path / "u.csv").write_text(
        "code,name,parent\nT,乡,\nA,甲,T\nB,乙,T\nB1,乙一,B\nC,丙,T\nR,独立,\n",
        encoding="utf-8",
    )
    org = read_units(tmp_path / "u.csv")
    assert org.has_parent_positions()
    codes = [["A", "B", "B1", "C", "R", "T"][i] for i in order]
    frame = pl.DataFrame({"unit": codes, "period": ["2022"] * 6, "_row": range(2, 8)})
    ds = Dataset(frame, "<t>", [])
    ds.index = UnitIndex(frame, org.frame, org.positions(frame["unit"]))
    assert ds.unit_positions(org) is not None
    for unit in ("A", "B", "B1", "R", "T"):
        assert narrowed(RB, ds, org, unit) == narrowed(RB, ds, plain_units(org), unit)


def test_explain_is_the_same_with_and_without_lookups(files: dict[str, Path]) -> None:
    org = read_units(files["units"])
    ds = read_data(files["parquet"], RB, org)
    for unit in ("V0003", "V0077"):
        fast = to_json(explain_unit(RB, ds, org, Period.parse("2022"), unit))
        slow = to_json(explain_unit(RB, plain(ds), plain_units(org), Period.parse("2022"), unit))
        assert fast == slow
