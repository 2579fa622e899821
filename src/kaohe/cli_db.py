"""``kaohe db …`` commands (a sub-application of :mod:`kaohe.cli`), and ``kaohe serve``.

``--database URL`` defaults to ``$KAOHE_DATABASE_URL``, else ./kaohe.sqlite."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kaohe.cli_console import err, out
from kaohe.errors import KaoheError

if TYPE_CHECKING:  # SQLAlchemy is imported only by the commands that use it (fast start-up)
    from sqlalchemy import Engine

app = typer.Typer(
    help="The database: upgrade (migrations), current revision, backup, restore",
    no_args_is_help=True,
)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="database URL (sqlite:///path or postgresql://user@host/db); "
        "default $KAOHE_DATABASE_URL, else ./kaohe.sqlite",
        show_default=False,
    ),
]


def _fail(e: KaoheError) -> None:
    err.print("[bold red]错误 error[/]: ", end="")
    err.print(str(e), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _engine(database: str | None) -> Engine:
    from kaohe.store.db import database_url, make_engine

    return make_engine(database_url(database))


class DatabaseError(KaoheError):
    exit_code = 2


def _connect_error(url: str, e: Exception) -> DatabaseError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return DatabaseError(f"cannot use the database {_shown(url)}: {first}")


@app.command()
def upgrade(database: DatabaseOpt = None) -> None:
    """Create or migrate the database to this version's schema (all migration heads)."""
    from sqlalchemy.exc import OperationalError

    from kaohe.store.db import current_revisions, upgrade

    engine = _engine(database)
    try:
        before = current_revisions(engine)
        upgrade(engine)
        after = current_revisions(engine)
    except OperationalError as e:
        _fail(_connect_error(str(engine.url), e))
    finally:
        engine.dispose()
    if before == after:
        out.print(f"已是最新 up to date: {_shown(str(engine.url))} at {', '.join(sorted(after))}")
    else:
        out.print(
            f"已升级 upgraded {_shown(str(engine.url))}: "
            f"{', '.join(sorted(before)) or '(empty)'} → {', '.join(sorted(after))}"
        )


@app.command()
def current(database: DatabaseOpt = None) -> None:
    """Show the database's migration revisions and whether it is up to date."""
    from sqlalchemy.exc import OperationalError

    from kaohe.store.db import current_revisions, head_revisions

    engine = _engine(database)
    try:
        revs = current_revisions(engine)
    except OperationalError as e:
        _fail(_connect_error(str(engine.url), e))
    finally:
        engine.dispose()
    heads = head_revisions()
    out.print(f"database: {_shown(str(engine.url))}")
    out.print(f"current:  {', '.join(sorted(revs)) or '(none: run `kaohe db upgrade`)'}")
    out.print(f"heads:    {', '.join(sorted(heads))}")
    if revs == heads:
        out.print("已是最新 up to date")
    else:
        out.print("需要升级 needs `kaohe db upgrade`")


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="the backup file to write (.jsonl.gz)")],
    database: DatabaseOpt = None,
) -> None:
    """Write a consistent backup of the whole database (safe while the app runs)."""
    from sqlalchemy.exc import OperationalError

    from kaohe.store.backup import backup as do_backup

    engine = _engine(database)
    try:
        counts = do_backup(engine, file)
    except KaoheError as e:
        _fail(e)
    except OperationalError as e:
        _fail(_connect_error(str(engine.url), e))
    finally:
        engine.dispose()
    out.print(f"已备份 backed up {sum(counts.values())} rows of {len(counts)} tables to {file}")


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="a backup written by `kaohe db backup`")],
    database: DatabaseOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace the contents of a non-empty database")
    ] = False,
) -> None:
    """Restore a backup into an empty (or, with --force, any) database, in one transaction."""
    from sqlalchemy.exc import OperationalError

    from kaohe.store.backup import restore as do_restore

    engine = _engine(database)
    try:
        counts = do_restore(engine, file, force=force)
    except KaoheError as e:
        _fail(e)
    except OperationalError as e:
        _fail(_connect_error(str(engine.url), e))
    finally:
        engine.dispose()
    out.print(
        f"已恢复 restored {sum(counts.values())} rows of {len(counts)} tables "
        f"into {_shown(str(engine.url))}"
    )


def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8000,
    database: DatabaseOpt = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="serve the demo database (created, migrated and seeded on first run; "
            "its users' passwords are printed); --database then defaults to "
            "var/demo/kaohe-demo.sqlite",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="server processes (2 on a 2-core machine)"),
    ] = 1,
) -> None:
    """Serve the web application (migrates the database first)."""
    from kaohe.demo.serve import run_server

    try:
        run_server(
            host=host, port=port, database=database, demo=demo, console=out.get(), workers=workers
        )
    except KaoheError as e:
        _fail(e)
