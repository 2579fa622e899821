"""Explanations: why a unit got its score, line by line (village-1000.md §6).

An explanation is built from the reference interpreter's trace
(:mod:`kaohe.engine.reference`) for one unit: for every item the inputs used
(with year-to-date targets), each term's points (base, per-case bonuses and
deductions, the floor, a veto…), the item score, the plan's wording and the
spec clause; then the bonuses and deductions (加分、扣分), the rank bonuses of
each step, the total and the rank.  Every printed figure is rounded half-up
to 2 decimals for display only; when rounding makes the printed lines differ
from the printed sum by a cent, a "尾差" line says so, so a reader can always
re-add the total by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl
from rich.cells import cell_len

from kaohe.engine.reference import (
    Input,
    ItemTrace,
    Term,
    UnitResult,
    assessed_groups,
    dataset_values,
    num_text,
    score_units,
    steps_of,
)
from kaohe.engine.result import ScoreResult
from kaohe.errors import EvaluationError
from kaohe.io.dataset import UNIT, Dataset, OrgUnits
from kaohe.numbers import fmt2, round2
from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.rulebook.schema import Item

#: width of a term line in terminal cells (CJK characters count 2)
WIDTH = 76


@dataclass
class PeriodExplanation:
    """An item's score for one step (per-period items, or a step of a summed period)."""

    period: str
    label: str
    score: float
    inputs: list[Input]
    terms: list[Term]
    vetoed: bool = False


@dataclass
class ItemExplanation:
    code: str
    name: str
    group: str | None
    group_name: str | None
    points: float | None
    score: float
    source: str
    clause: str
    inputs: list[Input]
    terms: list[Term]  # add up to score; a per-period item has one "period" term per step
    periods: list[PeriodExplanation] = field(default_factory=list)
    vetoed: bool = False


@dataclass
class AdjustmentLine:
    code: str
    label: str
    unit: str
    count: float
    each: float  # signed points per case
    points: float
    clause: str = ""


@dataclass
class StepLine:
    """The unit's standing after one step and the rank bonus it earned."""

    period: str
    label: str
    total: float
    rank: int
    rank_bonus: float


@dataclass
class FlagLine:
    code: str
    label: str
    value: bool
    rule: str  # the flag's rule in words
    clause: str


@dataclass
class OutcomeLine:
    code: str
    label: str
    kind: str
    rule: str  # the condition and/or the amounts by rank
    amount_fen: int | None
    payee: str | None
    funder: str | None
    clause: str


@dataclass
class Explanation:
    rulebook: str
    rulebook_name: str
    period: str
    period_label: str
    scope: str  # how the period is assessed, in Chinese
    how: str  # step | year | sum (see kaohe.engine.reference.steps_of)
    unit: str
    name: str
    group: str | None
    group_name: str | None
    total: float
    rank: int
    rank_bonus: float
    items: list[ItemExplanation]
    adjustments: list[AdjustmentLine]
    steps: list[StepLine]
    #: flags (达标…), forced placement, veto and outcomes, from the vectorised engine
    flags: list[FlagLine] = field(default_factory=list)
    placement: str | None = None
    vetoed: bool = False
    outcomes: list[OutcomeLine] = field(default_factory=list)

    @property
    def items_total(self) -> float:
        return sum(it.score for it in self.items)

    @property
    def adjustments_total(self) -> float:
        return sum(a.points for a in self.adjustments)


# ---------------------------------------------------------------- building


def _period_label(text: str) -> str:
    return Period.parse(text).label_zh


_KIND_ZH = {"year": "年", "tertial": "考核期", "quarter": "季度", "month": "月"}


def _scope(rb: LoadedRulebook, how: str) -> str:
    if how == "year" and rb.steps_per_year() > 1:
        return "按累积分制：以最后一个考核期的累计结果，加各考核期排名加分"
    if how == "step" and rb.model.periods.cumulative and rb.steps_per_year() > 1:
        return "按累积分制：数据为本年累计至本期，任务按累计比例下达"
    if how == "sum":
        return f"各{_KIND_ZH[rb.model.periods.step.value]}得分合计"
    return ""


def _sub(s: ItemTrace) -> PeriodExplanation:
    period = s.period or ""
    return PeriodExplanation(period, _period_label(period), s.score, s.inputs, s.terms, s.vetoed)


def _item(
    rb: LoadedRulebook,
    item: Item,
    score: float,
    inputs: list[Input],
    terms: list[Term],
    periods: list[ItemTrace],
) -> ItemExplanation:
    group_names = {g.code: g.name for g in rb.model.groups}
    return ItemExplanation(
        code=item.code,
        name=item.name,
        group=item.group,
        group_name=group_names.get(item.group or ""),
        points=rb.points(item),
        score=score,
        source=item.source,
        clause=item.clause,
        inputs=inputs,
        terms=terms,
        periods=[_sub(s) for s in periods],
        vetoed=any(s.vetoed for s in periods) or any(t.kind == "veto" for t in terms),
    )


def _explanation(
    rb: LoadedRulebook,
    res: UnitResult,
    period: Period,
    name: str,
    group_name: str | None,
) -> Explanation:
    how, _ = steps_of(rb, period)
    traces = list(res.traces.values())
    items: list[ItemExplanation] = []
    adjustments: list[AdjustmentLine] = []
    if how == "sum":
        # each item is the sum of its step scores: one "period" term per step
        for idx, item in enumerate(rb.model.items):
            per_step = [t.items[idx] for t in traces]
            terms = [
                Term("period", f"{_period_label(s.period or '')}得分", s.score) for s in per_step
            ]
            items.append(_item(rb, item, res.items[item.code], [], terms, per_step))
        for idx, a in enumerate(rb.model.adjustments):
            count = sum(t.adjustments[idx].count for t in traces)
            each = rb.num(a.points)
            line = AdjustmentLine(a.code, a.label, a.unit, count, each, res.adjustments[a.code])
            adjustments.append(line)
    else:
        last = traces[-1]
        for item, tr in zip(rb.model.items, last.items, strict=True):
            items.append(_item(rb, item, tr.score, tr.inputs, tr.terms, tr.periods))
        for t in last.adjustments:
            adjustments.append(AdjustmentLine(t.code, t.label, t.unit, t.count, t.each, t.points))
    clauses = {a.code: a.clause for a in rb.model.adjustments}
    for line in adjustments:
        line.clause = clauses[line.code]
    return Explanation(
        rulebook=rb.code,
        rulebook_name=rb.model.name,
        period=str(period),
        period_label=period.label_zh,
        scope=_scope(rb, how),
        how=how,
        unit=res.unit,
        name=name,
        group=res.group,
        group_name=group_name,
        total=res.total,
        rank=res.rank,
        rank_bonus=res.rank_bonus,
        items=items,
        adjustments=[a for a in adjustments if a.count != 0 or a.points != 0],
        steps=[
            StepLine(s.period, _period_label(s.period), s.total, s.rank, s.rank_bonus)
            for s in res.steps
        ],
    )


def explain_unit(
    rb: LoadedRulebook,
    dataset: Dataset,
    units: OrgUnits | None,
    period: Period,
    unit: str,
    *,
    ranks: dict[str, int] | None = None,
) -> Explanation:
    """Explain one unit's result for ``period``.

    Only the unit's rank group is scored (by the reference interpreter).
    ``ranks`` (period text -> the unit's rank in its group) may be given by a
    caller that already ranked the group: it needs the asked period and, for
    a year of a cumulative scheme or a summed period, each of its steps; then
    only the unit itself is scored.
    """
    dataset, units = narrow_to_group(rb, dataset, units, unit)
    groups = assessed_groups(rb, dataset.units(), units)
    if unit not in groups:
        raise EvaluationError(f"unit {unit} is not an assessed unit of this data")
    group = groups[unit]
    names = units.name_of() if units is not None else {}
    how, steps = steps_of(rb, period)
    keys = [str(period)]
    if how != "step":
        keys += [str(Period(period.year, rb.model.periods.step, k)) for k in steps]
    fast = None
    if ranks is None:
        # the vectorised engine ranks the group (forced placement, vetoes) and decides
        # flags and outcomes; the interpreter below traces the unit's terms
        fast, ranks = _fast_ranks(rb, dataset, units, period, unit, keys)
    given: dict[str, dict[str, int]] | None = None
    if ranks is not None and all(k in ranks for k in keys):
        scored = [unit]  # the caller knows the ranks: score the unit alone
        given = {unit: dict(ranks)}
    else:
        scored = [u for u, g in groups.items() if g == group]
    data = dataset_values(rb, dataset, period.year, only=scored)
    values = {u: data.get(u, {}) for u in scored}
    res = score_units(rb, values, groups, period, given, detail={unit})[unit]
    group_name = names.get(group, group) if group is not None else None
    expl = _explanation(rb, res, period, names.get(unit, unit), group_name)
    if fast is not None:
        _add_outcomes(rb, expl, fast, unit)
    return expl


def _fast_ranks(
    rb: LoadedRulebook,
    dataset: Dataset,
    units: OrgUnits | None,
    period: Period,
    unit: str,
    keys: list[str],
) -> tuple[ScoreResult, dict[str, int]]:
    """The unit's rank for the period and each of its steps, from the vectorised engine."""
    from kaohe.engine.evaluate import rank_col
    from kaohe.engine.evaluate import score as fast_score

    result = fast_score(rb, dataset, period, units)
    row = result.table.filter(pl.col(UNIT) == unit).row(0, named=True)
    ranks = {str(period): int(row["rank"])}
    step_kind = rb.model.periods.step
    for key in keys[1:]:
        k = Period.parse(key).index
        if result.steps is not None and rank_col(k) in result.steps.columns:
            steps = result.steps.filter(pl.col(UNIT) == unit)
            ranks[key] = int(steps[rank_col(k)][0])
        else:
            sub = fast_score(rb, dataset, Period(period.year, step_kind, k), units)
            ranks[key] = int(sub.table.filter(pl.col(UNIT) == unit)["rank"][0])
    return result, ranks


def _add_outcomes(rb: LoadedRulebook, expl: Explanation, result: ScoreResult, unit: str) -> None:
    m = rb.model
    row = result.table.filter(pl.col(UNIT) == unit).row(0, named=True)
    for code, flag in m.flags.items():
        parts = []
        if flag.all_full:
            parts.append("、".join(flag.all_full) + "均得满分")
        if flag.when:
            parts.append(flag.when)
        if len(result.period.subperiods(m.periods.step)) > 1 and flag.over_steps == "last":
            parts.append("按最后一期")
        expl.flags.append(
            FlagLine(code, flag.label, bool(row[code]), "；".join(parts), flag.clause)
        )
    if m.ranking.placement is not None and unit in result.placed:
        expl.placement = m.ranking.placement.label
    expl.vetoed = bool(row["vetoed"])
    by_code = {o.code: o for o in m.outcomes}
    for o in result.outcomes_of(unit):
        spec = by_code[str(o["code"])]
        rule = spec.when or ""
        if spec.amount_by_rank:
            money = "，".join(f"第{r}名{rb.num(a):,.0f}元" for r, a in spec.amount_by_rank.items())
            rule = f"{rule}；{money}" if rule else money
        amount = o["amount_fen"]
        expl.outcomes.append(
            OutcomeLine(
                code=spec.code,
                label=spec.label,
                kind=spec.kind,
                rule=rule,
                amount_fen=int(amount) if isinstance(amount, int) else None,
                payee=spec.payee,
                funder=spec.funder,
                clause=spec.clause,
            )
        )


def narrow_to_group(
    rb: LoadedRulebook, dataset: Dataset, units: OrgUnits | None, unit: str
) -> tuple[Dataset, OrgUnits | None]:
    """The rows and org units of ``unit``'s rank group only (vectorised, so that
    explaining one unit of a million costs milliseconds, not a pass in Python).

    With the lookups made while reading (org positions of the parents and of the
    data rows' units) this takes integer tests only, and no pass over the data
    at all when its rows are in the org file's order."""
    if units is None or rb.model.ranking.group_by != "parent":
        return dataset, units
    org = units.frame
    hit = (org.get_column("code") == unit).arg_true()
    if hit.len() == 0:
        return dataset, units  # reported as not assessed below
    me = int(hit[0])
    parent = org.get_column("parent")[me]
    narrowed = _narrow_by_position(dataset, units, me, parent is None)
    if narrowed is not None:
        return narrowed
    same = pl.col("parent").is_null() if parent is None else pl.col("parent") == parent
    siblings = org.filter(same)["code"]
    keep = org.filter(
        pl.col("code").is_in(siblings.implode())
        | (pl.lit(False) if parent is None else pl.col("code") == parent)
        | pl.col("parent").is_in(siblings.implode())  # children make a sibling a non-leaf
    )
    rows = dataset.frame.filter(pl.col(UNIT).is_in(siblings.implode()))
    return Dataset(rows, dataset.file, dataset.variables, magnitudes=dataset.magnitudes), OrgUnits(
        keep, units.file
    )


def _narrow_by_position(
    dataset: Dataset, units: OrgUnits, me: int, root: bool
) -> tuple[Dataset, OrgUnits] | None:
    """:func:`narrow_to_group` from integer positions, when they are known (else None)."""
    positions = dataset.unit_positions(units)
    if positions is None or not units.has_parent_positions():
        return None
    up = units.parent_positions()
    mine = up[me]
    if mine is None and not root:
        return None  # a parent that is not a code of the file
    siblings = (up.is_null() if root else up == mine).arg_true()
    keep = [siblings]
    if not root:
        keep.append(pl.Series([mine], dtype=pl.UInt32))
    if units.is_parent().gather(siblings).any():  # children make a sibling a non-leaf
        keep.append(up.is_in(siblings.implode()).arg_true())
    org = units.frame[pl.concat(keep).unique().sort()]
    lo, hi = int(siblings.min()), int(siblings.max())  # type: ignore[arg-type]
    if hi - lo + 1 == siblings.len() and not positions.null_count() and positions.is_sorted():
        # the group's rows are one slice of the data: no pass over the other rows
        start = int(positions.search_sorted(lo, "left"))
        stop = int(positions.search_sorted(hi, "right"))
        rows = dataset.frame.slice(start, stop - start)
    else:
        rows = dataset.frame[positions.is_in(siblings.implode()).arg_true()]
    return Dataset(rows, dataset.file, dataset.variables, magnitudes=dataset.magnitudes), OrgUnits(
        org, units.file
    )


def explain_all(
    rb: LoadedRulebook, dataset: Dataset, units: OrgUnits | None, period: Period
) -> dict[str, Explanation]:
    """Explain every assessed unit (each unit scored once, in detail): for reports
    that include every unit's explanation, cheaper than one explain_unit per unit."""
    groups = assessed_groups(rb, dataset.units(), units)
    data = dataset_values(rb, dataset, period.year, only=list(groups))
    results = score_units(rb, {u: data.get(u, {}) for u in groups}, groups, period)
    names = units.name_of() if units is not None else {}
    return {
        u: _explanation(
            rb, r, period, names.get(u, u), names.get(r.group, r.group) if r.group else None
        )
        for u, r in results.items()
    }


# ---------------------------------------------------------------- text


def _leader(indent: int, label: str, points: float) -> str:
    """``  label ........ 12.34`` with the points right-aligned at WIDTH cells."""
    value = fmt2(points)
    left = " " * indent + label + " "
    dots = WIDTH - cell_len(left) - len(value) - 1
    return f"{left}{'.' * max(dots, 3)} {value}"


def _gap(parts: list[float], whole: float) -> float:
    """The rounding difference between the printed sum and the sum of the printed parts."""
    printed = sum((Decimal(fmt2(p)) for p in parts), Decimal(0))
    return float(Decimal(fmt2(whole)) - printed)


def _gap_line(
    indent: int, parts: list[float], whole: float, label: str = "尾差（四舍五入）"
) -> list[str]:
    """A line showing the rounding difference, when printed parts do not add up to the sum."""
    gap = _gap(parts, whole)
    return [_leader(indent, label, gap)] if gap != 0 else []


def _input_text(i: Input) -> str:
    unit = f" {i.unit}" if i.unit and i.kind != "parameter" else i.unit
    if i.annual is not None and i.share is not None:
        return (
            f"{i.label} {num_text(i.annual)} × {num_text(i.share)} = {num_text(i.value)}{unit}"
            "（按比例下达）"
        )
    return f"{i.label} {num_text(i.value)}{unit}"


def _inputs_line(indent: int, inputs: list[Input]) -> list[str]:
    if not inputs:
        return []
    return [" " * indent + "数据：" + "；".join(_input_text(i) for i in inputs)]


def _item_lines(it: ItemExplanation) -> list[str]:
    points = f"（{num_text(it.points)}分）" if it.points is not None else ""
    out = [f"{it.code} {it.name}{points}  得分 {fmt2(it.score)}"]
    if it.periods:
        for term, sub in zip(it.terms, it.periods, strict=True):
            out.append(_leader(2, term.label, term.points))
            out += _inputs_line(4, sub.inputs)
            out += [_leader(4, t.label, t.points) for t in sub.terms]
            out += _gap_line(4, [t.points for t in sub.terms], sub.score)
    else:
        out += _inputs_line(2, it.inputs)
        out += [_leader(2, t.label, t.points) for t in it.terms]
    out += _gap_line(2, [t.points for t in it.terms], it.score)
    basis = it.source
    if it.clause:
        basis += f"（{it.clause}）"
    if basis:
        out.append(f"  依据：{basis}")
    return out


def render_text(expl: Explanation) -> str:
    """The explanation as Chinese plain text (CJK-aware alignment, 2-decimal display)."""
    group = f"  所属：{expl.group_name}" if expl.group_name else ""
    rank_scope = f"{expl.group_name}内" if expl.group_name else ""
    lines = [
        expl.rulebook_name,
        f"考核单位：{expl.name}（{expl.unit}）{group}",
        f"考核期：{expl.period_label}" + (f"（{expl.scope}）" if expl.scope else ""),
        f"总分 {fmt2(expl.total)}  排名 {rank_scope}第{expl.rank}名",
        "",
    ]
    current: str | None = None
    for it in expl.items:
        if it.group is not None and it.group != current:
            current = it.group
            members = [x for x in expl.items if x.group == it.group]
            subtotal = sum(x.score for x in members)
            lines.append(f"【{it.group} {it.group_name or ''}】  小计 {fmt2(subtotal)}")
        lines += _item_lines(it)
        lines.append("")

    lines.append("加分、扣分")
    if expl.adjustments:
        for a in expl.adjustments:
            what = f"{num_text(a.count)} {a.unit}" if a.unit else num_text(a.count)
            lines.append(_leader(2, f"{a.label} {what} × {num_text(a.each)}", a.points))
    else:
        lines.append("  （无）")
    lines.append("")

    if expl.how == "year" and expl.steps:
        lines.append(f"考核期排名加分（{rank_scope or '全部单位中'}排名）")
        for s in expl.steps:
            label = f"{s.label} 累计总分 {fmt2(s.total)} 第{s.rank}名"
            lines.append(_leader(2, label, s.rank_bonus))
        lines.append("")
    elif expl.how == "sum" and expl.steps:
        lines.append("各期总分")
        for s in expl.steps:
            lines.append(_leader(2, f"{s.label} 第{s.rank}名", s.total))
        lines.append("")

    # the sums a reader re-adds: printed items, adjustments and bonuses to the printed total
    scores = [it.score for it in expl.items]
    points = [a.points for a in expl.adjustments]
    lines.append("合计")
    lines.append(_leader(2, "各项得分", expl.items_total))
    lines += _gap_line(4, scores, expl.items_total, "其中各项得分四舍五入尾差")
    lines.append(_leader(2, "加分、扣分", expl.adjustments_total))
    lines += _gap_line(4, points, expl.adjustments_total, "其中加分扣分四舍五入尾差")
    parts = [expl.items_total, expl.adjustments_total]
    if expl.how == "year" and expl.steps:
        lines.append(_leader(2, "考核期排名加分", expl.rank_bonus))
        parts.append(expl.rank_bonus)
    lines += _gap_line(2, parts, expl.total)
    lines.append(_leader(2, "总分", expl.total))
    lines.append(f"排名：{rank_scope}第{expl.rank}名")
    if expl.placement:
        lines.append(f"  {expl.placement}")
    if expl.vetoed:
        lines.append("  一票否决：列于最后")
    if expl.flags or expl.outcomes:
        lines.append("")
        lines.append("考核结果运用")
    for f in expl.flags:
        lines.append(f"  {f.label}：{'是' if f.value else '否'}（{f.rule}）")
    for o in expl.outcomes:
        money = f" {o.amount_fen / 100:,.2f}元" if o.amount_fen is not None else ""
        clause = f"（{o.clause}）" if o.clause else ""
        lines.append(f"  {o.label}{money}　依据：{o.rule}{clause}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- JSON


def _r(x: float) -> float:
    r = round2(x)
    assert r is not None
    return r


def _inputs_json(inputs: list[Input]) -> list[dict[str, Any]]:
    return [
        {
            "name": i.name,
            "label": i.label,
            "unit": i.unit,
            "kind": i.kind,
            "value": _r(i.value),
            "annual": round2(i.annual),
            "share": round2(i.share),
        }
        for i in inputs
    ]


def _terms_json(terms: list[Term]) -> list[dict[str, Any]]:
    return [{"kind": t.kind, "label": t.label, "points": _r(t.points)} for t in terms]


def to_json(expl: Explanation) -> dict[str, Any]:
    """The explanation as a JSON-able dict with stable keys; numbers rounded half-up to 2 decimals."""
    return {
        "rulebook": expl.rulebook,
        "rulebook_name": expl.rulebook_name,
        "period": expl.period,
        "period_label": expl.period_label,
        "unit": expl.unit,
        "name": expl.name,
        "group": expl.group,
        "group_name": expl.group_name,
        "total": _r(expl.total),
        "rank": expl.rank,
        "rank_bonus": _r(expl.rank_bonus),
        "items_total": _r(expl.items_total),
        "adjustments_total": _r(expl.adjustments_total),
        "vetoed": expl.vetoed,
        "placement": expl.placement,
        "flags": [
            {"code": f.code, "label": f.label, "value": f.value, "rule": f.rule, "clause": f.clause}
            for f in expl.flags
        ],
        "outcomes": [
            {
                "code": o.code,
                "label": o.label,
                "kind": o.kind,
                "rule": o.rule,
                "amount": None if o.amount_fen is None else o.amount_fen / 100,
                "payee": o.payee,
                "funder": o.funder,
                "clause": o.clause,
            }
            for o in expl.outcomes
        ],
        "items": [
            {
                "code": it.code,
                "name": it.name,
                "group": it.group,
                "points": it.points,
                "score": _r(it.score),
                "vetoed": it.vetoed,
                "source": it.source,
                "clause": it.clause,
                "inputs": _inputs_json(it.inputs),
                "terms": _terms_json(it.terms),
                "periods": [
                    {
                        "period": p.period,
                        "label": p.label,
                        "score": _r(p.score),
                        "vetoed": p.vetoed,
                        "inputs": _inputs_json(p.inputs),
                        "terms": _terms_json(p.terms),
                    }
                    for p in it.periods
                ],
            }
            for it in expl.items
        ],
        "adjustments": [
            {
                "code": a.code,
                "label": a.label,
                "unit": a.unit,
                "count": _r(a.count),
                "each": _r(a.each),
                "points": _r(a.points),
                "clause": a.clause,
            }
            for a in expl.adjustments
        ],
        "steps": [
            {
                "period": s.period,
                "total": _r(s.total),
                "rank": s.rank,
                "rank_bonus": _r(s.rank_bonus),
            }
            for s in expl.steps
        ],
    }
