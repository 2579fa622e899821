"""The reference interpreter (kaohe.engine.reference) against the spec.

Expected values are computed by hand from shared/spec/village-1000.md and
docs/rulebook-language.md (the arithmetic is shown next to each case), or
taken from the worked example's expected.json, never from an engine's output.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaohe.engine.reference import (
    UnitTrace,
    competition_ranks,
    compile_formula,
    evaluate_formula,
    score_all,
    score_unit,
)
from kaohe.errors import EvaluationError
from kaohe.io.dataset import PERIOD, ROW, SHEET, UNIT, Dataset, OrgUnits
from kaohe.numbers import round2
from kaohe.periods import Period
from kaohe.rulebook import expr
from kaohe.rulebook.loader import LoadedRulebook, load_rulebook, load_rulebook_text
from tests.helpers import make_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "village-1000-example"
RB = load_rulebook("village-1000")


# ---------------------------------------------------------------- builders


def example_dataset(path: Path = FIXTURES / "data.csv") -> Dataset:
    """The worked example's data.csv as a Dataset (one Float64 column per variable)."""
    frame = pl.read_csv(path, infer_schema_length=0)
    variables = [c for c in frame.columns if c not in (UNIT, PERIOD)]
    frame = frame.with_columns(pl.col(v).cast(pl.Float64) for v in variables).with_columns(
        pl.int_range(2, frame.height + 2, dtype=pl.Int64).alias(ROW),
        pl.lit(None, pl.Utf8).alias(SHEET),
    )
    return Dataset(frame, str(path), variables)


def example_units() -> OrgUnits:
    schema = {"code": pl.Utf8, "name": pl.Utf8, "parent": pl.Utf8}
    return OrgUnits(pl.read_csv(FIXTURES / "units.csv", schema=schema), str(FIXTURES))


def values_for(
    rb: LoadedRulebook,
    annual: Mapping[str, float] | None = None,
    flows: Mapping[int, Mapping[str, float]] | None = None,
    steps: int = 3,
    year: int = 2022,
) -> dict[str, dict[str, float | None]]:
    """score_unit's values: every variable 0 unless given (annual on the year row)."""
    step = rb.model.periods.step
    out: dict[str, dict[str, float | None]] = {
        str(year): {v: 0.0 for v, d in rb.variables.items() if d.kind == "annual"}
    }
    out[str(year)].update(annual or {})
    for k in range(1, steps + 1):
        row: dict[str, float | None] = {v: 0.0 for v, d in rb.variables.items() if d.kind == "flow"}
        row.update((flows or {}).get(k, {}))
        out[str(Period(year, step, k))] = row
    return out


def village(
    step: int,
    annual: Mapping[str, float] | None = None,
    flows: Mapping[int, Mapping[str, float]] | None = None,
    rb: LoadedRulebook = RB,
) -> UnitTrace:
    return score_unit(rb, values_for(rb, annual, flows), step, 2022, unit="U1")


def rulebook(items: str, *, z: str = "met", extra: str = "", cap: bool = False) -> LoadedRulebook:
    """A small cumulative tertial rulebook with the given items (YAML list text)."""
    text = f"""
code: test
name: 测试考核
periods: {{step: tertial, cumulative: true, target_shares: [0.4, 0.7, 1.0]}}
conventions: {{zero_denominator: {z}, floor: 0, cap_at_points: {str(cap).lower()}}}
ranking: {{group_by: parent, rank_bonus: {{1: 4, 2: 2}}}}
parameters:
  p_pts: {{value: 25, label: 分值, unit: 分}}
variables:
  done: {{label: 完成数, kind: flow, unit: 例}}
  due: {{label: 应完成数, kind: flow, unit: 例}}
  cases: {{label: 例数, kind: flow, unit: 例}}
  target: {{label: 任务, kind: annual, unit: 例, split: true}}
  pop: {{label: 人口, kind: annual, unit: 人}}
{extra}
items:
{textwrap.indent(textwrap.dedent(items).strip(), "  ")}
"""
    return load_rulebook_text(text, file="<test>")


def item(trace: UnitTrace, code: str) -> float:
    return trace.item(code).score


def assert_terms_add_up(trace: UnitTrace) -> None:
    for it in trace.items:
        assert math.fsum(t.points for t in it.terms) == pytest.approx(it.score, abs=1e-9)
        for sub in it.periods:
            assert math.fsum(t.points for t in sub.terms) == pytest.approx(sub.score, abs=1e-9)
    parts = [it.score for it in trace.items] + [a.points for a in trace.adjustments]
    assert math.fsum(parts) == pytest.approx(trace.total, abs=1e-9)


# ---------------------------------------------------------------- the worked example


@pytest.mark.parametrize("period", ["2022", "2022T2"])
def test_example_reproduces_expected_json(period: str) -> None:
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))[period]
    results = score_all(RB, example_dataset(), Period.parse(period), example_units())
    assert sorted(results) == sorted(e["unit"] for e in expected)
    for e in expected:
        r = results[e["unit"]]
        assert r.group == e["group"]
        assert round2(r.total) == e["total"], e["unit"]
        assert r.rank == e["rank"], e["unit"]
        assert {k: round2(v) for k, v in r.items.items()} == e["items"], e["unit"]
        adjustments = {k: round2(v) for k, v in r.adjustments.items() if round2(v) != 0}
        assert adjustments == e["adjustments"], e["unit"]
        assert round2(r.rank_bonus) == e.get("rank_bonus", 0.0), e["unit"]
        for t in r.traces.values():
            assert_terms_add_up(t)


def test_example_year_has_a_rank_per_step() -> None:
    results = score_all(RB, example_dataset(), Period.parse("2022"), example_units())
    for r in results.values():
        assert [s.period for s in r.steps] == ["2022T1", "2022T2", "2022T3"]
        assert sum(s.rank_bonus for s in r.steps) == r.rank_bonus
        assert r.total == pytest.approx(r.steps[-1].total + r.rank_bonus)
        assert list(r.traces) == ["2022T1", "2022T2", "2022T3"]
    # a step period: the step alone, no rank bonus, no per-step list
    step = score_all(RB, example_dataset(), Period.parse("2022T2"), example_units())
    assert all(r.rank_bonus == 0 and r.steps == [] for r in step.values())


def test_without_org_units_all_units_form_one_group() -> None:
    results = score_all(RB, example_dataset(), Period.parse("2022T2"))
    assert {r.group for r in results.values()} == {None}
    assert sorted(r.rank for r in results.values()) == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------- formulas


def ev(text: str, z: str = "met", **env: float) -> float | bool:
    return evaluate_formula(expr.parse(text), env, z)


def test_formula_arithmetic_and_conditions() -> None:
    assert ev("1000 * (a + b) / p", a=3, b=1, p=800) == 5.0
    assert ev("-a + 2 * 3", a=1) == 5.0
    assert ev("a > 0 and not (b = 0)", a=1, b=2) is True
    assert ev("a > 0 or b > 0", a=0, b=0) is False
    assert ev("a != b", a=1, b=1) is False
    assert ev("a <= b", a=1, b=1) is True
    assert ev("min(3, a, 2)", a=1) == 1.0
    assert ev("max(3, a, 2)", a=1) == 3.0
    assert ev("abs(a)", a=-2.5) == 2.5
    assert ev("min1(a)", a=1.5) == 1.0
    assert ev("over(a, b)", a=3, b=5) == 0.0
    assert ev("over(a, b)", a=5, b=3) == 2.0
    assert ev("floor0(a)", a=-4) == 0.0
    assert ev("clamp(a, 0, 8)", a=9) == 8.0
    assert ev("clamp(a, 0, 8)", a=-1) == 0.0
    assert ev("（a＋1）×2÷4", a=1) == 1.0  # full-width punctuation


def test_formula_zero_denominator_convention() -> None:
    # [I1] met: nothing due counts as exactly met; zero: a zero rate
    assert ev("ratio(a, b)", "met", a=3, b=0) == 1.0
    assert ev("ratio(a, b)", "zero", a=3, b=0) == 0.0
    assert ev("ratio(a, b)", "zero", a=3, b=4) == 0.75
    assert ev("pct(a, b)", "met", a=0, b=0) == 100.0
    assert ev("pct(a, b)", "zero", a=0, b=0) == 0.0
    assert ev("pct(a, b)", "met", a=137, b=200) == 68.5


def test_formula_division_by_zero_is_an_error() -> None:
    with pytest.raises(EvaluationError, match="division by zero"):
        ev("1000 * a / p", a=1, p=0)
    # if() evaluates only the chosen branch
    assert ev("if(p = 0, 0, 1000 * a / p)", a=1, p=0) == 0.0
    assert ev("if(p = 0, 0, 1000 * a / p)", a=1, p=500) == 2.0
    assert ev("if(p > 0, 1000 * a / p, 0)", a=1, p=0) == 0.0
    # and/or evaluate both sides: only if() guards a division
    with pytest.raises(EvaluationError, match="division by zero"):
        ev("p > 0 and a / p > 1", a=1, p=0)


def test_formula_errors() -> None:
    with pytest.raises(EvaluationError, match="unknown name 'x'"):
        ev("x + 1")
    with pytest.raises(EvaluationError, match="not a number"):
        compile_formula(expr.parse("1 + (a > 0)"), "met")
    with pytest.raises(EvaluationError, match="not a condition"):
        compile_formula(expr.parse("a + 1"), "met", "bool")


def test_division_by_zero_in_an_item_names_unit_period_and_item() -> None:
    rb = rulebook("""
        - {code: X1, name: 公式项, points: 10, rule: {formula: "10 * done / due"}}
    """)
    ok = score_unit(rb, values_for(rb, flows={1: {"done": 1, "due": 2}}), 1, 2022, unit="V9")
    assert item(ok, "X1") == 5.0
    with pytest.raises(EvaluationError, match=r"unit V9, period 2022T1, item X1: division by zero"):
        score_unit(rb, values_for(rb, flows={1: {"done": 1}}), 1, 2022, unit="V9")


# ---------------------------------------------------------------- [I1] zero denominators


def test_ratio_zero_target() -> None:
    items = """
        - {code: R1, name: 比例, points: 50, rule: {ratio: {done: done, target: target, per_excess: 5}}}
    """
    met, zero = rulebook(items), rulebook(items, z="zero")
    values = values_for(met, annual={"target": 0}, flows={1: {"done": 2}})
    # met: r = 1 → 50, excess 5·(2 − 0) = 10
    t = score_unit(met, values, 1, 2022)
    assert item(t, "R1") == 60.0
    assert [(x.kind, x.points) for x in t.item("R1").terms] == [
        ("completion", 50.0),
        ("excess", 10.0),
    ]
    # zero: r = 0 → 0, excess still 10
    assert item(score_unit(zero, values, 1, 2022), "R1") == 10.0
    # nothing done, nothing due
    assert item(score_unit(met, values_for(met), 1, 2022), "R1") == 50.0
    assert item(score_unit(zero, values_for(zero), 1, 2022), "R1") == 0.0


def test_threshold_zero_denominator() -> None:
    items = """
        - code: T1
          name: 比率
          points: 25
          rule: {threshold: {rate: [done, due], at: 70, below: -1, above: 5}}
    """
    met, zero = rulebook(items), rulebook(items, z="zero")
    # met: the rate is taken to equal the threshold: 25 points, no per-percent term
    t = score_unit(met, values_for(met), 1, 2022)
    assert item(t, "T1") == 25.0
    assert [(x.kind, x.points) for x in t.item("T1").terms] == [("base", 25.0), ("above", 0.0)]
    # zero: rate 0 → 25 − 1·70 = −45, floored at 0 (the floor adds back 45)
    t = score_unit(zero, values_for(zero), 1, 2022)
    assert item(t, "T1") == 0.0
    assert [(x.kind, x.points) for x in t.item("T1").terms] == [
        ("base", 25.0),
        ("below", -70.0),
        ("floor", 45.0),
    ]


def test_village_zero_denominators() -> None:
    # nothing due anywhere: ratio items full, threshold items at their threshold points
    t = village(1, annual={"population": 1000})
    assert item(t, "B2") == 120.0  # 0 births reported of 0
    assert item(t, "C1") == 25.0  # 0 checks of 0 due → rate = 70
    assert item(t, "C2") == 75.0  # target 0
    assert item(t, "E1") == 20.0
    assert item(t, "E4") == 20.0
    assert item(t, "G1") == 40.0
    assert item(t, "G2") == 140.0
    assert item(t, "G3") == 20.0


# ---------------------------------------------------------------- [I2] exact rates


def test_exact_rate_68_5_percent() -> None:
    # C1: 137/200 = 68.5% < 70 → 25 − 1·1.5 = 23.5 (not truncated to 68%)
    t = village(1, flows={1: {"checkups_due": 200, "checkups_done": 137}})
    assert item(t, "C1") == 23.5
    sub = t.item("C1").periods[0]
    assert [(x.kind, x.points) for x in sub.terms] == [("base", 25.0), ("below", -1.5)]
    # E1: 159/200 = 79.5% → 20 − 2·0.5 = 19
    t = village(1, flows={1: {"phones_checked": 200, "phones_correct": 159}})
    assert item(t, "E1") == 19.0
    # above: 143/200 = 71.5% → 25 + 5·1.5 = 32.5
    t = village(1, flows={1: {"checkups_due": 200, "checkups_done": 143}})
    assert item(t, "C1") == 32.5


# ---------------------------------------------------------------- [I3] floors and caps


def test_floor_term_is_the_amount_added_back() -> None:
    # A2: 12 − 3·5 = −3 → 0; the floor term is +3
    t = village(1, flows={1: {"meeting_absences": 5}})
    a2 = t.item("A2")
    assert a2.score == 0.0
    assert [(x.kind, x.points) for x in a2.terms] == [
        ("base", 12.0),
        ("deduction", -15.0),
        ("floor", 3.0),
    ]
    # no floor when the score stays above it
    t = village(1, flows={1: {"meeting_absences": 2}})
    assert item(t, "A2") == 6.0
    assert "floor" not in [x.kind for x in t.item("A2").terms]


def test_item_floor_null_and_number() -> None:
    rb = rulebook("""
        - {code: N1, name: 无保底, points: 12, rule: full, floor: null,
           deductions: [{per: cases, points: 3}]}
        - {code: N2, name: 保底2分, points: 12, rule: full, floor: 2,
           deductions: [{per: cases, points: 3}]}
    """)
    t = score_unit(rb, values_for(rb, flows={1: {"cases": 5}}), 1, 2022)
    assert item(t, "N1") == -3.0
    assert item(t, "N2") == 2.0
    assert t.item("N2").terms[-1] == ("floor", t.item("N2").terms[-1].label, 5.0)
    assert t.total == -1.0  # the total is neither floored nor capped


def test_cap() -> None:
    items = """
        - {code: K1, name: 封顶, points: 10, rule: full, bonuses: [{per: cases, points: 4}]}
        - {code: K2, name: 不封顶, points: 10, rule: full, cap: null,
           bonuses: [{per: cases, points: 4}]}
        - {code: K3, name: 封顶12, points: 10, rule: full, cap: 12,
           bonuses: [{per: cases, points: 4}]}
    """
    rb = rulebook(items, cap=True)
    t = score_unit(rb, values_for(rb, flows={1: {"cases": 2}}), 1, 2022)
    assert item(t, "K1") == 10.0
    assert t.item("K1").terms[-1].kind == "cap"
    assert t.item("K1").terms[-1].points == -8.0
    assert item(t, "K2") == 18.0
    assert item(t, "K3") == 12.0
    assert_terms_add_up(t)
    # by default (cap_at_points: false) bonuses may take an item above its points [I3]
    plain = rulebook(items)
    assert (
        item(score_unit(plain, values_for(plain, flows={1: {"cases": 2}}), 1, 2022), "K1") == 18.0
    )


def test_e5_floor_applies_to_the_deduction_part_only() -> None:
    # E5: floor0(10 − 2·7) + 10·1 = 0 + 10 = 10 (not 10 − 14 + 10 = 6)
    t = village(1, flows={1: {"households_no_materials": 7, "publicity_events": 1}})
    e5 = t.item("E5")
    assert e5.score == 10.0
    assert [(x.kind, x.points) for x in e5.terms] == [
        ("base", 10.0),
        ("deduction", -14.0),
        ("floor", 4.0),
        ("bonus", 10.0),
    ]
    # within the floor: 10 − 2·2 + 10·2 = 26
    t = village(1, flows={1: {"households_no_materials": 2, "publicity_events": 2}})
    assert item(t, "E5") == 26.0


def test_e7_slogans_against_the_ytd_target() -> None:
    # T1: S = 10 × 0.4 = 4; 1 slogan → 10 − 1·3 = 7
    assert item(village(1, flows={1: {"slogans": 1}}), "E7") == 7.0
    # T1: 9 slogans → 10 + 2·(9 − 4) = 20 (after the floor)
    assert item(village(1, flows={1: {"slogans": 9}}), "E7") == 20.0
    # T2: S = 7; 3 + 2 slogans → 10 − 2 = 8
    assert item(village(2, flows={1: {"slogans": 3}, 2: {"slogans": 2}}), "E7") == 8.0
    # T3 with a target of 30: floor0(10 − 30) = 0, the floor adds back 20
    rb = load_rulebook("village-1000", {"e7_slogan_target": 30})
    e7 = village(3, rb=rb).item("E7")
    assert e7.score == 0.0
    assert [(x.kind, x.points) for x in e7.terms] == [
        ("base", 10.0),
        ("deduction", -30.0),
        ("floor", 20.0),
        ("bonus", 0.0),
    ]


# ---------------------------------------------------------------- B1 band and veto


@pytest.mark.parametrize(
    ("one_boy", "multi", "expected"),
    [
        (3, 0, 60.0),  # r = 3‰: full
        (2, 2, 30.0),  # r = 4‰: 60·(5 − 4)/2
        (5, 0, 0.0),  # r = 5‰: zero
        (9, 0, 0.0),  # beyond
        (0, 0, 60.0),
    ],
)
def test_b1_band_edges(one_boy: float, multi: float, expected: float) -> None:
    flows = {1: {"unplanned_one_boy": one_boy, "unplanned_multi": multi}}
    assert item(village(1, {"population": 1000}, flows), "B1") == expected


def test_b1_population_zero_and_fifth_births() -> None:
    assert item(village(1, {"population": 0}, {1: {"unplanned_one_boy": 4}}), "B1") == 60.0
    # r = 3.75 → 37.5 − 30 = 7.5
    t = village(1, {"population": 800}, {1: {"unplanned_one_boy": 3, "births_5th": 1}})
    assert item(t, "B1") == 7.5
    # 60 − 3·30 → floored at 0
    assert item(village(1, {"population": 1000}, {1: {"births_5th": 3}}), "B1") == 0.0


def test_b1_veto() -> None:
    # a sixth birth in T2: the item is 0 whatever the terms gave; the veto term is 0 − 30
    t = village(2, {"population": 1000}, {1: {"births_5th": 1}, 2: {"births_6plus": 1}})
    b1 = t.item("B1")
    assert b1.score == 0.0
    assert b1.vetoed
    assert [(x.kind, x.points) for x in b1.terms] == [
        ("band", 60.0),
        ("deduction", -30.0),
        ("veto", -30.0),
    ]
    assert "出现6胎及以上出生" in b1.terms[-1].label
    # as of T1 the veto has not fired yet
    t1 = village(1, {"population": 1000}, {1: {"births_5th": 1}, 2: {"births_6plus": 1}})
    assert item(t1, "B1") == 30.0
    assert not t1.item("B1").vetoed


def test_veto_score() -> None:
    rb = rulebook("""
        - {code: V1, name: 否决, points: 20, rule: full,
           veto: {when: "cases > 0 and not (pop = 0)", reason: 出现案件, score: 5}}
    """)
    t = score_unit(rb, values_for(rb, {"pop": 10}, {1: {"cases": 1}}), 1, 2022)
    assert item(t, "V1") == 5.0
    assert t.item("V1").terms[-1] == ("veto", "否决：出现案件", -15.0)
    t = score_unit(rb, values_for(rb, {"pop": 0}, {1: {"cases": 1}}), 1, 2022)
    assert item(t, "V1") == 20.0


# ---------------------------------------------------------------- C1 per period


def test_c1_per_period_sums() -> None:
    flows = {
        1: {"checkups_due": 10, "checkups_done": 10},  # 100% → 25 + 5·30 = 175
        2: {"checkups_due": 0, "checkups_done": 0},  # nothing due → 25
        3: {"checkups_due": 100, "checkups_done": 50},  # 50% → 25 − 20 = 5
    }
    assert item(village(1, flows=flows), "C1") == 175.0
    assert item(village(2, flows=flows), "C1") == 200.0
    c1 = village(3, flows=flows).item("C1")
    assert c1.score == 205.0
    assert [p.period for p in c1.periods] == ["2022T1", "2022T2", "2022T3"]
    assert [p.score for p in c1.periods] == [175.0, 25.0, 5.0]
    assert [(x.kind, x.points) for x in c1.terms] == [
        ("period", 175.0),
        ("period", 25.0),
        ("period", 5.0),
    ]


def test_c1_floor_applies_to_each_period() -> None:
    # T1: 0% → 25 − 70 → 0 (not −45 carried into the sum); T2: 100% → 175
    flows = {
        1: {"checkups_due": 100, "checkups_done": 0},
        2: {"checkups_due": 10, "checkups_done": 10},
    }
    assert item(village(2, flows=flows), "C1") == 175.0


def test_per_period_split_target_uses_the_step_share() -> None:
    # own shares 0.4, 0.3, 0.3 of 10 → targets 4, 3, 3
    rb = rulebook("""
        - {code: P1, name: 每期任务, points: 30, per_period: true,
           rule: {ratio: {done: done, target: target}}}
    """)
    values = values_for(rb, {"target": 10}, {1: {"done": 2}, 2: {"done": 3}, 3: {"done": 1}})
    t = score_unit(rb, values, 3, 2022)
    p1 = t.item("P1")
    assert [round2(p.score) for p in p1.periods] == [15.0, 30.0, 10.0]
    assert p1.score == pytest.approx(55.0)
    second = p1.periods[1].inputs
    target = next(i for i in second if i.name == "target")
    assert (target.annual, round2(target.share), round2(target.value)) == (10.0, 0.3, 3.0)


def test_split_target_inputs_show_annual_and_share() -> None:
    t = village(2, annual={"certs_target": 20}, flows={1: {"certs_done": 8}, 2: {"certs_done": 3}})
    c2 = t.item("C2")
    target = next(i for i in c2.inputs if i.name == "certs_target")
    assert (target.annual, target.share, round2(target.value)) == (20.0, 0.7, 14.0)
    done = next(i for i in c2.inputs if i.name == "certs_done")
    assert (done.value, done.label, done.unit, done.kind) == (
        11.0,
        "已办理生育服务证",
        "个",
        "flow",
    )
    # 75 · 11/14
    assert c2.score == pytest.approx(75 * 11 / 14)
    assert c2.terms[0].label == "完成比例 11/14 × 75"


# ---------------------------------------------------------------- G1/G2 proportional


def test_g1_g2_proportional_below() -> None:
    flows = {1: {"fee_cases_due": 8, "fee_cases_collected": 2, "fee_first_due": 1000,
                 "fee_first_collected": 300}}  # fmt: skip
    t = village(1, flows=flows)
    assert item(t, "G1") == 20.0  # 25% < 50% → 40·25/50
    assert item(t, "G2") == 70.0  # 30% < 60% → 140·30/60
    flows[1]["fee_collusion_cases"] = 1
    assert item(village(1, flows=flows), "G2") == 50.0  # 70 − 20
    at = {1: {"fee_cases_due": 8, "fee_cases_collected": 4, "fee_first_due": 1000,
              "fee_first_collected": 600}}  # fmt: skip
    t = village(1, flows=at)
    assert item(t, "G1") == 40.0  # exactly 50%
    assert item(t, "G2") == 140.0  # exactly 60%
    above = {1: {"fee_cases_due": 8, "fee_cases_collected": 5}}
    assert item(village(1, flows=above), "G1") == 102.5  # 62.5% → 40 + 5·12.5


# ---------------------------------------------------------------- ranking


def test_competition_ranks() -> None:
    assert competition_ranks({"a": 10, "b": 10, "c": 5}) == {"a": 1, "b": 1, "c": 3}
    assert competition_ranks({"a": 10, "b": 5, "c": 5, "d": 1}) == {"a": 1, "b": 2, "c": 2, "d": 4}
    # equal to 9 decimal places: a tie
    assert competition_ranks({"a": 1.0000000001, "b": 1.0}) == {"a": 1, "b": 1}
    assert competition_ranks({"a": 1.000000002, "b": 1.0}) == {"a": 1, "b": 2}


def test_ties_share_the_rank_and_the_rank_bonus() -> None:
    rb = rulebook("""
        - {code: S1, name: 得分, points: 100, rule: {clamp: {value: cases, min: 0, max: 100}}}
    """)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    cases = {"A": [10, 0, 0], "B": [10, 0, 0], "C": [5, 10, 0]}
    for unit, per_step in cases.items():
        rows[(unit, "2022")] = {}
        for k, n in enumerate(per_step, start=1):
            rows[(unit, f"2022T{k}")] = {"cases": n}
    ds = make_dataset(rb, rows)
    # T1: A 10, B 10, C 5 → 1, 1, 3
    t1 = score_all(rb, ds, Period.parse("2022T1"))
    assert {u: r.rank for u, r in t1.items()} == {"A": 1, "B": 1, "C": 3}
    # year: T1 bonuses A 4, B 4, C 0; T2 (YTD A 10, B 10, C 15) C 4, A 2, B 2; T3 the same
    year = score_all(rb, ds, Period.parse("2022"))
    assert {u: [s.rank for s in r.steps] for u, r in year.items()} == {
        "A": [1, 2, 2],
        "B": [1, 2, 2],
        "C": [3, 1, 1],
    }
    assert {u: r.rank_bonus for u, r in year.items()} == {"A": 8.0, "B": 8.0, "C": 8.0}
    assert {u: r.total for u, r in year.items()} == {"A": 18.0, "B": 18.0, "C": 23.0}
    assert {u: r.rank for u, r in year.items()} == {"A": 2, "B": 2, "C": 1}


def test_ranking_within_parent_groups() -> None:
    rb = rulebook("""
        - {code: S1, name: 得分, points: 100, rule: {clamp: {value: cases, min: 0, max: 100}}}
    """)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for unit, n in {"A": 1, "B": 2, "C": 3, "D": 4}.items():
        rows[(unit, "2022")] = {}
        rows[(unit, "2022T1")] = {"cases": n}
    units = OrgUnits(
        pl.DataFrame(
            {
                "code": ["X", "Y", "A", "B", "C", "D"],
                "name": ["乡X", "乡Y", "A", "B", "C", "D"],
                "parent": [None, None, "X", "X", "Y", "Y"],
            },
            schema={"code": pl.Utf8, "name": pl.Utf8, "parent": pl.Utf8},
        )
    )
    res = score_all(rb, make_dataset(rb, rows), Period.parse("2022T1"), units)
    assert {u: (r.group, r.rank) for u, r in res.items()} == {
        "A": ("X", 2),
        "B": ("X", 1),
        "C": ("Y", 2),
        "D": ("Y", 1),
    }


# ---------------------------------------------------------------- missing values


def test_missing_value_names_unit_and_period() -> None:
    values = values_for(RB)
    values["2022T2"]["slogans"] = None
    score_unit(RB, values, 1, 2022, unit="V7")  # as of T1, T2 is not needed
    with pytest.raises(
        EvaluationError, match=r"unit V7, period 2022T2: missing value for 'slogans'"
    ):
        score_unit(RB, values, 2, 2022, unit="V7")
    del values["2022"]
    with pytest.raises(EvaluationError, match=r"unit V7, period 2022: .*no data row"):
        score_unit(RB, values, 1, 2022, unit="V7")


def test_default_fills_a_missing_value() -> None:
    rb = rulebook(
        """
        - {code: D1, name: 默认, points: 10, rule: full, deductions: [{per: extra, points: 1}]}
        """,
        extra="  extra: {label: 其他, kind: flow, unit: 次, default: 2}",
    )
    values = values_for(rb)
    values["2022T1"]["extra"] = None
    assert item(score_unit(rb, values, 1, 2022), "D1") == 8.0


# ---------------------------------------------------------------- non-cumulative schemes


MONTHLY = """
code: monthly
name: 月度考核
periods: {step: month, cumulative: false}
ranking: {group_by: none}
variables:
  lapses: {label: 差错, kind: flow, unit: 次}
items:
  - {code: M1, name: 月度, points: 10, rule: full, deductions: [{per: lapses, points: 2}]}
adjustments:
  - {code: praise, label: 表扬, points: 1}
"""


def test_non_cumulative_quarter_is_the_sum_of_its_months() -> None:
    rb = load_rulebook_text(MONTHLY)
    rows = {
        ("A", "2022-01"): {"lapses": 1},  # 8
        ("A", "2022-02"): {"lapses": 0, "praise": 2},  # 10 + 2
        ("A", "2022-03"): {"lapses": 6},  # 0
        ("B", "2022-01"): {"lapses": 0},  # 10
        ("B", "2022-02"): {"lapses": 0},  # 10
        ("B", "2022-03"): {"lapses": 0},  # 10
    }
    ds = make_dataset(rb, rows)
    march = score_all(rb, ds, Period.parse("2022-03"))
    assert {u: r.total for u, r in march.items()} == {"A": 0.0, "B": 10.0}
    q1 = score_all(rb, ds, Period.parse("2022Q1"))
    assert {u: r.total for u, r in q1.items()} == {"A": 20.0, "B": 30.0}
    assert q1["A"].items == {"M1": 18.0}
    assert q1["A"].adjustments == {"praise": 2.0}
    assert {u: r.rank for u, r in q1.items()} == {"A": 2, "B": 1}
    assert [(s.period, s.total, s.rank) for s in q1["A"].steps] == [
        ("2022-01", 8.0, 2),
        ("2022-02", 12.0, 1),
        ("2022-03", 0.0, 2),
    ]
    # every month is needed
    del rows[("B", "2022-02")]
    with pytest.raises(EvaluationError, match=r"unit B: period 2022Q1 needs every month"):
        score_all(rb, make_dataset(rb, rows), Period.parse("2022Q1"))


# ---------------------------------------------------------------- properties

FLOWS = [v for v, d in RB.variables.items() if d.kind == "flow"]
ANNUAL = [v for v, d in RB.variables.items() if d.kind == "annual"]
counts = st.integers(min_value=0, max_value=40).map(float)


@settings(max_examples=60, deadline=None)
@given(
    annual=st.fixed_dictionaries({v: counts for v in ANNUAL}),
    flows=st.lists(st.fixed_dictionaries({v: counts for v in FLOWS}), min_size=3, max_size=3),
    step=st.integers(min_value=1, max_value=3),
)
def test_terms_always_add_up(
    annual: dict[str, float], flows: list[dict[str, float]], step: int
) -> None:
    trace = village(step, annual, dict(enumerate(flows, start=1)))
    assert_terms_add_up(trace)
    for it in trace.items:
        assert math.isfinite(it.score)
        assert it.score >= 0  # every village item is floored at 0 [I3]
    c1 = trace.item("C1")
    assert len(c1.periods) == step


def test_non_cumulative_split_target_uses_the_step_share() -> None:
    text = """
code: quarterly
name: 季度考核
periods: {step: quarter, cumulative: false%s}
variables:
  target: {label: 任务, kind: annual, unit: 例, split: true}
  done: {label: 完成, kind: flow, unit: 例}
items:
  - {code: Q1, name: 季度任务, points: 20, rule: {ratio: {done: done, target: target}}}
"""
    values = values_for(load_rulebook_text(text % ""), {"target": 10}, {3: {"done": 2}}, steps=4)
    # default shares: each quarter 1/4 of 10 = 2.5 → 2/2.5 · 20 = 16
    t = score_unit(load_rulebook_text(text % ""), values, 3, 2022)
    assert t.share == 0.25
    assert item(t, "Q1") == pytest.approx(16.0)
    # 1:1:4:4 → Q3 alone is 0.6 − 0.2 = 0.4 of 10 = 4 → 2/4 · 20 = 10
    shares = ", target_shares: [0.1, 0.2, 0.6, 1.0]"
    t = score_unit(load_rulebook_text(text % shares), values, 3, 2022)
    assert t.share == pytest.approx(0.4)
    assert item(t, "Q1") == pytest.approx(10.0)
