"""Explanations (kaohe.engine.explain): complete, re-addable by hand, Chinese-first."""

from __future__ import annotations

import json
import math
import re
import time
from decimal import Decimal

import polars as pl
import pytest
from rich.cells import cell_len

from kaohe.engine.explain import (
    WIDTH,
    Explanation,
    ItemExplanation,
    explain_all,
    explain_unit,
    render_text,
    to_json,
)
from kaohe.engine.reference import Term, score_all
from kaohe.errors import EvaluationError
from kaohe.io.dataset import PERIOD, UNIT, Dataset, OrgUnits
from kaohe.numbers import round2
from kaohe.periods import Period
from kaohe.rulebook.loader import load_rulebook, load_rulebook_text
from tests.helpers import make_dataset
from tests.test_reference import FIXTURES, MONTHLY, example_dataset, example_units

RB = load_rulebook("village-1000")
DATA = example_dataset()
UNITS = example_units()
EXAMPLE_UNITS = ["V000", "V001", "V002", "V003", "V004", "V005"]


def with_value(ds: Dataset, unit: str, period: str, var: str, value: float | None) -> Dataset:
    hit = (pl.col(UNIT) == unit) & (pl.col(PERIOD) == period)
    new = pl.when(hit).then(pl.lit(value, pl.Float64)).otherwise(pl.col(var))
    frame = ds.frame.with_columns(new.alias(var))
    return Dataset(frame, ds.file, ds.variables)


def explain(unit: str, period: str, ds: Dataset = DATA) -> Explanation:
    return explain_unit(RB, ds, UNITS, Period.parse(period), unit)


# ---------------------------------------------------------------- re-adding by hand


@pytest.mark.parametrize("period", ["2022", "2022T2"])
@pytest.mark.parametrize("unit", EXAMPLE_UNITS)
def test_terms_add_up_to_items_and_items_to_the_total(unit: str, period: str) -> None:
    expl = explain(unit, period)
    for it in expl.items:
        assert math.fsum(t.points for t in it.terms) == pytest.approx(it.score, abs=1e-9)
        for sub in it.periods:
            assert math.fsum(t.points for t in sub.terms) == pytest.approx(sub.score, abs=1e-9)
    parts = [it.score for it in expl.items] + [a.points for a in expl.adjustments]
    assert math.fsum([*parts, expl.rank_bonus]) == pytest.approx(expl.total, abs=1e-9)
    assert math.fsum(s.rank_bonus for s in expl.steps) == expl.rank_bonus
    # the same result as scoring everything
    full = score_all(RB, DATA, Period.parse(period), UNITS)[unit]
    assert (expl.total, expl.rank, expl.rank_bonus, expl.group) == (
        full.total,
        full.rank,
        full.rank_bonus,
        full.group,
    )


def test_explanation_matches_expected_json() -> None:
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    for period, rows in expected.items():
        for e in rows:
            j = to_json(explain(e["unit"], period))
            assert (j["total"], j["rank"], j["group"]) == (e["total"], e["rank"], e["group"])
            assert {it["code"]: it["score"] for it in j["items"]} == e["items"]
            assert {a["code"]: a["points"] for a in j["adjustments"]} == e["adjustments"]


# ---------------------------------------------------------------- text


def test_text_shows_names_sources_and_clauses() -> None:
    expl = explain("V000", "2022")
    text = render_text(expl)
    assert text.startswith("村级人口和计划生育目标管理责任制考核（千分制）\n")
    assert "考核单位：村V000（V000）  所属：乡镇0" in text
    assert "总分 758.84  排名 乡镇0内第3名" in text
    for item in RB.model.items:
        assert f"{item.code} {item.name}（" in text
        assert f"依据：{item.source}（{item.clause}）" in text
    assert "F1 完成结扎任务（180分）  得分 235.00" in text
    assert "二女户结扎 1 例 × 20" in text
    # rank after each step and its bonus, then the sums a reader re-adds
    assert "2022年第1考核期 累计总分 739.17 第3名" in text
    lines = text.splitlines()
    assert any(line.startswith("  各项得分 ") and line.endswith(" 853.84") for line in lines)
    assert any(line.startswith("  加分、扣分 ") and line.endswith(" -95.00") for line in lines)
    assert any(line.startswith("  总分 ") and line.endswith(" 758.84") for line in lines)


ITEM_HEADER = re.compile(r"^[A-Z]+\d+ .*  得分 (-?\d+\.\d\d)$")
LEADER = re.compile(r"^( +)(.*?) \.{3,} (-?\d+\.\d\d)$")


@pytest.mark.parametrize("period", ["2022", "2022T1", "2022T3"])
@pytest.mark.parametrize("unit", EXAMPLE_UNITS)
def test_printed_numbers_re_add(unit: str, period: str) -> None:
    """Re-adding the printed figures by hand gives the printed sums (尾差 lines included)."""
    lines = render_text(explain(unit, period)).splitlines()
    printed: dict[str, Decimal] = {}
    item_scores: list[Decimal] = []
    i = 0
    while i < len(lines):
        header = ITEM_HEADER.match(lines[i])
        if header:
            score = Decimal(header.group(1))
            item_scores.append(score)
            terms: list[Decimal] = []
            i += 1
            while i < len(lines) and lines[i].startswith("  "):
                m = LEADER.match(lines[i])
                if m and len(m.group(1)) == 2:
                    terms.append(Decimal(m.group(3)))
                i += 1
            assert sum(terms) == score, lines[i - 1]
            continue
        m = LEADER.match(lines[i])
        if m and len(m.group(1)) in (2, 4):
            printed.setdefault(m.group(2), Decimal(m.group(3)))
        i += 1
    gap_items = printed.get("其中各项得分四舍五入尾差", Decimal(0))
    assert sum(item_scores) + gap_items == printed["各项得分"]
    parts = printed["各项得分"] + printed["加分、扣分"] + printed.get("考核期排名加分", Decimal(0))
    assert parts + printed.get("尾差（四舍五入）", Decimal(0)) == printed["总分"]


def test_text_shows_ytd_targets() -> None:
    text = render_text(explain("V001", "2022T2"))
    assert "生育服务证任务 20 × 0.7 = 14 个" in text
    assert "完成比例 11/14 × 75" in text


def test_term_lines_are_aligned_in_terminal_cells() -> None:
    text = render_text(explain("V001", "2022"))
    dotted = [line for line in text.splitlines() if " ... " in line or ".. " in line]
    assert dotted
    short = [line for line in dotted if cell_len(line) <= WIDTH]
    assert len(short) > len(dotted) * 0.9
    assert {cell_len(line) for line in short} == {WIDTH}


def test_floor_line_appears_when_the_floor_fires() -> None:
    # V001 as of T2: A2 = 12 − 3·7 = −9 → 0; E1 = 20 − 2·12.5 = −5 → 0
    expl = explain("V001", "2022T2")
    a2 = next(it for it in expl.items if it.code == "A2")
    assert [t.kind for t in a2.terms] == ["base", "deduction", "floor"]
    text = render_text(expl)
    assert "扣完为止（不低于0分）" in text
    floor_lines = [line for line in text.splitlines() if "扣完为止（不低于0分）" in line]
    assert floor_lines[0].endswith(" 9.00")
    assert floor_lines[1].endswith(" 5.00")
    # no floor line for an item that stays above 0
    e2 = next(it for it in expl.items if it.code == "E2")
    assert "floor" not in [t.kind for t in e2.terms]


def test_veto_line_appears_when_the_veto_fires() -> None:
    ds = with_value(DATA, "V000", "2022T1", "births_6plus", 1)
    expl = explain("V000", "2022", ds)
    b1 = next(it for it in expl.items if it.code == "B1")
    assert b1.vetoed
    assert b1.score == 0.0
    assert b1.terms[-1].kind == "veto"
    assert b1.terms[-1].points == pytest.approx(-7.5)  # 0 − (37.5 − 30)
    text = render_text(expl)
    veto = [line for line in text.splitlines() if "否决：出现6胎及以上出生，该项为0分" in line]
    assert len(veto) == 1
    assert veto[0].endswith(" -7.50")
    assert "B1 人口计划（计划外生育率）（60分）  得分 0.00" in text
    j = to_json(expl)
    b1_json = next(it for it in j["items"] if it["code"] == "B1")
    assert b1_json["vetoed"] is True
    assert b1_json["terms"][-1] == {
        "kind": "veto",
        "label": "否决：出现6胎及以上出生，该项为0分",
        "points": -7.5,
    }


def test_per_period_item_shows_each_period() -> None:
    text = render_text(explain("V000", "2022"))
    assert "C1 环孕检（75分）  得分 97.27" in text
    assert "比率 37/55 = 67.27%，达标分 25" in text
    for label, points in [("2022年第1考核期得分", "25.00"), ("2022年第2考核期得分", "22.27")]:
        line = next(line for line in text.splitlines() if line.startswith(f"  {label} "))
        assert line.endswith(" " + points)


def test_rounding_difference_is_shown() -> None:
    third = 1 / 3
    item = ItemExplanation(
        code="X1",
        name="三分",
        group=None,
        group_name=None,
        points=1.0,
        score=1.0,
        source="",
        clause="",
        inputs=[],
        terms=[Term("base", "一", third), Term("base", "二", third), Term("base", "三", third)],
    )
    expl = Explanation(
        rulebook="t",
        rulebook_name="测试",
        period="2022T1",
        period_label="2022年第1考核期",
        scope="",
        how="step",
        unit="U",
        name="U",
        group=None,
        group_name=None,
        total=1.0,
        rank=1,
        rank_bonus=0.0,
        items=[item],
        adjustments=[],
        steps=[],
    )
    text = render_text(expl)
    # 0.33 + 0.33 + 0.33 = 0.99, printed score 1.00: the cent is shown
    gap = [line for line in text.splitlines() if line.startswith("  尾差（四舍五入）")]
    assert len(gap) == 1
    assert gap[0].endswith(" 0.01")
    assert "（无）" in text  # no adjustments


# ---------------------------------------------------------------- JSON


def test_json_shape() -> None:
    j = to_json(explain("V001", "2022"))
    json.dumps(j, ensure_ascii=False)  # JSON-able
    top = ["rulebook", "period", "unit", "name", "group", "total", "rank", "rank_bonus"]
    top += ["items", "adjustments", "steps"]
    assert set(top) <= set(j)
    assert (j["rulebook"], j["period"], j["unit"], j["name"], j["group"]) == (
        "village-1000",
        "2022",
        "V001",
        "村V001",
        "TOWN1",
    )
    assert (j["total"], j["rank"], j["rank_bonus"]) == (1155.28, 1, 6.0)
    assert [it["code"] for it in j["items"]] == [it.code for it in RB.model.items]
    for it in j["items"]:
        keys = {"code", "name", "group", "points", "score", "source", "clause", "inputs", "terms"}
        assert keys | {"periods"} <= set(it)
        for t in it["terms"]:
            assert set(t) == {"kind", "label", "points"}
            assert t["points"] == round2(t["points"])
        for i in it["inputs"]:
            assert {"name", "label", "unit", "value", "annual", "share"} <= set(i)
    c1 = next(it for it in j["items"] if it["code"] == "C1")
    assert [p["period"] for p in c1["periods"]] == ["2022T1", "2022T2", "2022T3"]
    assert {"period", "score", "inputs", "terms"} <= set(c1["periods"][0])
    assert [set(s) for s in j["steps"]] == [{"period", "total", "rank", "rank_bonus"}] * 3
    assert [s["period"] for s in j["steps"]] == ["2022T1", "2022T2", "2022T3"]
    assert sum(s["rank_bonus"] for s in j["steps"]) == j["rank_bonus"]
    praise = next(a for a in j["adjustments"] if a["code"] == "township_praise")
    assert (praise["count"], praise["each"], praise["points"]) == (2.0, 2.0, 4.0)


def test_json_of_a_step_has_no_steps() -> None:
    j = to_json(explain("V000", "2022T2"))
    assert j["steps"] == []
    assert j["rank_bonus"] == 0.0
    c2 = next(it for it in j["items"] if it["code"] == "C2")
    target = next(i for i in c2["inputs"] if i["name"] == "certs_target")
    assert (target["value"], target["annual"], target["share"]) == (14.0, 20.0, 0.7)


# ---------------------------------------------------------------- the group only


def test_ranks_given_by_the_caller_are_used() -> None:
    computed = explain("V002", "2022")
    ranks = {s.period: s.rank for s in computed.steps}
    ranks["2022"] = computed.rank
    given = explain_unit(RB, DATA, UNITS, Period.parse("2022"), "V002", ranks=ranks)
    assert to_json(given) == to_json(computed)
    # the caller's ranks are trusted (the bonus follows them)
    odd = explain_unit(
        RB,
        DATA,
        UNITS,
        Period.parse("2022"),
        "V002",
        ranks={"2022T1": 2, "2022T2": 2, "2022T3": 2, "2022": 3},
    )
    assert (odd.rank, odd.rank_bonus) == (3, 6.0)


def test_only_the_units_group_is_scored() -> None:
    # V001 (TOWN1) lacks a value: explaining a TOWN0 unit does not need it
    ds = with_value(DATA, "V001", "2022T1", "slogans", None)
    assert explain("V000", "2022", ds).rank == 3
    # the group is ranked by the vectorised engine, whose error names the row and column
    with pytest.raises(
        EvaluationError, match=r"column 'slogans': no value for unit V001 in period 2022T1"
    ):
        explain("V003", "2022", ds)
    # with the ranks given, not even the group is needed
    ranks = {"2022T1": 1, "2022T2": 1, "2022T3": 1, "2022": 1}
    expl = explain_unit(RB, ds, UNITS, Period.parse("2022"), "V003", ranks=ranks)
    assert expl.rank_bonus == 12.0


def test_explain_all_gives_each_units_explanation() -> None:
    for period in ("2022", "2022T2"):
        every = explain_all(RB, DATA, UNITS, Period.parse(period))
        assert list(every) == EXAMPLE_UNITS
        for unit, expl in every.items():
            assert to_json(expl) == to_json(explain(unit, period))


def test_not_an_assessed_unit() -> None:
    with pytest.raises(EvaluationError, match="TOWN0 is not an assessed unit"):
        explain("TOWN0", "2022")


def test_a_group_of_50_is_explained_quickly() -> None:
    # 54 units in one township: the year needs every unit scored after every step
    frames = [DATA.frame.with_columns((pl.col(UNIT) + f"_{i}").alias(UNIT)) for i in range(9)]
    frame = pl.concat(frames)
    codes = frame[UNIT].unique(maintain_order=True).to_list()
    units = OrgUnits(
        pl.DataFrame(
            {"code": ["T", *codes], "name": ["乡", *codes], "parent": [None] + ["T"] * len(codes)},
            schema={"code": pl.Utf8, "name": pl.Utf8, "parent": pl.Utf8},
        )
    )
    ds = Dataset(frame, "<54>", DATA.variables)
    explain_unit(RB, ds, units, Period.parse("2022"), codes[0])  # warm up
    start = time.perf_counter()
    expl = explain_unit(RB, ds, units, Period.parse("2022"), codes[0])
    elapsed = time.perf_counter() - start
    assert expl.rank >= 1
    # the target is well under 50 ms on a quiet machine; this only guards against
    # an accidental change of complexity (e.g. scoring the whole dataset)
    assert elapsed < 1.0


# ---------------------------------------------------------------- non-cumulative


def test_non_cumulative_quarter_explained_by_month() -> None:
    rb = load_rulebook_text(MONTHLY)
    rows = {
        ("A", "2022-01"): {"lapses": 1},
        ("A", "2022-02"): {"lapses": 0, "praise": 2},
        ("A", "2022-03"): {"lapses": 6},
        ("B", "2022-01"): {},
        ("B", "2022-02"): {},
        ("B", "2022-03"): {},
    }
    expl = explain_unit(rb, make_dataset(rb, rows), None, Period.parse("2022Q1"), "A")
    assert (expl.total, expl.rank, expl.how) == (20.0, 2, "sum")
    m1 = expl.items[0]
    assert [(t.kind, t.points) for t in m1.terms] == [
        ("period", 8.0),
        ("period", 10.0),
        ("period", 0.0),
    ]
    assert [p.period for p in m1.periods] == ["2022-01", "2022-02", "2022-03"]
    assert [a.count for a in expl.adjustments] == [2.0]
    text = render_text(expl)
    assert "各期总分" in text
    assert "2022年3月" in text
    assert [s["total"] for s in to_json(expl)["steps"]] == [8.0, 12.0, 0.0]
