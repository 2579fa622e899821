"""The synthetic village-1000 data generator (kaohe.demo.synth) and the shipped demo fixture."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from kaohe.demo import (
    DEMO_DATA,
    DEMO_N_TOWNSHIPS,
    DEMO_N_VILLAGES,
    DEMO_SEED,
    DEMO_UNITS,
    DEMO_YEAR,
)
from kaohe.demo.synth import (
    ADJUSTMENT_VARIABLES,
    ANNUAL_VARIABLES,
    COLUMNS,
    FLOW_VARIABLES,
    synth_village,
    write_village_csv,
    write_village_parquet,
)

EXAMPLE = Path(__file__).parent / "fixtures" / "village-1000-example"
FLOWS = [*FLOW_VARIABLES, *ADJUSTMENT_VARIABLES]


@pytest.fixture(scope="module")
def medium() -> tuple[pl.DataFrame, pl.DataFrame]:
    return synth_village(3000, 150, seed=7)


def test_columns_follow_the_example_layout() -> None:
    with (EXAMPLE / "data.csv").open(encoding="utf-8") as f:
        header = next(csv.reader(f))
    data, units = synth_village(5, 2)
    assert data.columns == header
    assert list(COLUMNS) == header
    assert len(ANNUAL_VARIABLES) + len(FLOWS) == 65
    assert units.columns == ["code", "name", "parent"]


def test_shapes() -> None:
    data, units = synth_village(7, 3, year=2023, seed=1)
    assert data.shape == (28, 67)
    assert units.height == 3 + 7
    assert data["unit"].n_unique() == 7
    per_unit = data.group_by("unit", maintain_order=True).agg(pl.col("period"))
    assert per_unit["period"].to_list() == [["2023", "2023T1", "2023T2", "2023T3"]] * 7


def test_annual_and_flow_cells_are_placed_by_period(
    medium: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    data, _ = medium
    annual = data.filter(pl.col("period") == "2022")
    flows = data.filter(pl.col("period") != "2022")
    assert annual.height == 3000 and flows.height == 9000
    assert annual.select(ANNUAL_VARIABLES).null_count().sum_horizontal().item() == 0
    assert annual.select(FLOWS).null_count().row(0) == (3000,) * len(FLOWS)
    assert flows.select(FLOWS).null_count().sum_horizontal().item() == 0
    assert flows.select(ANNUAL_VARIABLES).null_count().row(0) == (9000,) * len(ANNUAL_VARIABLES)


def test_no_negative_values_and_integral_counts(medium: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    data, _ = medium
    minima = data.select(pl.col(v).min() for v in (*ANNUAL_VARIABLES, *FLOWS)).row(0)
    assert min(minima) >= 0
    for name in ANNUAL_VARIABLES:
        if name not in ("org_score", "association_score"):
            assert data.schema[name].is_integer(), name
    assert all(data.schema[v].is_integer() for v in FLOWS)
    # assessed scores: whole or half points
    halves = data.select((pl.col("association_score") * 2 % 1).drop_nulls().max()).item()
    assert halves == 0


def test_parts_never_exceed_their_wholes(medium: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    data, _ = medium
    flows = data.filter(pl.col("period") != "2022")
    pairs = [
        ("checkups_done", "checkups_due"),
        ("phones_correct", "phones_checked"),
        ("deaths_timely", "deaths_total"),
        ("ligation_two_daughter", "ligation_done"),
        ("fee_cases_collected", "fee_cases_due"),
        ("fee_first_collected", "fee_first_due"),
        ("fee_enforce_done", "fee_enforce_required"),
        ("births_late", "births_reported"),
        ("births_missed", "births_total"),
    ]
    for part, whole in pairs:
        assert flows.filter(pl.col(part) > pl.col(whole)).height == 0, (part, whole)
    # reported = verified - missed + false
    mismatch = flows.filter(
        pl.col("births_reported")
        != pl.col("births_total") - pl.col("births_missed") + pl.col("births_false")
    )
    assert mismatch.height == 0


def test_values_are_varied_with_the_interesting_cases(
    medium: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    data, _ = medium
    flows = data.filter(pl.col("period") != "2022")
    annual = data.filter(pl.col("period") == "2022")
    # zero denominators, item vetoes, bonuses and deductions all occur, but rarely
    assert 0 < flows.filter(pl.col("checkups_due") == 0).height < flows.height // 4
    assert 0 < flows.filter(pl.col("births_6plus") > 0).height < flows.height // 50
    assert annual.filter(pl.col("population") == 0).height < annual.height // 50
    assert annual.filter(pl.col("certs_target") == 0).height > 0
    for name in ADJUSTMENT_VARIABLES:
        assert 0 < flows.filter(pl.col(name) > 0).height < flows.height // 10, name
    assert annual["population"].n_unique() > 1000
    assert flows["births_total"].n_unique() > 10


def test_some_villages_tie_with_their_predecessor(
    medium: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    data, units = medium
    values = data.drop("unit")
    # each village's four rows as one record, compared with the previous village's
    per_village = [tuple(values.slice(4 * i, 4).rows()) for i in range(3000)]
    ties = [i for i in range(1, 3000) if per_village[i] == per_village[i - 1]]
    assert 10 < len(ties) < 200
    parent = dict(zip(units["code"], units["parent"], strict=True))
    codes = data["unit"].unique(maintain_order=True).to_list()
    assert all(parent[codes[i]] == parent[codes[i - 1]] for i in ties)


def test_units_tree(medium: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    data, units = medium
    towns = units.filter(pl.col("parent").is_null())
    villages = units.filter(pl.col("parent").is_not_null())
    assert towns.height == 150 and villages.height == 3000
    assert units["code"].is_unique().all()
    assert set(villages["parent"]) == set(towns["code"])
    assert villages["code"].to_list() == data["unit"].unique(maintain_order=True).to_list()
    sizes = villages.group_by("parent").len()["len"]
    assert sizes.max() - sizes.min() <= 1  # type: ignore[operator]
    assert towns["name"][0] == "城关镇"
    assert all(name.endswith(("镇", "乡")) for name in towns["name"])
    assert all(name.endswith("村") and len(name) == 3 for name in villages["name"])
    assert villages["name"].n_unique() > 500


def test_deterministic_and_seeded() -> None:
    first = synth_village(200, 10, seed=3)
    second = synth_village(200, 10, seed=3)
    other = synth_village(200, 10, seed=4)
    assert first[0].equals(second[0]) and first[1].equals(second[1])
    assert not first[0].equals(other[0])
    assert not first[1].equals(other[1])


def test_a_village_does_not_depend_on_the_total_count() -> None:
    """Values are keyed on the village index, so a larger run extends a smaller one
    (with the same township count, only the village-to-township assignment changes)."""
    small, _ = synth_village(40, 1, seed=5)
    large, _ = synth_village(80, 1, seed=5)
    values = [c for c in small.columns if c != "unit"]
    assert small.select(values).equals(large.head(160).select(values))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        synth_village(0, 1)
    with pytest.raises(ValueError):
        synth_village(3, 5)


def test_writers_round_trip(tmp_path: Path) -> None:
    data, units = synth_village(30, 3, seed=11)
    write_village_csv(tmp_path / "d.csv", tmp_path / "u.csv", 30, 3, seed=11)
    write_village_parquet(tmp_path / "d.parquet", tmp_path / "u2.csv", 30, 3, seed=11)
    from_csv = pl.read_csv(tmp_path / "d.csv", schema=data.schema)
    assert from_csv.equals(data)
    assert pl.read_parquet(tmp_path / "d.parquet").equals(data)
    units_csv = pl.read_csv(tmp_path / "u.csv", schema=units.schema)
    assert units_csv.equals(units)
    assert (tmp_path / "u.csv").read_bytes() == (tmp_path / "u2.csv").read_bytes()


def test_shipped_demo_fixture_is_reproducible(tmp_path: Path) -> None:
    write_village_csv(
        tmp_path / "d.csv",
        tmp_path / "u.csv",
        DEMO_N_VILLAGES,
        DEMO_N_TOWNSHIPS,
        seed=DEMO_SEED,
        year=DEMO_YEAR,
    )
    hint = "regenerate the fixture as described in kaohe/demo/__init__.py"
    assert (tmp_path / "d.csv").read_bytes() == DEMO_DATA.read_bytes(), hint
    assert (tmp_path / "u.csv").read_bytes() == DEMO_UNITS.read_bytes(), hint


def test_demo_fixture_shape() -> None:
    data = pl.read_csv(DEMO_DATA, schema_overrides={"period": pl.String})
    units = pl.read_csv(DEMO_UNITS)
    assert data.height == 4 * 20
    assert units.filter(pl.col("parent").is_null()).height == 2
    assert units.height == 22
    # the cases the seed was picked for
    assert data["births_6plus"].drop_nulls().sum() > 0
    assert data.filter(pl.col("population") == 0).height == 1
    rows = {u: data.filter(pl.col("unit") == u).drop("unit").rows() for u in ("V0007", "V0008")}
    assert rows["V0007"] == rows["V0008"]
