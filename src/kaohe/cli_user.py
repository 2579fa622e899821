"""``kaohe user …`` commands (a sub-application of :mod:`kaohe.cli`).

Passwords are typed twice at a hidden prompt or read from stdin
(``--password-stdin``); there is never a default password."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from kaohe.cli_console import err, out
from kaohe.errors import KaoheError

if TYPE_CHECKING:  # SQLAlchemy is imported only by the commands that use it (fast start-up)
    from sqlalchemy.orm import Session

app = typer.Typer(
    help="Users: add, change passwords, disable (县、乡镇、村用户)", no_args_is_help=True
)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="database URL (default: $KAOHE_DATABASE_URL, else sqlite:///kaohe.sqlite)",
        show_default=False,
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="read the password from the first line of stdin"),
]


def _fail(message: str, code: int = 2) -> None:
    err.print("[bold red]错误 error[/]: ", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _session(database: str | None) -> Iterator[Session]:
    """One transaction on the (migrated) database; errors exit 2 with a message."""
    from sqlalchemy.exc import SQLAlchemyError

    from kaohe.store.db import current_revisions, database_url, make_engine, session_factory

    url = database_url(database)
    engine = make_engine(url)
    try:
        try:
            migrated = bool(current_revisions(engine))
        except SQLAlchemyError as e:
            _fail(
                f"数据库无法打开 (cannot open the database {engine.url!r}): {e.__class__.__name__}"
            )
        if not migrated:
            _fail(
                f"数据库尚未初始化 (the database {engine.url!r} is not set up: run `kaohe db upgrade`)"
            )
        with session_factory(engine)() as session, session.begin():
            try:
                yield session
            except KaoheError as e:
                _fail(str(e), e.exit_code)
    finally:
        engine.dispose()


def _read_password(stdin: bool) -> str:
    from kaohe.auth.passwords import password_problem

    if stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            _fail("标准输入中没有密码 (no password on stdin)")
    else:
        password = typer.prompt(
            "密码 password", hide_input=True, confirmation_prompt=True, default=None
        )
    if problem := password_problem(password):
        _fail(problem)
    return password


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[
        str, typer.Option("--role", help="admin, assessor, reporter or viewer", show_default=False)
    ],
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit",
            help="unit code: a village/community for reporters, a township/street for assessors",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="display name (default: the username)")] = "",
    password_stdin: PasswordStdin = False,
    database: DatabaseOpt = None,
) -> None:
    """Add a user; the password is asked twice (hidden) or read with --password-stdin."""
    from kaohe.auth.users import add_user
    from kaohe.store.models import ROLES

    if role not in ROLES:
        _fail(f"未知角色 '{role}' (unknown role '{role}': use one of {', '.join(ROLES)})")
    with _session(database) as s:
        # check the name and unit before asking for a password
        from sqlalchemy import select

        from kaohe.auth.users import USERNAME, check_unit
        from kaohe.store.models import User
        from kaohe.workflow.units import unit_by_code

        if not USERNAME.match(username):
            _fail(
                f"用户名 '{username}' 无效 (invalid username '{username}': 2–64 letters, digits or _ . - @)"
            )
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            _fail(f"用户 '{username}' 已存在 (user '{username}' already exists)")
        check_unit(role, unit_by_code(s, unit) if unit else None)
        password = _read_password(password_stdin)
        user = add_user(s, username, password, role, unit, display_name=name)
        where = f" ({user.unit.code} {user.unit.name})" if user.unit else ""
    out.print(f"已添加用户 added user [bold]{username}[/]: {role}{where}", highlight=False)


@app.command("passwd")
def passwd(
    username: Annotated[str, typer.Argument(help="login name")],
    password_stdin: PasswordStdin = False,
    database: DatabaseOpt = None,
) -> None:
    """Set a user's password (asked twice, hidden); the user's sessions end."""
    from kaohe.auth.users import set_password, user_by_name

    with _session(database) as s:
        user = user_by_name(s, username)
        password = _read_password(password_stdin)
        set_password(s, user, password, reason="kaohe user passwd")
    out.print(f"已修改密码 password changed: [bold]{username}[/]", highlight=False)


@app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="login name")],
    database: DatabaseOpt = None,
) -> None:
    """Disable a user: no more sign-ins; its sessions end and its API tokens are revoked."""
    from kaohe.auth.users import disable_user, user_by_name

    with _session(database) as s:
        disable_user(s, user_by_name(s, username), reason="kaohe user disable")
    out.print(f"已停用 disabled: [bold]{username}[/]", highlight=False)


@app.command("enable")
def enable(
    username: Annotated[str, typer.Argument(help="login name")],
    database: DatabaseOpt = None,
) -> None:
    """Enable a disabled user again (new API tokens are needed)."""
    from kaohe.auth.users import enable_user, user_by_name

    with _session(database) as s:
        enable_user(s, user_by_name(s, username), reason="kaohe user enable")
    out.print(f"已启用 enabled: [bold]{username}[/]", highlight=False)


@app.command("list")
def list_(database: DatabaseOpt = None) -> None:
    """List users: role, unit, active, created."""
    from rich.table import Table

    from kaohe.auth.users import list_users
    from kaohe.web.i18n import local_date

    table = Table(title="用户 users")
    table.add_column("用户名 username", no_wrap=True)
    for col in (
        "姓名 name",
        "角色 role",
        "单位 unit",
        "状态 state",
        "创建 created",
    ):
        table.add_column(col)
    with _session(database) as s:
        for u in list_users(s):
            table.add_row(
                u.username,
                u.display_name,
                u.role,
                f"{u.unit.code} {u.unit.name}" if u.unit else "—",
                "启用 active" if u.active else "停用 disabled",
                local_date(u.created_at),
            )
    out.print(table)
