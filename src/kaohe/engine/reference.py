"""The per-unit reference interpreter: the rulebook semantics in plain Python.

This module implements ``docs/rulebook-language.md`` one unit and one step at a
time, with ordinary floats and no Polars in the evaluation.  It is meant to be
slow and obviously correct: it is the oracle the vectorised engine is tested
against, and its trace (every input used, every term with its points) is what
explanations (:mod:`kaohe.engine.explain`) are built from.

Reading guide:

- :func:`evaluate_formula` evaluates a formula AST (translated node by node
  by :func:`compile_formula`);
- :func:`score_unit` scores one unit as of one step and returns a
  :class:`UnitTrace` whose terms add up to the item scores and whose item
  scores and adjustments add up to the total;
- :func:`score_all` scores every assessed unit of a dataset for a period
  (a step, a year, or a longer period of a non-cumulative scheme) and ranks
  them within their groups.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import polars as pl

from kaohe.errors import EvaluationError
from kaohe.io.dataset import PERIOD, UNIT, Dataset, OrgUnits
from kaohe.numbers import fmt2
from kaohe.periods import Period, PeriodError, PeriodKind
from kaohe.rulebook import expr
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

#: period text ("2022", "2022T1", …) -> {variable: value or None}
Values = Mapping[str, Mapping[str, float | None]]

SHARE = "share"


# ---------------------------------------------------------------- formulas
#
# A formula is evaluated by translating its AST, node by node, into nested
# Python closures (never into source code: nothing is executed but this
# module's own functions).  Types are checked during the translation: a
# condition where a number is needed, or the reverse, is an error before any
# value is read.

#: a compiled formula: env -> value
Compiled = Callable[[Mapping[str, float]], Any]

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "!=": operator.ne,
}


def _functions(met: bool) -> dict[str, Callable[[list[float]], float]]:
    """The numeric functions; ``met`` is the zero-denominator convention [I1]."""
    return {
        "min": min,
        "max": max,
        "abs": lambda a: abs(a[0]),
        "ratio": lambda a: (1.0 if met else 0.0) if a[1] == 0 else a[0] / a[1],
        "pct": lambda a: (100.0 if met else 0.0) if a[1] == 0 else 100.0 * a[0] / a[1],
        "min1": lambda a: min(a[0], 1.0),
        "over": lambda a: max(a[0] - a[1], 0.0),
        "floor0": lambda a: max(a[0], 0.0),
        "clamp": lambda a: min(max(a[0], a[1]), a[2]),
    }


_FUNCTIONS = {True: _functions(True), False: _functions(False)}


def _want(got: str, want: str, node: expr.Node) -> None:
    if got != want:
        what = "a condition (true/false)" if want == "bool" else "a number"
        raise EvaluationError(f"'{expr.to_text(node)}' is not {what}")


def _compile(node: expr.Node, met: bool) -> tuple[Compiled, str]:
    """(closure, type) for a node; type is "num" or "bool"."""
    if isinstance(node, expr.Num):
        value = float(node.value)
        return (lambda env: value), "num"

    if isinstance(node, expr.Name):
        name = node.name

        def read(env: Mapping[str, float]) -> float:
            try:
                return env[name]
            except KeyError:
                raise EvaluationError(f"unknown name '{name}'") from None

        return read, "num"

    if isinstance(node, expr.Unary):
        operand, typ = _compile(node.operand, met)
        if node.op == "not":
            _want(typ, "bool", node.operand)
            return (lambda env: not operand(env)), "bool"
        _want(typ, "num", node.operand)
        return (lambda env: -operand(env)), "num"

    if isinstance(node, expr.Binary):
        op = node.op
        left, ltyp = _compile(node.left, met)
        right, rtyp = _compile(node.right, met)
        if op in ("and", "or"):
            _want(ltyp, "bool", node.left)
            _want(rtyp, "bool", node.right)
            # both sides are evaluated (an error on either side is an error): only
            # if() chooses what is evaluated
            if op == "and":
                return (lambda env: operator.and_(left(env), right(env))), "bool"
            return (lambda env: operator.or_(left(env), right(env))), "bool"
        _want(ltyp, "num", node.left)
        _want(rtyp, "num", node.right)
        if op == "/":
            text = expr.to_text(node)

            def divide(env: Mapping[str, float]) -> float:
                b = right(env)
                if b == 0:
                    raise EvaluationError(
                        f"division by zero in '{text}' "
                        "(use if(), ratio() or pct() where a denominator may be 0)"
                    )
                return left(env) / b

            return divide, "num"
        if op in _ARITHMETIC:
            f = _ARITHMETIC[op]
            return (lambda env: f(left(env), right(env))), "num"
        if op in _COMPARISON:
            c = _COMPARISON[op]
            return (lambda env: c(left(env), right(env))), "bool"
        raise EvaluationError(f"unknown operator '{op}'")

    # a function call
    parts = [_compile(a, met) for a in node.args]
    if node.func == "if":
        if len(parts) != 3:
            raise EvaluationError("if() takes 3 arguments")
        (cond, ctyp), (yes, ytyp), (no, ntyp) = parts
        _want(ctyp, "bool", node.args[0])
        _want(ytyp, "num", node.args[1])
        _want(ntyp, "num", node.args[2])
        # only the chosen branch is evaluated
        return (lambda env: yes(env) if cond(env) else no(env)), "num"
    if node.func not in _FUNCTIONS[met]:
        raise EvaluationError(f"unknown function '{node.func}'")
    for (_, typ), arg in zip(parts, node.args, strict=True):
        _want(typ, "num", arg)
    fn = _FUNCTIONS[met][node.func]
    args = [p for p, _ in parts]
    return (lambda env: fn([a(env) for a in args])), "num"


def compile_formula(node: expr.Node, zero_denominator: str, want: str = "num") -> Compiled:
    """A formula AST as a function of the environment (``want``: "num" or "bool")."""
    fn, typ = _compile(node, zero_denominator == "met")
    _want(typ, want, node)
    return fn


def evaluate_formula(
    node: expr.Node, env: Mapping[str, float], zero_denominator: str
) -> float | bool:
    """The value of a formula AST for one unit.

    ``env`` maps every name the formula may use (variables, parameters,
    ``share``) to its value.  Plain division by zero raises
    :class:`EvaluationError`; ``ratio`` and ``pct`` follow the
    zero-denominator convention (``met``: 1 and 100, ``zero``: 0); ``if``
    evaluates only the chosen branch (``and``/``or`` evaluate both sides).
    A comparison or ``and``/``or``/``not`` gives a bool.
    """
    fn, typ = _compile(node, zero_denominator == "met")
    value = fn(env)
    return bool(value) if typ == "bool" else float(value)


# ---------------------------------------------------------------- traces


class Input(NamedTuple):
    """One value an item used: a variable (YTD or step value), a parameter or ``share``."""

    name: str
    label: str
    unit: str
    value: float  # the value used (a split target: annual × share)
    kind: str  # flow | annual | parameter | share
    annual: float | None = None  # split targets: the annual value
    share: float | None = None  # split targets: the share applied


class Term(NamedTuple):
    """One line of an item's score: kind, Chinese label and signed points.

    Kinds: completion, excess (ratio); base, above, below (threshold; base also
    for ``full``); band; assessed (clamp); formula; bonus; deduction; floor
    (what the floor added back); cap (what the cap cut); veto (veto score −
    score before the veto); period (a per-period item's step score).
    """

    kind: str
    label: str
    points: float


@dataclass
class ItemTrace:
    """An item's score as of one step, with the inputs used and the terms that make it up.

    The terms add up to ``score``.  A per-period item has one ``period`` term
    per elapsed step and the step's own trace in ``periods``.
    """

    code: str
    name: str
    points: float | None
    score: float
    terms: list[Term]
    inputs: list[Input]
    period: str | None = None  # the step this trace scores
    periods: list[ItemTrace] = field(default_factory=list)
    vetoed: bool = False


@dataclass(slots=True)
class AdjustmentTrace:
    code: str
    label: str
    unit: str
    count: float
    each: float  # signed points per case
    points: float  # count × each


@dataclass
class UnitTrace:
    """One unit scored as of one step: item traces, adjustments and the total.

    Item scores plus adjustment points add up to ``total``.
    """

    unit: str
    period: str  # the step, e.g. "2022T2"
    step: int
    share: float
    items: list[ItemTrace]
    adjustments: list[AdjustmentTrace]
    total: float

    def item(self, code: str) -> ItemTrace:
        for it in self.items:
            if it.code == code:
                return it
        raise KeyError(code)

    @property
    def item_scores(self) -> dict[str, float]:
        return {it.code: it.score for it in self.items}

    @property
    def adjustment_points(self) -> dict[str, float]:
        return {a.code: a.points for a in self.adjustments}


# ---------------------------------------------------------------- per-rulebook facts


class _Case(NamedTuple):
    """A per-case bonus or deduction, resolved: ``each × per`` points."""

    kind: str  # bonus | deduction
    per: expr.Node
    count: Compiled  # the number of cases
    each: float  # signed points per case
    label: str


@dataclass
class _ItemPlan:
    """An item with its formulas parsed and its numbers resolved (parameters read once)."""

    item: Item
    kind: str  # ratio | threshold | band | clamp | full | formula
    texts: dict[str, str]  # the rule's formulas by role, as written
    nodes: dict[str, expr.Node]  # the same, parsed
    fns: dict[str, Compiled]  # the same, compiled
    nums: dict[str, float]  # the rule's numbers by role
    proportional: bool  # threshold: below = proportional
    cap_ratio: bool  # ratio: cap the ratio at 1
    pre: list[_Case]  # bonuses and deductions before the floor
    after: list[_Case]  # after-floor bonuses and deductions
    floor: float | None
    cap: float | None
    veto: Compiled | None  # the veto condition
    veto_score: float
    names: list[str]  # every name the item uses, in order of appearance (for inputs)


@dataclass
class _Plan:
    """Facts about a rulebook computed once."""

    items: list[_ItemPlan]
    annual: list[str]  # annual variables any item needs
    flows: list[str]  # flow variables any item or adjustment needs
    split: set[str]  # split annual variables among them
    parameters: dict[str, float]
    adjustments: list[tuple[str, str, str, float]]  # code, label, unit, signed points each


_PLANS: dict[int, tuple[weakref.ref[LoadedRulebook], _Plan]] = {}


def _ordered_names(node: expr.Node, out: list[str]) -> None:
    if isinstance(node, expr.Name):
        if node.name not in out:
            out.append(node.name)
    elif isinstance(node, expr.Unary):
        _ordered_names(node.operand, out)
    elif isinstance(node, expr.Binary):
        _ordered_names(node.left, out)
        _ordered_names(node.right, out)
    elif isinstance(node, expr.Call):
        for a in node.args:
            _ordered_names(a, out)


def _item_plan(rb: LoadedRulebook, item: Item) -> _ItemPlan:
    def points() -> float:
        p = rb.points(item)
        if p is None:
            raise EvaluationError(f"item {item.code} needs its points")
        return p

    def num_or_points(v: float | str | None) -> float:
        return rb.num(v) if v is not None else points()

    rule = item.rule
    texts: dict[str, str] = {}
    nums: dict[str, float] = {}
    written: list[object] = []  # numbers as written (to list the parameters used)
    proportional = False
    cap_ratio = False
    if isinstance(rule, RatioRule):
        kind = "ratio"
        texts = {"done": rule.ratio.done, "target": rule.ratio.target}
        nums = {"points": points(), "per_excess": rb.num(rule.ratio.per_excess)}
        cap_ratio = rule.ratio.cap
        written = [rule.ratio.per_excess]
    elif isinstance(rule, ThresholdRule):
        kind = "threshold"
        t = rule.threshold
        if isinstance(t.rate, list):
            texts = {"num": t.rate[0], "den": t.rate[1]}
        else:
            texts = {"rate": t.rate}
        nums = {"at": rb.num(t.at), "points": num_or_points(t.points), "above": rb.num(t.above)}
        proportional = t.below == "proportional"
        if not proportional:
            nums["below"] = rb.num(t.below)
        written = [t.at, t.points, t.below, t.above]
    elif isinstance(rule, BandRule):
        kind = "band"
        b = rule.band
        texts = {"value": b.value}
        nums = {
            "points": num_or_points(b.points),
            "full_at_most": rb.num(b.full_at_most),
            "zero_at_least": rb.num(b.zero_at_least),
        }
        written = [b.full_at_most, b.zero_at_least, b.points]
    elif isinstance(rule, ClampRule):
        kind = "clamp"
        c = rule.clamp
        texts = {"value": c.value}
        nums = {"min": rb.num(c.min), "max": num_or_points(c.max)}
        written = [c.min, c.max]
    elif isinstance(rule, FullRule):
        kind = "full"
        nums = {"full": num_or_points(rule.full)}
        written = [rule.full]
    else:
        assert isinstance(rule, FormulaRule)
        kind = "formula"
        texts = {"formula": rule.formula}

    z = rb.model.conventions.zero_denominator

    def case(pc: PerCase, kind: str) -> _Case:
        sign = 1.0 if kind == "bonus" else -1.0
        node = rb.formula(pc.per)
        count = compile_formula(node, z)
        return _Case(kind, node, count, sign * rb.num(pc.points), pc.label or pc.per)

    cases = [(pc, case(pc, "bonus")) for pc in item.bonuses]
    cases += [(pc, case(pc, "deduction")) for pc in item.deductions]
    written += [pc.points for pc in (*item.bonuses, *item.deductions)]

    if item.floor == "default":
        floor = rb.model.conventions.floor
    else:
        floor = None if item.floor is None else rb.num(item.floor)
    if item.cap == "default":
        cap = points() if rb.model.conventions.cap_at_points else None
    else:
        cap = None if item.cap is None else rb.num(item.cap)
    written += [item.floor, item.cap]

    veto_node = rb.formula(item.veto.when) if item.veto is not None else None
    veto_score = rb.num(item.veto.score) if item.veto is not None else 0.0
    if item.veto is not None:
        written.append(item.veto.score)

    nodes = {role: rb.formula(text) for role, text in texts.items()}
    names: list[str] = []
    for node in [*nodes.values(), *(c.per for _, c in cases), *([veto_node] if veto_node else [])]:
        _ordered_names(node, names)
    for v in written:
        if isinstance(v, str) and v in rb.model.parameters and v not in names:
            names.append(v)

    return _ItemPlan(
        item=item,
        kind=kind,
        texts=texts,
        nodes=nodes,
        fns={role: compile_formula(node, z) for role, node in nodes.items()},
        nums=nums,
        proportional=proportional,
        cap_ratio=cap_ratio,
        pre=[c for pc, c in cases if not pc.after_floor],
        after=[c for pc, c in cases if pc.after_floor],
        floor=floor,
        cap=cap,
        veto=compile_formula(veto_node, z, "bool") if veto_node is not None else None,
        veto_score=veto_score,
        names=names,
    )


def _plan(rb: LoadedRulebook) -> _Plan:
    """The rulebook's plan, computed once per loaded rulebook."""
    cached = _PLANS.get(id(rb))
    if cached is not None and cached[0]() is rb:
        return cached[1]
    items = [_item_plan(rb, item) for item in rb.model.items]
    variables = rb.variables
    needed: list[str] = []
    for ip in items:
        needed += [n for n in ip.names if n in variables and n not in needed]
    needed += [a.code for a in rb.model.adjustments if a.code not in needed]
    plan = _Plan(
        items=items,
        annual=[n for n in needed if variables[n].kind == "annual"],
        flows=[n for n in needed if variables[n].kind == "flow"],
        split={n for n in needed if variables[n].split},
        parameters={n: float(p.value) for n, p in rb.model.parameters.items()},
        adjustments=[(a.code, a.label, a.unit, rb.num(a.points)) for a in rb.model.adjustments],
    )
    _PLANS[id(rb)] = (weakref.ref(rb), plan)
    weakref.finalize(rb, _PLANS.pop, id(rb), None)
    return plan


# ---------------------------------------------------------------- labels


def num_text(x: float) -> str:
    """A number for a label: half-up to 2 decimals, without trailing zeros (8, 7.5, 67.27)."""
    s = fmt2(x)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _unit_of(rb: LoadedRulebook, node: expr.Node) -> str:
    """The unit of measure of a formula: that of the (first) variable it reads."""
    names: list[str] = []
    _ordered_names(node, names)
    for n in names:
        if n in rb.variables:
            return rb.variables[n].unit
    return ""


def _count_label(label: str, count: float, unit: str, each: float) -> str:
    what = f"{num_text(count)} {unit}" if unit else num_text(count)
    return f"{label} {what} × {num_text(each)}"


# ---------------------------------------------------------------- evaluation context


def _step_text(rb: LoadedRulebook, year: int, step: int) -> str:
    return str(Period(year, rb.model.periods.step, step))


class _UnitData:
    """One unit's values, read and checked once: the annual values and each step's flows."""

    def __init__(
        self, rb: LoadedRulebook, values: Values, unit: str, year: int, detail: bool
    ) -> None:
        self.rb = rb
        self.values = values
        self.unit = unit
        self.year = year
        self.detail = detail
        self.plan = _plan(rb)
        self._annual: dict[str, float] | None = None
        self._flows: dict[int, dict[str, float]] = {}
        self._ytd: dict[int, dict[str, float]] = {}
        #: per-period items: (item code, step) -> the step's own trace
        self.own_traces: dict[tuple[str, int], ItemTrace] = {}

    def _missing(self, period: str, var: str) -> float:
        """A value that is not given: the variable's default, or an error."""
        row = self.values.get(period)
        v = self.rb.variables[var]
        if v.default is None:
            why = "no data row for this period" if row is None else "value not given"
            raise EvaluationError(
                f"unit {self.unit}, period {period}: missing value for '{var}' ({v.label}): {why}"
            )
        return float(v.default)

    def _row(self, period: str, names: list[str]) -> dict[str, float]:
        row = self.values.get(period) or {}
        out: dict[str, float] = {}
        for var in names:
            x = row.get(var)
            out[var] = float(x) if x is not None else self._missing(period, var)
        return out

    def annual(self) -> dict[str, float]:
        """The annual variables, from the year row."""
        if self._annual is None:
            self._annual = self._row(str(self.year), self.plan.annual)
        return self._annual

    def flows(self, step: int) -> dict[str, float]:
        """The flow variables of one step, from the step's own row."""
        if step not in self._flows:
            period = _step_text(self.rb, self.year, step)
            self._flows[step] = self._row(period, self.plan.flows)
        return self._flows[step]

    def ytd(self, step: int) -> dict[str, float]:
        """The flow variables summed over steps 1..step (year to date)."""
        if step not in self._ytd:
            own = self.flows(step)
            if step == 1:
                self._ytd[step] = dict(own)
            else:
                before = self.ytd(step - 1)
                self._ytd[step] = {var: before[var] + own[var] for var in self.plan.flows}
        return self._ytd[step]


@dataclass
class _Context:
    """The evaluation context of one assessment: every needed name's value."""

    env: dict[str, float]
    annual: dict[str, float]  # split targets: the annual value before the share
    share: float
    period: str  # the step scored (its text)
    detail: bool  # build labels and inputs (only when explaining)


def _context(data: _UnitData, flows: dict[str, float], share: float, period: str) -> _Context:
    """Names for one assessment: the given flow values (YTD or one step's), annual
    values from the year row (split targets × ``share``), parameters and ``share``."""
    plan = data.plan
    annual = data.annual()
    env = {**plan.parameters, SHARE: share, **flows}
    for var, x in annual.items():
        env[var] = x * share if var in plan.split else x
    split = {var: annual[var] for var in plan.split}
    return _Context(env=env, annual=split, share=share, period=period, detail=data.detail)


def _inputs(rb: LoadedRulebook, names: list[str], ctx: _Context) -> list[Input]:
    out: list[Input] = []
    for n in names:
        if n == SHARE:
            out.append(Input(SHARE, "任务比例", "", ctx.share, "share"))
        elif n in rb.variables:
            v = rb.variables[n]
            if n in ctx.annual:
                out.append(Input(n, v.label, v.unit, ctx.env[n], v.kind, ctx.annual[n], ctx.share))
            else:
                out.append(Input(n, v.label, v.unit, ctx.env[n], v.kind))
        elif n in rb.model.parameters:
            p = rb.model.parameters[n]
            out.append(Input(n, p.label or n, p.unit, float(p.value), "parameter"))
    return out


# ---------------------------------------------------------------- items


def _base_terms(rb: LoadedRulebook, ip: _ItemPlan, ctx: _Context) -> list[Term]:
    """The terms of the item's rule (the table "Rule kinds" of the semantics doc)."""
    z = rb.model.conventions.zero_denominator
    met = z == "met"
    env = ctx.env
    nums = ip.nums
    n = num_text
    d = ctx.detail  # labels are only built when explaining

    def ev(role: str) -> float:
        return float(ip.fns[role](env))

    if ip.kind == "ratio":
        p, per_excess = nums["points"], nums["per_excess"]
        done, target = ev("done"), ev("target")
        if target == 0:
            r = 1.0 if met else 0.0
            how = "任务为0，按完成计" if met else "任务为0，按0计"
            label = f"完成比例 {n(done)}/0（{how}）× {n(p)}" if d else ""
        else:
            r = done / target
            capped = "（超过1按1计）" if ip.cap_ratio and r > 1 else ""
            label = f"完成比例 {n(done)}/{n(target)}{capped} × {n(p)}" if d else ""
        if ip.cap_ratio:
            r = min(r, 1.0)
        terms = [Term("completion", label, p * r)]
        if per_excess != 0:
            excess = max(done - target, 0.0)
            unit = _unit_of(rb, ip.nodes["done"]) if d else ""
            label = _count_label("超额", excess, unit, per_excess) if d else ""
            terms.append(Term("excess", label, per_excess * excess))
        return terms

    if ip.kind == "threshold":
        at, pts = nums["at"], nums["points"]
        if "rate" in ip.nodes:
            rate = ev("rate")
            rate_text = f"{n(rate)}%" if d else ""
        else:
            num, den = ev("num"), ev("den")
            if den == 0:
                rate = at if met else 0.0
                how = "分母为0，按达标计" if met else "分母为0，按0计"
                rate_text = f"{n(num)}/0（{how}）" if d else ""
            else:
                rate = 100.0 * num / den
                rate_text = f"{n(num)}/{n(den)} = {n(rate)}%" if d else ""
        if rate >= at:
            terms = [Term("base", f"比率 {rate_text}，达到{n(at)}%得 {n(pts)}" if d else "", pts)]
            above = nums["above"]
            if above != 0:
                over = rate - at
                label = f"高于{n(at)}% {n(over)} 个百分点 × {n(above)}" if d else ""
                terms.append(Term("above", label, above * over))
            return terms
        if ip.proportional:
            if at == 0:
                raise EvaluationError("a proportional threshold of 0")
            label = (
                f"比率 {rate_text}，低于{n(at)}%按比例 {n(pts)} × {n(rate)}/{n(at)}" if d else ""
            )
            return [Term("base", label, pts * rate / at)]
        below = nums["below"]
        under = at - rate
        label = f"低于{n(at)}% {n(under)} 个百分点 × {n(below)}" if d else ""
        return [
            Term("base", f"比率 {rate_text}，达标分 {n(pts)}" if d else "", pts),
            Term("below", label, below * under),
        ]

    if ip.kind == "band":
        pts, lo, hi = nums["points"], nums["full_at_most"], nums["zero_at_least"]
        value = ev("value")
        frac = min(max((hi - value) / (hi - lo), 0.0), 1.0)
        label = f"指标值 {n(value)}（{n(lo)}及以内满分，{n(hi)}及以上0分）× {n(pts)}" if d else ""
        return [Term("band", label, pts * frac)]

    if ip.kind == "clamp":
        lo, hi = nums["min"], nums["max"]
        value = ev("value")
        label = f"评定分 {n(value)}（限 {n(lo)}–{n(hi)} 分）" if d else ""
        return [Term("assessed", label, min(max(value, lo), hi))]

    if ip.kind == "full":
        full = nums["full"]
        return [Term("base", f"基础分 {n(full)}" if d else "", full)]

    label = f"公式 {ip.texts['formula']}" if d else ""
    return [Term("formula", label, ev("formula"))]


def _case_term(rb: LoadedRulebook, c: _Case, ctx: _Context) -> Term:
    d = ctx.detail
    count = float(c.count(ctx.env))
    label = _count_label(c.label, count, _unit_of(rb, c.per), c.each) if d else ""
    return Term(c.kind, label, c.each * count)


def _score_item_step(rb: LoadedRulebook, ip: _ItemPlan, ctx: _Context, unit: str) -> ItemTrace:
    """Steps 1–5 of the semantics doc ("Bonuses, deductions, floor, cap, veto") for one step."""
    item = ip.item
    d = ctx.detail
    try:
        # 1. pre = base terms + bonuses − deductions (those before the floor)
        terms = _base_terms(rb, ip, ctx)
        terms += [_case_term(rb, c, ctx) for c in ip.pre]
        score = 0.0
        for t in terms:
            score += t.points
        # 2. floor: the term is the amount the floor added back
        floor = ip.floor
        if floor is not None and score < floor:
            label = f"扣完为止（不低于{num_text(floor)}分）" if d else ""
            terms.append(Term("floor", label, floor - score))
            score = floor
        # 3. after-floor bonuses and deductions
        for c in ip.after:
            t = _case_term(rb, c, ctx)
            terms.append(t)
            score += t.points
        # 4. cap: the term is the amount cut (negative)
        cap = ip.cap
        if cap is not None and score > cap:
            terms.append(Term("cap", f"封顶 {num_text(cap)} 分" if d else "", cap - score))
            score = cap
        # 5. veto: the term is the veto score − the score before the veto
        vetoed = False
        if ip.veto is not None and ip.veto(ctx.env):
            vetoed = True
            reason = item.veto.reason if item.veto is not None else ""
            terms.append(Term("veto", f"否决：{reason}" if d else "", ip.veto_score - score))
            score = ip.veto_score
    except EvaluationError as e:
        raise EvaluationError(f"unit {unit}, period {ctx.period}, item {item.code}: {e}") from None
    return ItemTrace(
        code=item.code,
        name=item.name,
        points=rb.points(item),
        score=score,
        terms=terms,
        inputs=_inputs(rb, ip.names, ctx) if ctx.detail else [],
        period=ctx.period,
        vetoed=vetoed,
    )


# ---------------------------------------------------------------- one unit


def _period_label(text: str) -> str:
    try:
        return Period.parse(text).label_zh
    except PeriodError:
        return text


def score_unit(
    rb: LoadedRulebook,
    values: Values,
    step: int,
    year: int,
    *,
    unit: str = "?",
    detail: bool = True,
) -> UnitTrace:
    """Score one unit as of ``step`` (1-based) of ``year``.

    ``values`` maps period texts ("2022", "2022T1", …) to {variable: value}.
    Cumulative scheme: flows are summed over steps 1..step, split annual
    targets are × the cumulative share, per-period items are scored on each
    step 1..step (split targets × that step's own share) and summed.
    Non-cumulative scheme: the step's own values, split targets × the step's
    own share.  A needed value that is
    missing and has no default raises :class:`EvaluationError` naming the unit
    and the period.  With ``detail=False`` labels and inputs are left empty
    (the scores are the same; used to rank a group quickly).
    """
    return _score_unit(_UnitData(rb, values, unit, year, detail), step)


def _score_unit(data: _UnitData, step: int) -> UnitTrace:
    rb = data.rb
    n = rb.steps_per_year()
    if not 1 <= step <= n:
        raise EvaluationError(f"step {step} is outside 1..{n}")
    cumulative = rb.model.periods.cumulative
    year = data.year
    period = _step_text(rb, year, step)
    if cumulative:  # year to date, targets × the cumulative share
        share = rb.share(step)
        ctx = _context(data, data.ytd(step), share, period)
    else:  # the step alone, targets × the step's own share
        share = rb.step_share(step)
        ctx = _context(data, data.flows(step), share, period)
    d = data.detail

    own: dict[int, _Context] = {}  # per-period items: each step's own context

    def own_trace(ip: _ItemPlan, j: int) -> ItemTrace:
        key = (ip.item.code, j)
        if key not in data.own_traces:
            if j not in own:
                step_text = _step_text(rb, year, j)
                own[j] = _context(data, data.flows(j), rb.step_share(j), step_text)
            data.own_traces[key] = _score_item_step(rb, ip, own[j], data.unit)
        return data.own_traces[key]

    items: list[ItemTrace] = []
    for ip in data.plan.items:
        item = ip.item
        if not (item.per_period and cumulative):
            items.append(_score_item_step(rb, ip, ctx, data.unit))
            continue
        subs = [own_trace(ip, j) for j in range(1, step + 1)]
        score = 0.0
        for s in subs:
            score += s.score
        terms = [
            Term("period", f"{_period_label(s.period or '')}得分" if d else "", s.score)
            for s in subs
        ]
        items.append(
            ItemTrace(
                code=item.code,
                name=item.name,
                points=rb.points(item),
                score=score,
                terms=terms,
                inputs=[],
                period=period,
                periods=subs,
                vetoed=any(s.vetoed for s in subs),
            )
        )

    adjustments = [
        AdjustmentTrace(code, label, unit, ctx.env[code], each, each * ctx.env[code])
        for code, label, unit, each in data.plan.adjustments
    ]
    total = 0.0
    for it in items:
        total += it.score
    for adj in adjustments:
        total += adj.points
    return UnitTrace(
        unit=data.unit,
        period=period,
        step=step,
        share=share,
        items=items,
        adjustments=adjustments,
        total=total,
    )


# ---------------------------------------------------------------- many units


@dataclass(frozen=True)
class StepResult:
    """A unit's standing after one step (a year of a cumulative scheme, or a step
    of a longer period of a non-cumulative scheme)."""

    period: str
    total: float
    rank: int
    rank_bonus: float


@dataclass
class UnitResult:
    unit: str
    group: str | None
    total: float
    rank: int
    rank_bonus: float
    items: dict[str, float]
    adjustments: dict[str, float]
    steps: list[StepResult]
    traces: dict[str, UnitTrace]  # step period text -> trace, in step order

    @property
    def trace(self) -> UnitTrace:
        """The trace of the last step scored (the asked step, or the year's last step)."""
        return list(self.traces.values())[-1]


def competition_ranks(totals: Mapping[str, float]) -> dict[str, int]:
    """Competition ranking (1, 1, 3), highest first; totals equal to 9 decimals tie."""
    keys = {u: round(t, 9) for u, t in totals.items()}
    first: dict[float, int] = {}
    for i, v in enumerate(sorted(keys.values(), reverse=True)):
        first.setdefault(v, i + 1)
    return {u: first[k] for u, k in keys.items()}


def _ranks_in_groups(
    totals: Mapping[str, float], group_of: Mapping[str, str | None]
) -> dict[str, int]:
    by_group: dict[str | None, dict[str, float]] = {}
    for u, t in totals.items():
        by_group.setdefault(group_of.get(u), {})[u] = t
    out: dict[str, int] = {}
    for members in by_group.values():
        out.update(competition_ranks(members))
    return out


def steps_of(rb: LoadedRulebook, period: Period) -> tuple[str, list[int]]:
    """How a period is scored: ("step", [k]), ("year", [1..n]) for a cumulative year,
    or ("sum", [steps]) for a longer period of a non-cumulative scheme."""
    p = rb.model.periods
    n = rb.steps_per_year()
    if period.kind == p.step:
        return "step", [period.index]
    if p.cumulative:
        if period.kind is PeriodKind.YEAR:
            return "year", list(range(1, n + 1))
        raise EvaluationError(
            f"period {period}: a cumulative {p.step.value} scheme is assessed per {p.step.value} "
            "or per year"
        )
    try:
        subs = period.subperiods(p.step)
    except PeriodError:
        raise EvaluationError(
            f"period {period} is not made of {p.step.value}s (the rulebook's step)"
        ) from None
    return "sum", [s.index for s in subs]


def score_units(
    rb: LoadedRulebook,
    data: Mapping[str, Values],
    group_of: Mapping[str, str | None],
    period: Period,
    given_ranks: Mapping[str, Mapping[str, int]] | None = None,
    detail: Container[str] | None = None,
) -> dict[str, UnitResult]:
    """Score and rank ``data``'s units (unit -> values) for ``period``.

    ``given_ranks`` (unit -> period text -> rank) replaces the ranking of the
    group; it is used when the caller already knows the ranks and scores one
    unit.  ``detail`` names the units whose traces get labels and inputs
    (default: all).
    """
    how, steps = steps_of(rb, period)
    year = period.year
    units = list(data)
    unit_data = {u: _UnitData(rb, data[u], u, year, detail is None or u in detail) for u in units}

    def ranks_for(key: str, totals: Mapping[str, float]) -> dict[str, int]:
        if given_ranks is not None:
            return {u: given_ranks[u][key] for u in totals}
        return _ranks_in_groups(totals, group_of)

    traces: dict[str, dict[str, UnitTrace]] = {u: {} for u in units}
    step_ranks: dict[str, dict[str, int]] = {}
    for k in steps:
        key = _step_text(rb, year, k)
        for u in units:
            if how == "sum" and key not in data[u]:
                raise EvaluationError(
                    f"unit {u}: period {period} needs every {rb.model.periods.step.value}; "
                    f"there is no data for {key}"
                )
            traces[u][key] = _score_unit(unit_data[u], k)
        if how != "step":
            step_ranks[key] = ranks_for(key, {u: traces[u][key].total for u in units})

    bonus_table = rb.model.ranking.rank_bonus
    results: dict[str, UnitResult] = {}
    for u in units:
        ts = traces[u]
        last = list(ts.values())[-1]
        step_results: list[StepResult] = []
        bonus = 0.0
        if how == "year":
            for key, t in ts.items():
                r = step_ranks[key][u]
                b = rb.num(bonus_table[r]) if r in bonus_table else 0.0
                bonus += b
                step_results.append(StepResult(key, t.total, r, b))
        elif how == "sum":
            step_results = [
                StepResult(key, t.total, step_ranks[key][u], 0.0) for key, t in ts.items()
            ]
        if how == "sum":
            items: dict[str, float] = {}
            adjustments: dict[str, float] = {}
            total = 0.0
            for t in ts.values():
                for it in t.items:
                    items[it.code] = items.get(it.code, 0.0) + it.score
                for a in t.adjustments:
                    adjustments[a.code] = adjustments.get(a.code, 0.0) + a.points
                total += t.total
        else:
            items = last.item_scores
            adjustments = last.adjustment_points
            total = last.total + bonus
        results[u] = UnitResult(
            unit=u,
            group=group_of.get(u),
            total=total,
            rank=0,
            rank_bonus=bonus,
            items=items,
            adjustments=adjustments,
            steps=step_results,
            traces=ts,
        )
    final = ranks_for(str(period), {u: res.total for u, res in results.items()})
    for u, res in results.items():
        res.rank = final[u]
    return results


def dataset_values(
    rb: LoadedRulebook, dataset: Dataset, year: int, only: Iterable[str] | None = None
) -> dict[str, dict[str, dict[str, float | None]]]:
    """The dataset's rows of ``year`` as plain dicts: unit -> period text -> {variable: value}.

    Only the variables the rulebook's items and adjustments read are kept.
    Units keep the order of the data; ``only`` restricts the units read.
    """
    frame = dataset.frame
    if only is not None:
        frame = frame.filter(frame[UNIT].is_in(list(only)))
    plan = _plan(rb)
    cols = [v for v in (*plan.annual, *plan.flows) if v in frame.columns]
    # values as floats, as the engine computes (a Parquet file's integers stay integers)
    frame = frame.select([UNIT, PERIOD, *[pl.col(c).cast(pl.Float64) for c in cols]])
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    canonical: dict[str, str | None] = {}  # period text as written -> as kaohe writes it
    for row in frame.iter_rows(named=True):
        text = str(row.pop(PERIOD))
        unit = str(row.pop(UNIT))
        if text not in canonical:
            try:
                p = Period.parse(text)
                canonical[text] = str(p) if p.year == year else None
            except PeriodError:
                canonical[text] = None
        period = canonical[text]
        if period is not None:
            out.setdefault(unit, {})[period] = row
    return out


def assessed_groups(
    rb: LoadedRulebook, data_units: Iterable[str], units: OrgUnits | None
) -> dict[str, str | None]:
    """Assessed unit -> rank group, in the order of ``data_units`` (the units having
    data rows).  With org units only their leaf units (those without children)
    are assessed, grouped by parent when the rulebook ranks by parent;
    otherwise every unit is in the one group ``None``."""
    if units is None:
        return {u: None for u in data_units}
    parent_of = units.parent_of()
    leaves = units.leaves()
    by_parent = rb.model.ranking.group_by == "parent"
    return {u: (parent_of[u] if by_parent else None) for u in data_units if u in leaves}


def score_all(
    rb: LoadedRulebook, dataset: Dataset, period: Period, units: OrgUnits | None = None
) -> dict[str, UnitResult]:
    """Score and rank every assessed unit of ``dataset`` for ``period``.

    - a step: the step's result (YTD in a cumulative scheme), ranked, no rank bonus;
    - the year of a cumulative scheme: every step scored and ranked, the rank
      bonuses of every step added to the last step's total, ranked again;
    - a longer period of a non-cumulative scheme: the sum of its steps (all needed).
    """
    data = dataset_values(rb, dataset, period.year)
    group_of = assessed_groups(rb, dataset.units(), units)
    return score_units(rb, {u: data.get(u, {}) for u in group_of}, group_of, period)
