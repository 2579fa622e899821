"""Small builders shared by the engine tests (datasets made in memory, no files)."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from kaohe.io.dataset import Dataset, OrgUnits
from kaohe.periods import Period
from kaohe.rulebook.loader import LoadedRulebook


def make_dataset(
    rb: LoadedRulebook,
    rows: Mapping[tuple[str, str], Mapping[str, float]],
    *,
    fill: float | None = 0.0,
) -> Dataset:
    """rows: {(unit, period): {variable: value}}; variables not given are ``fill``
    on rows where they apply (annual on year rows, flows on step rows), null elsewhere."""
    records = []
    for i, ((unit, period), values) in enumerate(rows.items()):
        p = Period.parse(period)
        is_year = p.kind.value == "year"
        rec: dict[str, object] = {"unit": unit, "period": period, "_row": i + 2, "_sheet": None}
        for name, var in rb.variables.items():
            applies = (var.kind == "annual") == is_year
            rec[name] = float(values[name]) if name in values else (fill if applies else None)
        unknown = set(values) - set(rb.variables)
        assert not unknown, unknown
        records.append(rec)
    schema = {"unit": pl.Utf8, "period": pl.Utf8, "_row": pl.Int64, "_sheet": pl.Utf8}
    schema.update({v: pl.Float64 for v in rb.variables})
    return Dataset(pl.DataFrame(records, schema=schema), "<test>", list(rb.variables))


def year_rows(
    rb: LoadedRulebook,
    unit: str = "U1",
    annual: Mapping[str, float] | None = None,
    flows: Mapping[int, Mapping[str, float]] | None = None,
    year: int = 2022,
    steps: int = 3,
) -> dict[tuple[str, str], dict[str, float]]:
    """Rows for one unit: the year row and steps 1..steps of a tertial scheme."""
    rows: dict[tuple[str, str], dict[str, float]] = {(unit, str(year)): dict(annual or {})}
    for k in range(1, steps + 1):
        rows[(unit, f"{year}T{k}")] = dict((flows or {}).get(k, {}))
    return rows


def org_units(pairs: list[tuple[str, str | None]]) -> OrgUnits:
    return OrgUnits(
        pl.DataFrame(
            {
                "code": [c for c, _ in pairs],
                "name": [c for c, _ in pairs],
                "parent": [p for _, p in pairs],
            },
            schema={"code": pl.Utf8, "name": pl.Utf8, "parent": pl.Utf8},
        )
    )
