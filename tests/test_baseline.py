"""The hand-written Polars baseline (benchmarks/baseline_village1000.py) against the spec's
worked example (exact rational arithmetic, rounded half-up to the cent)."""

from __future__ import annotations

import importlib.util
import json
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path(__file__).parent / "fixtures" / "village-1000-example"
DATA = EXAMPLE / "data.csv"
UNITS = EXAMPLE / "units.csv"


def _load_baseline() -> ModuleType:
    path = ROOT / "benchmarks" / "baseline_village1000.py"
    spec = importlib.util.spec_from_file_location("baseline_village1000", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


baseline = _load_baseline()


def cents(x: float) -> Decimal:
    """Round half-up to 2 decimals, after removing binary noise beyond 9 decimals."""
    return Decimal(repr(round(x, 9))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected(period: str) -> list[dict[str, Any]]:
    with (EXAMPLE / "expected.json").open(encoding="utf-8") as f:
        result: list[dict[str, Any]] = json.load(f)[period]
    return result


@pytest.mark.parametrize("period", ["2022", "2022T2"])
def test_reproduces_the_worked_example_to_the_cent(period: str) -> None:
    result = baseline.score_baseline(DATA, UNITS, period)
    rows = {row["unit"]: row for row in result.to_dicts()}
    cases = expected(period)
    assert sorted(rows) == sorted(case["unit"] for case in cases)
    for case in cases:
        got = rows[case["unit"]]
        where = f"{period} {case['unit']}"
        assert got["group"] == case["group"], where
        assert got["rank"] == case["rank"], where
        assert cents(got["total"]) == Decimal(repr(case["total"])), where
        for item, value in case["items"].items():
            assert cents(got[item]) == Decimal(repr(value)), f"{where} {item}"
        for code in baseline.ADJUSTMENTS:
            value = case["adjustments"].get(code, 0.0)
            assert cents(got[code]) == Decimal(repr(value)), f"{where} {code}"
        assert cents(got["rank_bonus"]) == Decimal(repr(case.get("rank_bonus", 0.0))), where


def test_output_columns() -> None:
    result = baseline.score_baseline(DATA, UNITS, "2022T1")
    assert result.columns == [
        "unit",
        "group",
        "total",
        "rank",
        "rank_bonus",
        *baseline.ITEMS,
        *baseline.ADJUSTMENTS,
    ]
    assert result["unit"].to_list() == [f"V00{i}" for i in range(6)]  # data order
    assert result["rank_bonus"].to_list() == [0.0] * 6


def test_annual_is_t3_plus_rank_bonuses_from_each_period() -> None:
    by_period = {
        p: baseline.score_baseline(DATA, UNITS, p).sort("unit")
        for p in ("2022T1", "2022T2", "2022T3", "2022")
    }
    bonus = {1: 4.0, 2: 2.0}
    expected_bonus = [
        sum(bonus.get(r, 0.0) for r in ranks)
        for ranks in zip(*(by_period[f"2022T{k}"]["rank"] for k in (1, 2, 3)), strict=True)
    ]
    annual = by_period["2022"]
    assert annual["rank_bonus"].to_list() == expected_bonus
    assert (
        annual["total"] - by_period["2022T3"]["total"] - annual["rank_bonus"]
    ).abs().max() < 1e-9
    for item in baseline.ITEMS:
        assert annual[item].equals(by_period["2022T3"][item]), item


def test_parquet_input_gives_the_same_result(tmp_path: Path) -> None:
    data = pl.read_csv(DATA, schema_overrides={"period": pl.String})
    data.write_parquet(tmp_path / "data.parquet")
    from_csv = baseline.score_baseline(DATA, UNITS, "2022")
    from_parquet = baseline.score_baseline(tmp_path / "data.parquet", UNITS, "2022")
    assert from_parquet.equals(from_csv)


def test_shuffled_rows_give_the_same_result(tmp_path: Path) -> None:
    data = pl.read_csv(DATA, schema_overrides={"period": pl.String})
    data.sample(fraction=1.0, shuffle=True, seed=1).write_csv(tmp_path / "shuffled.csv")
    ordered = baseline.score_baseline(DATA, UNITS, "2022").sort("unit")
    shuffled = baseline.score_baseline(tmp_path / "shuffled.csv", UNITS, "2022").sort("unit")
    assert shuffled.equals(ordered)


def test_without_units_all_villages_form_one_group() -> None:
    result = baseline.score_baseline(DATA, None, "2022T2")
    assert result["group"].null_count() == 6
    by_total = result.sort("total", descending=True)
    assert by_total["rank"].to_list() == [1, 2, 3, 4, 5, 6]
    with_units = baseline.score_baseline(DATA, UNITS, "2022T2")
    assert result["total"].equals(with_units["total"])


def test_ties_share_a_rank_and_its_bonus(tmp_path: Path) -> None:
    # V006 is a copy of V000 in the same township: competition ranking 1, 1, 3
    data = pl.read_csv(DATA, schema_overrides={"period": pl.String})
    copy = data.filter(pl.col("unit") == "V000").with_columns(unit=pl.lit("V006"))
    pl.concat([data, copy]).write_csv(tmp_path / "data.csv")
    units = pl.read_csv(UNITS)
    units = pl.concat(
        [units, pl.DataFrame({"code": ["V006"], "name": ["村V006"], "parent": ["TOWN0"]})]
    )
    units.write_csv(tmp_path / "units.csv")
    for period in ("2022T1", "2022T2", "2022T3", "2022"):
        result = baseline.score_baseline(tmp_path / "data.csv", tmp_path / "units.csv", period)
        rows = {row["unit"]: row for row in result.to_dicts()}
        assert rows["V006"]["total"] == rows["V000"]["total"]
        assert rows["V006"]["rank"] == rows["V000"]["rank"]
        ranks = sorted(r["rank"] for r in rows.values() if r["group"] == "TOWN0")
        tied = rows["V000"]["rank"]
        assert ranks.count(tied) == 2 and tied + 1 not in ranks
    annual = baseline.score_baseline(tmp_path / "data.csv", tmp_path / "units.csv", "2022")
    assert annual.filter(pl.col("unit").is_in(["V000", "V006"]))["rank_bonus"].n_unique() == 1


def test_missing_flow_row_is_an_error(tmp_path: Path) -> None:
    data = pl.read_csv(DATA, schema_overrides={"period": pl.String})
    data.filter(~((pl.col("unit") == "V003") & (pl.col("period") == "2022T1"))).write_csv(
        tmp_path / "data.csv"
    )
    with pytest.raises(ValueError, match="missing"):
        baseline.score_baseline(tmp_path / "data.csv", UNITS, "2022")
    # scoring as of T1 needs the T1 row too
    with pytest.raises(ValueError):
        baseline.score_baseline(tmp_path / "data.csv", UNITS, "2022T1")


def test_unknown_unit_and_bad_period_are_errors(tmp_path: Path) -> None:
    units = pl.read_csv(UNITS).filter(pl.col("code") != "V002")
    units.write_csv(tmp_path / "units.csv")
    with pytest.raises(ValueError, match="V002"):
        baseline.score_baseline(DATA, tmp_path / "units.csv", "2022")
    with pytest.raises(ValueError, match="period"):
        baseline.score_baseline(DATA, UNITS, "2022Q1")


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    code = baseline.main(
        ["--data", str(DATA), "--units", str(UNITS), "--period", "2022", "--output", str(out)]
    )
    assert code == 0
    written = pl.read_csv(out)
    assert written.height == 6
    v004 = written.filter(pl.col("unit") == "V004").row(0, named=True)
    assert cents(v004["total"]) == Decimal("1214.26") and v004["rank"] == 1
