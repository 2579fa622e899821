"""The shipped village-1000 rulebook against its spec (shared/spec/village-1000.md).

Expected values are computed by hand from the spec's formulas (shown next to
each case), never from the engine's own output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kaohe.engine import score
from kaohe.numbers import round2
from kaohe.rulebook.loader import load_rulebook
from tests.helpers import make_dataset, org_units, year_rows

RB = load_rulebook("village-1000")


def item_score(
    code: str,
    period: str,
    annual: dict[str, float] | None = None,
    flows: dict[int, dict[str, float]] | None = None,
    params: dict[str, float] | None = None,
) -> float:
    rb = load_rulebook("village-1000", params) if params else RB
    steps = 3 if period == "2022" else int(period[-1])
    ds = make_dataset(rb, year_rows(rb, annual=annual, flows=flows, steps=steps))
    result = score(rb, ds, period)
    value = result.table.row(0, named=True)[code]
    assert isinstance(value, float)
    return value


# (item, period, annual, flows by step, expected) — spec §3, hand-computed
# fmt: off
CASES = [
    # A1 clamp(org_score, 0, 8)
    ("A1", "2022T1", {"org_score": 9}, {}, 8.0),
    ("A1", "2022T1", {"org_score": 5.5}, {}, 5.5),
    # A2 floor0(12 − 3·absences), YTD
    ("A2", "2022T2", {}, {1: {"meeting_absences": 1}, 2: {"meeting_absences": 2}}, 3.0),
    ("A2", "2022T1", {}, {1: {"meeting_absences": 5}}, 0.0),
    # B1 band on r = 1000·(one_boy + multi)/population, 3‰ full, 5‰ zero  [I4]
    ("B1", "2022T1", {"population": 1000}, {1: {"unplanned_one_boy": 3}}, 60.0),
    ("B1", "2022T1", {"population": 1000}, {1: {"unplanned_one_boy": 2, "unplanned_multi": 2}}, 30.0),
    ("B1", "2022T1", {"population": 2000}, {1: {"unplanned_multi": 7}}, 45.0),  # r = 3.5
    ("B1", "2022T1", {"population": 1000}, {1: {"unplanned_one_boy": 5}}, 0.0),
    ("B1", "2022T1", {"population": 1000}, {1: {"unplanned_one_boy": 9}}, 0.0),
    ("B1", "2022T1", {"population": 0}, {1: {"unplanned_one_boy": 2}}, 60.0),  # population 0 → r = 0
    ("B1", "2022T1", {"population": 1000}, {1: {"births_5th": 1}}, 30.0),
    ("B1", "2022T1", {"population": 1000}, {1: {"births_5th": 3}}, 0.0),  # floor
    ("B1", "2022T2", {"population": 1000}, {2: {"births_6plus": 1}}, 0.0),  # veto
    # B2 120·min1(reported/total) − 1·late − 2·missed − 5·false − 2·errors − 2·unmanaged
    (
        "B2",
        "2022T1",
        {},
        {1: {"births_total": 10, "births_reported": 8, "births_late": 1, "births_missed": 1,
             "births_false": 1, "report_errors": 1, "clients_unmanaged": 1}},
        84.0,  # 96 − 1 − 2 − 5 − 2 − 2
    ),
    ("B2", "2022T1", {}, {1: {"births_total": 10, "births_reported": 12}}, 120.0),  # capped ratio
    ("B2", "2022T1", {}, {1: {"births_total": 0, "births_reported": 0}}, 120.0),  # [I1]
    ("B2", "2022T1", {}, {1: {"births_total": 2, "births_false": 30}}, 0.0),  # floor
    # C1 per period, never cumulated  [I5] [I2]
    ("C1", "2022T1", {}, {1: {"checkups_due": 100, "checkups_done": 68.5}}, 23.5),
    (
        "C1",
        "2022T2",
        {},
        {1: {"checkups_due": 100, "checkups_done": 68.5}, 2: {"checkups_due": 10, "checkups_done": 8}},
        98.5,  # 23.5 + (25 + 5·10); the YTD rate 76.5/110 is NOT used
    ),
    (
        "C1",
        "2022T3",
        {},
        {1: {"checkups_due": 100, "checkups_done": 68.5}, 2: {"checkups_due": 10, "checkups_done": 8},
         3: {"checkups_due": 100, "checkups_done": 0}},
        98.5,  # T3: 25 − 70 floored at 0
    ),
    ("C1", "2022T3", {}, {}, 75.0),  # nothing due in any period: 25 each  [I1]
    # C2 75·min1(done/T) + 2·over(done, T), T = 10 × share
    ("C2", "2022T1", {"certs_target": 10}, {1: {"certs_done": 3}}, 56.25),  # T = 4
    ("C2", "2022T1", {"certs_target": 10}, {1: {"certs_done": 6}}, 79.0),
    ("C2", "2022T2", {"certs_target": 10}, {1: {"certs_done": 3}, 2: {"certs_done": 3}}, 75 * 6 / 7),
    ("C2", "2022T3", {"certs_target": 0}, {}, 75.0),
    # D1 120·min1 + 5·over − 2·followup_missed, floored
    ("D1", "2022T1", {"prepreg_target": 20}, {1: {"prepreg_done": 10, "prepreg_followup_missed": 3}}, 124.0),
    ("D1", "2022T1", {"prepreg_target": 20}, {1: {"prepreg_followup_missed": 1}}, 0.0),
    # E1 20 if rate ≥ 80 else floor0(20 − 2·(80 − rate))
    ("E1", "2022T1", {}, {1: {"phones_checked": 20, "phones_correct": 15}}, 10.0),
    ("E1", "2022T1", {}, {1: {"phones_checked": 10, "phones_correct": 7}}, 0.0),
    ("E1", "2022T1", {}, {1: {"phones_checked": 10, "phones_correct": 10}}, 20.0),
    ("E1", "2022T1", {}, {1: {"phones_checked": 0}}, 20.0),
    # E2..E6 deductions down to zero
    ("E2", "2022T1", {}, {1: {"dept_info_failures": 4}}, 6.0),
    ("E2", "2022T1", {}, {1: {"dept_info_failures": 12}}, 0.0),
    ("E3", "2022T1", {}, {1: {"migrant_info_failures": 3}}, 4.0),
    ("E3", "2022T1", {}, {1: {"migrant_info_failures": 6}}, 0.0),
    ("E4", "2022T1", {}, {1: {"deaths_total": 4, "deaths_timely": 3, "deaths_concealed": 1}}, 12.0),
    ("E4", "2022T1", {}, {1: {"deaths_concealed": 2}}, 14.0),
    # E5 floor on the deduction part only, events added after  [I6]
    ("E5", "2022T1", {}, {1: {"households_no_materials": 6, "publicity_events": 2}}, 20.0),
    ("E5", "2022T1", {}, {1: {"households_no_materials": 2}}, 6.0),
    ("E6", "2022T1", {}, {1: {"board_updates_missed": 2}}, 4.0),
    ("E6", "2022T1", {}, {1: {"board_updates_missed": 4}}, 0.0),
    # E7 S = 10 × share; floor0(10 − over(S, slogans)) + 2·over(slogans, S)  [I7]
    ("E7", "2022T1", {}, {1: {"slogans": 2}}, 8.0),  # S = 4
    ("E7", "2022T1", {}, {1: {"slogans": 7}}, 16.0),
    ("E7", "2022T3", {}, {}, 0.0),  # S = 10, none written
    ("E7", "2022T3", {}, {1: {"slogans": 20}, 3: {"slogans": 5}}, 40.0),  # 10 + 2·15
    # F1 the sketch's worked example: 8/10 × 180 + 20 + 5
    ("F1", "2022T3", {"ligation_target": 10},
     {1: {"ligation_done": 8, "ligation_two_daughter": 1, "induced_terminations": 1}}, 169.0),
    ("F1", "2022T1", {"ligation_target": 10}, {1: {"ligation_done": 5}}, 185.0),  # T = 4
    # F2
    ("F2", "2022T2", {"iud_target": 10}, {1: {"iud_done": 3}, 2: {"iud_done": 4}}, 40.0),
    ("F2", "2022T2", {"iud_target": 10}, {1: {"iud_done": 3}, 2: {"iud_done": 5}}, 42.0),
    # G1 40 + 5·(rate − 50) if rate ≥ 50 else 40·rate/50
    ("G1", "2022T1", {}, {1: {"fee_cases_due": 10, "fee_cases_collected": 4}}, 32.0),
    ("G1", "2022T1", {}, {1: {"fee_cases_due": 10, "fee_cases_collected": 6}}, 90.0),
    ("G1", "2022T1", {}, {}, 40.0),
    # G2 140 if rate ≥ 60 else 140·rate/60 [I8]; − 20·collusion, floored
    ("G2", "2022T1", {}, {1: {"fee_first_due": 1000, "fee_first_collected": 300}}, 70.0),
    ("G2", "2022T1", {}, {1: {"fee_first_due": 1000, "fee_first_collected": 700}}, 140.0),
    ("G2", "2022T1", {}, {1: {"fee_first_due": 1000, "fee_first_collected": 700, "fee_collusion_cases": 2}}, 100.0),
    ("G2", "2022T1", {}, {1: {"fee_first_due": 1000, "fee_first_collected": 300, "fee_collusion_cases": 4}}, 0.0),
    # G3
    ("G3", "2022T1", {}, {1: {"fee_enforce_required": 3, "fee_enforce_done": 2}}, 40 / 3),
    ("G3", "2022T1", {}, {}, 20.0),
    # H1
    ("H1", "2022T1", {"association_score": 25}, {}, 20.0),
    ("H1", "2022T1", {"association_score": 18.5}, {}, 18.5),
]
# fmt: on


@pytest.mark.parametrize(("code", "period", "annual", "flows", "expected"), CASES)
def test_item(code: str, period: str, annual: dict, flows: dict, expected: float) -> None:
    assert item_score(code, period, annual, flows) == pytest.approx(expected, abs=1e-9)


def test_all_zero_data_scores_the_spec_defaults() -> None:
    """Nothing due anywhere: ratio items full, thresholds at their threshold points [I1]."""
    ds = make_dataset(RB, year_rows(RB))
    row = score(RB, ds, "2022T3").table.row(0, named=True)
    expected = {
        "A1": 0,
        "A2": 12,
        "B1": 60,
        "B2": 120,
        "C1": 75,
        "C2": 75,
        "D1": 120,
        "E1": 20,
        "E2": 10,
        "E3": 10,
        "E4": 20,
        "E5": 10,
        "E6": 10,
        "E7": 0,
        "F1": 180,
        "F2": 40,
        "G1": 40,
        "G2": 140,
        "G3": 20,
        "H1": 0,
    }
    assert {c: row[c] for c in expected} == pytest.approx(expected)
    assert row["total"] == pytest.approx(sum(expected.values()))


def test_parameters_override_the_ix_choices() -> None:
    # [I5] 30 points per period instead of 25
    assert item_score("C1", "2022T1", params={"c1_period_points": 30}) == 30.0
    # [I4] band limits
    flows = {1: {"unplanned_one_boy": 4}}
    assert item_score("B1", "2022T1", {"population": 1000}, flows) == 30.0
    assert item_score("B1", "2022T1", {"population": 1000}, flows, {"b1_zero_at_least": 7}) == 45.0
    # [I7] slogan target
    assert item_score("E7", "2022T3", {}, {1: {"slogans": 6}}, {"e7_slogan_target": 6}) == 10.0
    # [I8] threshold 50 instead of 60
    flows = {1: {"fee_first_due": 100, "fee_first_collected": 55}}
    assert item_score("G2", "2022T1", {}, flows) == pytest.approx(140 * 55 / 60)
    assert item_score("G2", "2022T1", {}, flows, {"g2_threshold": 50}) == 140.0


def test_township_criticism_counts_once_at_minus_five() -> None:
    """[I9] and its parameter."""
    rows = year_rows(RB, flows={1: {"township_criticism": 2}})
    row = score(RB, make_dataset(RB, rows), "2022T1").table.row(0, named=True)
    assert row["township_criticism"] == -10.0
    rb2 = load_rulebook("village-1000", {"township_criticism_points": -2})
    row2 = score(rb2, make_dataset(rb2, rows), "2022T1").table.row(0, named=True)
    assert row2["township_criticism"] == -4.0
    assert row["total"] - row2["total"] == pytest.approx(-6.0)


def test_zero_denominator_convention_is_a_rulebook_choice() -> None:
    """[I1] read as 'zero' instead of 'met'."""
    text = Path(RB.file).read_text(encoding="utf-8")
    assert "zero_denominator: met" in text
    from kaohe.rulebook.loader import load_rulebook_text

    rb = load_rulebook_text(text.replace("zero_denominator: met", "zero_denominator: zero"))
    row = score(rb, make_dataset(rb, year_rows(rb)), "2022T1").table.row(0, named=True)
    assert row["B2"] == 0.0  # ratio of nothing due → 0
    assert row["G1"] == 0.0  # rate of nothing due → 0 %
    assert row["C1"] == 0.0  # 25 − 70 floored


def test_ytd_totals_at_each_period_add_up() -> None:
    flows = {
        1: {"ligation_done": 2, "township_praise": 1},
        2: {"ligation_done": 3, "meeting_absences": 1},
        3: {"ligation_done": 5, "commend_city": 1},
    }
    rows = year_rows(RB, annual={"ligation_target": 10}, flows=flows)
    ds = make_dataset(RB, rows)
    f1 = [score(RB, ds, f"2022T{k}").table.row(0, named=True)["F1"] for k in (1, 2, 3)]
    # T = 4, 7, 10; done = 2, 5, 10
    assert f1 == pytest.approx([90.0, 180 * 5 / 7, 180.0])
    t3 = score(RB, ds, "2022T3").table.row(0, named=True)
    assert t3["township_praise"] == 2.0 and t3["commend_city"] == 10.0 and t3["A2"] == 9.0


def _four_units(totals_bump: dict[str, int]) -> tuple:
    """Four villages in one township; each bump adds township_praise cases (2 points each) at T1."""
    rows: dict = {}
    for u, bump in totals_bump.items():
        rows.update(year_rows(RB, unit=u, flows={1: {"township_praise": bump}}))
    ds = make_dataset(RB, rows)
    org = org_units([("T", None), *[(u, "T") for u in totals_bump]])
    return ds, org


def test_ties_share_rank_and_rank_bonus() -> None:
    """Competition ranking 1, 1, 3: both tied units get rank 1's +4 each period; rank 2 is vacant."""
    ds, org = _four_units({"V1": 3, "V2": 3, "V3": 2, "V4": 0})
    t1 = {r["unit"]: r for r in score(RB, ds, "2022T1", org).table.iter_rows(named=True)}
    assert [t1[u]["rank"] for u in ("V1", "V2", "V3", "V4")] == [1, 1, 3, 4]
    assert all(t1[u]["rank_bonus"] == 0 for u in t1)  # no rank bonus in a period result
    year = {r["unit"]: r for r in score(RB, ds, "2022", org).table.iter_rows(named=True)}
    assert [year[u]["rank_bonus"] for u in ("V1", "V2", "V3", "V4")] == [12.0, 12.0, 0.0, 0.0]
    t3 = {r["unit"]: r for r in score(RB, ds, "2022T3", org).table.iter_rows(named=True)}
    assert year["V1"]["total"] == pytest.approx(t3["V1"]["total"] + 12)
    assert [year[u]["rank"] for u in ("V1", "V2", "V3", "V4")] == [1, 1, 3, 4]


def test_rank_bonuses_can_reorder_the_year() -> None:
    """V2 leads T1 and T2 (+4 each) but V1 overtakes at T3 by 1 point: the bonuses decide the year."""
    rows: dict = {}
    rows.update(year_rows(RB, unit="V1", flows={3: {"township_praise": 3}}))  # +6 at T3 only
    rows.update(
        year_rows(RB, unit="V2", flows={1: {"township_praise": 1}, 2: {"township_praise": 1}})
    )
    rows.update(year_rows(RB, unit="V3"))
    ds = make_dataset(RB, rows)
    org = org_units([("T", None), ("V1", "T"), ("V2", "T"), ("V3", "T")])
    t3 = {r["unit"]: r for r in score(RB, ds, "2022T3", org).table.iter_rows(named=True)}
    assert t3["V1"]["rank"] == 1 and t3["V2"]["rank"] == 2
    year = {r["unit"]: r for r in score(RB, ds, "2022", org).table.iter_rows(named=True)}
    # T1 and T2: V2 leads, V1 and V3 tie for rank 2 (+2 each); T3: V1 1st (+4), V2 2nd (+2).
    # V1: 2 + 2 + 4 = 8; V2: 4 + 4 + 2 = 10; V3: 2 + 2 + 0 = 4
    assert year["V1"]["rank_bonus"] == 8.0 and year["V2"]["rank_bonus"] == 10.0
    assert year["V3"]["rank_bonus"] == 4.0
    # V1: base + 6 + 8, V2: base + 4 + 10 → equal annual totals share rank 1
    assert year["V2"]["total"] == pytest.approx(year["V1"]["total"])
    assert year["V1"]["rank"] == 1 and year["V2"]["rank"] == 1 and year["V3"]["rank"] == 3


def test_groups_rank_separately() -> None:
    rows: dict = {}
    for u, bump in {"A1": 1, "A2": 0, "B1": 0, "B2": 2}.items():
        rows.update(year_rows(RB, unit=u, flows={1: {"township_praise": bump}}))
    ds = make_dataset(RB, rows)
    org = org_units(
        [("TA", None), ("TB", None), ("A1", "TA"), ("A2", "TA"), ("B1", "TB"), ("B2", "TB")]
    )
    res = {r["unit"]: r for r in score(RB, ds, "2022T1", org).table.iter_rows(named=True)}
    assert (res["A1"]["rank"], res["A2"]["rank"], res["B1"]["rank"], res["B2"]["rank"]) == (
        1,
        2,
        2,
        1,
    )
    assert res["A1"]["group"] == "TA" and res["B2"]["group"] == "TB"


def test_rounding_is_half_up_on_output_only() -> None:
    # G3 = 20·2/3 = 13.333…; the engine keeps full precision
    v = item_score("G3", "2022T1", {}, {1: {"fee_enforce_required": 3, "fee_enforce_done": 2}})
    assert v != round2(v) and round2(v) == 13.33


def test_output_rounding_gives_the_nearest_double() -> None:
    """64.57 must come out as 64.57, not 64.57000000000001 (cents × 0.01)."""
    import polars as pl

    from kaohe.numbers import round2_expr

    xs = [64.57, 64.565, 64.57000000000001, 64.5699999, 1155.275, -0.001, 0.1 + 0.2]
    got = pl.DataFrame({"x": xs}).select(round2_expr(pl.col("x")))["x"].to_list()
    assert got == [64.57, 64.57, 64.57, 64.57, 1155.28, 0.0, 0.3]
    assert got == [round2(x) for x in xs]
