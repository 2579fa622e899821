"""Appeals (申诉) against published results, and the assessors' written answers.

A unit's reporter may file an appeal against the current publication of its
group's period within the publication's ``appeal_days``; an assessor of the
group (or an admin) answers it in writing.  Both are audited.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.auth.permissions import Forbidden, can_review, scope_ids
from kaohe.errors import KaoheError
from kaohe.store.models import Appeal, AuditEntry, OrgUnit, Publication, User, utcnow
from kaohe.workflow.publish import check_period, published
from kaohe.workflow.units import NotFound, group_of

MAX_TEXT = 5000


class AppealError(KaoheError):
    """An appeal or answer that is refused (window closed, empty text, already answered)."""


def appeal_deadline(pub: Publication) -> dt.datetime:
    """The last moment (naive UTC) an appeal may be filed against ``pub``."""
    return pub.published_at + dt.timedelta(days=pub.appeal_days)


def appeal_open(pub: Publication, now: dt.datetime | None = None) -> bool:
    return (now or utcnow()) <= appeal_deadline(pub)


def _text(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise AppealError(f"{what}: 内容不能为空 (the text must not be empty)")
    if len(text) > MAX_TEXT:
        raise AppealError(f"{what}: 不能超过 {MAX_TEXT} 字 (at most {MAX_TEXT} characters)")
    return text


def file_appeal(
    session: Session,
    user: User | None,
    unit: OrgUnit,
    period: str,
    text: str,
    *,
    now: dt.datetime | None = None,
) -> Appeal:
    """File ``unit``'s appeal against its group's current publication for ``period``.

    Only the unit's own reporter may file, and only within the publication's
    appeal window."""
    if user is None or user.role != "reporter" or user.unit_id != unit.id:
        raise Forbidden("只有本单位的填报员可以提出申诉 (only the unit's reporter may appeal)")
    group = group_of(session, unit)
    if group is None:
        raise NotFound(f"unit '{unit.code}' is not assessed by a township/street")
    p = check_period(session, group, period)
    pub = published(session, group, p)
    if pub is None:
        raise AppealError(
            f"{group.name}{p.label_zh}的考核结果尚未公布，不能申诉 "
            f"(the results of {group.code} for {p} are not published)"
        )
    moment = now or utcnow()
    if not appeal_open(pub, moment):
        raise AppealError(
            f"申诉期已过：结果于公布后 {pub.appeal_days} 天内可申诉 "
            f"(the appeal window of {pub.appeal_days} days after publication has closed)"
        )
    body = _text(text, "申诉内容")
    appeal = Appeal(
        publication_id=pub.id,
        unit_id=unit.id,
        text=body,
        filed_at=moment,
        filed_by_id=user.id,
        state="open",
    )
    session.add(appeal)
    session.flush()
    session.add(
        AuditEntry(
            user_id=user.id,
            action="appeal.file",
            unit_id=unit.id,
            period=str(p),
            key=f"appeal#{appeal.id}",
            old=None,
            new=f"open (publication v{pub.version})",
            reason=body,
        )
    )
    return appeal


def appeal_by_id(session: Session, appeal_id: int) -> Appeal:
    appeal = session.get(Appeal, appeal_id)
    if appeal is None:
        raise NotFound(f"no appeal #{appeal_id}")
    return appeal


def answer_appeal(session: Session, user: User | None, appeal_id: int, answer: str) -> Appeal:
    """An assessor of the appeal's group answers it in writing (once)."""
    appeal = appeal_by_id(session, appeal_id)
    group = appeal.publication.group
    if not can_review(session, user, group):
        raise Forbidden()
    assert user is not None
    if appeal.state == "answered":
        raise AppealError(f"申诉 #{appeal.id} 已答复 (appeal #{appeal.id} is already answered)")
    body = _text(answer, "答复内容")
    appeal.answer = body
    appeal.state = "answered"
    appeal.answered_at = utcnow()
    appeal.answered_by_id = user.id
    session.flush()
    session.add(
        AuditEntry(
            user_id=user.id,
            action="appeal.answer",
            unit_id=appeal.unit_id,
            period=appeal.publication.period,
            key=f"appeal#{appeal.id}",
            old="open",
            new="answered",
            reason=body,
        )
    )
    return appeal


def visible_appeals(
    session: Session,
    user: User,
    *,
    unit: OrgUnit | None = None,
    period: str | None = None,
) -> list[Appeal]:
    """Appeals the user may see (its scope), newest first; of one unit/period when given."""
    q = select(Appeal).join(Publication, Publication.id == Appeal.publication_id)
    scope = scope_ids(session, user)
    if scope is not None:
        q = q.where(Appeal.unit_id.in_(scope or {-1}))
    if unit is not None:
        q = q.where(Appeal.unit_id == unit.id)
    if period is not None:
        q = q.where(Publication.period == period)
    return list(session.scalars(q.order_by(Appeal.filed_at.desc(), Appeal.id.desc())))


__all__ = [
    "AppealError",
    "answer_appeal",
    "appeal_by_id",
    "appeal_deadline",
    "appeal_open",
    "file_appeal",
    "visible_appeals",
]
