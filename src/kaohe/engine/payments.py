"""Money lines (发放明细): per-case and per-person subsidies per step, and rewards by rank.

Every amount is an integer number of fen (1/100 yuan): count × rate in fen, so
subtotals and funder totals add up to the line items exactly.  A count must be
a whole number; a fractional count is an error naming the unit and period.
"""

from __future__ import annotations

import polars as pl

from kaohe.engine.compile import Compiler, Context
from kaohe.engine.evaluate import plan_period, score
from kaohe.engine.result import PAYMENT_SCHEMA, PaymentSheet
from kaohe.errors import EvaluationError, KaoheError
from kaohe.io.dataset import PERIOD, ROW, UNIT, Dataset, OrgUnits
from kaohe.periods import MONTHS, Period
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.rulebook.schema import Payment


def _fen(yuan: float) -> int:
    return round(yuan * 100)


def payment_sheet(
    rb: LoadedRulebook,
    data: Dataset,
    period: Period | str,
    units: OrgUnits | None = None,
    approvals: pl.DataFrame | None = None,
) -> PaymentSheet:
    """All money lines of ``period``: each step's payments, and the money outcomes
    (rewards) of every sub-period of their kind inside ``period``.

    ``approvals`` (columns unit, period, reviewed_by, approved_by) marks lines
    reviewed or approved; every other line is pending (待审核)."""
    p = period if isinstance(period, Period) else Period.parse(period)
    m = rb.model
    plan = plan_period(rb, p)
    step_kind = m.periods.step
    frames: list[pl.DataFrame] = []
    names = units.name_of() if units is not None else {}
    for j in plan.scored_steps:
        sp = Period(p.year, step_kind, j)
        unit_pays = [x for x in m.payments if x.on == "unit"]
        if unit_pays:
            frames.append(_unit_lines(rb, data, sp, units, unit_pays))
        parent_pays = [x for x in m.payments if x.on == "parent"]
        if parent_pays:
            frames.append(_parent_lines(rb, data, sp, units, parent_pays, names))
    frames += _outcome_lines(rb, data, p, units)
    cols = [c for c in PAYMENT_SCHEMA if c not in ("status", "reviewed_by", "approved_by")]
    lines = (
        pl.concat([f.select(cols) for f in frames if f.height], how="vertical")
        if any(f.height for f in frames)
        else pl.DataFrame(schema={c: PAYMENT_SCHEMA[c] for c in cols})
    )
    lines = _apply_approvals(lines, approvals)
    codes = [x.code for x in m.payments] + [o.code for o in m.outcomes]
    order = {c: i for i, c in enumerate(codes)}
    lines = lines.with_columns(pl.col("code").replace_strict(order, default=99).alias("__o"))
    lines = lines.sort(["parent", "unit", "period", "__o", "funder"], nulls_last=True).drop("__o")
    return PaymentSheet(rulebook=rb, period=p, lines=lines.cast(PAYMENT_SCHEMA))  # type: ignore[arg-type]


def _lines(
    rb: LoadedRulebook,
    frame: pl.DataFrame,
    pays: list[Payment],
    comp: Compiler,
    period: Period,
    file: str,
) -> pl.DataFrame:
    """Money lines of one step for the rows of ``frame`` (unit, name, parent, _row, variables…)."""
    m = rb.model
    ctx = Context(0, False, 1.0)
    out = []
    for pay in pays:
        count, err = comp.formula(pay.per, ctx)
        cond = comp.formula(pay.when, ctx)[0] if pay.when else pl.lit(True)
        df = frame.with_columns(
            count.alias("__count"),
            cond.alias("__when"),
            (err if err is not None else pl.lit(False)).alias("__err"),
        )
        bad = df.filter(
            pl.col("__err")
            | pl.col("__count").is_null()
            | pl.col("__count").is_nan()
            | ((pl.col("__count") - pl.col("__count").round(0)).abs() > 1e-9)
            | (pl.col("__count") < 0)
        )
        if bad.height:
            row = bad.row(0, named=True)
            raise EvaluationError(
                f"{file}, row {row[ROW]}: payment {pay.code} ({pay.label}) for unit {row[UNIT]} in "
                f"{period}: the count '{pay.per}' must be a whole number ≥ 0, got {row['__count']}"
            )
        df = df.filter(pl.col("__when").fill_null(False) & (pl.col("__count") != 0))
        for funder, rate in pay.rates.items():
            rate_fen = _fen(rb.num(rate))
            out.append(
                df.select(
                    UNIT,
                    "name",
                    "parent",
                    pl.lit(str(period)).alias("period"),
                    pl.lit(pay.code).alias("code"),
                    pl.lit(pay.label).alias("label"),
                    pl.lit(pay.payee).alias("payee"),
                    pl.lit(m.payees.get(pay.payee, pay.payee)).alias("payee_label"),
                    pl.lit(funder).alias("funder"),
                    pl.lit(m.funders.get(funder, funder)).alias("funder_label"),
                    pl.lit(pay.per).alias("basis_variable"),
                    pl.col("__count").round(0).cast(pl.Int64).alias("count"),
                    pl.lit(rate_fen, pl.Int64).alias("rate_fen"),
                    (pl.col("__count").round(0).cast(pl.Int64) * rate_fen).alias("amount_fen"),
                    pl.lit(pay.basis).alias("basis"),
                    pl.lit(pay.clause).alias("clause"),
                )
            )
    return pl.concat(out) if out else pl.DataFrame()


def _unit_lines(
    rb: LoadedRulebook,
    data: Dataset,
    step: Period,
    units: OrgUnits | None,
    pays: list[Payment],
) -> pl.DataFrame:
    """Lines for assessed units: the step's own values, item scores and flags."""
    res = score(rb, data, step, units)
    t = res.table.select(
        UNIT, "name", pl.col("group").alias("parent"), *res.item_codes, *res.flag_codes
    )
    variables = [v for v, d in rb.variables.items() if d.level == "unit"]
    rows = data.frame.filter(pl.col(PERIOD) == str(step)).select(
        UNIT, ROW, *[pl.col(v).cast(pl.Float64) for v in variables]
    )
    frame = t.join(rows, on=UNIT, how="left")
    names: dict[str, pl.Expr] = {v: pl.col(v) for v in variables}
    names.update({c: pl.col(c) for c in (*res.item_codes, *res.flag_codes)})
    names["total"] = pl.col("total") if "total" in frame.columns else pl.lit(None)
    return _lines(rb, frame, pays, Compiler(rb, names), step, data.file)


def _parent_lines(
    rb: LoadedRulebook,
    data: Dataset,
    step: Period,
    units: OrgUnits | None,
    pays: list[Payment],
    names: dict[str, str],
) -> pl.DataFrame:
    """Lines computed on the parent units' own rows (e.g. street cadres)."""
    if units is None:
        raise KaoheError(
            f"rulebook '{rb.code}' pays on the parent unit's row: give the org units (--units)"
        )
    variables = [v for v, d in rb.variables.items() if d.level == "parent"]
    children = set(units.frame["parent"].drop_nulls().to_list())
    parent_of = units.parent_of()
    rows = data.frame.filter((pl.col(PERIOD) == str(step)) & pl.col(UNIT).is_in(list(children)))
    missing = sorted(children - set(rows[UNIT].to_list()))
    lacking = [v for v in variables if rb.variables[v].default is None]
    if missing and lacking:
        raise EvaluationError(
            f"{data.file}: no row for period {step} for parent unit(s) {', '.join(missing)} "
            f"(needed for {', '.join(lacking)})"
        )
    frame = rows.select(UNIT, ROW, *[pl.col(v).cast(pl.Float64) for v in variables])
    if missing:
        filler = pl.DataFrame(
            {UNIT: missing, ROW: [None] * len(missing)}
            | {v: [rb.variables[v].default] * len(missing) for v in variables},
            schema={UNIT: pl.Utf8, ROW: pl.Int64} | {v: pl.Float64 for v in variables},
        )
        frame = pl.concat([frame, filler])
    frame = frame.with_columns(
        pl.col(UNIT).replace_strict(names, default=pl.col(UNIT)).alias("name"),
        pl.col(UNIT).replace_strict(parent_of, default=None, return_dtype=pl.Utf8).alias("parent"),
        *[
            pl.col(v).fill_null(rb.variables[v].default)
            for v in variables
            if rb.variables[v].default is not None
        ],
    )
    comp = Compiler(rb, {v: pl.col(v) for v in variables})
    return _lines(rb, frame, pays, comp, step, data.file)


def _outcome_lines(
    rb: LoadedRulebook, data: Dataset, period: Period, units: OrgUnits | None
) -> list[pl.DataFrame]:
    """Money outcomes (rewards by rank) of each sub-period of their kind inside ``period``."""
    m = rb.model
    out = []
    money = [o for o in m.outcomes if o.amount_by_rank]
    kinds = sorted({k for o in money for k in o.periods}, key=lambda k: MONTHS[k])
    for kind in kinds:
        if MONTHS[kind] > MONTHS[period.kind]:
            continue
        for sub in period.subperiods(kind):
            res = score(rb, data, sub, units)
            codes = [o.code for o in money if kind in o.periods]
            hits = res.outcomes.filter(
                pl.col("code").is_in(codes) & pl.col("amount_fen").is_not_null()
            )
            if not hits.height:
                continue
            t = res.table.select(UNIT, "name", pl.col("group").alias("parent"), "rank")
            hits = hits.join(t, on=UNIT, how="left")
            out.append(
                hits.select(
                    UNIT,
                    "name",
                    "parent",
                    pl.lit(str(sub)).alias("period"),
                    "code",
                    "label",
                    "payee",
                    pl.col("payee")
                    .replace_strict(m.payees, default=pl.col("payee"))
                    .alias("payee_label"),
                    "funder",
                    pl.col("funder")
                    .replace_strict(m.funders, default=pl.col("funder"))
                    .alias("funder_label"),
                    pl.lit("rank").alias("basis_variable"),
                    pl.lit(1, pl.Int64).alias("count"),
                    pl.col("amount_fen").alias("rate_fen"),
                    "amount_fen",
                    pl.format("{}排名第{}名", pl.lit(sub.label_zh), pl.col("rank")).alias("basis"),
                    pl.col("code")
                    .replace_strict({o.code: o.clause for o in money}, default="")
                    .alias("clause"),
                )
            )
    return out


def _apply_approvals(lines: pl.DataFrame, approvals: pl.DataFrame | None) -> pl.DataFrame:
    if approvals is None or not lines.height:
        return lines.with_columns(
            pl.lit("pending").alias("status"),
            pl.lit(None, pl.Utf8).alias("reviewed_by"),
            pl.lit(None, pl.Utf8).alias("approved_by"),
        )
    a = approvals.select(
        pl.col("unit").cast(pl.Utf8),
        pl.col("period").cast(pl.Utf8),
        pl.col("reviewed_by").cast(pl.Utf8),
        pl.col("approved_by").cast(pl.Utf8),
    )
    joined = lines.drop("status", "reviewed_by", "approved_by", strict=False).join(
        a, on=["unit", "period"], how="left"
    )
    return joined.with_columns(
        pl.when(pl.col("reviewed_by").is_not_null() & pl.col("approved_by").is_not_null())
        .then(pl.lit("approved"))
        .when(pl.col("reviewed_by").is_not_null())
        .then(pl.lit("reviewed"))
        .otherwise(pl.lit("pending"))
        .alias("status")
    )
