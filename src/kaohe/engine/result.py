"""The result of scoring a rulebook for one period."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook


@dataclass
class ScoreResult:
    """``table`` has one row per assessed unit, sorted by group then rank then unit:

    - ``unit``, ``name``, ``group`` (Utf8; group null when units form one group)
    - ``total`` (Float64), ``rank`` (Int64, competition ranking within the group)
    - ``rank_bonus`` (Float64; 0 unless the period is a year of a cumulative scheme)
    - one Float64 column per item code (the item's score)
    - one Float64 column per adjustment code (signed points)

    Values are unrounded; round half-up to 2 decimals only when writing output
    (:func:`kaohe.numbers.round2`).
    """

    rulebook: LoadedRulebook
    period: Period
    table: pl.DataFrame
    item_codes: list[str]
    adjustment_codes: list[str]
    #: per-step ranks for a year of a cumulative scheme: step label -> column in ``steps``
    steps: pl.DataFrame | None = None
    extra: dict[str, object] = field(default_factory=dict)
