"""Bulk loading of org units and data values into the store (demo, tests, first set-up).

Interactive changes go through :mod:`kaohe.workflow` services with audit; this
module is for filling an empty database from validated files."""

from __future__ import annotations

import math
from collections.abc import Iterable

import polars as pl
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from kaohe.io.dataset import PERIOD, UNIT, Dataset, OrgUnits
from kaohe.store.models import DataValue, OrgUnit, utcnow
from kaohe.workflow.units import NotFound


def add_unit(
    session: Session,
    code: str,
    name: str,
    level: str,
    parent: OrgUnit | None = None,
    rulebook: str | None = None,
    sort: int = 0,
) -> OrgUnit:
    unit = OrgUnit(
        code=code,
        name=name,
        level=level,
        parent_id=parent.id if parent else None,
        rulebook=rulebook,
        sort=sort,
    )
    session.add(unit)
    session.flush()
    return unit


def load_org_units(
    session: Session,
    org: OrgUnits,
    *,
    under: OrgUnit | None = None,
    group_level: str = "township",
    leaf_level: str = "village",
    rulebook: str | None = None,
) -> dict[str, OrgUnit]:
    """Add the units of an org file below ``under``: roots become groups
    (``group_level``, assessing their children with ``rulebook``), the rest leaves."""
    made: dict[str, OrgUnit] = {}
    rows = org.frame.iter_rows(named=True)
    pending = list(rows)
    sort = session.scalar(select(func.max(OrgUnit.sort))) or 0
    while pending:
        left = []
        for r in pending:
            parent_code = r["parent"]
            if parent_code is None:
                parent = under
                level, rb = group_level, rulebook
            elif parent_code in made:
                parent = made[parent_code]
                level, rb = leaf_level, None
            else:
                left.append(r)
                continue
            sort += 1
            made[r["code"]] = add_unit(session, r["code"], r["name"], level, parent, rb, sort)
        if len(left) == len(pending):
            raise NotFound(f"{org.file}: parent not found for {[r['code'] for r in left]}")
        pending = left
    return made


def load_dataset(session: Session, ds: Dataset, *, user_id: int | None = None) -> int:
    """Insert every given value of ``ds`` (one row per unit, period, variable); returns the count."""
    ids = {code: uid for code, uid in session.execute(select(OrgUnit.code, OrgUnit.id))}
    long = (
        ds.frame.select(UNIT, PERIOD, *ds.variables)
        .unpivot(index=[UNIT, PERIOD], variable_name="variable", value_name="value")
        .drop_nulls("value")
    )
    now = utcnow()
    rows: list[dict[str, object]] = []
    for unit, period, variable, value in long.iter_rows():
        if unit not in ids:
            raise NotFound(f"{ds.file}: unit '{unit}' is not in the store")
        rows.append(
            {
                "unit_id": ids[unit],
                "period": period,
                "variable": variable,
                "value": float(value),
                "updated_at": now,
                "updated_by_id": user_id,
            }
        )
    for chunk in _chunks(rows, 5000):
        session.execute(insert(DataValue), chunk)
    return len(rows)


def _chunks(rows: list[dict[str, object]], n: int) -> Iterable[list[dict[str, object]]]:
    for i in range(0, len(rows), n):
        yield rows[i : i + n]


def finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))


__all__ = ["add_unit", "finite", "load_dataset", "load_org_units", "pl"]
