"""``kaohe user add/passwd/disable/enable/list`` against a seeded database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from kaohe.auth.passwords import verify_password
from kaohe.auth.sessions import create_api_token, create_session, user_for_token
from kaohe.auth.users import user_by_name
from kaohe.cli import app
from kaohe.store.db import make_engine, session_factory, transaction, upgrade
from kaohe.store.models import AuditEntry, User, UserSession

runner = CliRunner()


def run(db_url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    r = runner.invoke(app, ["user", *args, "--database", db_url], input=input)
    return r.exit_code, r.output


@pytest.fixture
def factory(engine):  # type: ignore[no-untyped-def]
    return session_factory(engine)


def test_add_with_prompt(db_url: str, factory) -> None:  # type: ignore[no-untyped-def]
    code, out = run(
        db_url,
        "add",
        "li_v0002",
        "--role",
        "reporter",
        "--unit",
        "V0002",
        "--name",
        "李明",
        input="good-pass-123\ngood-pass-123\n",
    )
    assert code == 0, out
    assert "good-pass-123" not in out  # the prompt is hidden
    assert "li_v0002" in out
    with transaction(factory) as s:
        user = user_by_name(s, "li_v0002")
        assert user.role == "reporter" and user.display_name == "李明"
        assert user.unit is not None and user.unit.code == "V0002"
        assert user.password_hash.startswith("$argon2id$")
        assert verify_password(user.password_hash, "good-pass-123")
        entry = s.scalar(select(AuditEntry).where(AuditEntry.key == "li_v0002"))
        assert entry is not None and entry.action == "user.add" and entry.user_id is None


def test_add_with_password_stdin(db_url: str, factory) -> None:  # type: ignore[no-untyped-def]
    code, out = run(
        db_url, "add", "boss", "--role", "admin", "--password-stdin", input="stdin-pass-99\n"
    )
    assert code == 0, out
    with transaction(factory) as s:
        assert verify_password(user_by_name(s, "boss").password_hash, "stdin-pass-99")


def test_add_prompt_mismatch_writes_nothing(db_url: str, factory) -> None:  # type: ignore[no-untyped-def]
    code, _out = run(
        db_url, "add", "x_user", "--role", "viewer", input="good-pass-123\nother-pass-123\n"
    )
    assert code != 0
    with transaction(factory) as s:
        assert s.scalar(select(User).where(User.username == "x_user")) is None


@pytest.mark.parametrize(
    ("args", "input", "message"),
    [
        (["--role", "reporter"], None, "needs a unit"),
        (["--role", "reporter", "--unit", "T000"], None, "village or community"),
        (["--role", "assessor", "--unit", "C01"], None, "township or street"),
        (["--role", "reporter", "--unit", "V9999"], None, "V9999"),
        (["--role", "root"], None, "unknown role"),
        (["--role", "viewer", "--password-stdin"], "short\n", "at least 10"),
        (["--role", "viewer", "--password-stdin"], "onlylettersxx\n", "letters and digits"),
        (["--role", "viewer", "--password-stdin"], "\n", "no password"),
    ],
)
def test_add_errors_exit_2(
    db_url: str,
    factory,  # type: ignore[no-untyped-def]
    args: list[str],
    input: str | None,
    message: str,
) -> None:
    code, out = run(db_url, "add", "new_user", *args, input=input)
    assert code == 2, out
    assert message in " ".join(out.split())
    with transaction(factory) as s:
        assert s.scalar(select(User).where(User.username == "new_user")) is None


def test_add_existing_user_exits_2(db_url: str) -> None:
    code, out = run(db_url, "add", "viewer", "--role", "viewer", "--password-stdin", input="x\n")
    assert code == 2 and "already exists" in out


def test_add_never_has_a_default_password(db_url: str) -> None:
    # no input at all: the prompt aborts, nothing is created
    code, _ = run(db_url, "add", "nopass", "--role", "viewer", input="")
    assert code != 0


def test_passwd_ends_sessions(db_url: str, factory) -> None:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        create_session(s, user_by_name(s, "reporter_v0001"))
    code, out = run(db_url, "passwd", "reporter_v0001", input="changed-pass-1\nchanged-pass-1\n")
    assert code == 0, out
    with transaction(factory) as s:
        user = user_by_name(s, "reporter_v0001")
        assert verify_password(user.password_hash, "changed-pass-1")
        n = s.scalar(
            select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)
        )
        assert n == 0
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.key == "reporter_v0001"))
        assert list(actions) == ["user.add", "user.passwd"]


def test_passwd_unknown_user(db_url: str) -> None:
    code, out = run(db_url, "passwd", "ghost", "--password-stdin", input="changed-pass-1\n")
    assert code == 2 and "ghost" in out


def test_passwd_weak_password(db_url: str, factory) -> None:  # type: ignore[no-untyped-def]
    code, out = run(db_url, "passwd", "viewer", "--password-stdin", input="weak\n")
    assert code == 2 and "at least 10" in out
    with transaction(factory) as s:
        assert verify_password(user_by_name(s, "viewer").password_hash, "viewer-pass-1")


def test_disable_and_enable(db_url: str, factory) -> None:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        secret, _ = create_api_token(s, user_by_name(s, "reporter_v0010"), "sync")
    code, out = run(db_url, "disable", "reporter_v0010")
    assert code == 0, out
    with transaction(factory) as s:
        assert not user_by_name(s, "reporter_v0010").active
        assert user_for_token(s, secret) is None
    code, out = run(db_url, "enable", "reporter_v0010")
    assert code == 0, out
    with transaction(factory) as s:
        assert user_by_name(s, "reporter_v0010").active
        assert user_for_token(s, secret) is None  # revoked for good


def test_disable_last_admin_is_refused(db_url: str, factory) -> None:  # type: ignore[no-untyped-def]
    code, out = run(db_url, "disable", "admin")
    assert code == 2 and "last active administrator" in out
    with transaction(factory) as s:
        assert user_by_name(s, "admin").active


def test_list(db_url: str) -> None:
    code, out = run(db_url, "list")
    assert code == 0, out
    for name in ("admin", "assessor_t000", "reporter_v0000", "viewer"):
        assert name in out
    assert "T000" in out and "reporter" in out


def test_database_not_set_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    code, out = run(url, "list")
    assert code == 2 and "kaohe db upgrade" in out


def test_fresh_database(tmp_path: Path) -> None:
    """On a freshly migrated database with no org units: an admin, then a list."""
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    code, out = run(
        url, "add", "first_admin", "--role", "admin", "--password-stdin", input="first-pass-12\n"
    )
    assert code == 0, out
    code, out = run(url, "list")
    assert code == 0 and "first_admin" in out


def test_database_from_environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAOHE_DATABASE_URL", db_url)
    r = runner.invoke(app, ["user", "list"])
    assert r.exit_code == 0 and "reporter_c01" in r.output
