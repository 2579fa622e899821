"""Scoring from the store: the same engine as ``kaohe score``, fed from data values.

A group (township or street) is scored with the rulebook it names, on the data
values of its children for the period's year.  Results are cached per group,
period, rulebook version and a fingerprint of the group's data (count and
latest change), so pages and the API never re-score unchanged data.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kaohe.engine.evaluate import score
from kaohe.engine.explain import Explanation, explain_unit
from kaohe.engine.result import ScoreResult
from kaohe.io.dataset import PERIOD, ROW, SHEET, UNIT, Dataset, OrgUnits
from kaohe.io.read import _dataset
from kaohe.periods import Period, parse_period
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.store.models import DataValue, OrgUnit, RulebookVersion
from kaohe.workflow.rulebooks import current_version, loaded
from kaohe.workflow.units import NotFound, org_units_for_group


@dataclass
class GroupInputs:
    group: OrgUnit
    version: RulebookVersion
    rulebook: LoadedRulebook
    units: OrgUnits
    dataset: Dataset


def rulebook_of(session: Session, group: OrgUnit) -> tuple[RulebookVersion, LoadedRulebook]:
    if group.rulebook is None:
        raise NotFound(f"unit '{group.code}' assesses no units (it names no rulebook)")
    version = current_version(session, group.rulebook)
    return version, loaded(version)


def data_fingerprint(session: Session, group: OrgUnit, year: int) -> tuple[Any, ...]:
    child_ids = [c.id for c in group.children] + [group.id]
    row = session.execute(
        select(
            func.count(DataValue.id),
            func.max(DataValue.updated_at),
            func.sum(DataValue.id),
            func.sum(DataValue.value),
        )
        .where(DataValue.unit_id.in_(child_ids))
        .where(DataValue.period.like(f"{year}%"))
    ).one()
    return tuple(row)


def values_frame(session: Session, unit_ids: list[int], year: int) -> pl.DataFrame:
    """Long frame (unit code, period, variable, value) of the given units' values for a year."""
    rows = session.execute(
        select(OrgUnit.code, DataValue.period, DataValue.variable, DataValue.value)
        .join(OrgUnit, OrgUnit.id == DataValue.unit_id)
        .where(DataValue.unit_id.in_(unit_ids))
        .where(DataValue.period.like(f"{year}%"))
    ).all()
    return pl.DataFrame(
        [tuple(r) for r in rows],
        schema={UNIT: pl.String, PERIOD: pl.String, "variable": pl.String, "value": pl.Float64},
        orient="row",
    )


def dataset_from_values(rb: LoadedRulebook, long: pl.DataFrame, file: str = "数据库") -> Dataset:
    """The engine's wide :class:`Dataset` from long (unit, period, variable, value) rows.

    Values were validated when entered; defaults are filled in as when reading a file."""
    known = [v for v in rb.variables if v in set(long["variable"].unique().to_list())]
    long = long.filter(pl.col("variable").is_in(known))
    if long.height:
        wide = long.pivot(on="variable", index=[UNIT, PERIOD], values="value")
    else:
        wide = pl.DataFrame(schema={UNIT: pl.String, PERIOD: pl.String})
    wide = wide.sort(UNIT, PERIOD).with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias(ROW),
        pl.lit(None, dtype=pl.String).alias(SHEET),
    )
    return _dataset(wide, rb, rb.model.periods.step, file)


def group_inputs(session: Session, group: OrgUnit, year: int) -> GroupInputs:
    version, rb = rulebook_of(session, group)
    units = org_units_for_group(group)
    ids = [c.id for c in group.children]
    dataset = dataset_from_values(rb, values_frame(session, ids, year), f"数据库:{group.code}")
    return GroupInputs(group, version, rb, units, dataset)


_CACHE: OrderedDict[tuple[Any, ...], ScoreResult] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def score_group(session: Session, group: OrgUnit, period: Period | str) -> ScoreResult:
    """Score ``group``'s children for ``period`` from the store (cached while data is unchanged)."""
    p = parse_period(str(period)) if not isinstance(period, Period) else period
    version, _ = rulebook_of(session, group)
    key = (group.id, str(p), version.id, *data_fingerprint(session, group, p.year))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    inputs = group_inputs(session, group, p.year)
    result = score(inputs.rulebook, inputs.dataset, p, inputs.units)
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def explain_in_group(
    session: Session, group: OrgUnit, period: Period | str, unit_code: str
) -> Explanation:
    """The term-by-term explanation of one unit (ranks from the group's cached scores)."""
    p = parse_period(str(period)) if not isinstance(period, Period) else period
    inputs = group_inputs(session, group, p.year)
    return explain_unit(inputs.rulebook, inputs.dataset, inputs.units, p, unit_code)


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
