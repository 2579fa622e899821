"""``kaohe serve`` and ``make run``: migrate, (demo) seed, print the demo users, serve.

The demo database lives in ``var/demo/`` under the working directory
(``kaohe-demo.sqlite``, ignored by git).  On first run it is created, migrated
and seeded with the demo county, its 2022 data in several workflow states and
one user per role; their random passwords are written beside it in
``kaohe-demo-passwords.json`` (mode 0600) and printed on every start."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from kaohe.demo.database import (
    DEMO_USERS,
    DemoUser,
    create_demo_county,
    create_demo_results,
    create_demo_submissions,
    create_demo_users,
)
from kaohe.errors import KaoheError
from kaohe.store.db import database_url, make_engine, session_factory, transaction, upgrade
from kaohe.store.models import OrgUnit, User

DEMO_DIR = Path("var/demo")
DEMO_DB = "kaohe-demo.sqlite"
PASSWORDS = "kaohe-demo-passwords.json"


class ServeError(KaoheError):
    exit_code = 2


def demo_url(directory: Path = DEMO_DIR) -> str:
    return f"sqlite:///{directory / DEMO_DB}"


def _passwords_file(url: str, directory: Path) -> Path:
    """Beside a SQLite demo database; in ``directory`` for a server database."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database).parent / PASSWORDS
    return directory / PASSWORDS


def _read_passwords(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ServeError(f"{path}: unreadable demo passwords file ({e}); delete it") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_passwords(path: Path, users: list[DemoUser]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({u.username: u.password for u in users}, f, ensure_ascii=False, indent=1)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def seed_demo(engine: Engine, passwords: dict[str, str] | None = None) -> list[DemoUser]:
    """Seed a migrated, empty database with the whole demo (one transaction)."""
    with transaction(session_factory(engine)) as s:
        create_demo_county(s)
        users = create_demo_users(s, passwords)
        create_demo_submissions(s)
        create_demo_results(s)
    return users


def prepare_demo(url: str | None = None, directory: Path = DEMO_DIR) -> tuple[str, list[DemoUser]]:
    """The demo database, created, migrated and seeded if need be: (url, users)."""
    url = database_url(url or demo_url(directory))
    pw_path = _passwords_file(url, directory)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with session_factory(engine)() as s:
            seeded = (s.scalar(select(func.count()).select_from(OrgUnit)) or 0) > 0
            usernames = set(s.scalars(select(User.username)))
        passwords = _read_passwords(pw_path)
        if not seeded:
            users = seed_demo(engine, passwords)
            _write_passwords(pw_path, users)
            return url, users
    finally:
        engine.dispose()
    users = [
        DemoUser(name, role, unit, passwords.get(name, "?"))
        for name, role, unit, _display in DEMO_USERS
        if name in usernames
    ]
    return url, users


def users_table(users: list[DemoUser], address: str) -> Table:
    t = Table(
        title=f"演示用户 demo users — {address}",
        title_justify="left",
        caption="演示数据库的密码仅用于本机演示 (demo passwords, for this machine only)",
    )
    t.add_column("用户名 username")
    t.add_column("角色 role")
    t.add_column("单位 unit")
    t.add_column("密码 password")
    for u in users:
        t.add_row(u.username, u.role, u.unit or "—", u.password)
    return t


def run_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    database: str | None = None,
    demo: bool = False,
    console: Console | None = None,
    workers: int = 1,
) -> None:
    """Migrate (and for the demo, seed) the database, then serve the app with uvicorn
    (``workers`` > 1: that many processes, each with its own caches)."""
    import uvicorn

    from kaohe.web.app import create_app

    console = console or Console()
    address = f"http://{host}:{port}"
    if demo:
        url, users = prepare_demo(database)
        console.print(users_table(users, address))
        console.print(f"演示数据库 demo database: {make_url(url).render_as_string(True)}")
    else:
        url = database_url(database)
        engine = make_engine(url)
        try:
            upgrade(engine)
            with session_factory(engine)() as s:
                nusers = s.scalar(select(func.count()).select_from(User)) or 0
        finally:
            engine.dispose()
        if nusers == 0:
            console.print(
                "[bold yellow]还没有用户 no users yet[/]: create the first administrator with\n"
                "  kaohe user add admin --role admin"
                + ("" if database is None else " --database URL")
                + "\n(no default password: you choose it at the prompt)"
            )
    console.print(f"kaohe 考核: serving {address} (Ctrl+C to stop)")
    if workers > 1:
        import os

        os.environ["KAOHE_DATABASE_URL"] = url
        os.environ["KAOHE_DEMO"] = "1" if demo else ""
        uvicorn.run(
            "kaohe.web.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
        return
    app = create_app(url, demo=demo)
    uvicorn.run(app, host=host, port=port, log_level="info")
