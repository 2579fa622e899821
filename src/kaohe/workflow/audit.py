"""The audit log: who changed what, when, from what to what, and why.

Every service that changes data, a submission, a publication, an appeal, a
payment or a user adds an :class:`~kaohe.store.models.AuditEntry` in the same
transaction (:func:`record`, or :func:`record_many` for bulk imports).  Entries
are append-only; :func:`entries` reads them within what a user may see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session, joinedload

from kaohe.auth.permissions import scope_ids
from kaohe.store.models import AuditEntry, OrgUnit, User, utcnow

#: actions written by this area (other areas add publication.*, appeal.*, payment.*, user.*)
DATA_SET = "data.set"
SUBMIT = "submission.submit"
RETURN = "submission.return"
APPROVE = "submission.approve"
REOPEN = "submission.reopen"

#: labels of the actions, Chinese first
ACTION_LABELS: dict[str, str] = {
    DATA_SET: "修改数据",
    SUBMIT: "提交",
    RETURN: "退回",
    APPROVE: "审核通过",
    REOPEN: "重新打开",
    "publication.publish": "发布结果",
    "appeal.file": "已提出申诉",
    "appeal.answer": "答复申诉",
    "payment.review": "审核发放",
    "payment.approve": "审批发放",
    "user.add": "添加用户",
    "user.passwd": "修改密码",
    "user.disable": "停用用户",
}


def fmt_value(x: float | None) -> str | None:
    """A stored number as audit text: ``12`` for integral values, else the shortest repr."""
    if x is None:
        return None
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def record(
    session: Session,
    user: User | None,
    action: str,
    *,
    unit: OrgUnit | None = None,
    period: str | None = None,
    key: str | None = None,
    old: str | None = None,
    new: str | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Add one audit entry (flushed with the caller's transaction)."""
    entry = AuditEntry(
        at=utcnow(),
        user_id=user.id if user is not None else None,
        action=action,
        unit_id=unit.id if unit is not None else None,
        period=period,
        key=key,
        old=old,
        new=new,
        reason=reason,
    )
    session.add(entry)
    return entry


def record_many(session: Session, rows: Sequence[dict[str, object]], chunk: int = 20_000) -> int:
    """Bulk-insert audit entries: dicts with the columns of :class:`AuditEntry`."""
    table = AuditEntry.__table__
    assert isinstance(table, Table)
    for i in range(0, len(rows), chunk):
        session.execute(insert(table), list(rows[i : i + chunk]))
    return len(rows)


@dataclass
class AuditPage:
    entries: list[AuditEntry]
    total: int
    offset: int
    limit: int


def entries(
    session: Session,
    user: User,
    *,
    unit: OrgUnit | None = None,
    period: str | None = None,
    action: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> AuditPage:
    """Audit entries the user may see, newest first: those of units in the user's
    scope (entries about no unit, e.g. user management, only for an admin)."""
    q = select(AuditEntry)
    scope = scope_ids(session, user)
    if scope is not None:
        q = q.where(AuditEntry.unit_id.in_(sorted(scope)))
    if unit is not None:
        q = q.where(AuditEntry.unit_id == unit.id)
    if period:
        q = q.where(AuditEntry.period == period)
    if action:
        q = q.where(AuditEntry.action == action)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.options(joinedload(AuditEntry.user), joinedload(AuditEntry.unit))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return AuditPage(list(rows), int(total), offset, limit)


def actions_in_use(session: Session) -> list[str]:
    return sorted(a for (a,) in session.execute(select(AuditEntry.action).distinct()))
