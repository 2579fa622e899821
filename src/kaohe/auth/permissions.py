"""Who may read, write, approve and publish what.

- ``admin`` (county administrator): everything.
- ``assessor`` (township/street assessor): its unit's subtree: reads, enters and
  approves data, publishes its group's results, answers appeals.
- ``reporter`` (village/community reporter): its own unit only: enters and
  submits data, reads its own results, files appeals.
- ``viewer``: reads the subtree of its unit (everything when it has none).
- the public (no user): published results only.

Every page and API route checks with these functions on the server.
"""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy.orm import Session

from kaohe.store.models import OrgUnit, User
from kaohe.workflow.units import subtree_ids


class Forbidden(HTTPException):
    def __init__(self, detail: str = "无权访问 (forbidden)") -> None:
        super().__init__(status_code=403, detail=detail)


def scope_ids(session: Session, user: User) -> set[int] | None:
    """The unit ids ``user`` may read (None: all units)."""
    if user.role == "admin" or (user.role == "viewer" and user.unit_id is None):
        return None
    if user.unit_id is None:
        return set()
    if user.role == "reporter":
        return {user.unit_id}
    return subtree_ids(session, user.unit_id)


def can_read(session: Session, user: User | None, unit: OrgUnit) -> bool:
    if user is None:
        return False
    scope = scope_ids(session, user)
    return scope is None or unit.id in scope


def can_write(session: Session, user: User | None, unit: OrgUnit) -> bool:
    """Enter or change data of ``unit`` (locking by approval is checked separately)."""
    if user is None or user.role == "viewer":
        return False
    return can_read(session, user, unit)


def can_review(session: Session, user: User | None, unit: OrgUnit) -> bool:
    """Return, approve or reopen ``unit``'s data; publish and answer appeals for a group."""
    if user is None or user.role not in ("admin", "assessor"):
        return False
    return can_read(session, user, unit)


def require_read(session: Session, user: User | None, unit: OrgUnit) -> None:
    if not can_read(session, user, unit):
        raise Forbidden()


def require_write(session: Session, user: User | None, unit: OrgUnit) -> None:
    if not can_write(session, user, unit):
        raise Forbidden()


def require_review(session: Session, user: User | None, unit: OrgUnit) -> None:
    if not can_review(session, user, unit):
        raise Forbidden()


def require_admin(user: User | None) -> None:
    if user is None or user.role != "admin":
        raise Forbidden()
