"""The submission workflow of one unit's data for one data period.

    draft ──submit──▶ submitted ──approve──▶ approved (locked)
      ▲                  │                      │
      └──── returned ◀─return (comment)         │
      ▲                                         │
      └────────────── reopen (reason) ──────────┘

Reporters (and anyone who may write the unit) submit; assessors and admins
return (a comment is required), approve and reopen (a reason is required) in
their subtree.  Submitting needs every variable without default to have a value.
Every transition is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from kaohe.auth.permissions import require_review, require_write, scope_ids
from kaohe.errors import KaoheError
from kaohe.store.models import OrgUnit, Submission, User, utcnow
from kaohe.workflow import audit
from kaohe.workflow.data import context, data_period, missing_required

#: the transitions: action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "submit": (("draft", "returned"), "submitted"),
    "return": (("submitted",), "returned"),
    "approve": (("submitted",), "approved"),
    "reopen": (("approved",), "draft"),
}

ACTION_ZH = {"submit": "提交", "return": "退回", "approve": "审核通过", "reopen": "重新打开"}


class TransitionError(KaoheError):
    """A transition that the current state (or a missing comment / value) does not allow."""


def _submission(session: Session, unit: OrgUnit, period: str) -> Submission | None:
    return session.scalar(
        select(Submission).where(Submission.unit_id == unit.id, Submission.period == period)
    )


def transition(
    session: Session,
    user: User,
    unit: OrgUnit,
    period: str,
    action: str,
    text: str | None = None,
) -> Submission:
    """Apply ``action`` (submit, return, approve, reopen) to ``unit``'s ``period``.

    ``text`` is the comment of a return and the reason of a reopen (both required);
    it is optional for submit and approve."""
    if action not in TRANSITIONS:
        raise TransitionError(f"未知操作 '{action}' (unknown action)")
    if action == "submit":
        require_write(session, user, unit)
    else:
        require_review(session, user, unit)
    ctx = context(session, unit)
    p = str(data_period(ctx, period))
    sources, target = TRANSITIONS[action]
    sub = _submission(session, unit, p)
    state = (sub.state if sub is not None else None) or "draft"
    if state not in sources:
        raise TransitionError(
            f"当前状态为「{_STATE_ZH[state]}」，不能{ACTION_ZH[action]} "
            f"(cannot {action} from state {state})"
        )
    note = text.strip() if text and text.strip() else None
    if action == "return" and note is None:
        raise TransitionError("退回须填写意见 (a comment is required to return data)")
    if action == "reopen" and note is None:
        raise TransitionError("重新打开须填写理由 (a reason is required to reopen data)")
    if action == "submit":
        missing = missing_required(session, unit, p)
        if missing:
            labels = "、".join(f"{ctx.rb.variables[c].label}（{c}）" for c in missing[:10])
            more = f" 等 {len(missing)} 项" if len(missing) > 10 else ""
            raise TransitionError(
                f"以下项目没有默认值，尚未填写，不能提交：{labels}{more} "
                f"({len(missing)} required value(s) missing)"
            )
    if sub is None:
        sub = Submission(unit_id=unit.id, period=p)
        session.add(sub)
    sub.state = target
    sub.comment = note
    sub.updated_at = utcnow()
    sub.updated_by_id = user.id
    audit.record(
        session,
        user,
        f"submission.{action}",
        unit=unit,
        period=p,
        key="state",
        old=state,
        new=target,
        reason=note,
    )
    session.flush()
    return sub


_STATE_ZH = {"draft": "草稿", "submitted": "已提交", "returned": "已退回", "approved": "已审核"}


def submit(
    session: Session, user: User, unit: OrgUnit, period: str, note: str | None = None
) -> Submission:
    return transition(session, user, unit, period, "submit", note)


def return_(
    session: Session, user: User, unit: OrgUnit, period: str, comment: str | None
) -> Submission:
    return transition(session, user, unit, period, "return", comment)


def approve(
    session: Session, user: User, unit: OrgUnit, period: str, note: str | None = None
) -> Submission:
    return transition(session, user, unit, period, "approve", note)


def reopen(
    session: Session, user: User, unit: OrgUnit, period: str, reason: str | None
) -> Submission:
    return transition(session, user, unit, period, "reopen", reason)


def states(
    session: Session, unit_ids: Iterable[int], periods: Iterable[str]
) -> dict[tuple[int, str], Submission]:
    ids, ps = list(unit_ids), list(periods)
    if not ids or not ps:
        return {}
    rows = session.scalars(
        select(Submission).where(Submission.unit_id.in_(ids), Submission.period.in_(ps))
    )
    return {(s.unit_id, s.period): s for s in rows}


@dataclass
class QueueItem:
    submission: Submission
    unit: OrgUnit


def queue(
    session: Session, user: User, state: str = "submitted", limit: int = 500
) -> list[QueueItem]:
    """Submissions in ``state`` within the user's subtree (oldest first for submitted)."""
    q = select(Submission, OrgUnit).join(OrgUnit, OrgUnit.id == Submission.unit_id)
    q = q.where(Submission.state == state).options(joinedload(OrgUnit.parent))
    scope = scope_ids(session, user)
    if scope is not None:
        q = q.where(Submission.unit_id.in_(sorted(scope)))
    order = Submission.updated_at.asc() if state == "submitted" else Submission.updated_at.desc()
    rows = session.execute(q.order_by(order, Submission.id).limit(limit)).all()
    return [QueueItem(s, u) for s, u in rows]
