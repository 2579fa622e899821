"""Engine features beyond village-1000: formulas, errors, non-cumulative schemes, ranking options."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from kaohe.engine import plan_period, score
from kaohe.errors import EvaluationError, KaoheError
from kaohe.io.dataset import Dataset
from kaohe.rulebook.loader import load_rulebook_text
from tests.helpers import make_dataset, org_units, year_rows

BASE = """
code: t
name: 测试
periods: {step: tertial, target_shares: [0.4, 0.7, 1.0]}
variables:
  x: {label: 甲, kind: flow}
  y: {label: 乙, kind: flow}
  p: {label: 人口, kind: annual}
  tgt: {label: 任务, kind: annual, split: true}
"""


def rulebook(items: str, extra: str = "") -> object:
    return load_rulebook_text(BASE + extra + "items:\n" + items)


def test_formula_item_reads_ytd_split_targets_and_share() -> None:
    rb = rulebook(
        """
  - code: F
    name: 公式
    rule: {formula: "x + 100 * share + tgt"}
    floor: null
"""
    )
    rows = year_rows(rb, annual={"tgt": 10}, flows={1: {"x": 1}, 2: {"x": 2}, 3: {"x": 4}})
    ds = make_dataset(rb, rows)
    got = [score(rb, ds, f"2022T{k}").table["F"][0] for k in (1, 2, 3)]
    # x YTD 1, 3, 7; share .4 .7 1; tgt 4, 7, 10
    assert got == pytest.approx([1 + 40 + 4, 3 + 70 + 7, 7 + 100 + 10])


def test_division_by_zero_in_a_formula_is_an_error_naming_unit_and_item() -> None:
    rb = rulebook(
        """
  - code: F
    name: 公式
    rule: {formula: "x / y"}
"""
    )
    ds = make_dataset(rb, year_rows(rb, flows={1: {"x": 1, "y": 0}}))
    with pytest.raises(EvaluationError, match=r"item F: division by zero .* unit U1"):
        score(rb, ds, "2022T1")


def test_division_in_the_branch_not_taken_is_fine() -> None:
    rb = rulebook(
        """
  - code: F
    name: 公式
    rule: {formula: "if(y = 0, 5, x / y)"}
"""
    )
    ds = make_dataset(
        rb,
        {
            **year_rows(rb, "U1", flows={1: {"x": 1, "y": 0}}),
            **year_rows(rb, "U2", flows={1: {"x": 6, "y": 2}}),
        },
    )
    t = {r["unit"]: r["F"] for r in score(rb, ds, "2022T1").table.iter_rows(named=True)}
    assert t == {"U1": 5.0, "U2": 3.0}


def test_cap_floor_and_veto_order() -> None:
    rb = rulebook(
        """
  - code: C
    name: 封顶
    points: 10
    rule: full
    bonuses: [{per: x, points: 4}]
    deductions: [{per: y, points: 3}]
    floor: 2
    cap: 12
    veto: {when: "p > 100", reason: 否决, score: 1}
"""
    )

    def one(x: float, y: float, p: float = 0) -> float:
        ds = make_dataset(rb, year_rows(rb, annual={"p": p}, flows={1: {"x": x, "y": y}}))
        return float(score(rb, ds, "2022T1").table["C"][0])

    assert one(0, 1) == 7.0
    assert one(0, 5) == 2.0  # floored at 2
    assert one(3, 0) == 12.0  # capped
    assert one(3, 0, p=101) == 1.0  # veto score


def test_cap_at_points_convention() -> None:
    rb = rulebook(
        """
  - code: C
    name: 封顶
    points: 10
    rule: full
    bonuses: [{per: x, points: 4}]
""",
        "conventions: {cap_at_points: true}\n",
    )
    ds = make_dataset(rb, year_rows(rb, flows={1: {"x": 3}}))
    assert score(rb, ds, "2022T1").table["C"][0] == 10.0


def test_band_in_the_higher_is_better_direction() -> None:
    rb = rulebook(
        """
  - code: B
    name: 区间
    points: 20
    rule: {band: {value: x, full_at_most: 10, zero_at_least: 2}}
"""
    )
    got = []
    for x in (0, 2, 6, 10, 15):
        ds = make_dataset(rb, year_rows(rb, flows={1: {"x": x}}))
        got.append(score(rb, ds, "2022T1").table["B"][0])
    assert got == [0.0, 0.0, 10.0, 20.0, 20.0]


MONTHLY = """
code: m
name: 月度
periods: {step: month, cumulative: false}
variables:
  x: {label: 甲, kind: flow}
items:
  - {code: S, name: 计数, points: 10, rule: {formula: "x"}, floor: null}
"""


def monthly_rows(unit: str, values: dict[int, float]) -> dict:
    return {(unit, f"2022-{m:02d}"): {"x": v} for m, v in values.items()}


def test_non_cumulative_months_quarters_and_year_sum_steps() -> None:
    rb = load_rulebook_text(MONTHLY)
    ds = make_dataset(
        rb,
        {
            **monthly_rows("A", {m: m for m in range(1, 13)}),
            **monthly_rows("B", {m: 7 for m in range(1, 13)}),
        },
    )
    march = {r["unit"]: r for r in score(rb, ds, "2022-03").table.iter_rows(named=True)}
    assert march["A"]["S"] == 3.0 and march["B"]["rank"] == 1 and march["A"]["rank"] == 2
    q1 = {r["unit"]: r for r in score(rb, ds, "2022Q1").table.iter_rows(named=True)}
    assert q1["A"]["total"] == 6.0 and q1["B"]["total"] == 21.0
    q4 = {r["unit"]: r for r in score(rb, ds, "2022Q4").table.iter_rows(named=True)}
    assert q4["A"]["total"] == 33.0 and q4["A"]["rank"] == 1
    year = {r["unit"]: r for r in score(rb, ds, "2022").table.iter_rows(named=True)}
    assert year["A"]["total"] == 78.0 and year["B"]["total"] == 84.0


def test_a_quarter_with_a_missing_month_is_an_error() -> None:
    rb = load_rulebook_text(MONTHLY)
    ds = make_dataset(rb, monthly_rows("A", {1: 1, 3: 3}))
    with pytest.raises(EvaluationError, match=r"no row for period 2022-02 .* A"):
        score(rb, ds, "2022Q1")


def test_missing_step_row_is_an_error_unless_defaults() -> None:
    rb = rulebook("  - {code: S, name: 计数, rule: {formula: x}}\n")
    rows = year_rows(rb, steps=1)
    ds = make_dataset(rb, rows)
    assert score(rb, ds, "2022T1").table.height == 1
    with pytest.raises(
        EvaluationError, match=r"no row for period 2022T2 \(flow variables\) for unit\(s\) U1"
    ):
        score(rb, ds, "2022T2")
    with_defaults = load_rulebook_text(
        BASE.replace("kind: flow}", "kind: flow, default: 0}")
        + "items:\n  - {code: S, name: 计数, rule: {formula: x}}\n"
    )
    ds2 = make_dataset(with_defaults, rows)
    assert score(with_defaults, ds2, "2022T2").table["S"][0] == 0.0


def test_a_null_value_names_row_and_column() -> None:
    rb = rulebook("  - {code: S, name: 计数, rule: {formula: x}}\n")
    ds = make_dataset(rb, year_rows(rb, steps=1))
    frame = ds.frame.with_columns(
        pl.when(pl.col("period") == "2022T1").then(None).otherwise(pl.col("x")).alias("x")
    )
    with pytest.raises(
        EvaluationError, match=r"row 3, column 'x': no value for unit U1 in period 2022T1"
    ):
        score(rb, Dataset(frame, "d.csv", ds.variables), "2022T1")


def test_periods_that_do_not_fit_the_scheme() -> None:
    rb = rulebook("  - {code: S, name: 计数, rule: {formula: x}}\n")
    with pytest.raises(KaoheError, match="does not fit"):
        plan_period(rb, "2022-03")
    with pytest.raises(KaoheError, match="not a period"):
        plan_period(rb, "2022T4")


def test_only_leaf_units_are_assessed_and_group_by_none() -> None:
    rb = rulebook(
        "  - {code: S, name: 计数, rule: {formula: x}, floor: null}\n",
        "ranking: {group_by: none}\n",
    )
    rows = {
        **year_rows(rb, "A", flows={1: {"x": 1}}),
        **year_rows(rb, "B", flows={1: {"x": 2}}),
        **year_rows(rb, "T1", flows={1: {"x": 9}}),
    }
    org = org_units([("T1", None), ("T2", None), ("A", "T1"), ("B", "T2")])
    res = {
        r["unit"]: r
        for r in score(rb, make_dataset(rb, rows), "2022T1", org).table.iter_rows(named=True)
    }
    assert set(res) == {"A", "B"}  # the township's own row is not assessed
    assert res["B"]["rank"] == 1 and res["A"]["rank"] == 2 and res["A"]["group"] is None


def test_near_equal_totals_tie() -> None:
    """Float noise must not break ties: 0.1 + 0.2 and 0.3 rank equal."""
    rb = rulebook('  - {code: S, name: 计数, rule: {formula: "x + y"}, floor: null}\n')
    rows = {
        **year_rows(rb, "A", flows={1: {"x": 0.1, "y": 0.2}}),
        **year_rows(rb, "B", flows={1: {"x": 0.3, "y": 0.0}}),
    }
    t = score(rb, make_dataset(rb, rows), "2022T1").table
    assert t["rank"].to_list() == [1, 1]


def test_a_dataset_in_a_list_is_scored_the_same_and_released() -> None:
    rb = rulebook("  - {code: S, name: 计数, rule: {formula: x}, floor: null}\n")
    rows = {
        **year_rows(rb, "A", flows={1: {"x": 1}}),
        **year_rows(rb, "B", flows={1: {"x": 2}}),
    }
    org = org_units([("T1", None), ("A", "T1"), ("B", "T1")])
    direct = score(rb, make_dataset(rb, rows), "2022T1", org).table
    box = [make_dataset(rb, rows)]
    boxed = score(rb, box, "2022T1", org).table
    assert box == []  # the caller's reference is gone: the frame can be freed
    assert boxed.equals(direct)
    assert boxed["rank"].to_list() == [1, 2]


def test_compiled_items_are_kept_per_rulebook() -> None:
    rb = rulebook("  - {code: S, name: 计数, rule: {formula: x}, floor: null}\n")
    rows = {
        **year_rows(rb, "A", flows={1: {"x": 1}}),
        **year_rows(rb, "B", flows={1: {"x": 2}}),
    }
    org = org_units([("T1", None), ("A", "T1"), ("B", "T1")])
    first = score(rb, make_dataset(rb, rows), "2022T1", org).table
    assert rb.compiled  # built once…
    kept = dict(rb.compiled)
    again = score(rb, make_dataset(rb, rows), "2022T1", org).table
    assert again.equals(first)
    assert all(rb.compiled[k] is v for k, v in kept.items())  # …and reused
    assert dataclasses.replace(rb).compiled == {}  # a copy starts its own
