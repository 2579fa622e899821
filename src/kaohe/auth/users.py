"""Adding users, changing passwords, disabling accounts (``kaohe user …`` and admin pages)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.auth.passwords import hash_password, password_problem
from kaohe.errors import KaoheError
from kaohe.store.models import ROLES, AuditEntry, User
from kaohe.workflow.units import NotFound, unit_by_code


class UserError(KaoheError):
    exit_code = 2


def user_by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user '{username}'")
    return user


def add_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    unit_code: str | None = None,
    *,
    display_name: str = "",
    by: User | None = None,
    check_password: bool = True,
) -> User:
    """Add a user.  Reporters need a unit (their village/community), assessors their
    township/street; admins and viewers may have none."""
    if role not in ROLES:
        raise UserError(f"unknown role '{role}' (use one of {', '.join(ROLES)})")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"user '{username}' already exists")
    if check_password and (problem := password_problem(password)):
        raise UserError(problem)
    unit = unit_by_code(session, unit_code) if unit_code else None
    if role in ("reporter", "assessor") and unit is None:
        raise UserError(f"a {role} needs a unit (--unit CODE)")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        unit_id=unit.id if unit else None,
    )
    session.add(user)
    session.flush()
    session.add(
        AuditEntry(
            user_id=by.id if by else None,
            action="user.add",
            unit_id=user.unit_id,
            key=username,
            new=role,
        )
    )
    return user
