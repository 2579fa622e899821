"""Adding users, changing passwords, disabling accounts (``kaohe user …`` and admin pages).

Every change adds an :class:`AuditEntry` (``user.add``, ``user.passwd``,
``user.disable``, ``user.enable``, ``user.language``, ``token.create``,
``token.revoke``) in the caller's transaction."""

from __future__ import annotations

import re
import secrets
import string

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kaohe.auth.passwords import hash_password, password_problem, verify_password
from kaohe.auth.sessions import (
    create_api_token,
    end_all_sessions,
    end_other_sessions,
    revoke_all_api_tokens,
    revoke_api_token,
)
from kaohe.errors import KaoheError
from kaohe.store.models import ROLES, ApiToken, AuditEntry, OrgUnit, User, utcnow
from kaohe.workflow.units import NotFound, unit_by_code

#: usernames: letters (any script), digits, '_', '.', '-', '@'; 2–64 characters
USERNAME = re.compile(r"^[\w.@-]{2,64}$")

#: the org-unit levels each role's unit must have (None: no unit required)
UNIT_LEVELS: dict[str, tuple[str, ...]] = {
    "reporter": ("village", "community"),
    "assessor": ("township", "street"),
}

LANGUAGES = ("zh", "en")


class UserError(KaoheError):
    exit_code = 2


def user_by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"没有用户 '{username}' (no user '{username}')")
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by role (admin, assessor, reporter, viewer) then username."""
    users = list(session.scalars(select(User)))
    return sorted(users, key=lambda u: (ROLES.index(u.role) if u.role in ROLES else 9, u.username))


def _audit(
    session: Session,
    action: str,
    user: User,
    by: User | None,
    *,
    old: str | None = None,
    new: str | None = None,
    reason: str | None = None,
) -> None:
    session.add(
        AuditEntry(
            user_id=by.id if by else None,
            action=action,
            unit_id=user.unit_id,
            key=user.username,
            old=old,
            new=new,
            reason=reason,
        )
    )


def check_unit(role: str, unit: OrgUnit | None) -> None:
    """Reporters need a village/community, assessors a township/street."""
    levels = UNIT_LEVELS.get(role)
    if levels is None:
        return
    if unit is None:
        raise UserError(
            f"{role} 须指定所属单位 (a {role} needs a unit: --unit CODE of a {' or '.join(levels)})"
        )
    if unit.level not in levels:
        raise UserError(
            f"单位 {unit.code}（{unit.name}）是 {unit.level}，{role} 须属于 {'/'.join(levels)} "
            f"(a {role}'s unit must be a {' or '.join(levels)}, not the {unit.level} {unit.code})"
        )


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
    township/street; admins and viewers may have none (a viewer with a unit reads
    that unit's subtree)."""
    username = username.strip()
    if not USERNAME.match(username):
        raise UserError(
            f"用户名 '{username}' 无效：2–64 个字母、数字或 _ . - @ "
            f"(invalid username '{username}': 2–64 letters, digits or _ . - @)"
        )
    if role not in ROLES:
        raise UserError(f"未知角色 '{role}' (unknown role '{role}': use one of {', '.join(ROLES)})")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"用户 '{username}' 已存在 (user '{username}' already exists)")
    if check_password and (problem := password_problem(password)):
        raise UserError(problem)
    unit = unit_by_code(session, unit_code) if unit_code else None
    check_unit(role, unit)
    user = User(
        username=username,
        display_name=display_name.strip() or username,
        password_hash=hash_password(password),
        role=role,
        unit_id=unit.id if unit else None,
    )
    session.add(user)
    session.flush()
    _audit(session, "user.add", user, by, new=f"{role} {unit.code}" if unit else role)
    return user


def set_password(
    session: Session,
    user: User,
    password: str,
    *,
    by: User | None = None,
    keep_session: str | None = None,
    check_password: bool = True,
    reason: str | None = None,
) -> None:
    """Set ``user``'s password and end its sessions (except the cookie ``keep_session``)."""
    if check_password and (problem := password_problem(password)):
        raise UserError(problem)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    if keep_session:
        end_other_sessions(session, user, keep_session)
    else:
        end_all_sessions(session, user)
    _audit(session, "user.passwd", user, by, reason=reason)
    session.flush()


def change_own_password(
    session: Session, user: User, old: str, new: str, *, keep_session: str | None = None
) -> None:
    """A user changes its own password: the old one must match; other sessions end."""
    if not verify_password(user.password_hash, old):
        raise UserError("原密码不正确 (the current password is wrong)")
    if new == old:
        raise UserError("新密码不能与原密码相同 (the new password must differ from the old one)")
    set_password(session, user, new, by=user, keep_session=keep_session)


def random_password(length: int = 16) -> str:
    """A random password that passes :func:`password_problem` (for admin resets)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if password_problem(pw) is None and any(c.isdigit() for c in pw):
            return pw


def _active_admins(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.active.is_(True))
        )
        or 0
    )


def disable_user(
    session: Session, user: User, *, by: User | None = None, reason: str | None = None
) -> None:
    """Disable ``user``: no more sign-ins; its sessions end and its API tokens are revoked."""
    if by is not None and by.id == user.id:
        raise UserError("不能停用自己的账户 (you cannot disable your own account)")
    if user.role == "admin" and user.active and _active_admins(session) <= 1:
        raise UserError(
            "不能停用最后一个启用的管理员 (cannot disable the last active administrator)"
        )
    if user.active:
        user.active = False
        _audit(session, "user.disable", user, by, old="active", new="disabled", reason=reason)
    end_all_sessions(session, user)
    revoke_all_api_tokens(session, user)
    session.flush()


def enable_user(
    session: Session, user: User, *, by: User | None = None, reason: str | None = None
) -> None:
    if not user.active:
        user.active = True
        _audit(session, "user.enable", user, by, old="disabled", new="active", reason=reason)
    session.flush()


def set_language(session: Session, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise UserError(f"未知语言 '{language}' (unknown language '{language}': zh or en)")
    if user.language != language:
        _audit(session, "user.language", user, user, old=user.language, new=language)
        user.language = language
    session.flush()


def new_api_token(session: Session, user: User, name: str) -> tuple[str, ApiToken]:
    """A personal API token for ``user`` (audited): (secret shown once, row)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise UserError("令牌名称须为 1–200 个字符 (a token needs a name of 1–200 characters)")
    secret, row = create_api_token(session, user, name)
    _audit(session, "token.create", user, user, new=f"{row.prefix}… {name}")
    return secret, row


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s own tokens (audited)."""
    row = revoke_api_token(session, user, token_id)
    _audit(session, "token.revoke", user, user, old=f"{row.prefix}… {row.name}")
    return row
