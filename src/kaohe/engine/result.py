"""The results of scoring a rulebook for one period, and payment sheets."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook

#: columns of :attr:`ScoreResult.outcomes`
OUTCOME_SCHEMA = {
    "unit": pl.Utf8,
    "code": pl.Utf8,
    "label": pl.Utf8,
    "kind": pl.Utf8,  # commendation | criticism | reward | report | veto | note
    "amount_fen": pl.Int64,  # money in fen (1/100 yuan), null when the outcome carries none
    "payee": pl.Utf8,
    "funder": pl.Utf8,
}


@dataclass
class ScoreResult:
    """``table`` has one row per assessed unit, sorted by group then rank then unit:

    - ``unit``, ``name``, ``group`` (Utf8; group null when units form one group)
    - ``total`` (Float64), ``rank`` (Int64, competition ranking within the group,
      after forced placement and vetoes)
    - ``rank_bonus`` (Float64; 0 unless the period is a year of a cumulative scheme)
    - ``vetoed`` (Boolean: a veto outcome fired — 一票否决)
    - one Float64 column per item code (the item's score)
    - one Float64 column per adjustment code (signed points)
    - one Boolean column per flag code (e.g. ``meets_standard``)

    ``outcomes`` lists the outcomes that fired (see :data:`OUTCOME_SCHEMA`), in
    table order.  Values are unrounded; round half-up to 2 decimals only when
    writing output (:mod:`kaohe.numbers`).
    """

    rulebook: LoadedRulebook
    period: Period
    table: pl.DataFrame
    item_codes: list[str]
    adjustment_codes: list[str]
    flag_codes: list[str] = field(default_factory=list)
    outcomes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=OUTCOME_SCHEMA))
    #: per-step totals and ranks for a year of a cumulative scheme with rank bonuses
    steps: pl.DataFrame | None = None
    #: units forced into the last places (unit codes)
    placed: list[str] = field(default_factory=list)

    def outcomes_of(self, unit: str) -> list[dict[str, object]]:
        return self.outcomes.filter(pl.col("unit") == unit).to_dicts()


#: columns of :attr:`PaymentSheet.lines`
PAYMENT_SCHEMA = {
    "unit": pl.Utf8,  # who the line is for (a community, or the street for on: parent lines)
    "name": pl.Utf8,
    "parent": pl.Utf8,
    "period": pl.Utf8,  # the month (or quarter, for rewards) the line belongs to
    "code": pl.Utf8,  # payment or outcome code
    "label": pl.Utf8,
    "payee": pl.Utf8,
    "payee_label": pl.Utf8,
    "funder": pl.Utf8,
    "funder_label": pl.Utf8,
    "basis_variable": pl.Utf8,  # the count's expression (a variable code); "rank" for a reward
    "count": pl.Int64,  # cases or persons (1 for a reward; basis names the rank)
    "rate_fen": pl.Int64,  # per case/person (or the reward), in fen
    "amount_fen": pl.Int64,  # count × rate (or the reward), in fen
    "basis": pl.Utf8,  # the rule in words
    "clause": pl.Utf8,
    "status": pl.Utf8,  # pending | reviewed | approved
    "reviewed_by": pl.Utf8,
    "approved_by": pl.Utf8,
}

STATUS_LABELS = {"pending": "待审核", "reviewed": "已审核待审批", "approved": "已审批"}


@dataclass
class PaymentSheet:
    """Every money line of a period: subsidies per step and rewards by rank.

    Amounts are integers in fen, so subtotals and funder totals add up exactly.
    """

    rulebook: LoadedRulebook
    period: Period
    lines: pl.DataFrame

    def totals_by_funder(self) -> dict[str, int]:
        t = self.lines.group_by("funder").agg(pl.col("amount_fen").sum()).sort("funder")
        return dict(zip(t["funder"].to_list(), t["amount_fen"].to_list(), strict=True))

    def subtotals_by_unit(self) -> dict[str, int]:
        t = self.lines.group_by("unit", maintain_order=True).agg(pl.col("amount_fen").sum())
        return dict(zip(t["unit"].to_list(), t["amount_fen"].to_list(), strict=True))

    def total(self) -> int:
        return int(self.lines["amount_fen"].sum())
