"""In-memory forms of the inputs, shared by every layer.

A :class:`Dataset` is the validated content of a data file in *wide* form:
one row per (unit, period), one numeric column per rulebook variable (null =
not given and no default), plus the source row number for errors.  An
:class:`OrgUnits` is the validated org-unit tree (code, name, parent).

Both may carry derived lookups (positions of units in the org file) that
:func:`kaohe.io.read.read_data` computes once while validating, so that
scoring and explaining need not join unit codes over every data row again.
A lookup is used only while the frame it was computed for is still the
object's frame: objects built or changed by hand simply do without.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

#: columns of :attr:`Dataset.frame` besides the variables
UNIT = "unit"
PERIOD = "period"
ROW = "_row"  # 1-based source row (spreadsheet row / CSV line); with SHEET for workbooks
SHEET = "_sheet"

_POS = "__pos"


@dataclass
class UnitIndex:
    """Where each row of a dataset frame has its unit in an org-unit frame.

    ``positions`` (UInt32, one per row of ``frame``; null for a code that is not in
    ``org``) is valid for exactly these two frames (compared by identity)."""

    frame: pl.DataFrame
    org: pl.DataFrame
    positions: pl.Series


@dataclass
class Dataset:
    """Validated data: ``frame`` has columns unit (Utf8), period (Utf8), _row (Int64),
    _sheet (Utf8, may be null) and one numeric column per variable of the rulebook,
    in the rulebook's order.  Defaults are already filled in; a remaining null means
    the value was not given (allowed only on rows where the variable does not apply).

    Variable columns are Float64, or an integer type when the file stored integers
    (Parquet): the engine casts to Float64 where it computes, so either is accepted
    (as is Float64 throughout, for datasets built by hand)."""

    frame: pl.DataFrame
    file: str
    variables: list[str] = field(default_factory=list)
    #: positions of the rows' units in the org units read with the data (see UnitIndex)
    index: UnitIndex | None = field(default=None, repr=False, compare=False)
    #: variable -> an upper bound of the absolute values in its column (known from
    #: validating a file: kaohe.io.read); None when not known
    magnitudes: dict[str, float] | None = field(default=None, repr=False, compare=False)

    def units(self) -> list[str]:
        return self.frame.get_column(UNIT).unique(maintain_order=True).to_list()

    def unit_positions(self, units: OrgUnits) -> pl.Series | None:
        """Each row's unit's position in ``units.frame`` (UInt32, null when unknown),
        when it is known without a join; else None."""
        ix = self.index
        if ix is not None and ix.frame is self.frame and ix.org is units.frame:
            return ix.positions
        return None


@dataclass
class OrgUnits:
    """Validated org units: ``frame`` has columns code, name, parent (Utf8; parent null at roots)."""

    frame: pl.DataFrame
    file: str | None = None
    #: derived lookups: key -> (the frame they were computed for, value)
    _cache: dict[str, tuple[pl.DataFrame, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def parent_of(self) -> dict[str, str | None]:
        return dict(zip(self.frame["code"].to_list(), self.frame["parent"].to_list(), strict=True))

    def name_of(self) -> dict[str, str]:
        return dict(zip(self.frame["code"].to_list(), self.frame["name"].to_list(), strict=True))

    def leaves(self) -> set[str]:
        parents = set(self.frame["parent"].drop_nulls().to_list())
        return set(self.frame["code"].to_list()) - parents

    # ------------------------------------------------------------ vectorised lookups

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and hit[0] is self.frame:
            return hit[1]
        value = make()
        self._cache[key] = (self.frame, value)
        return value

    def mark_unique(self) -> None:
        """Record that the codes are known to be distinct (checked by the reader)."""
        self._cache["unique"] = (self.frame, True)

    def codes_sorted(self) -> bool:
        """Whether the codes are given and strictly increasing (as org files usually
        list them): then they are distinct and found by binary search, without hashing."""

        def make() -> bool:
            code = self.frame.get_column("code")
            if code.len() < 2:
                return code.null_count() == 0
            if code.null_count() or not code.is_sorted():
                return False
            return bool((code.slice(1) != code.slice(0, code.len() - 1)).all())

        return bool(self._cached("sorted", make))

    def codes_unique(self) -> bool:
        """Whether no code appears twice (positions below are then exact)."""
        return bool(
            self._cached(
                "unique",
                lambda: (
                    self.codes_sorted()
                    or self.frame.get_column("code").n_unique() == self.frame.height
                ),
            )
        )

    def _keys(self) -> pl.DataFrame:
        return self._cached(
            "keys",
            lambda: self.frame.select(pl.col("code").alias(UNIT)).with_row_index(_POS),
        )

    def positions(self, codes: pl.Series) -> pl.Series:
        """The position in ``frame`` of each code (UInt32; null when not a code of the
        file).  Runs of equal codes (a unit's rows one after another) are looked up once,
        and runs in the order of the file are matched without hashing."""
        s = codes.cast(pl.String).rename(UNIT)
        if s.len() == 0:
            return pl.Series(_POS, [], dtype=pl.UInt32)
        run = s.rle_id()  # one pass over the texts; the rest compares integers
        start = run.ne_missing(run.shift(1)).fill_null(True)
        runs = s.filter(start) if not start.all() else s
        at = self._in_order(runs)
        if at is None and self.codes_sorted():
            at = self._search(runs)
        if at is None:
            at = (
                runs.to_frame()
                .join(self._keys(), on=UNIT, how="left", maintain_order="left")
                .get_column(_POS)
            )
        if runs.len() == s.len():
            return at
        return at.gather(run)

    def _search(self, codes: pl.Series) -> pl.Series:
        """Positions of ``codes`` by binary search in the sorted codes of the file."""
        code = self.frame.get_column("code")
        if code.len() == 0:
            return pl.repeat(None, codes.len(), dtype=pl.UInt32, eager=True).rename(_POS)
        at = code.search_sorted(codes).cast(pl.UInt32)
        found = code.gather(at.clip(upper_bound=code.len() - 1)).eq_missing(codes)
        found = found & codes.is_not_null()
        return at.to_frame(_POS).select(pl.when(pl.lit(found)).then(pl.col(_POS))).to_series()

    def _in_order(self, runs: pl.Series) -> pl.Series | None:
        """Positions of ``runs`` when they are consecutive codes of the file, else None."""
        code = self.frame.get_column("code")
        first = runs[0]
        if first is None or not self.codes_unique():
            return None
        hit = (code == first).arg_true()
        if hit.len() != 1:
            return None
        offset = int(hit[0])
        if offset + runs.len() > code.len():
            return None
        if not code.slice(offset, runs.len()).equals(runs, check_names=False, check_dtypes=True):
            return None
        return pl.int_range(offset, offset + runs.len(), dtype=pl.UInt32, eager=True).rename(_POS)

    def has_parent_positions(self) -> bool:
        """Whether :meth:`parent_positions` is at hand (read_units computes it)."""
        hit = self._cache.get("parent_pos")
        return hit is not None and hit[0] is self.frame

    def parent_positions(self) -> pl.Series:
        """The position of each unit's parent (UInt32; null at roots and for unknown parents)."""
        return self._cached("parent_pos", lambda: self.positions(self.frame.get_column("parent")))

    def is_parent(self) -> pl.Series:
        """Whether each unit has children (Boolean, one per row of ``frame``)."""

        def make() -> pl.Series:
            if not self.codes_unique():
                parents = self.frame.get_column("parent").drop_nulls().unique()
                return self.frame.get_column("code").is_in(parents.implode())
            out = pl.repeat(False, self.frame.height, dtype=pl.Boolean, eager=True)
            children = self.parent_positions().drop_nulls()
            return out.scatter(children, True) if children.len() else out

        return self._cached("is_parent", make)
