"""``kaohe user …`` commands (a sub-application of :mod:`kaohe.cli`)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Users: add, change passwords, disable (县、乡镇、村用户)", no_args_is_help=True
)
