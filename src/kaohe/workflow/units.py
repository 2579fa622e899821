"""Org units in the store: lookups, subtrees, and the engine's :class:`OrgUnits`."""

from __future__ import annotations

import threading
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.errors import KaoheError
from kaohe.io.dataset import OrgUnits
from kaohe.store.models import OrgUnit


class NotFound(KaoheError):
    """A unit, period or record that does not exist (HTTP 404)."""

    exit_code = 2


def unit_by_code(session: Session, code: str) -> OrgUnit:
    unit = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if unit is None:
        raise NotFound(f"no org unit '{code}'")
    return unit


def all_units(session: Session) -> list[OrgUnit]:
    return list(session.scalars(select(OrgUnit).order_by(OrgUnit.sort, OrgUnit.code)))


#: (database, change stamp) -> children of each unit id; see :func:`subtree_ids`
_TREE: dict[str, tuple[Any, dict[int | None, list[int]]]] = {}
_TREE_LOCK = threading.Lock()


def subtree_ids(session: Session, root_id: int) -> set[int]:
    """``root_id`` and every unit below it (the tree is read once per change stamp:
    :func:`kaohe.workflow.publish.change_stamp`, so any committed write re-reads it)."""
    from kaohe.workflow.publish import change_stamp, db_key

    db = db_key(session)
    stamp = change_stamp(session)
    with _TREE_LOCK:
        hit = _TREE.get(db)
    if hit is not None and hit[0] == stamp:
        children = hit[1]
    else:
        children = {}
        for uid, pid in session.execute(select(OrgUnit.id, OrgUnit.parent_id)).all():
            children.setdefault(pid, []).append(uid)
        with _TREE_LOCK:
            _TREE[db] = (stamp, children)
            while len(_TREE) > 16:
                _TREE.pop(next(iter(_TREE)))
    out: set[int] = set()
    todo = [root_id]
    while todo:
        u = todo.pop()
        if u in out:
            continue
        out.add(u)
        todo.extend(children.get(u, []))
    return out


def groups(session: Session) -> list[OrgUnit]:
    """Assessing groups: units that name a rulebook for their children (townships, streets)."""
    return list(
        session.scalars(
            select(OrgUnit)
            .where(OrgUnit.rulebook.is_not(None))
            .order_by(OrgUnit.sort, OrgUnit.code)
        )
    )


def group_of(session: Session, unit: OrgUnit) -> OrgUnit | None:
    """The group (township/street) whose rulebook assesses ``unit``: its parent, if it names one."""
    parent = unit.parent
    if parent is not None and parent.rulebook is not None:
        return parent
    return None


def org_units_for_group(group: OrgUnit) -> OrgUnits:
    """The engine's org units for one group: the group and its children."""
    rows = [(group.code, group.name, None)] + [(c.code, c.name, group.code) for c in group.children]
    frame = pl.DataFrame(
        rows, schema={"code": pl.String, "name": pl.String, "parent": pl.String}, orient="row"
    )
    return OrgUnits(frame, file=f"数据库:{group.code}")
