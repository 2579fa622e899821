"""Signing in: password check, throttling of repeated failures, rehash on login.

Throttling counts failed attempts recorded in :class:`LoginAttempt` within
:data:`WINDOW`: at :data:`MAX_USER_FAILURES` failures for one username (since its
last successful sign-in) or :data:`MAX_ADDRESS_FAILURES` failures from one client
address, further attempts are refused without checking the password (HTTP 429)
until the window has passed.  Refused attempts are recorded too."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kaohe.auth.passwords import hash_password, needs_rehash, verify_password
from kaohe.errors import KaoheError
from kaohe.store.models import LoginAttempt, User, UserSession, utcnow

WINDOW = dt.timedelta(minutes=15)
MAX_USER_FAILURES = 5
MAX_ADDRESS_FAILURES = 20
#: login attempts older than this are deleted (on successful sign-ins)
KEEP_ATTEMPTS = dt.timedelta(days=90)


class LoginFailed(KaoheError):
    """Wrong username or password, or the account is disabled (one message for all)."""

    def __init__(self) -> None:
        super().__init__("用户名或密码错误 (wrong username or password)")


class LoginThrottled(KaoheError):
    """Too many failed attempts: try again later (HTTP 429)."""

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        super().__init__(
            f"登录失败次数过多，请 {minutes} 分钟后再试 "
            f"(too many failed sign-ins: try again in {minutes} minutes)"
        )


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against for unknown usernames (same time as a real check)."""
    return hash_password("kaohe-no-such-user-0")


def failures(session: Session, username: str, address: str, now: dt.datetime) -> tuple[int, int]:
    """Failed attempts in the window: (for ``username`` since its last success, from ``address``)."""
    since = now - WINDOW
    last_ok = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username, LoginAttempt.ok.is_(True)
        )
    )
    user_since = max(since, last_ok) if last_ok is not None else since
    by_user = session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.username == username,
            LoginAttempt.ok.is_(False),
            LoginAttempt.at > user_since,
        )
    )
    by_address: int | None = 0
    if address:
        by_address = session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(
                LoginAttempt.ip == address,
                LoginAttempt.ok.is_(False),
                LoginAttempt.at > since,
            )
        )
    return int(by_user or 0), int(by_address or 0)


def is_throttled(session: Session, username: str, address: str = "") -> bool:
    by_user, by_address = failures(session, username, address, utcnow())
    return by_user >= MAX_USER_FAILURES or by_address >= MAX_ADDRESS_FAILURES


def authenticate(session: Session, username: str, password: str, address: str = "") -> User:
    """The active user with this username and password; records the attempt.

    Raises :class:`LoginThrottled` (too many recent failures) or :class:`LoginFailed`.
    Rehashes the password when the argon2 parameters have changed.  The caller's
    transaction must be committed even when this raises, so the attempt is kept."""
    username = username.strip()[:64]
    address = address[:64]
    now = utcnow()
    if is_throttled(session, username, address):
        session.add(LoginAttempt(username=username, ip=address, at=now, ok=False))
        session.flush()
        raise LoginThrottled(int(WINDOW.total_seconds() // 60))
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None else _dummy_hash()
    ok = verify_password(stored, password) and user is not None and user.active
    session.add(LoginAttempt(username=username, ip=address, at=now, ok=ok))
    session.flush()
    if not ok or user is None:
        raise LoginFailed()
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - KEEP_ATTEMPTS))
    session.execute(delete(UserSession).where(UserSession.expires_at < now))
    return user
