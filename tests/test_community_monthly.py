"""The shipped community-monthly rulebook against its spec (shared/spec/community-monthly.md):
items, the standard flag, forced placement, lists, rewards, the veto and the money lines."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from kaohe.engine import score
from kaohe.engine.payments import payment_sheet
from kaohe.errors import EvaluationError, InputErrors
from kaohe.io.approvals import read_approvals
from kaohe.io.read import read_data
from kaohe.io.units import read_units
from kaohe.numbers import round2
from kaohe.rulebook.loader import load_rulebook
from tests.helpers import make_dataset, org_units

RB = load_rulebook("community-monthly")
EX = Path(__file__).parent / "fixtures" / "community-monthly-example"

# a month where every item is at full points (all rates met, no complaint, no key work)
FULL = {
    "lar_due": 10, "lar_timely": 10, "preg_total": 4, "preg_known_6m": 4,
    "pis_births": 2, "pis_reported": 2, "staff_specialists": 1, "staff_grid": 2,
}  # fmt: skip


@pytest.fixture(scope="module")
def example() -> tuple:
    org = read_units(EX / "units.csv")
    return read_data(EX / "data.csv", RB, org), org, json.loads((EX / "expected.json").read_text())


def rows_by_unit(result) -> dict:  # type: ignore[no-untyped-def]
    return {r["unit"]: r for r in result.table.iter_rows(named=True)}


def test_worked_example_march(example: tuple) -> None:
    ds, org, expected = example
    res = score(RB, ds, "2022-03", org)
    got = rows_by_unit(res)
    assert len(got) == 11 and "ST01" not in got  # the street is not ranked
    for e in expected["2022-03"]:
        row = got[e["unit"]]
        assert round2(row["total"]) == e["total"], e["unit"]
        assert row["rank"] == e["rank"], e["unit"]
        assert row["meets_standard"] == e["meets_standard"], e["unit"]
        assert {c: round2(row[c]) for c in e["items"]} == e["items"], e["unit"]
        assert (e["unit"] in res.placed) == e["complaint"]
        assert row["complaint"] == e["complaint"], e["unit"]


def test_worked_example_first_quarter(example: tuple) -> None:
    ds, org, expected = example
    res = score(RB, ds, "2022Q1", org)
    got = rows_by_unit(res)
    rewards = {o["unit"]: o["amount_fen"] for o in res.outcomes.to_dicts() if o["code"] == "reward"}
    for e in expected["2022Q1"]:
        assert round2(got[e["unit"]]["total"]) == e["total"]
        assert got[e["unit"]]["rank"] == e["rank"]
        assert rewards.get(e["unit"], 0) == e["reward_yuan"] * 100


def test_march_lists(example: tuple) -> None:
    ds, org, _ = example
    res = score(RB, ds, "2022-03", org)
    by_code: dict[str, set[str]] = {}
    for o in res.outcomes.to_dicts():
        by_code.setdefault(o["code"], set()).add(o["unit"])
    assert by_code["commended"] == {"C06", "C07", "C10"}  # ranks 1, 2, 2
    # last three places: C11 (placed, meets the standard), C09 and C04 (do not)
    assert by_code["criticised"] == {"C09", "C04"}


def month(unit: str, m: int = 3, **values: float) -> dict:
    return {(unit, f"2022-{m:02d}"): {**FULL, **values}}


def street(units: list[str]) -> object:
    return org_units([("ST", None), *[(u, "ST") for u in units]])


# item rules, by hand from §3
# fmt: off
ITEM_CASES = [
    ({"lar_due": 50, "lar_timely": 36}, "L1", 30.0),                  # 72 % exactly
    ({"lar_due": 50, "lar_timely": 27}, "L1", 30 * 54 / 72),          # 54 % → proportional
    ({"lar_due": 0, "lar_timely": 0}, "L1", 30.0),                    # [I1]
    ({"preg_total": 20, "preg_known_6m": 10}, "P1", 20.0),            # 50 % of 75 %
    ({"preg_total": 0, "preg_known_6m": 0}, "P1", 30.0),
    ({"pis_births": 6, "pis_reported": 4}, "R1", 20.0),
    ({"pis_births": 0, "pis_reported": 0}, "R1", 30.0),
    ({"complaints_verified": 0}, "J1", 10.0),
    ({"complaints_verified": 2}, "J1", 0.0),
    ({"key_work_points": 7.25}, "K1", 7.25),
]
# fmt: on


@pytest.mark.parametrize(("values", "code", "expected"), ITEM_CASES)
def test_items(values: dict, code: str, expected: float) -> None:
    ds = make_dataset(RB, month("C1", **values))
    row = score(RB, ds, "2022-03").table.row(0, named=True)
    assert row[code] == pytest.approx(expected)


def test_meets_standard_needs_all_three_rates() -> None:
    rows = {
        **month("A"),
        **month("B", lar_due=100, lar_timely=71),
        **month("C", complaints_verified=1),
    }
    got = rows_by_unit(score(RB, make_dataset(RB, rows), "2022-03"))
    assert got["A"]["meets_standard"] is True
    assert got["B"]["meets_standard"] is False  # 71 % < 72 %
    assert got["C"]["meets_standard"] is True  # a complaint costs J1, not the standard


def test_forced_placement_picks_the_lowest_others_with_code_tie_break() -> None:
    """6 units, A has a complaint: the last 3 places are A plus the 2 lowest others;
    D and E tie at 70, and the greater code (E) is the lower, so E joins the block."""
    k = {"A": 10.0, "B": 0.0, "C": -10.0, "D": -20.0, "E": -20.0, "F": -30.0}
    rows: dict = {}
    for u, kw in k.items():
        rows.update(month(u, key_work_points=kw, complaints_verified=1 if u == "A" else 0))
    res = score(RB, make_dataset(RB, rows), "2022-03", street(list(k)))
    ranks = {u: r["rank"] for u, r in rows_by_unit(res).items()}
    # totals: A 90 + 10 = 100 (J1 lost, K1 +10), B 100, C 90, D 80, E 80, F 70
    assert ranks == {"B": 1, "C": 2, "D": 3, "A": 4, "E": 5, "F": 6}
    assert res.placed == ["A"]


def test_more_than_three_complaints_fill_a_longer_block() -> None:
    """c = 4 > 3: the last four places are exactly the four complaint units, by total."""
    totals = {"A": 50.0, "B": 40.0, "C": 30.0, "D": 20.0, "E": 10.0, "F": 0.0}
    complaint = {"A", "B", "E", "F"}
    rows: dict = {}
    for u, kw in totals.items():
        rows.update(month(u, key_work_points=kw, complaints_verified=1 if u in complaint else 0))
    res = score(RB, make_dataset(RB, rows), "2022-03", street(list(totals)))
    ranks = {u: r["rank"] for u, r in rows_by_unit(res).items()}
    assert ranks == {"C": 1, "D": 2, "A": 3, "B": 4, "E": 5, "F": 6}


def test_ties_share_a_rank_only_within_a_block() -> None:
    rows: dict = {}
    for u, kw, c in [("A", 0.0, 1), ("B", -10.0, 0), ("C", 0.0, 0), ("D", 0.0, 0), ("E", -10.0, 0)]:
        rows.update(month(u, key_work_points=kw, complaints_verified=c))
    res = score(RB, make_dataset(RB, rows), "2022-03", street(["A", "B", "C", "D", "E"]))
    ranks = {u: r["rank"] for u, r in rows_by_unit(res).items()}
    # totals: A 90 (complaint), B 90, C 100, D 100, E 90.  Block of 3: A + E + B (B, E tie at
    # 90; both picked).  Top: C, D tie at 1.  Block: A, B, E all 90 → share rank 3.
    assert ranks == {"C": 1, "D": 1, "A": 3, "B": 3, "E": 3}


def quarter_rows(totals: dict[str, float]) -> dict:
    rows: dict = {}
    for u, kw in totals.items():
        for m in (1, 2, 3):
            rows.update(month(u, m, key_work_points=kw / 3))
    return rows


def test_rewards_by_rank_with_ties_at_the_boundaries() -> None:
    # quarterly totals (300 + kw): A = B tie first, C third, D = E tie fourth? no: C, D tie third
    res = score(
        RB,
        make_dataset(RB, quarter_rows({"A": 30, "B": 30, "C": 15, "D": 15, "E": 0})),
        "2022Q1",
        street(["A", "B", "C", "D", "E"]),
    )
    ranks = {u: r["rank"] for u, r in rows_by_unit(res).items()}
    assert ranks == {"A": 1, "B": 1, "C": 3, "D": 3, "E": 5}
    rewards = {o["unit"]: o["amount_fen"] for o in res.outcomes.to_dicts() if o["code"] == "reward"}
    # both firsts get 2,000; rank 2 is vacant; both thirds get 1,000
    assert rewards == {"A": 200_000, "B": 200_000, "C": 100_000, "D": 100_000}


def test_quarter_criticism_and_last_place_report_use_the_last_month() -> None:
    rows = quarter_rows({"A": 30, "B": 20, "C": 10, "D": 0})
    rows[("D", "2022-03")] = {**FULL, "lar_due": 10, "lar_timely": 5}  # misses L1 in March only
    rows[("C", "2022-01")] = {**FULL, "lar_due": 10, "lar_timely": 5}  # misses in January only
    res = score(RB, make_dataset(RB, rows), "2022Q1", street(["A", "B", "C", "D"]))
    got = {(o["unit"], o["code"]) for o in res.outcomes.to_dicts()}
    assert ("D", "quarter_criticised") in got and ("D", "last_place_report") in got
    assert ("C", "quarter_criticised") not in got  # met the standard in March
    assert rows_by_unit(res)["C"]["meets_standard"] is True


def test_a_quarter_with_a_missing_month_is_a_clear_error() -> None:
    rows = {**month("A", 1), **month("A", 3)}
    with pytest.raises(EvaluationError, match=r"no row for period 2022-02 .*unit\(s\) A"):
        score(RB, make_dataset(RB, rows), "2022Q1")


def test_annual_veto() -> None:
    rows: dict = {}
    for u in ("A", "B", "C"):
        for m in range(1, 13):
            rows.update(month(u, m, key_work_points=5 if u == "A" else 0))
    rows[("A", "2022-06")] = {
        **FULL,
        "key_work_points": 5,
        "serious_incidents": 1,
        "complaints_verified": 1,
    }
    res = score(RB, make_dataset(RB, rows), "2022", street(["A", "B", "C"]))
    got = rows_by_unit(res)
    assert got["A"]["vetoed"] is True and got["A"]["total"] > got["B"]["total"]
    assert got["A"]["rank"] == 3 and got["B"]["rank"] == 1 and got["C"]["rank"] == 1
    assert [(o["unit"], o["kind"]) for o in res.outcomes.to_dicts()] == [("A", "veto")]


# ------------------------------------------------------------------ money


def test_money_lines_for_one_community_month() -> None:
    """§5 by hand: C1 in March with 2 ligations, 1 IUD, 7 pregnancies tracked of 4 due
    (P1 met), 1 specialist, 3 grid workers; the street has 2 cadres."""
    values = {
        "ligations": 2,
        "iud_insertions": 1,
        "preg_tracked": 7,
        "preg_target": 4,
        "staff_grid": 3,
    }
    rows = {**month("C1", **values), ("ST", "2022-03"): {"street_cadres": 2}}
    sheet = payment_sheet(RB, make_dataset(RB, rows), "2022-03", street(["C1"]))
    lines = {(r["unit"], r["code"], r["funder"]): r["amount_fen"] for r in sheet.lines.to_dicts()}
    assert lines == {
        ("C1", "ligation_work", "street"): 2 * 50_000,
        ("C1", "ligation_client", "street"): 2 * 50_000,
        ("C1", "iud_work", "street"): 10_000,
        ("C1", "iud_client", "street"): 10_000,
        ("C1", "preg_work", "street"): 7 * 5_000,
        ("C1", "preg_over_work", "street"): 3 * 20_000,
        ("C1", "specialist_subsidy", "district"): 3_000,
        ("C1", "specialist_subsidy", "street"): 17_000,
        ("C1", "specialist_subsidy", "community"): 10_000,
        ("C1", "grid_subsidy", "community"): 3 * 5_000,
        ("C1", "grid_subsidy", "street"): 3 * 5_000,
        ("ST", "cadre_subsidy", "street"): 2 * 20_000,
    }
    assert set(sheet.lines["status"]) == {"pending"}
    assert sheet.totals_by_funder() == {"community": 25_000, "district": 3_000, "street": 387_000}


def test_pregnancy_bonus_only_when_p1_meets_its_threshold() -> None:
    values = {
        "preg_tracked": 7,
        "preg_target": 4,
        "preg_total": 10,
        "preg_known_6m": 7,
    }  # 70 % < 75 %
    rows = {**month("C1", **values), ("ST", "2022-03"): {"street_cadres": 1}}
    sheet = payment_sheet(RB, make_dataset(RB, rows), "2022-03", street(["C1"]))
    assert "preg_over_work" not in set(sheet.lines["code"])
    assert "preg_work" in set(sheet.lines["code"])


def test_funder_totals_add_up_to_the_lines_exactly(example: tuple) -> None:
    ds, org, _ = example
    sheet = payment_sheet(RB, ds, "2022Q1", org)
    lines = sheet.lines
    assert (lines["count"] * lines["rate_fen"] == lines["amount_fen"]).all()
    by_funder = sum(sheet.totals_by_funder().values())
    by_unit = sum(sheet.subtotals_by_unit().values())
    exact = sum(Decimal(a) / 100 for a in lines["amount_fen"].to_list())
    assert by_funder == by_unit == sheet.total() == int(exact * 100)
    # the quarter's rewards are lines too
    rewards = lines.filter(pl.col("code") == "reward")
    assert dict(zip(rewards["unit"], rewards["amount_fen"], strict=True)) == {
        "C07": 200_000, "C06": 150_000, "C08": 100_000,
    }  # fmt: skip
    # every month of the quarter, and the street's own cadre lines
    assert set(lines["period"]) == {"2022-01", "2022-02", "2022-03", "2022Q1"}
    assert lines.filter(pl.col("unit") == "ST01")["code"].to_list() == ["cadre_subsidy"] * 3


def test_a_fractional_count_is_an_error() -> None:
    ds = make_dataset(RB, {**month("C1", ligations=1.5), ("ST", "2022-03"): {"street_cadres": 1}})
    with pytest.raises(EvaluationError, match=r"ligation_work .* C1 in 2022-03: .* whole number"):
        payment_sheet(RB, ds, "2022-03", street(["C1"]))


def test_approvals_mark_lines(tmp_path: Path) -> None:
    f = tmp_path / "approvals.csv"
    f.write_text(
        "unit,period,reviewed_by,approved_by\nC1,2022-03,王主任,李副主任\nC2,2022-03,赵主任,\n"
    )
    rows = {**month("C1", ligations=1), **month("C2", ligations=1)}
    rows[("ST", "2022-03")] = {"street_cadres": 1}
    sheet = payment_sheet(
        RB, make_dataset(RB, rows), "2022-03", street(["C1", "C2"]), read_approvals(f)
    )
    status = dict(zip(sheet.lines["unit"], sheet.lines["status"], strict=False))
    assert status == {"C1": "approved", "C2": "reviewed", "ST": "pending"}
    bad = tmp_path / "bad.csv"
    bad.write_text("unit,period,reviewed_by,approved_by\nC1,2022-03,,李副主任\n")
    with pytest.raises(InputErrors, match=r"row 2, column 'reviewed_by': approved before review"):
        read_approvals(bad)


def test_explanations_show_placement_flags_and_outcomes(example: tuple) -> None:
    from kaohe.engine.explain import explain_unit, render_text, to_json
    from kaohe.periods import Period

    ds, org, _ = example
    march = explain_unit(RB, ds, org, Period.parse("2022-03"), "C11")
    assert march.rank == 9  # forced placement, decided by the vectorised engine
    assert march.placement and "倒数3名" in march.placement
    assert {f.code: f.value for f in march.flags}["meets_standard"] is True
    q1 = to_json(explain_unit(RB, ds, org, Period.parse("2022Q1"), "C07"))
    reward = next(o for o in q1["outcomes"] if o["code"] == "reward")
    assert reward["amount"] == 2000.0 and "第1名2,000元" in reward["rule"]
    text = render_text(explain_unit(RB, ds, org, Period.parse("2022-03"), "C09"))
    assert "通报批评" in text and "rank > n - last_places and not meets_standard" in text


def test_the_block_without_complaints_is_a_rulebook_choice() -> None:
    """No complaint: read literally, the last-3 block still splits a tie across its edge;
    with only_when_flagged the group is ranked plainly (1, 1, 3, 4)."""
    rows: dict = {}
    for u, kw in {"A": 10.0, "B": 10.0, "C": 9.0, "D": 7.0}.items():
        rows.update(month(u, key_work_points=kw))
    org = street(["A", "B", "C", "D"])
    literal = {
        u: r["rank"]
        for u, r in rows_by_unit(score(RB, make_dataset(RB, rows), "2022-03", org)).items()
    }
    assert literal == {"A": 1, "B": 2, "C": 3, "D": 4}  # B falls into the block of the last 3
    from kaohe.rulebook.loader import load_rulebook_text

    text = (
        Path(RB.file)
        .read_text(encoding="utf-8")
        .replace(
            "    periods: [month]                   # 季度排名不强制排位",
            "    periods: [month]\n    only_when_flagged: true",
        )
    )
    rb = load_rulebook_text(text)
    plain = {
        u: r["rank"]
        for u, r in rows_by_unit(score(rb, make_dataset(rb, rows), "2022-03", org)).items()
    }
    assert plain == {"A": 1, "B": 1, "C": 3, "D": 4}
