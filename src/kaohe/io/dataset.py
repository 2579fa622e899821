"""In-memory forms of the inputs, shared by every layer.

A :class:`Dataset` is the validated content of a data file in *wide* form:
one row per (unit, period), one Float64 column per rulebook variable
(null = not given and no default), plus the source row number for errors.
An :class:`OrgUnits` is the validated org-unit tree (code, name, parent).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

#: columns of :attr:`Dataset.frame` besides the variables
UNIT = "unit"
PERIOD = "period"
ROW = "_row"  # 1-based source row (spreadsheet row / CSV line); with SHEET for workbooks
SHEET = "_sheet"


@dataclass
class Dataset:
    """Validated data: ``frame`` has columns unit (Utf8), period (Utf8), _row (Int64),
    _sheet (Utf8, may be null) and one Float64 column per variable of the rulebook,
    in the rulebook's order.  Defaults are already filled in; a remaining null means
    the value was not given (allowed only on rows where the variable does not apply)."""

    frame: pl.DataFrame
    file: str
    variables: list[str] = field(default_factory=list)

    def units(self) -> list[str]:
        return self.frame.get_column(UNIT).unique(maintain_order=True).to_list()


@dataclass
class OrgUnits:
    """Validated org units: ``frame`` has columns code, name, parent (Utf8; parent null at roots)."""

    frame: pl.DataFrame
    file: str | None = None

    def parent_of(self) -> dict[str, str | None]:
        return dict(zip(self.frame["code"].to_list(), self.frame["parent"].to_list(), strict=True))

    def name_of(self) -> dict[str, str]:
        return dict(zip(self.frame["code"].to_list(), self.frame["name"].to_list(), strict=True))

    def leaves(self) -> set[str]:
        parents = set(self.frame["parent"].drop_nulls().to_list())
        return set(self.frame["code"].to_list()) - parents
