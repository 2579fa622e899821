"""Payment approvals (经费发放审批) from the store, and the payment sheet they feed.

Each unit's money lines of a period are released only after two sign-offs, in
order: the unit's review (the community director — the community's reporter
account; for the street's own lines, the street's assessor) and then the
approval of the street's deputy director (an assessor of the street).  A sign-off
is kept per (unit, line period) in :class:`PaymentApproval` — the frame
:func:`kaohe.engine.payments.payment_sheet` takes as ``approvals`` — and audited.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.auth.permissions import Forbidden, can_review
from kaohe.engine.payments import payment_sheet
from kaohe.engine.result import PaymentSheet
from kaohe.errors import KaoheError
from kaohe.io.approvals import COLUMNS
from kaohe.periods import Period
from kaohe.store.models import AuditEntry, OrgUnit, PaymentApproval, User, utcnow
from kaohe.workflow.publish import check_period
from kaohe.workflow.scoring import dataset_from_values, rulebook_of, values_frame
from kaohe.workflow.units import NotFound, org_units_for_group, unit_by_code


class PaymentError(KaoheError):
    """A sign-off that is refused (out of order, nothing to sign, already signed)."""


def approvals_frame(session: Session, group: OrgUnit, period: Period) -> pl.DataFrame:
    """Sign-offs of the group's units (and the group's own lines) inside ``period``:
    columns unit, period, reviewed_by, approved_by."""
    ids = [c.id for c in group.children] + [group.id]
    rows = session.execute(
        select(
            OrgUnit.code,
            PaymentApproval.period,
            PaymentApproval.reviewed_by,
            PaymentApproval.approved_by,
        )
        .join(OrgUnit, OrgUnit.id == PaymentApproval.unit_id)
        .where(PaymentApproval.unit_id.in_(ids))
        .where(PaymentApproval.period.like(f"{period.year}%"))
    ).all()
    inside = [tuple(r) for r in rows if period.contains(Period.parse(r[1]))]
    return pl.DataFrame(inside, schema=dict.fromkeys(COLUMNS, pl.Utf8), orient="row")


def sheet_for(session: Session, group: OrgUnit, period: str | Period) -> PaymentSheet:
    """The payment sheet of ``group`` for ``period`` from the store, with sign-off states."""
    p = check_period(session, group, str(period))
    _, rb = rulebook_of(session, group)
    ids = [c.id for c in group.children] + [group.id]
    dataset = dataset_from_values(rb, values_frame(session, ids, p.year), f"数据库:{group.code}")
    units = org_units_for_group(group)
    return payment_sheet(rb, dataset, p, units, approvals_frame(session, group, p))


@dataclass
class SignOff:
    unit: OrgUnit
    periods: list[str]
    rows: list[PaymentApproval]


def _line_periods(sheet: PaymentSheet, unit: OrgUnit) -> list[str]:
    lines = sheet.lines.filter(pl.col("unit") == unit.code)
    return sorted(set(lines["period"].to_list()))


def _names(user: User) -> str:
    return user.display_name or user.username


def _row(session: Session, unit: OrgUnit, period: str) -> PaymentApproval | None:
    return session.scalar(
        select(PaymentApproval)
        .where(PaymentApproval.unit_id == unit.id)
        .where(PaymentApproval.period == period)
    )


def _unit_in(session: Session, group: OrgUnit, unit_code: str) -> OrgUnit:
    unit = unit_by_code(session, unit_code)
    if unit.id != group.id and unit.parent_id != group.id:
        raise NotFound(f"unit '{unit_code}' is not a unit of {group.code}")
    return unit


def can_sign_review(session: Session, user: User | None, group: OrgUnit, unit: OrgUnit) -> bool:
    """The unit's director (its reporter account); the street's own lines: its assessors."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    if unit.id == group.id:
        return can_review(session, user, group)
    return user.role == "reporter" and user.unit_id == unit.id


def can_sign_approve(session: Session, user: User | None, group: OrgUnit) -> bool:
    """The street's deputy director: an assessor of the group (or an admin)."""
    return can_review(session, user, group)


def review(
    session: Session, user: User | None, group: OrgUnit, period: str, unit_code: str
) -> SignOff:
    """The unit's director reviews all of its lines of ``period`` on the sheet."""
    unit = _unit_in(session, group, unit_code)
    if not can_sign_review(session, user, group, unit):
        raise Forbidden("只有本单位负责人可以审核 (only the unit's director may review)")
    assert user is not None
    sheet = sheet_for(session, group, period)
    periods = _line_periods(sheet, unit)
    if not periods:
        raise PaymentError(f"{unit.name}（{unit.code}）在{period}没有发放款项 (no payment lines)")
    rows = []
    for lp in periods:
        row = _row(session, unit, lp)
        if row is None:
            row = PaymentApproval(unit_id=unit.id, period=lp)
            session.add(row)
        if row.reviewed_by:
            rows.append(row)
            continue
        row.reviewed_by = _names(user)
        row.reviewed_at = utcnow()
        rows.append(row)
        session.flush()
        session.add(
            AuditEntry(
                user_id=user.id,
                action="payment.review",
                unit_id=unit.id,
                period=lp,
                key="payment",
                old="pending",
                new=f"reviewed by {row.reviewed_by}",
            )
        )
    return SignOff(unit, periods, rows)


def approve(
    session: Session, user: User | None, group: OrgUnit, period: str, unit_code: str
) -> SignOff:
    """The street's deputy director approves the unit's reviewed lines of ``period``;
    lines not yet reviewed are refused (review comes first)."""
    unit = _unit_in(session, group, unit_code)
    if not can_sign_approve(session, user, group):
        raise Forbidden("只有街道分管领导可以审批 (only the street's deputy director may approve)")
    assert user is not None
    sheet = sheet_for(session, group, period)
    periods = _line_periods(sheet, unit)
    if not periods:
        raise PaymentError(f"{unit.name}（{unit.code}）在{period}没有发放款项 (no payment lines)")
    rows = [_row(session, unit, lp) for lp in periods]
    unreviewed = [lp for lp, r in zip(periods, rows, strict=True) if r is None or not r.reviewed_by]
    if unreviewed:
        raise PaymentError(
            f"{unit.name}（{unit.code}）{', '.join(unreviewed)} 的款项尚未经社区主任审核，不能审批 "
            f"(not reviewed yet: review comes before approval)"
        )
    done = []
    for lp, row in zip(periods, rows, strict=True):
        assert row is not None
        done.append(row)
        if row.approved_by:
            continue
        row.approved_by = _names(user)
        row.approved_at = utcnow()
        session.add(
            AuditEntry(
                user_id=user.id,
                action="payment.approve",
                unit_id=unit.id,
                period=lp,
                key="payment",
                old=f"reviewed by {row.reviewed_by}",
                new=f"approved by {row.approved_by}",
            )
        )
    session.flush()
    return SignOff(unit, periods, done)


__all__ = [
    "PaymentError",
    "SignOff",
    "approvals_frame",
    "approve",
    "can_sign_approve",
    "can_sign_review",
    "review",
    "sheet_for",
]
