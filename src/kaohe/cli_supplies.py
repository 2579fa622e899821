"""``kaohe supplies …`` commands (a sub-application of :mod:`kaohe.cli`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from kaohe.cli_console import err
from kaohe.errors import KaoheError

app = typer.Typer(
    help="Contraceptive supplies (避孕药具): stock reports and expiring lots", no_args_is_help=True
)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database", help="database URL (default: $KAOHE_DATABASE_URL or ./kaohe.sqlite)"
    ),
]


def _date(value: str | None) -> dt.date:
    from kaohe.supplies.ledger import today

    if not value:
        return today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise KaoheError(f"--as-of: not a date '{value}' (use YYYY-MM-DD)") from None


def _fail(e: KaoheError) -> None:
    err.print(f"[red]错误 error:[/red] {e}")
    raise typer.Exit(e.exit_code)


@app.command()
def report(
    output: Annotated[Path, typer.Option("-o", "--output", help="the .xlsx to write")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today)")
    ] = None,
    database: DatabaseOpt = None,
) -> None:
    """Stock on hand by location, product and lot at the end of --as-of, as an XLSX workbook."""
    from kaohe.store.db import make_engine, session_factory, transaction
    from kaohe.supplies.report import write_stock_report

    try:
        day = _date(as_of)
        engine = make_engine(database)
        with transaction(session_factory(engine)) as s:
            n = write_stock_report(s, day, output)
        engine.dispose()
    except KaoheError as e:
        _fail(e)
        return
    err.print(f"已写出 written: {output} ({n} 行 rows, 截至 as of {day.isoformat()})")


@app.command()
def expiring(
    within: Annotated[str, typer.Option("--within", help="e.g. 6m, 1y (months)")] = "6m",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: today)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Lots expiring within --within (and lots already expired) that are still held, per location."""
    from kaohe.store.db import make_engine, session_factory, transaction
    from kaohe.supplies import service as sv

    try:
        day = _date(as_of)
        months = sv.parse_within(within)
        engine = make_engine(database)
        with transaction(session_factory(engine)) as s:
            near, gone = sv.expiring(s, day, months)
            rows = [
                {
                    "status": status,
                    "location": x.location.code,
                    "location_name": x.location.name,
                    "product": x.product.code,
                    "product_name": x.product.name,
                    "lot": x.lot.number,
                    "expiry": x.lot.expiry.isoformat(),
                    "qty": x.qty,
                }
                for status, lines in (("expired", gone), ("near", near))
                for x in lines
            ]
        engine.dispose()
    except KaoheError as e:
        _fail(e)
        return
    if as_json:
        typer.echo(json.dumps({"as_of": day.isoformat(), "within_months": months, "lots": rows},
                              ensure_ascii=False, indent=1))  # fmt: skip
        return
    from rich.table import Table

    table = Table(title=f"截至 {day.isoformat()}：已过期和 {months} 个月内到期的药具")
    for col in ("状态", "地点", "药具", "批号", "有效期至", "结存"):
        table.add_column(col, justify="right" if col == "结存" else "left")
    for r in rows:
        table.add_row(
            "已过期" if r["status"] == "expired" else "近效期",
            f"{r['location_name']} ({r['location']})",
            str(r["product_name"]),
            str(r["lot"]),
            str(r["expiry"]),
            str(r["qty"]),
        )
    from rich.console import Console

    Console(width=160).print(table)
