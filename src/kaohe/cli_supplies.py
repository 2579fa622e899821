"""``kaohe supplies …`` commands (a sub-application of :mod:`kaohe.cli`)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Contraceptive supplies (避孕药具): stock reports and expiring lots", no_args_is_help=True
)
