"""Vectorised evaluation: score every unit of a dataset in one pass.

The dataset (one row per unit and period) is reshaped to one row per assessed
unit — annual variables as columns, each step's flows as ``name@j``, YTD sums
as ``name#k`` — and each item compiles (see :mod:`kaohe.engine.compile`) to a
Polars expression over that frame.  Ranks are computed within groups with
``rank('min')`` (competition ranking 1, 1, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from kaohe.engine.compile import Compiler, Context, flow_col, ytd_col
from kaohe.engine.result import ScoreResult
from kaohe.errors import EvaluationError, KaoheError
from kaohe.io.dataset import PERIOD, ROW, UNIT, Dataset, OrgUnits
from kaohe.periods import MONTHS, Period, PeriodKind
from kaohe.rulebook import expr
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.rulebook.schema import BandRule, ClampRule, FormulaRule, RatioRule, ThresholdRule

GROUP = "__group"
NAME = "__name"
TIE_DECIMALS = 9


def item_col(code: str, step: int) -> str:
    return f"__i:{code}@{step}"


def pp_col(code: str, step: int) -> str:
    return f"__pp:{code}@{step}"


def adj_col(code: str, step: int) -> str:
    return f"__a:{code}@{step}"


def total_col(step: int) -> str:
    return f"__t@{step}"


def rank_col(step: int) -> str:
    return f"__r@{step}"


def err_col(code: str, step: int) -> str:
    return f"__e:{code}@{step}"


@dataclass(frozen=True)
class Plan:
    """Which steps a requested period needs."""

    period: Period
    year: int
    data_steps: list[int]  # steps whose rows are read
    scored_steps: list[int]  # steps assessed (items computed)
    mode: str  # "step" | "cumulative_year" | "sum"

    def step_period(self, rb: LoadedRulebook, step: int) -> Period:
        return Period(self.year, rb.model.periods.step, step)


def plan_period(rb: LoadedRulebook, period: Period | str) -> Plan:
    p = period if isinstance(period, Period) else Period.parse(period)
    step_kind = rb.model.periods.step
    n = rb.steps_per_year()
    cumulative = rb.model.periods.cumulative
    if p.kind == step_kind:
        k = p.index
        data = list(range(1, k + 1)) if cumulative else [k]
        return Plan(p, p.year, data, [k], "step")
    if p.kind == PeriodKind.YEAR and cumulative:
        return Plan(p, p.year, list(range(1, n + 1)), list(range(1, n + 1)), "cumulative_year")
    if (
        not cumulative
        and MONTHS[p.kind] > MONTHS[step_kind]
        and MONTHS[p.kind] % MONTHS[step_kind] == 0
    ):
        steps = [s.index for s in p.subperiods(step_kind)]
        return Plan(p, p.year, steps, steps, "sum")
    example = Period(p.year, step_kind, 1)
    raise KaoheError(
        f"period '{p}' does not fit rulebook '{rb.code}', whose periods are {step_kind.value}s "
        f"(e.g. {example}) and years ({p.year})"
    )


def referenced_variables(rb: LoadedRulebook) -> set[str]:
    """Variables that some rule, formula or adjustment reads."""
    names: set[str] = {a.code for a in rb.model.adjustments}
    for item in rb.model.items:
        texts: list[str] = []
        r = item.rule
        if isinstance(r, RatioRule):
            texts += [r.ratio.done, r.ratio.target]
        elif isinstance(r, ThresholdRule):
            texts += r.threshold.rate if isinstance(r.threshold.rate, list) else [r.threshold.rate]
        elif isinstance(r, BandRule):
            texts.append(r.band.value)
        elif isinstance(r, ClampRule):
            texts.append(r.clamp.value)
        elif isinstance(r, FormulaRule):
            texts.append(r.formula)
        texts += [c.per for c in item.bonuses] + [c.per for c in item.deductions]
        if item.veto is not None:
            texts.append(item.veto.when)
        for t in texts:
            names |= expr.names(rb.formula(t))
    return {n for n in names if n in rb.variables}


def assessed_units(rb: LoadedRulebook, data: Dataset, units: OrgUnits | None) -> pl.DataFrame:
    """unit, __name, __group for every unit that is assessed (leaf units having data)."""
    present = data.frame.select(pl.col(UNIT).unique(maintain_order=True))
    if units is None:
        return present.with_columns(pl.col(UNIT).alias(NAME), pl.lit(None, pl.Utf8).alias(GROUP))
    org = units.frame
    leaves = org.filter(~pl.col("code").is_in(org["parent"].drop_nulls().implode()))
    group = pl.col("parent") if rb.model.ranking.group_by == "parent" else pl.lit(None, pl.Utf8)
    table = leaves.select(
        pl.col("code").alias(UNIT), pl.col("name").alias(NAME), group.alias(GROUP)
    )
    return present.join(table, on=UNIT, how="inner", maintain_order="left")


def _fail_missing_rows(
    rb: LoadedRulebook, data: Dataset, missing: pl.DataFrame, period: Period, kind: str
) -> None:
    codes = missing[UNIT].to_list()
    shown = ", ".join(codes[:10]) + (f" and {len(codes) - 10} more" if len(codes) > 10 else "")
    raise EvaluationError(
        f"{data.file}: no row for period {period} ({kind} variables) for unit(s) {shown}; "
        f"rulebook '{rb.code}' declares no default for them"
    )


def build_frame(rb: LoadedRulebook, data: Dataset, plan: Plan, table: pl.DataFrame) -> pl.DataFrame:
    """One row per assessed unit with annual columns and per-step flow columns."""
    used = referenced_variables(rb)
    annual = [v for v in rb.variables if v in used and rb.variables[v].kind == "annual"]
    flows = [v for v in rb.variables if v in used and rb.variables[v].kind == "flow"]
    f = data.frame
    out = table
    pieces: list[tuple[Period, list[str], dict[str, str], str]] = []
    if annual:
        pieces.append(
            (Period(plan.year, PeriodKind.YEAR), annual, {v: v for v in annual}, "annual")
        )
    for j in plan.data_steps:
        pieces.append((plan.step_period(rb, j), flows, {v: flow_col(v, j) for v in flows}, "flow"))
    for period, names, rename, kind in pieces:
        if not names:
            continue
        has = f"__has:{period}"
        rows = f.filter(pl.col(PERIOD) == str(period)).select(
            pl.col(UNIT),
            pl.col(ROW).alias(f"__row:{period}"),
            *[pl.col(v).alias(rename[v]) for v in names],
        )
        out = out.join(rows.with_columns(pl.lit(True).alias(has)), on=UNIT, how="left")
        missing = out.filter(pl.col(has).is_null())
        if missing.height:
            lacking = [v for v in names if rb.variables[v].default is None]
            if lacking:
                _fail_missing_rows(rb, data, missing, period, kind)
            out = out.with_columns(
                pl.col(rename[v]).fill_null(rb.variables[v].default) for v in names
            )
        nulls = out.select(pl.col(rename[v]).null_count() for v in names).row(0)
        for v, count in zip(names, nulls, strict=True):
            if count:
                bad = out.filter(pl.col(rename[v]).is_null()).row(0, named=True)
                raise EvaluationError(
                    f"{data.file}, row {bad[f'__row:{period}']}, column '{v}': no value for unit "
                    f"{bad[UNIT]} in period {period} ({rb.variables[v].label}) and no default"
                )
        out = out.drop(has, f"__row:{period}")
    return out


def score(
    rb: LoadedRulebook, data: Dataset, period: Period | str, units: OrgUnits | None = None
) -> ScoreResult:
    plan = plan_period(rb, period)
    table = assessed_units(rb, data, units)
    if table.height == 0:
        raise EvaluationError(f"{data.file}: no assessed units (no data rows for leaf units)")
    wide = build_frame(rb, data, plan, table)
    return evaluate_frame(rb, wide, plan)


def evaluate_frame(rb: LoadedRulebook, wide: pl.DataFrame, plan: Plan) -> ScoreResult:
    m = rb.model
    comp = Compiler(rb)
    cumulative = m.periods.cumulative
    used = referenced_variables(rb)
    flows = [v for v in rb.variables if v in used and rb.variables[v].kind == "flow"]
    lf = wide.lazy()

    # year-to-date sums
    if cumulative:
        ytd = []
        for v in flows:
            for k in plan.data_steps:
                ytd.append(
                    pl.sum_horizontal(pl.col(flow_col(v, j)) for j in range(1, k + 1)).alias(
                        ytd_col(v, k)
                    )
                    if k > 1
                    else pl.col(flow_col(v, 1)).alias(ytd_col(v, 1))
                )
        lf = lf.with_columns(ytd)

    # per-period items (never cumulated): one column per item and step
    exprs: list[pl.Expr] = []
    errs: list[str] = []
    for item in m.items:
        if item.per_period:
            for j in range(1, max(plan.scored_steps) + 1):
                s, e = comp.item(item, Context(j, False, rb.step_share(j)))
                exprs.append(s.alias(pp_col(item.code, j)))
                if e is not None:
                    exprs.append(e.alias(err_col(item.code, j)))
                    errs.append(err_col(item.code, j))
    if exprs:
        lf = lf.with_columns(exprs)

    # items, adjustments and totals per scored step
    exprs = []
    for k in plan.scored_steps:
        ctx = Context(k, cumulative, rb.share(k) if cumulative else rb.step_share(k))
        for item in m.items:
            if item.per_period:
                exprs.append(
                    pl.sum_horizontal(pl.col(pp_col(item.code, j)) for j in range(1, k + 1)).alias(
                        item_col(item.code, k)
                    )
                )
            else:
                s, e = comp.item(item, ctx)
                exprs.append(s.alias(item_col(item.code, k)))
                if e is not None:
                    exprs.append(e.alias(err_col(item.code, k)))
                    errs.append(err_col(item.code, k))
        for a in m.adjustments:
            exprs.append((rb.num(a.points) * comp.name(a.code, ctx)).alias(adj_col(a.code, k)))
    lf = lf.with_columns(exprs)
    lf = lf.with_columns(
        pl.sum_horizontal(
            [pl.col(item_col(i.code, k)) for i in m.items]
            + [pl.col(adj_col(a.code, k)) for a in m.adjustments]
        ).alias(total_col(k))
        for k in plan.scored_steps
    )

    def rank(col: str) -> pl.Expr:
        return (
            pl.col(col).round(TIE_DECIMALS).rank("min", descending=True).over(GROUP).cast(pl.Int64)
        )

    last = plan.scored_steps[-1]
    item_codes = [i.code for i in m.items]
    adj_codes = [a.code for a in m.adjustments]
    if plan.mode == "sum":
        final_items = [
            pl.sum_horizontal(pl.col(item_col(c, k)) for k in plan.scored_steps).alias(c)
            for c in item_codes
        ]
        final_adj = [
            pl.sum_horizontal(pl.col(adj_col(c, k)) for k in plan.scored_steps).alias(c)
            for c in adj_codes
        ]
        total = pl.sum_horizontal(pl.col(total_col(k)) for k in plan.scored_steps)
        bonus = pl.lit(0.0)
    else:
        final_items = [pl.col(item_col(c, last)).alias(c) for c in item_codes]
        final_adj = [pl.col(adj_col(c, last)).alias(c) for c in adj_codes]
        total = pl.col(total_col(last))
        bonus = pl.lit(0.0)
        if plan.mode == "cumulative_year" and m.ranking.rank_bonus:
            lf = lf.with_columns(rank(total_col(k)).alias(rank_col(k)) for k in plan.scored_steps)
            points = {int(r): rb.num(p) for r, p in m.ranking.rank_bonus.items()}
            bonus = pl.sum_horizontal(
                pl.col(rank_col(k)).replace_strict(points, default=0.0, return_dtype=pl.Float64)
                for k in plan.scored_steps
            )
            total = total + bonus
    lf = lf.with_columns(total.alias("total"), bonus.alias("rank_bonus"))
    lf = lf.with_columns(rank("total").alias("rank"))

    step_cols = [c for k in plan.scored_steps for c in (total_col(k), rank_col(k))]
    out = lf.select(
        pl.col(UNIT),
        pl.col(NAME).alias("name"),
        pl.col(GROUP).alias("group"),
        "total",
        "rank",
        "rank_bonus",
        *final_items,
        *final_adj,
        *[pl.col(e) for e in errs],
        *[pl.col(c) for c in step_cols if plan.mode == "cumulative_year" and m.ranking.rank_bonus],
    ).collect()

    if errs:
        _check_errors(out, errs)
        out = out.drop(errs)
    steps = None
    if plan.mode == "cumulative_year" and m.ranking.rank_bonus:
        steps = out.select(UNIT, *step_cols)
        out = out.drop(step_cols)
    out = out.sort(["group", "rank", UNIT], nulls_last=False)
    return ScoreResult(
        rulebook=rb,
        period=plan.period,
        table=out,
        item_codes=item_codes,
        adjustment_codes=adj_codes,
        steps=steps,
    )


def _check_errors(out: pl.DataFrame, errs: list[str]) -> None:
    flagged = out.select(pl.col(e).fill_null(False).any() for e in errs).row(0)
    for col, bad in zip(errs, flagged, strict=True):
        if bad:
            unit = out.filter(pl.col(col))[UNIT][0]
            code, step = col[len("__e:") :].split("@")
            raise EvaluationError(
                f"item {code}: division by zero in a formula for unit {unit} (step {step}); "
                "use if(), ratio() or pct() where a denominator may be zero"
            )
