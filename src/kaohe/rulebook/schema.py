"""The rulebook model (Pydantic v2).

A rulebook is data: variables, named parameters, items with a declarative rule
(or a formula), per-case bonuses and deductions, floors, vetoes, adjustments
(加分、扣分), the period scheme and the ranking.  This module only describes and
validates the *shape*; :mod:`kaohe.rulebook.loader` adds file/line positions and
cross-reference checks, and :mod:`kaohe.engine` gives it meaning.

Numbers written in rules may be literal numbers or the name of a declared
parameter (``"$c1_period_points"`` or ``c1_period_points``), so every number in
a plan can be named and overridden (``kaohe score --param name=value``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from kaohe.periods import PeriodKind

#: a number, or the name of a parameter declared in ``parameters:``
Num = float | str

CODE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

#: units of measure of counts: a variable measured in one of them is ``integer`` (whole
#: numbers only) unless it says otherwise
COUNT_UNITS = frozenset(
    [
        "例",
        "人",
        "个",
        "对",
        "件",
        "次",
        "条",
        "户",
        "起",
        "名",
        "项",
        "家",
        "所",
        "处",
        "篇",
        "场",
        "台",
        "辆",
        "本",
        "份",
    ]
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Default factories are Python functions, not the builtins ``list`` and ``dict``: Pydantic
# inspects a factory's signature, and a builtin's is parsed from its text by the
# tokenizer, whose first use compiles its regular expressions (≈ 15 ms of every start).
def _empty_list() -> list[Any]:
    return []


def _empty_dict() -> dict[Any, Any]:
    return {}


# ---------------------------------------------------------------- declarations


class Variable(_Model):
    """A datum reported per unit and period (a count, amount, target or assessed score)."""

    label: str = Field(description="Chinese label shown on forms and explanations")
    label_en: str | None = None
    kind: Literal["annual", "flow"] = Field(
        description="annual: one value per year (period YYYY); flow: a count per period, summed year to date"
    )
    unit: str = Field("", description="unit of measure, e.g. 例, 人, 元, 分")
    split: bool = Field(
        False,
        description="an annual target issued per period: read as annual value × cumulative target share (按4:3:3下达)",
    )
    default: float | None = Field(
        None, description="value used when not given; without a default a missing value is an error"
    )
    min: float | None = Field(0, description="smallest allowed value (counts are never negative)")
    max: float | None = None
    integer: bool | None = Field(
        None,
        description="whole numbers only: a count (default: true when the unit of measure is a "
        "count unit such as 例, 人, 个, 件, 次, 户; false otherwise, e.g. 元, 分)",
    )
    level: Literal["unit", "parent"] = Field(
        "unit",
        description="unit: reported by each assessed unit; parent: reported on the parent unit's own rows "
        "(e.g. street cadres on the street's row), read only by payments with on: parent",
    )

    @model_validator(mode="after")
    def _integer_from_unit(self) -> Variable:
        # not given: a count unit of measure makes a count (the model is frozen, hence
        # object.__setattr__); after validation ``integer`` is always a bool
        if self.integer is None:
            object.__setattr__(self, "integer", self.unit in COUNT_UNITS)
        return self


class Parameter(_Model):
    value: float
    label: str = ""
    unit: str = ""
    clause: str | None = Field(None, description="where the spec fixes this number, e.g. '[I5]'")


class Group(_Model):
    code: str = Field(pattern=CODE_PATTERN)
    name: str
    name_en: str | None = None
    points: float | None = None


# ---------------------------------------------------------------- rules


class RatioSpec(_Model):
    """points × min(done / target, 1) + per_excess × max(done − target, 0)."""

    done: str = Field(description="expression: what was done (year to date)")
    target: str = Field(description="expression: what was due (a split annual target reads as YTD)")
    cap: bool = Field(True, description="cap the ratio at 1 (按完成比例计分，满分为止)")
    per_excess: Num = Field(0, description="points per case above target (每超一例加…分)")


class RatioRule(_Model):
    ratio: RatioSpec


class ThresholdSpec(_Model):
    """A rate in percent against a threshold (≥at% scores `points`)."""

    rate: list[str] | str = Field(
        description="[numerator, denominator] (rate = 100·num/den) or an expression giving percent"
    )
    at: Num = Field(description="threshold in percent")
    points: Num | None = Field(
        None, description="points at the threshold (default: the item's points)"
    )
    below: Num | Literal["proportional"] = Field(
        description="points per percentage point below the threshold (negative), or 'proportional' (points × rate/at)"
    )
    above: Num = Field(0, description="points per percentage point above the threshold")


class ThresholdRule(_Model):
    threshold: ThresholdSpec


class BandSpec(_Model):
    """Full points when value ≤ full_at_most, zero when value ≥ zero_at_least, linear between."""

    value: str
    full_at_most: Num
    zero_at_least: Num
    points: Num | None = None


class BandRule(_Model):
    band: BandSpec


class ClampSpec(_Model):
    """An assessed score taken as given, clamped to [min, max]."""

    value: str
    min: Num = 0
    max: Num | None = Field(None, description="default: the item's points")


class ClampRule(_Model):
    clamp: ClampSpec


class FullRule(_Model):
    """Start from the item's full points (then apply deductions)."""

    full: Num | None = Field(None, description="starting points (default: the item's points)")


class FormulaRule(_Model):
    """Any expression of the safe formula language (see docs/rulebook-language.md)."""

    formula: str


def _rule_tag(v: Any) -> str | None:
    if isinstance(v, str):
        return "full" if v == "full" else None
    if isinstance(v, dict):
        keys = [k for k in ("ratio", "threshold", "band", "clamp", "full", "formula") if k in v]
        return keys[0] if len(keys) == 1 else None
    for name, cls in _RULE_TAGS.items():
        if isinstance(v, cls):
            return name
    return None


def _coerce_full(v: Any) -> Any:
    return {"full": None} if v == "full" else v


Rule = Annotated[
    Annotated[RatioRule, Tag("ratio")]
    | Annotated[ThresholdRule, Tag("threshold")]
    | Annotated[BandRule, Tag("band")]
    | Annotated[ClampRule, Tag("clamp")]
    | Annotated[FullRule, Tag("full")]
    | Annotated[FormulaRule, Tag("formula")],
    Discriminator(
        _rule_tag,
        custom_error_type="rule_kind",
        custom_error_message="a rule is one of: full, {ratio: …}, {threshold: …}, {band: …}, {clamp: …}, {formula: …}",
    ),
]

_RULE_TAGS: dict[str, type] = {
    "ratio": RatioRule,
    "threshold": ThresholdRule,
    "band": BandRule,
    "clamp": ClampRule,
    "full": FullRule,
    "formula": FormulaRule,
}

RULE_KINDS = tuple(_RULE_TAGS)


class PerCase(_Model):
    """points × count, the count being a variable or an expression (每…一例加/扣…分)."""

    per: str = Field(description="expression giving the number of cases")
    points: Num = Field(
        description="points per case (positive; the list says whether added or deducted)"
    )
    label: str | None = Field(None, description="Chinese label for the explanation")
    after_floor: bool = Field(
        False, description="added after the floor (the floor applies to the deduction part only)"
    )


class Veto(_Model):
    """Item veto: the item scores `score` (0) when the condition holds (该项为0分)."""

    when: str
    reason: str
    score: Num = 0


class Item(_Model):
    code: str = Field(pattern=CODE_PATTERN)
    name: str
    name_en: str | None = None
    group: str | None = None
    points: Num | None = Field(
        None,
        description="the item's points in the scheme, a number or parameter (None: open-ended)",
    )
    rule: Rule
    bonuses: list[PerCase] = []
    deductions: list[PerCase] = []
    floor: Num | Literal["default"] | None = Field(
        "default", description="lowest score after deductions (default: conventions.floor)"
    )
    cap: Num | Literal["default"] | None = Field(
        "default",
        description="highest score (default: the item's points if conventions.cap_at_points)",
    )
    veto: Veto | None = None
    per_period: bool = Field(
        False,
        description="scored on each period's own data, never cumulated; the YTD score is the sum",
    )
    source: str = Field("", description="the plan's wording (Chinese)")
    clause: str = Field("", description="the spec clause, e.g. 'village-1000 §3 C1 [I5]'")

    @field_validator("rule", mode="before")
    @classmethod
    def _full(cls, v: Any) -> Any:
        return _coerce_full(v)


class Adjustment(_Model):
    """A bonus or deduction (加分/扣分) counted per case; declares a flow variable of the same code."""

    code: str = Field(pattern=CODE_PATTERN)
    label: str
    label_en: str | None = None
    points: Num = Field(description="signed points per case (+ bonus, − deduction)")
    unit: str = "次"
    source: str = ""
    clause: str = ""


# ---------------------------------------------------------------- scheme


class Periods(_Model):
    step: PeriodKind = Field(
        description="the reporting and assessment period: tertial, quarter, month or year"
    )
    cumulative: bool = Field(
        True,
        description="累积分制: a step is scored on year-to-date data; otherwise on its own data",
    )
    target_shares: list[float] | None = Field(
        None,
        description="cumulative share of annual targets at the end of each step (4:3:3 → [0.4, 0.7, 1.0])",
    )


class Conventions(_Model):
    zero_denominator: Literal["met", "zero"] = Field(
        "met",
        description="[I1] nothing due counts as exactly met (ratio 1, rate = threshold) or as zero",
    )
    floor: float | None = Field(0, description="[I3] default lowest item score after deductions")
    cap_at_points: bool = Field(
        False, description="[I3] cap item scores at their points by default"
    )


class Placement(_Model):
    """Forced placement among the last places (直接列入倒数N名).

    With n units in a group of which c meet ``when``, let m = min(n, max(last, c)):
    the last m places hold every flagged unit plus the m − c lowest-scoring others
    (on equal totals the unit chosen by ``tie_break`` is the lower), ordered among
    themselves by total; the others take the places above by total.  Ties share
    a rank only within the same block.
    """

    when: str = Field(description="condition on the period's data, e.g. complaints_verified > 0")
    last: Num = Field(3, description="size of the block of last places (at least)")
    label: str = Field(description="Chinese label for explanations, e.g. 直接列入倒数3名")
    tie_break: Literal["greater_code_lower", "smaller_code_lower"] = Field(
        "greater_code_lower",
        description="which of two others with equal totals is the lower when filling the block",
    )
    periods: list[PeriodKind] = Field(
        default_factory=_empty_list,
        description="kinds of assessed period the placement applies to (default: the step only)",
    )
    only_when_flagged: bool = Field(
        False,
        description="a group with no flagged unit is ranked plainly; by default (the spec's "
        "wording) the block of the last places exists even then, and ties across it are split",
    )
    source: str = ""
    clause: str = ""


class Ranking(_Model):
    group_by: Literal["parent", "none"] = Field(
        "parent", description="rank within the parent org unit (township), or all units together"
    )
    rank_bonus: dict[int, Num] = Field(
        default_factory=_empty_dict,
        description="points added to the annual total for each step's rank (季度综合排名), e.g. {1: 4, 2: 2}",
    )
    placement: Placement | None = Field(None, description="forced placement among the last places")


# ---------------------------------------------------------------- outcomes


class Flag(_Model):
    """A yes/no property of a unit's result, e.g. 达标 (meets the standard)."""

    label: str
    label_en: str | None = None
    all_full: list[str] = Field(
        default_factory=_empty_list, description="items that must each reach their points"
    )
    when: str | None = Field(
        None, description="a condition over item scores (by code), total and variables"
    )
    over_steps: Literal["last", "all", "any"] = Field(
        "last",
        description="for a period made of several steps: the flag of its last step, or all/any steps",
    )
    source: str = ""
    clause: str = ""


class Outcome(_Model):
    """A consequence of a result: a list (commended, criticised), money by rank, a veto."""

    code: str = Field(pattern=CODE_PATTERN)
    label: str
    label_en: str | None = None
    kind: Literal["commendation", "criticism", "reward", "report", "veto", "note"] = Field(
        description="how notices group it; 'veto' vetoes the whole result (一票否决)"
    )
    periods: list[PeriodKind] = Field(
        description="the kinds of assessed period it applies to (month, quarter, year…)"
    )
    when: str | None = Field(
        None,
        description="condition over rank, n, last_rank, total, item scores, flags and variables",
    )
    amount_by_rank: dict[int, Num] = Field(
        default_factory=_empty_dict,
        description="money (yuan) by rank; tied units each get their rank's",
    )
    payee: str | None = Field(None, description="who receives the money (a key of payees)")
    funder: str | None = Field(None, description="who pays (a key of funders)")
    source: str = ""
    clause: str = ""


class Payment(_Model):
    """A money line per unit and step: count × rate for each funder (per case or per person-month)."""

    code: str = Field(pattern=CODE_PATTERN)
    label: str
    per: str = Field(description="expression giving the number of cases or persons in the step")
    rates: dict[str, Num] = Field(
        description="yuan per case or person for each funder, e.g. {district: 30, street: 170, community: 100}"
    )
    payee: str = Field(description="who receives it (a key of payees)")
    when: str | None = Field(
        None, description="condition over the step's item scores, flags and variables"
    )
    on: Literal["unit", "parent"] = Field(
        "unit", description="unit: each assessed unit's row; parent: the parent unit's own row"
    )
    basis: str = Field("", description="the rule in words, shown on the payment sheet")
    source: str = ""
    clause: str = ""


class Rulebook(_Model):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    name_en: str | None = None
    version: str = "1"
    source: str = ""
    spec: str | None = None
    description: str = ""
    periods: Periods
    conventions: Conventions = Conventions()
    ranking: Ranking = Ranking()
    parameters: dict[str, Parameter] = {}
    variables: dict[str, Variable]
    groups: list[Group] = []
    items: list[Item]
    adjustments: list[Adjustment] = []
    flags: dict[str, Flag] = {}
    outcomes: list[Outcome] = []
    funders: dict[str, str] = Field(
        default_factory=_empty_dict, description="funder code → Chinese name (区, 街道, 社区)"
    )
    payees: dict[str, str] = Field(
        default_factory=_empty_dict, description="payee code → Chinese name (社区工作经费, 受术者…)"
    )
    payments: list[Payment] = []
