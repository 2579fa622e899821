"""The auth core without HTTP: passwords, sign-in and throttling, users, sessions, tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from kaohe.auth import login
from kaohe.auth.login import LoginFailed, LoginThrottled, authenticate
from kaohe.auth.passwords import hash_password, needs_rehash, password_problem, verify_password
from kaohe.auth.sessions import (
    api_tokens,
    create_api_token,
    create_session,
    end_other_sessions,
    session_for,
    user_for_token,
)
from kaohe.auth.users import (
    UserError,
    add_user,
    change_own_password,
    disable_user,
    enable_user,
    list_users,
    new_api_token,
    random_password,
    revoke_token,
    set_language,
    set_password,
    user_by_name,
)
from kaohe.store.models import AuditEntry, LoginAttempt, UserSession, utcnow
from kaohe.workflow.units import NotFound


def test_passwords_are_argon2id() -> None:
    h = hash_password("some-pass-123")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "some-pass-123")
    assert not verify_password(h, "some-pass-124")
    assert not verify_password("not a hash", "x")
    assert not needs_rehash(h)
    assert needs_rehash(PasswordHasher(time_cost=1, memory_cost=8192).hash("x"))


@pytest.mark.parametrize(
    ("password", "ok"),
    [("short1", False), ("1234567890123", False), ("abcdefghijkl", False), ("abc-def-1234", True)],
)
def test_password_rules(password: str, ok: bool) -> None:
    assert (password_problem(password) is None) is ok


def test_random_passwords_pass_the_rules() -> None:
    seen = {random_password() for _ in range(20)}
    assert len(seen) == 20
    assert all(password_problem(p) is None for p in seen)


# --- sign-in ----------------------------------------------------------------------------


def test_authenticate(db) -> None:  # type: ignore[no-untyped-def]
    user = authenticate(db, "viewer", "viewer-pass-1", "10.0.0.1")
    assert user.username == "viewer"
    with pytest.raises(LoginFailed):
        authenticate(db, "viewer", "wrong", "10.0.0.1")
    with pytest.raises(LoginFailed) as unknown:
        authenticate(db, "ghost", "wrong", "10.0.0.1")
    assert "用户名或密码错误" in str(unknown.value)
    rows = list(db.scalars(select(LoginAttempt).order_by(LoginAttempt.id)))
    assert [(a.username, a.ok, a.ip) for a in rows] == [
        ("viewer", True, "10.0.0.1"),
        ("viewer", False, "10.0.0.1"),
        ("ghost", False, "10.0.0.1"),
    ]


def test_disabled_user_cannot_authenticate(db) -> None:  # type: ignore[no-untyped-def]
    disable_user(db, user_by_name(db, "viewer"))
    with pytest.raises(LoginFailed):
        authenticate(db, "viewer", "viewer-pass-1")


def test_throttle_by_user_and_window(db) -> None:  # type: ignore[no-untyped-def]
    for _ in range(login.MAX_USER_FAILURES):
        with pytest.raises(LoginFailed):
            authenticate(db, "viewer", "wrong", "10.0.0.1")
    with pytest.raises(LoginThrottled) as e:
        authenticate(db, "viewer", "viewer-pass-1", "10.0.0.2")
    assert e.value.minutes == 15 and "15 分钟" in str(e.value)
    # the window passes
    for a in db.scalars(select(LoginAttempt)):
        a.at = a.at - login.WINDOW - dt.timedelta(seconds=1)
    assert authenticate(db, "viewer", "viewer-pass-1", "10.0.0.2").username == "viewer"


def test_throttle_by_address(db) -> None:  # type: ignore[no-untyped-def]
    for i in range(login.MAX_ADDRESS_FAILURES):
        with pytest.raises(LoginFailed):
            authenticate(db, f"u{i}", "wrong", "10.0.0.9")
    with pytest.raises(LoginThrottled):
        authenticate(db, "viewer", "viewer-pass-1", "10.0.0.9")
    assert authenticate(db, "viewer", "viewer-pass-1", "10.0.0.8").username == "viewer"


def test_old_attempts_and_expired_sessions_are_cleaned_up(db) -> None:  # type: ignore[no-untyped-def]
    old = utcnow() - login.KEEP_ATTEMPTS - dt.timedelta(days=1)
    db.add(LoginAttempt(username="x", ip="1.1.1.1", at=old, ok=False))
    _, row = create_session(db, user_by_name(db, "admin"))
    row.expires_at = utcnow() - dt.timedelta(minutes=1)
    db.flush()
    authenticate(db, "viewer", "viewer-pass-1")
    assert db.scalar(select(func.count()).where(LoginAttempt.username == "x")) == 0
    assert db.scalar(select(func.count()).select_from(UserSession)) == 0


def test_rehash_on_login(db) -> None:  # type: ignore[no-untyped-def]
    user = user_by_name(db, "viewer")
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash("viewer-pass-1")
    authenticate(db, "viewer", "viewer-pass-1")
    assert not needs_rehash(user.password_hash)
    assert verify_password(user.password_hash, "viewer-pass-1")


# --- users ------------------------------------------------------------------------------


def test_add_user_checks_unit_levels(db) -> None:  # type: ignore[no-untyped-def]
    assert add_user(db, "r_c05", "good-pass-123", "reporter", "C05").unit.code == "C05"  # type: ignore[union-attr]
    assert add_user(db, "a_t001", "good-pass-123", "assessor", "T001").unit.code == "T001"  # type: ignore[union-attr]
    assert add_user(db, "v_t001", "good-pass-123", "viewer", "T001").role == "viewer"
    assert add_user(db, "admin2", "good-pass-123", "admin").unit is None
    for role, unit, message in [
        ("reporter", None, "needs a unit"),
        ("reporter", "ST01", "village or community"),
        ("reporter", "X01", "village or community"),
        ("assessor", "V0000", "township or street"),
        ("assessor", None, "needs a unit"),
    ]:
        with pytest.raises(UserError, match=message):
            add_user(db, "new_one", "good-pass-123", role, unit)
    with pytest.raises(NotFound):
        add_user(db, "new_one", "good-pass-123", "viewer", "NOPE")


@pytest.mark.parametrize("name", ["a", "has space", "semi;colon", "x" * 65, ""])
def test_add_user_checks_username(db, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="username"):
        add_user(db, name, "good-pass-123", "viewer")


def test_chinese_usernames_are_fine(db) -> None:  # type: ignore[no-untyped-def]
    assert add_user(db, "张三", "good-pass-123", "viewer").username == "张三"


def test_add_user_audits(db) -> None:  # type: ignore[no-untyped-def]
    admin = user_by_name(db, "admin")
    add_user(db, "r_v0005", "good-pass-123", "reporter", "V0005", by=admin)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.key == "r_v0005"))
    assert entry.action == "user.add" and entry.user_id == admin.id
    assert entry.new == "reporter V0005" and entry.unit_id is not None


def test_list_users_by_role(db) -> None:  # type: ignore[no-untyped-def]
    roles = [u.role for u in list_users(db)]
    assert roles == sorted(roles, key=["admin", "assessor", "reporter", "viewer"].index)


def test_set_password_ends_sessions_but_the_kept_one(db) -> None:  # type: ignore[no-untyped-def]
    user = user_by_name(db, "viewer")
    keep, _ = create_session(db, user)
    other, _ = create_session(db, user)
    set_password(db, user, "fresh-pass-123", keep_session=keep)
    assert session_for(db, keep) is not None
    assert session_for(db, other) is None
    set_password(db, user, "fresh-pass-456")
    assert session_for(db, keep) is None
    with pytest.raises(UserError):
        set_password(db, user, "weak")


def test_change_own_password(db) -> None:  # type: ignore[no-untyped-def]
    user = user_by_name(db, "viewer")
    with pytest.raises(UserError, match="current password"):
        change_own_password(db, user, "wrong", "fresh-pass-123")
    with pytest.raises(UserError, match="differ"):
        change_own_password(db, user, "viewer-pass-1", "viewer-pass-1")
    change_own_password(db, user, "viewer-pass-1", "fresh-pass-123")
    assert verify_password(user.password_hash, "fresh-pass-123")


def test_disable_and_enable(db) -> None:  # type: ignore[no-untyped-def]
    admin = user_by_name(db, "admin")
    user = user_by_name(db, "reporter_v0000")
    cookie, _ = create_session(db, user)
    secret, _ = create_api_token(db, user, "sync")
    disable_user(db, user, by=admin)
    assert not user.active
    assert session_for(db, cookie) is None and user_for_token(db, secret) is None
    enable_user(db, user, by=admin)
    assert user.active and user_for_token(db, secret) is None
    actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.key == user.username)))
    assert actions == ["user.add", "user.disable", "user.enable"]


def test_admins_cannot_lock_everyone_out(db) -> None:  # type: ignore[no-untyped-def]
    admin = user_by_name(db, "admin")
    with pytest.raises(UserError, match="your own"):
        disable_user(db, admin, by=admin)
    with pytest.raises(UserError, match="last active administrator"):
        disable_user(db, admin)
    second = add_user(db, "admin2", "good-pass-123", "admin")
    disable_user(db, admin, by=second)
    assert not admin.active


def test_language(db) -> None:  # type: ignore[no-untyped-def]
    user = user_by_name(db, "viewer")
    set_language(db, user, "en")
    assert user.language == "en"
    with pytest.raises(UserError):
        set_language(db, user, "de")


# --- sessions and tokens -------------------------------------------------------------------


def test_end_other_sessions(db) -> None:  # type: ignore[no-untyped-def]
    user = user_by_name(db, "viewer")
    a, _ = create_session(db, user)
    b, _ = create_session(db, user)
    other_user, _ = create_session(db, user_by_name(db, "admin"))
    end_other_sessions(db, user, a)
    assert session_for(db, a) is not None and session_for(db, b) is None
    assert session_for(db, other_user) is not None


def test_tokens(db) -> None:  # type: ignore[no-untyped-def]
    user = user_by_name(db, "reporter_v0000")
    secret, row = new_api_token(db, user, "同步")
    assert secret.startswith("kh_") and row.token_hash != secret and row.prefix == secret[:8]
    assert user_for_token(db, secret) is user and row.last_used_at is not None
    assert user_for_token(db, secret + "x") is None
    with pytest.raises(NotFound):
        revoke_token(db, user_by_name(db, "reporter_v0001"), row.id)
    revoke_token(db, user, row.id)
    assert user_for_token(db, secret) is None
    assert [t.name for t in api_tokens(db, user)] == ["同步"]
    assert api_tokens(db, user, include_revoked=False) == []
    with pytest.raises(UserError):
        new_api_token(db, user, " ")
