"""``kaohe db …`` commands (a sub-application of :mod:`kaohe.cli`)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The database: upgrade (migrations), backup, restore; serve the web app",
    no_args_is_help=True,
)
