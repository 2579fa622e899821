"""The ``kaohe`` command line: a thin layer over the library.

Exit codes: 0 success, 2 bad input (rulebook, data, org units, period), 1 bug.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from kaohe.cli_console import err, note, out
from kaohe.errors import InputErrors, KaoheError, RulebookErrors

_APP_SETTINGS: dict[str, Any] = {
    "name": "kaohe",
    "help": "kaohe 考核: target-management responsibility assessment — rulebooks, scores, explanations.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
}
app = typer.Typer(**_APP_SETTINGS)


class ScoreFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class ExplainFormat(StrEnum):
    text = "text"
    json = "json"


def _fail(e: KaoheError) -> None:
    if isinstance(e, InputErrors | RulebookErrors):
        err.print(f"[bold red]错误 error[/]: {len(e.errors)} problem(s) found:")
        for x in e.errors:
            err.print(f"  {x}", markup=False, highlight=False, soft_wrap=True)
    else:
        err.print("[bold red]错误 error[/]: ", end="")
        err.print(str(e), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


@contextmanager
def _steps() -> Iterator[Any]:
    """A progress display on stderr (only drawn on a terminal: elsewhere Rich is not
    even imported)."""
    if not sys.stderr.isatty():
        yield lambda text: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err.get(),
        transient=True,
    )
    with progress:
        task = progress.add_task("", total=None)

        def step(text: str) -> None:
            progress.update(task, description=text)

        yield step


def _params(values: list[str] | None) -> dict[str, float]:
    params: dict[str, float] = {}
    for v in values or []:
        name, sep, num = v.partition("=")
        try:
            if not sep:
                raise ValueError
            params[name.strip()] = float(num)
        except ValueError:
            raise KaoheError(f"--param '{v}': expected NAME=NUMBER") from None
    return params


RulebookArg = Annotated[
    str, typer.Argument(help="a shipped rulebook name (see `kaohe rulebooks`) or a YAML file")
]
DataOpt = Annotated[
    Path, typer.Option("--data", help="data file: CSV, XLSX or Parquet, wide or long layout")
]
UnitsOpt = Annotated[Path | None, typer.Option("--units", help="org units file (code,name,parent)")]
PeriodOpt = Annotated[
    str, typer.Option("--period", help="2022 (year), 2022T1..T3, 2022Q1, 2022-03")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="override a rulebook parameter: NAME=NUMBER (repeatable)"),
]


def _load(
    rulebook: str, data: Path, units: Path | None, params: list[str] | None, step: Any
) -> tuple[Any, Any, Any]:
    from kaohe.io.read import read_data
    from kaohe.io.units import read_units
    from kaohe.rulebook.loader import load_rulebook

    step("读取规则 reading rulebook")
    rb = load_rulebook(rulebook, _params(params))
    org = None
    if units is not None:
        step("读取组织机构 reading org units")
        org = read_units(units)
    step("读取数据 reading data")
    ds = read_data(data, rb, org)
    return rb, ds, org


@app.command()
def score(
    rulebook: RulebookArg,
    data: DataOpt,
    period: PeriodOpt,
    units: UnitsOpt = None,
    format: Annotated[
        ScoreFormat | None, typer.Option("--format", help="json (default), csv or xlsx")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="output file (default: standard output)")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="include each unit's term-by-term explanation")
    ] = False,
    param: ParamOpt = None,
) -> None:
    """Score every unit for a period: totals, ranks, item scores, bonuses and deductions."""
    from kaohe.engine import score as run_score
    from kaohe.output import to_json, write_csv

    try:
        fmt = format or (
            ScoreFormat(output.suffix[1:])
            if output and output.suffix[1:] in ScoreFormat.__members__
            else ScoreFormat.json
        )
        if fmt is ScoreFormat.xlsx and output is None:
            raise KaoheError("--format xlsx needs --output FILE.xlsx")
        if explain and fmt is ScoreFormat.csv:
            raise KaoheError(
                "--explain needs --format json or xlsx (a CSV row cannot hold an explanation)"
            )
        with _steps() as step:
            rb, ds, org = _load(rulebook, data, units, param, step)
            step("计算 scoring")
            if explain:  # the explanations read the dataset again
                result = run_score(rb, ds, period, org)
            else:  # handed over: the engine frees it column by column as it reshapes it
                box = [ds]
                del ds
                result = run_score(rb, box, period, org)
            explanations = None
            if explain:
                step("生成说明 explaining")
                explanations = _explain_all(rb, ds, org, result)
            step("写出 writing")
            if fmt is ScoreFormat.json:
                text = to_json(
                    result,
                    {u: e["json"] for u, e in explanations.items()} if explanations else None,
                )
                if output:
                    output.write_text(text + "\n", encoding="utf-8")
                else:
                    sys.stdout.write(text + "\n")
            elif fmt is ScoreFormat.csv:
                if output:
                    write_csv(result, output)
                else:
                    sys.stdout.write(write_csv(result) or "")
            else:
                from kaohe.io.xlsx_report import write_xlsx_report

                assert output is not None
                write_xlsx_report(result, output)
                if explanations:
                    _append_explanations_sheet(output, explanations)
    except KaoheError as e:
        _fail(e)
    if output:
        note(f"已写出 written: {output} ({result.table.height} units, period {result.period})")


def _explain_all(rb: Any, ds: Any, org: Any, result: Any) -> dict[str, dict[str, Any]]:
    from kaohe.engine import explain as ex

    return {
        unit: {"json": ex.to_json(e), "text": ex.render_text(e)}
        for unit, e in ex.explain_all(rb, ds, org, result.period).items()
    }


def _append_explanations_sheet(path: Path, explanations: dict[str, dict[str, Any]]) -> None:
    from openpyxl import load_workbook
    from openpyxl.styles import Font

    wb = load_workbook(path)
    ws = wb.create_sheet("得分说明")
    ws.column_dimensions["A"].width = 100
    r = 1
    for unit, e in explanations.items():
        ws.cell(r, 1, unit).font = Font(bold=True)
        r += 1
        for line in e["text"].splitlines():
            ws.cell(r, 1, line)
            r += 1
        r += 1
    wb.save(path)


@app.command()
def explain(
    rulebook: RulebookArg,
    data: DataOpt,
    period: PeriodOpt,
    unit: Annotated[str, typer.Option("--unit", help="the unit's code")],
    units: UnitsOpt = None,
    format: Annotated[
        ExplainFormat, typer.Option("--format", help="text or json")
    ] = ExplainFormat.text,
    param: ParamOpt = None,
) -> None:
    """Explain one unit's score term by term: inputs, each term's points, floors, vetoes, ranks."""
    from kaohe.engine import explain as ex
    from kaohe.periods import Period

    try:
        with _steps() as step:
            rb, ds, org = _load(rulebook, data, units, param, step)
            step("生成说明 explaining")
            e = ex.explain_unit(rb, ds, org, Period.parse(period), unit)
        if format is ExplainFormat.json:
            sys.stdout.write(json.dumps(ex.to_json(e), ensure_ascii=False, indent=1) + "\n")
        else:
            sys.stdout.write(ex.render_text(e) + "\n")
    except KaoheError as e:
        _fail(e)


@app.command()
def pay(
    rulebook: RulebookArg,
    data: DataOpt,
    period: PeriodOpt,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="the payment sheet: .xlsx, .csv or .json")
    ],
    units: UnitsOpt = None,
    approvals: Annotated[
        Path | None,
        typer.Option(
            "--approvals", help="unit,period,reviewed_by,approved_by (lines not in it are pending)"
        ),
    ] = None,
    param: ParamOpt = None,
) -> None:
    """Write the payment sheet: every money line with payee, funder, basis and amount, subtotals and funder totals."""
    from kaohe.engine.payments import payment_sheet
    from kaohe.io.approvals import read_approvals

    try:
        with _steps() as step:
            rb, ds, org = _load(rulebook, data, units, param, step)
            appr = read_approvals(approvals) if approvals else None
            step("计算 computing payments")
            sheet = payment_sheet(rb, ds, period, org, appr)
            step("写出 writing")
            suffix = output.suffix.lower()
            if suffix == ".xlsx":
                from kaohe.io.payment_sheet import write_payment_sheet

                write_payment_sheet(sheet, output, org.name_of() if org else None)
            elif suffix == ".csv":
                sheet.lines.write_csv(output)
            elif suffix == ".json":
                doc = {
                    "rulebook": rb.code,
                    "period": str(sheet.period),
                    "lines": sheet.lines.to_dicts(),
                    "totals_by_funder_fen": sheet.totals_by_funder(),
                    "total_fen": sheet.total(),
                }
                output.write_text(
                    json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
                )
            else:
                raise KaoheError(f"--output {output}: use .xlsx, .csv or .json")
    except KaoheError as e:
        _fail(e)
    totals = "、".join(
        f"{rb.model.funders.get(f, f)} {v / 100:,.2f}元"
        for f, v in sheet.totals_by_funder().items()
    )
    err.print(f"已写出 written: {output} ({sheet.lines.height} lines; {totals or 'no money'})")


@app.command()
def notice(
    rulebook: RulebookArg,
    data: DataOpt,
    period: PeriodOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="the notice: .docx or .md")],
    units: UnitsOpt = None,
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="who issues it, e.g. 城关街道办事处")
    ] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="date of issue, YYYY-MM-DD (default today)")
    ] = None,
    param: ParamOpt = None,
) -> None:
    """Write the ranking notice (通报): ranking, commended, criticised, rewards, vetoes."""
    import datetime as dt

    from kaohe.engine import score as run_score
    from kaohe.io import notice as nt

    try:
        when = None
        if date:
            try:
                when = dt.date.fromisoformat(date)
            except ValueError:
                raise KaoheError(f"--date '{date}': expected YYYY-MM-DD") from None
        if output.suffix.lower() not in (".docx", ".md"):
            raise KaoheError(f"--output {output}: use .docx or .md")
        with _steps() as step:
            rb, ds, org = _load(rulebook, data, units, param, step)
            step("计算 scoring")
            result = run_score(rb, ds, period, org)
            doc = nt.build_notice(result, org.name_of() if org else None, issuer=issuer, date=when)
            step("写出 writing")
            if output.suffix.lower() == ".docx":
                nt.write_notice_docx(doc, output)
            else:
                nt.write_notice_md(doc, output)
    except KaoheError as e:
        _fail(e)
    err.print(f"已写出 written: {output}")


@app.command("rulebooks")
def list_rulebooks() -> None:
    """List the shipped rulebooks."""
    from rich.table import Table

    from kaohe.rulebook.loader import load_rulebook, shipped_rulebooks

    t = Table()
    t.add_column("代码 code", no_wrap=True)
    for col in ("名称 name", "版本 version", "期间 periods", "指标 items", "来源 source"):
        t.add_column(col)
    for code in shipped_rulebooks():
        rb = load_rulebook(code)
        m = rb.model
        t.add_row(code, m.name, m.version, m.periods.step.value, str(len(m.items)), m.source)
    out.print(t)


@app.command()
def check(
    file: Annotated[str, typer.Argument(help="a rulebook YAML file (or a shipped name)")],
) -> None:
    """Validate a rulebook: every problem with file, line and key."""
    from kaohe.rulebook.loader import load_rulebook

    try:
        rb = load_rulebook(file)
    except KaoheError as e:
        _fail(e)
    m = rb.model
    points = sum(rb.points(i) or 0 for i in m.items)
    out.print(
        f"[green]OK[/] {rb.file}: {m.code} «{m.name}» — {len(m.items)} items ({points:g} points), "
        f"{len(m.adjustments)} adjustments, {len(rb.variables)} variables, {len(m.parameters)} parameters"
    )


@app.command()
def template(
    rulebook: RulebookArg,
    period: PeriodOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="the workbook to write (.xlsx)")],
    units: UnitsOpt = None,
) -> None:
    """Write a data-entry workbook (Chinese labels, input validation) that `score` reads back."""
    from kaohe.io.template import write_template
    from kaohe.io.units import read_units
    from kaohe.periods import Period, PeriodError
    from kaohe.rulebook.loader import load_rulebook

    try:
        rb = load_rulebook(rulebook)
        try:
            p = Period.parse(period)
        except PeriodError as e:
            raise KaoheError(f"--period: {e}") from None
        org = read_units(units) if units else None
        write_template(rb, p, output, org)
    except KaoheError as e:
        _fail(e)
    err.print(f"已写出 written: {output}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of rulebook files (for editors)."""
    from kaohe.rulebook.schema import Rulebook

    sys.stdout.write(json.dumps(Rulebook.model_json_schema(), ensure_ascii=False, indent=1) + "\n")


@app.command()
def demo(
    output_dir: Annotated[
        Path, typer.Option("--output-dir", help="where to write the reports")
    ] = Path("out"),
) -> None:
    """Score the shipped demo county for 2022, print the ranking per township, write the XLSX report."""
    from kaohe.demo.run import run_demo

    try:
        run_demo(output_dir, out.get())
    except KaoheError as e:
        _fail(e)


def _sub_apps() -> None:
    from kaohe import cli_db, cli_supplies, cli_user

    app.add_typer(cli_user.app, name="user")
    app.add_typer(cli_db.app, name="db")
    app.command("serve")(cli_db.serve)
    app.add_typer(cli_supplies.app, name="supplies")


_sub_apps()


def main() -> None:
    """The command line (the console script goes through :mod:`kaohe.startup` first).

    After a one-shot command — one that reads files, writes its output and holds no
    database connection or server — the process ends as soon as its output is flushed
    (``os._exit``), without tearing the interpreter down: freeing ≈ 900 modules and the
    command's data frames one object at a time costs ≈ 0.1 s of every such run and
    changes nothing the user sees.  Every other command exits normally.

    :func:`kaohe.startup.prepare` (done again here when called directly) starts reading
    a Parquet data file on a background thread and switches the cyclic garbage
    collector off for a one-shot command."""
    from kaohe.startup import prepare

    args = sys.argv[1:]
    prepare(args)
    run = _app_for(args)
    try:
        run()
    except SystemExit as e:
        if run is app:  # not a one-shot command
            raise
        _exit_now(e.code)


def _app_for(args: list[str]) -> typer.Typer:
    """The app to run ``args`` with: for a one-shot command, an app holding that command
    alone, same name and settings (Typer converts every registered command, ≈ 40 with the
    user, db and supplies groups, to Click on every run: ≈ 25 ms); else :data:`app`."""
    from kaohe.startup import ONE_SHOT

    name = args[0] if args else None
    if name not in ONE_SHOT:
        return app
    lean = typer.Typer(**_APP_SETTINGS)
    lean.callback()(_group)  # a group, as the full app (else Typer drops the command's name)
    lean.registered_commands = [c for c in app.registered_commands if _command_name(c) == name]
    return lean if lean.registered_commands else app


def _group() -> None:
    pass


def _command_name(info: Any) -> str:
    return str(info.name or info.callback.__name__.replace("_", "-"))


def _exit_now(code: object) -> None:
    status = code if isinstance(code, int) else 0 if code is None else 1
    if not isinstance(code, int | None):  # sys.exit("message") prints the message
        sys.stderr.write(f"{code}\n")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the output did not all arrive
            status = status or 1
    os._exit(status)


if __name__ == "__main__":
    main()
