"""Data-entry workbooks (填报模板) that :func:`kaohe.io.read.read_data` reads back.

For a rulebook whose step is not the year, the workbook has

- 年度数据: the annual variables, one row per unit with the year period (``2022``);
- 期间数据: the flow variables, one row per unit and step (``2022T1``..``2022T3`` for
  the year ``2022``; only ``2022T2`` for the period ``2022T2``);
- 填表说明: instructions and the data dictionary (ignored by the reader).

With a yearly step, a single sheet 年度数据 holds every variable.  Headers are
``中文标签 (code)``; the header row and the unit columns are frozen; every input
cell has a number validation (a whole number for an ``integer`` variable, a count;
else a decimal; ≥ the variable's minimum, ≤ its maximum);
with an org-unit file the leaf units (units without children) are pre-filled
with their names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xlsxwriter

from kaohe.errors import InputError, InputErrors
from kaohe.io.dataset import OrgUnits
from kaohe.periods import Period, PeriodError, PeriodKind
from kaohe.rulebook.loader import LoadedRulebook
from kaohe.rulebook.schema import Variable

ANNUAL_SHEET = "年度数据"
STEP_SHEET = "期间数据"
HELP_SHEET = "填表说明"

UNIT_HEADER = "单位代码"
NAME_HEADER = "单位名称"
PERIOD_HEADER = "期间"

#: rows given a number validation when no org-unit file pre-fills the units
BLANK_ROWS = 1000

_KIND_ZH = {"annual": "年度", "flow": "期间"}
_STEP_ZH = {
    PeriodKind.YEAR: "年",
    PeriodKind.TERTIAL: "考核期（T1=1–4月，T2=5–8月，T3=9–12月）",
    PeriodKind.QUARTER: "季度",
    PeriodKind.MONTH: "月",
}


def variable_header(code: str, var: Variable) -> str:
    """The header of a variable's column: ``中文标签 (code)``."""
    return f"{var.label} ({code})"


def _display_width(text: str) -> int:
    """Approximate column width: CJK characters count double."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _steps(rb: LoadedRulebook, period: Period) -> list[Period]:
    step = rb.model.periods.step
    if step is PeriodKind.YEAR:
        return []
    if period.kind is step:
        return [period]
    try:
        return period.subperiods(step)
    except PeriodError:
        raise InputErrors(
            [
                InputError(
                    f"period '{period}' is not made of this rulebook's {step.value}s; "
                    f"give the year or one {step.value} (e.g. {period.year})"
                )
            ]
        ) from None


@dataclass
class _Layout:
    name: str
    variables: list[str]
    periods: list[Period]


def _layouts(rb: LoadedRulebook, period: Period) -> list[_Layout]:
    year = period.year_period()
    if rb.model.periods.step is PeriodKind.YEAR:
        return [_Layout(ANNUAL_SHEET, list(rb.variables), [year])]
    annual = [c for c, v in rb.variables.items() if v.kind == "annual"]
    flows = [c for c, v in rb.variables.items() if v.kind == "flow"]
    out = []
    if annual:
        out.append(_Layout(ANNUAL_SHEET, annual, [year]))
    if flows:
        out.append(_Layout(STEP_SHEET, flows, _steps(rb, period)))
    return out


def _leaf_units(units: OrgUnits | None) -> list[tuple[str, str]]:
    if units is None:
        return []
    leaves = units.leaves()
    names = units.name_of()
    return [(c, names[c]) for c in units.frame.get_column("code").to_list() if c in leaves]


def _validation(var: Variable) -> dict[str, Any]:
    lo, hi = var.min, var.max
    bounds = []
    if lo is not None:
        bounds.append(f"不小于{_num(lo)}")
    if hi is not None:
        bounds.append(f"不大于{_num(hi)}")
    what = "整数" if var.integer else "数字"
    message = f"请输入{'、'.join(bounds)}的{what}" if bounds else f"请输入{what}"
    unit = f"（{var.unit}）" if var.unit else ""
    opts: dict[str, Any] = {
        "validate": "integer" if var.integer else "decimal",
        "ignore_blank": True,
        "input_title": var.label[:32],
        "input_message": f"{var.label}{unit}：{message}"[:255],
        "error_title": "输入有误",
        "error_message": f"{var.label}：{message}"[:255],
    }
    if lo is not None and hi is not None:
        opts.update(criteria="between", minimum=_plain(lo), maximum=_plain(hi))
    elif lo is not None:
        opts.update(criteria=">=", value=_plain(lo))
    elif hi is not None:
        opts.update(criteria="<=", value=_plain(hi))
    else:
        big = 10**15 if var.integer else 1e15
        opts.update(criteria="between", minimum=-big, maximum=big)
    return opts


def _plain(x: float) -> int | float:
    """An integral bound as an int (written as ``0``, not ``0.0``)."""
    return int(x) if float(x).is_integer() else x


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def write_template(
    rb: LoadedRulebook, period: Period, path: str | Path, units: OrgUnits | None = None
) -> None:
    """Write a data-entry workbook for ``period`` (a year or one of the rulebook's steps)."""
    leaves = _leaf_units(units)

    def rows(lay: _Layout) -> list[TemplateRow]:
        return [(code, name, str(p), ()) for code, name in leaves for p in lay.periods]

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    try:
        write_template_sheets(wb, rb, period, rows, [n for _, n in leaves], has_units=bool(leaves))
    finally:
        wb.close()


#: one row of a template sheet: unit code, unit name, period, values of the
#: layout's variables (empty: nothing pre-filled; None: a blank cell)
TemplateRow = tuple[str, str, str, Sequence[float | None]]


def write_template_sheets(
    wb: xlsxwriter.Workbook,
    rb: LoadedRulebook,
    period: Period,
    rows: Callable[[_Layout], list[TemplateRow]],
    names: list[str],
    *,
    has_units: bool,
) -> None:
    """The data sheets (headers, widths, validation; rows from ``rows``) and the help
    sheet of a template, into an open workbook (:func:`write_template`, and the web
    app's pre-filled township templates)."""
    layouts = _layouts(rb, period)
    head = wb.add_format(
        {
            "bold": True,
            "text_wrap": True,
            "valign": "vcenter",
            "align": "center",
            "bg_color": "#DDEBF7",
            "border": 1,
        }
    )
    text = wb.add_format({"num_format": "@", "border": 1, "bg_color": "#F2F2F2"})
    cell = wb.add_format({"border": 1})
    for lay in layouts:
        ws = wb.add_worksheet(lay.name)
        headers = [UNIT_HEADER, NAME_HEADER, PERIOD_HEADER] + [
            variable_header(c, rb.variables[c]) for c in lay.variables
        ]
        ws.set_row(0, 48)
        for j, h in enumerate(headers):
            ws.write_string(0, j, h, head)
        ws.set_column(0, 0, 14, text)
        ws.set_column(1, 1, max([14, *(_display_width(n) + 2 for n in names)]))
        ws.set_column(2, 2, 10, text)
        for j in range(3, len(headers)):
            width = min(max(_display_width(headers[j]) // 2 + 2, 12), 24)
            ws.set_column(j, j, width, cell)
        ws.freeze_panes(1, 3)
        write_number = ws.write_number
        r = 1
        for code, name, p, values in rows(lay):
            ws.write_string(r, 0, code, text)
            ws.write_string(r, 1, name)
            ws.write_string(r, 2, p, text)
            for j, x in enumerate(values, start=3):
                if x is not None:
                    write_number(r, j, x, cell)
            r += 1
        last = r - 1 if has_units else BLANK_ROWS
        if last >= 1:
            for j, code in enumerate(lay.variables, start=3):
                ws.data_validation(1, j, last, j, _validation(rb.variables[code]))
            ws.autofilter(0, 0, last, len(headers) - 1)
    _write_help(wb, rb, period, layouts, head, has_units=has_units)
    wb.worksheets()[0].activate()


def _write_help(
    wb: xlsxwriter.Workbook,
    rb: LoadedRulebook,
    period: Period,
    layouts: list[_Layout],
    head: Any,
    *,
    has_units: bool,
) -> None:
    ws = wb.add_worksheet(HELP_SHEET)
    title = wb.add_format({"bold": True, "font_size": 14})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    step = rb.model.periods.step
    ws.write_string(0, 0, f"{rb.model.name} 填报模板（{period.label_zh}）", title)
    lines = [
        f"考核方案：{rb.model.name}（{rb.code}，版本 {rb.model.version}）",
        f"考核期：{period}（{period.label_zh}）；报送周期：{_STEP_ZH[step]}",
        "1. 每个单位每个期间一行。单位代码、期间两列不要修改；单位名称仅供核对，读取时忽略。",
    ]
    sheets = {lay.name: lay for lay in layouts}
    if ANNUAL_SHEET in sheets and STEP_SHEET in sheets:
        lines.append(
            f"2. 「{ANNUAL_SHEET}」填年度数（任务数、人口、评分等），期间为年份（如 {period.year}）；"
            f"「{STEP_SHEET}」填各期间内实际发生的数（不是累计数），期间如 "
            f"{', '.join(str(p) for p in sheets[STEP_SHEET].periods)}。"
        )
    else:
        lines.append("2. 每个单位一行，期间为年份。")
    lines += [
        "3. 只填数字（可以有小数），不得为负数；没有发生的填 0。空白表示未填写：没有默认值的项目空白将无法计分。",
        "4. 列标题括号内为变量代码，请勿修改列标题；可以增加行（新单位），但单位代码必须与组织机构表一致。",
        "5. 本说明页不会被读取。",
    ]
    if not has_units:
        lines.append("6. 本模板未预填单位：请在单位代码、期间两列填写后再填数据。")
    for i, line in enumerate(lines, start=2):
        ws.write_string(i, 0, line)
    top = len(lines) + 3
    cols = ["变量代码", "名称", "类型", "计量单位", "最小值", "最大值", "默认值", "所在工作表"]
    for j, h in enumerate(cols):
        ws.write_string(top, j, h, head)
    where = {c: lay.name for lay in layouts for c in lay.variables}
    for i, (code, var) in enumerate(rb.variables.items(), start=top + 1):
        row = [
            code,
            var.label,
            _KIND_ZH[var.kind],
            var.unit,
            "" if var.min is None else _num(var.min),
            "" if var.max is None else _num(var.max),
            "" if var.default is None else _num(var.default),
            where.get(code, ""),
        ]
        for j, v in enumerate(row):
            ws.write_string(i, j, v, wrap if j == 1 else None)
    ws.set_column(0, 0, 26)
    ws.set_column(1, 1, 40)
    ws.set_column(2, 7, 10)
