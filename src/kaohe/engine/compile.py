"""Compile a rulebook into Polars expressions.

Every rule kind is turned into column arithmetic over a *wide* frame with one
row per assessed unit: annual variables are columns ``name``, the value of a
flow variable for step j is column ``name@j``, and its year-to-date sum as of
step k is ``name#k``.  A :class:`Context` says which column a name means for
the step being compiled, so the same item compiles once per step.

Formulas compile to ``(value, error)`` pairs: ``error`` is a boolean expression
that is true for the rows where a plain division by zero was *selected* (a
division in the branch of an ``if`` that was not taken does not count), or
``None`` when the formula cannot fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import polars as pl

from kaohe.rulebook import expr as ast
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.rulebook.schema import (
    BandRule,
    ClampRule,
    FormulaRule,
    FullRule,
    Item,
    PerCase,
    RatioRule,
    ThresholdRule,
)

Err = pl.Expr | None


def flow_col(name: str, step: int) -> str:
    return f"{name}@{step}"


def ytd_col(name: str, step: int) -> str:
    return f"{name}#{step}"


def value_col(name: str) -> pl.Expr:
    """A variable's column of the wide frame as Float64: the frame keeps integers as read
    (half the memory) and every computation is done in Float64 (for a Float64 column the
    cast is a no-op)."""
    return pl.col(name).cast(pl.Float64)


@dataclass(frozen=True)
class Context:
    """What names mean when compiling for one step.

    ``step``: the step whose data is read; ``cumulative``: flows read as YTD
    sums (``name#step``) rather than the step's own value (``name@step``);
    ``share``: the value of the built-in ``share`` and the factor of split
    annual targets.
    """

    step: int
    cumulative: bool
    share: float


def _or(a: Err, b: Err) -> Err:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


class Compiler:
    def __init__(
        self,
        rb: LoadedRulebook,
        names: dict[str, pl.Expr] | None = None,
        *,
        inline_ytd: bool = False,
    ) -> None:
        """``names`` overrides what names mean (item scores, flags, ranks in result formulas).

        ``inline_ytd``: a year-to-date flow is the sum of the step columns ``name@1…k``
        written into the expression (the same value as column ``name#k``, which then
        need not exist: nothing is materialised that only one step reads).  The sum is
        taken in the columns' own type: integer step columns must not overflow it when
        summed (:func:`kaohe.engine.evaluate.summable` sees to that)."""
        self.rb = rb
        self.names = names or {}
        self.inline_ytd = inline_ytd
        self.m = rb.model
        self.zero_met = self.m.conventions.zero_denominator == "met"

    # ------------------------------------------------------------ formulas

    def name(self, name: str, ctx: Context) -> pl.Expr:
        if name in self.names:
            return self.names[name]
        if name == "share":
            return pl.lit(ctx.share)
        if name in self.m.parameters:
            return pl.lit(float(self.m.parameters[name].value))
        var = self.rb.variables[name]
        if var.kind == "annual":
            col = value_col(name)
            return col * ctx.share if var.split else col
        if not ctx.cumulative:
            return value_col(flow_col(name, ctx.step))
        if not self.inline_ytd:
            return value_col(ytd_col(name, ctx.step))
        if ctx.step == 1:
            return value_col(flow_col(name, 1))
        # summed in the step columns' own type, then cast once (integer counts: ≈ 25 % less
        # evaluation time than casting each step column); the evaluator widens integer
        # columns whose sum could overflow their type first (evaluate.summable)
        return pl.sum_horizontal(pl.col(flow_col(name, j)) for j in range(1, ctx.step + 1)).cast(
            pl.Float64
        )

    def formula(self, text: str, ctx: Context) -> tuple[pl.Expr, Err]:
        return self.node(self.rb.formula(text), ctx)

    def node(self, n: ast.Node, ctx: Context) -> tuple[pl.Expr, Err]:
        if isinstance(n, ast.Num):
            return pl.lit(n.value), None
        if isinstance(n, ast.Name):
            return self.name(n.name, ctx), None
        if isinstance(n, ast.Unary):
            v, e = self.node(n.operand, ctx)
            return (~v if n.op == "not" else -v), e
        if isinstance(n, ast.Binary):
            a, ea = self.node(n.left, ctx)
            b, eb = self.node(n.right, ctx)
            err = _or(ea, eb)
            op = n.op
            if op == "+":
                return a + b, err
            if op == "-":
                return a - b, err
            if op == "*":
                return a * b, err
            if op == "/":
                return a / b, _or(err, b == 0)
            if op == "<":
                return a < b, err
            if op == "<=":
                return a <= b, err
            if op == ">":
                return a > b, err
            if op == ">=":
                return a >= b, err
            if op == "=":
                return a == b, err
            if op == "!=":
                return a != b, err
            if op == "and":
                return a & b, err
            if op == "or":
                return a | b, err
            raise AssertionError(op)
        return self.call(n, ctx)

    def call(self, n: ast.Call, ctx: Context) -> tuple[pl.Expr, Err]:
        f = n.func
        if f == "if":
            c, ec = self.node(n.args[0], ctx)
            a, ea = self.node(n.args[1], ctx)
            b, eb = self.node(n.args[2], ctx)
            err: Err = None
            if ea is not None or eb is not None:
                err = (
                    pl.when(c)
                    .then(ea if ea is not None else pl.lit(False))
                    .otherwise(eb if eb is not None else pl.lit(False))
                )
            return pl.when(c).then(a).otherwise(b), _or(ec, err)
        parts = [self.node(a, ctx) for a in n.args]
        vals = [p[0] for p in parts]
        err = reduce(_or, (p[1] for p in parts), None)
        if f == "min":
            return pl.min_horizontal(*vals), err
        if f == "max":
            return pl.max_horizontal(*vals), err
        if f == "abs":
            return vals[0].abs(), err
        if f == "ratio":
            return self.safe_ratio(vals[0], vals[1]), err
        if f == "pct":
            # 100·a/b (not 100·(a/b)): pct(29, 100) is exactly 29, as in threshold rates
            a, b = vals
            met = pl.lit(100.0 if self.zero_met else 0.0)
            return pl.when(b == 0).then(met).otherwise(100.0 * a / b), err
        if f == "min1":
            return pl.min_horizontal(vals[0], pl.lit(1.0)), err
        if f == "over":
            return pl.max_horizontal(vals[0] - vals[1], pl.lit(0.0)), err
        if f == "floor0":
            return pl.max_horizontal(vals[0], pl.lit(0.0)), err
        if f == "clamp":
            return pl.min_horizontal(pl.max_horizontal(vals[0], vals[1]), vals[2]), err
        raise AssertionError(f)

    def safe_ratio(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return pl.when(b == 0).then(pl.lit(1.0 if self.zero_met else 0.0)).otherwise(a / b)

    # ------------------------------------------------------------ items

    def points(self, item: Item) -> float:
        p = self.rb.points(item)
        if p is None:
            raise ValueError(f"item {item.code} has no points")
        return p

    def base(self, item: Item, ctx: Context) -> tuple[pl.Expr, Err]:
        """The sum of the rule's base terms."""
        rb = self.rb
        rule = item.rule
        if isinstance(rule, FullRule):
            return pl.lit(rb.num(rule.full) if rule.full is not None else self.points(item)), None
        if isinstance(rule, RatioRule):
            r = rule.ratio
            d, ed = self.formula(r.done, ctx)
            t, et = self.formula(r.target, ctx)
            ratio = self.safe_ratio(d, t)
            if r.cap:
                ratio = pl.min_horizontal(ratio, pl.lit(1.0))
            out = self.points(item) * ratio
            per_excess = rb.num(r.per_excess)
            if per_excess:
                out = out + per_excess * pl.max_horizontal(d - t, pl.lit(0.0))
            return out, _or(ed, et)
        if isinstance(rule, ThresholdRule):
            th = rule.threshold
            at = rb.num(th.at)
            pts = rb.num(th.points) if th.points is not None else self.points(item)
            if isinstance(th.rate, list):
                num, en = self.formula(th.rate[0], ctx)
                den, ed = self.formula(th.rate[1], ctx)
                rate = (
                    pl.when(den == 0)
                    .then(pl.lit(at if self.zero_met else 0.0))
                    .otherwise(100.0 * num / den)
                )
                err = _or(en, ed)
            else:
                rate, err = self.formula(th.rate, ctx)
            above = rb.num(th.above)
            met = pts + above * (rate - at) if above else pl.lit(pts)
            if th.below == "proportional":
                short = pts * rate / at
            else:
                short = pts + rb.num(th.below) * (at - rate)
            return pl.when(rate >= at).then(met).otherwise(short), err
        if isinstance(rule, BandRule):
            b = rule.band
            x, err = self.formula(b.value, ctx)
            lo, hi = rb.num(b.full_at_most), rb.num(b.zero_at_least)
            pts = rb.num(b.points) if b.points is not None else self.points(item)
            frac = ((hi - x) / (hi - lo)).clip(0.0, 1.0)
            return pts * frac, err
        if isinstance(rule, ClampRule):
            c = rule.clamp
            x, err = self.formula(c.value, ctx)
            hi = rb.num(c.max) if c.max is not None else self.points(item)
            return pl.min_horizontal(pl.max_horizontal(x, pl.lit(rb.num(c.min))), pl.lit(hi)), err
        if isinstance(rule, FormulaRule):
            return self.formula(rule.formula, ctx)
        raise AssertionError(rule)

    def cases(self, cases: list[PerCase], ctx: Context) -> tuple[pl.Expr | None, Err]:
        total: pl.Expr | None = None
        err: Err = None
        for pc in cases:
            v, e = self.formula(pc.per, ctx)
            term = self.rb.num(pc.points) * v
            total = term if total is None else total + term
            err = _or(err, e)
        return total, err

    def item(self, item: Item, ctx: Context) -> tuple[pl.Expr, Err]:
        """The item's score for one step (floor, cap and veto applied); kept on the
        rulebook when names have their default meaning (expressions are immutable)."""
        if self.names:
            return self._item(item, ctx)
        key = ("item", item.code, ctx, self.inline_ytd)
        hit = self.rb.compiled.get(key)
        if hit is None:
            hit = self.rb.compiled[key] = self._item(item, ctx)
        return hit

    def _item(self, item: Item, ctx: Context) -> tuple[pl.Expr, Err]:
        m = self.m
        score, err = self.base(item, ctx)
        pre_b, e1 = self.cases([c for c in item.bonuses if not c.after_floor], ctx)
        pre_d, e2 = self.cases([c for c in item.deductions if not c.after_floor], ctx)
        post_b, e3 = self.cases([c for c in item.bonuses if c.after_floor], ctx)
        post_d, e4 = self.cases([c for c in item.deductions if c.after_floor], ctx)
        err = reduce(_or, (e1, e2, e3, e4), err)
        if pre_b is not None:
            score = score + pre_b
        if pre_d is not None:
            score = score - pre_d
        floor = m.conventions.floor if item.floor == "default" else item.floor
        if floor is not None:
            score = pl.max_horizontal(score, pl.lit(self.rb.num(floor)))
        if post_b is not None:
            score = score + post_b
        if post_d is not None:
            score = score - post_d
        cap: float | str | None
        if item.cap == "default":
            cap = self.rb.points(item) if m.conventions.cap_at_points else None
        else:
            cap = item.cap
        if cap is not None:
            score = pl.min_horizontal(score, pl.lit(self.rb.num(cap)))
        if item.veto is not None:
            cond, ev = self.formula(item.veto.when, ctx)
            score = pl.when(cond).then(pl.lit(self.rb.num(item.veto.score))).otherwise(score)
            err = _or(err, ev)
        return score, err
