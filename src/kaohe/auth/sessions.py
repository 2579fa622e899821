"""Browser sessions and personal API tokens: random secrets handed out once,
only their sha256 stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kaohe.store.models import ApiToken, User, UserSession, utcnow

SESSION_COOKIE = "kaohe_session"
SESSION_HOURS = 12
TOKEN_PREFIX = "kh_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_session(session: Session, user: User) -> tuple[str, UserSession]:
    """A new session for ``user``: (cookie value, row)."""
    token = secrets.token_urlsafe(32)
    row = UserSession(
        token_hash=digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=utcnow() + dt.timedelta(hours=SESSION_HOURS),
    )
    session.add(row)
    session.flush()
    return token, row


def session_for(session: Session, token: str | None) -> UserSession | None:
    """The live session of a cookie value (None when unknown, expired or the user disabled)."""
    if not token:
        return None
    row = session.scalar(select(UserSession).where(UserSession.token_hash == digest(token)))
    if row is None or row.expires_at < utcnow() or not row.user.active:
        return None
    return row


def end_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(UserSession).where(UserSession.token_hash == digest(token)))


def end_all_sessions(session: Session, user: User) -> None:
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))


def create_api_token(session: Session, user: User, name: str) -> tuple[str, ApiToken]:
    """A personal API token: (secret shown once, row)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=digest(secret), prefix=secret[:8])
    session.add(row)
    session.flush()
    return secret, row


def user_for_token(session: Session, secret: str | None) -> User | None:
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(secret)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    row.last_used_at = utcnow()
    return row.user


def end_other_sessions(session: Session, user: User, keep_token: str | None) -> None:
    """End every session of ``user`` except the one whose cookie value is ``keep_token``."""
    stmt = delete(UserSession).where(UserSession.user_id == user.id)
    if keep_token:
        stmt = stmt.where(UserSession.token_hash != digest(keep_token))
    session.execute(stmt)


def api_tokens(session: Session, user: User, *, include_revoked: bool = True) -> list[ApiToken]:
    """``user``'s API tokens, newest first."""
    stmt = select(ApiToken).where(ApiToken.user_id == user.id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(stmt.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_api_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s own tokens (NotFound for anyone else's: no hint it exists)."""
    from kaohe.workflow.units import NotFound

    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"没有编号为 {token_id} 的令牌 (no token {token_id})")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    session.flush()
    return row


def revoke_all_api_tokens(session: Session, user: User) -> None:
    for row in api_tokens(session, user, include_revoked=False):
        row.revoked_at = utcnow()
    session.flush()
