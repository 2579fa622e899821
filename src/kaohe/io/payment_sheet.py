"""The payment sheet workbook (经费发放表) of a :class:`~kaohe.engine.result.PaymentSheet`.

Sheets:

- 发放明细: every line, grouped by unit, with a bold subtotal row per unit and
  a grand total: 单位, 期间, 项目, 领取对象, 资金来源, 依据 (variable, count,
  rate), 计发标准, 数量, 标准(元), 金额(元), 状态, 审核人, 审批人;
- 资金来源汇总: lines, amount, approved and not yet approved amounts per funder
  (区 / 街道 / 社区) with the grand total, then every unit's amount per funder;
- 说明: rulebook name, code, version, SHA-256, period and the release rule
  (待审核的款项不得发放).

Money is kept in integer fen: every subtotal and total is added up in Python
in fen and written as a value (``fen / 100``, exact to the cent, number format
``#,##0.00``), never accumulated in floating point or left to Excel formulas,
so the funder totals and the grand total equal the sum of the lines exactly.
:func:`payment_sheet_rows` gives the same lines as plain records for JSON/CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from kaohe.engine.result import STATUS_LABELS, PaymentSheet
from kaohe.periods import Period, PeriodError
from kaohe.rulebook import expr
from kaohe.rulebook.loader import LoadedRulebook

DETAIL_SHEET = "发放明细"
FUNDERS_SHEET = "资金来源汇总"
ABOUT_SHEET = "说明"

DETAIL_HEADERS = [
    "单位",
    "期间",
    "项目",
    "领取对象",
    "资金来源",
    "依据",
    "计发标准",
    "数量",
    "标准(元)",
    "金额(元)",
    "状态",
    "审核人",
    "审批人",
]
DETAIL_WIDTHS = [20, 12, 24, 14, 10, 36, 30, 8, 12, 14, 14, 10, 10]
AMOUNT_COL = DETAIL_HEADERS.index("金额(元)")

FUNDER_HEADERS = ["资金来源", "笔数", "金额(元)", "其中已审批(元)", "其中未审批(元)"]

SUBTOTAL = "小计"
TOTAL = "合计"
#: the basis variable of a reward by rank
RANK = "rank"
#: a line without a status is not yet reviewed
DEFAULT_STATUS = "pending"
APPROVED = "approved"

RELEASE_RULE = (
    "每笔款项经社区主任审核、街道分管副主任审批后方可发放。"
    "待审核的款项不得发放，已审核待审批的款项亦不得发放。"
)
STATUS_NOTE = (
    "待审核：社区主任尚未审核；已审核待审批：社区主任已审核，街道分管副主任尚未审批；"
    "已审批：可以发放。"
)
MONEY_RULE = "金额以分为单位精确计算；小计、合计均由明细逐笔相加，无四舍五入误差。"


def yuan_text(fen: int) -> str:
    """Integer fen → ``2,000.00`` (exact)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def fen_value(fen: int) -> float:
    """The number written to a cell: fen / 100, the double nearest the exact amount."""
    return int(fen) / 100


def status_label(status: str | None) -> str:
    s = status or DEFAULT_STATUS
    return STATUS_LABELS.get(s, s)


def period_label(period: str | None) -> str:
    if not period:
        return ""
    try:
        return Period.parse(period).label_zh
    except PeriodError:
        return period


def _count_unit(rb: LoadedRulebook, basis_variable: str) -> str:
    """The unit (例, 人…) of the count: the variable's, or the one all variables of
    the expression share."""
    var = rb.variables.get(basis_variable)
    if var is not None:
        return var.unit
    try:
        names = expr.names(rb.formula(basis_variable))
    except expr.ExprError:
        return ""
    units = {rb.variables[n].unit for n in names if n in rb.variables}
    return units.pop() if len(units) == 1 else ""


def basis_text(rb: LoadedRulebook, line: dict[str, Any]) -> str:
    """依据: ``结扎手术（ligations）2例 × 500.00元``; for a reward by rank, its basis
    (or ``排名第{count}名``) and the amount: ``2022年第1季度排名第1名，奖励2,000.00元``."""
    var = line.get("basis_variable") or ""
    count = line.get("count")
    rate = line.get("rate_fen")
    rate_text = "" if rate is None else f"{yuan_text(int(rate))}元"
    if var == RANK:
        # a reward: the engine's basis names the period and rank (2022年第1季度排名第3名)
        said = str(line.get("basis") or "") or f"排名第{count}名"
        return f"{said}，奖励{rate_text}" if rate_text else said
    v = rb.variables.get(var)
    # a full-width bracket needs no space after it: 结扎手术（ligations）2例
    what = f"{v.label}（{var}）" if v is not None else f"{var} "
    count_text = "" if count is None else f"{count}{_count_unit(rb, var)}"
    return f"{what}{count_text} × {rate_text}".strip()


def _names(sheet: PaymentSheet, given: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = sheet.lines
    if "name" in lines.columns:
        for u, n in zip(lines["unit"].to_list(), lines["name"].to_list(), strict=True):
            if n:
                out[str(u)] = str(n)
    out.update({k: v for k, v in (given or {}).items() if v})
    return out


def _grouped(sheet: PaymentSheet) -> list[tuple[str, list[dict[str, Any]]]]:
    """Lines by unit, units in order of first appearance, lines in their order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for line in sheet.lines.iter_rows(named=True):
        groups.setdefault(str(line["unit"]), []).append(line)
    return list(groups.items())


def _amount(line: dict[str, Any]) -> int:
    a = line.get("amount_fen")
    return 0 if a is None else int(a)


def _funders(sheet: PaymentSheet) -> list[tuple[str, str]]:
    """(code, label) of every declared funder, then any other funder of the lines."""
    out = dict(sheet.rulebook.model.funders)
    lines = sheet.lines
    if lines.height:
        for code, label in (
            lines.select("funder", "funder_label").unique(maintain_order=True).iter_rows()
        ):
            if code is not None and code not in out:
                out[code] = label or code
    return list(out.items())


def payment_sheet_rows(
    sheet: PaymentSheet, units_names: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every line as a plain record (for JSON/CSV): the columns of the lines plus
    ``name`` resolved, ``period_label``, ``basis_text`` (依据), ``rate_yuan`` and
    ``amount_yuan`` as exact decimal strings and ``status_label``."""
    names = _names(sheet, units_names)
    out: list[dict[str, Any]] = []
    for line in sheet.lines.iter_rows(named=True):
        rec = dict(line)
        unit = str(line["unit"])
        rec["name"] = names.get(unit, unit)
        rec["period_label"] = period_label(line.get("period"))
        rec["basis_text"] = basis_text(sheet.rulebook, line)
        rate = line.get("rate_fen")
        rec["rate_yuan"] = None if rate is None else yuan_text(int(rate)).replace(",", "")
        rec["amount_yuan"] = yuan_text(_amount(line)).replace(",", "")
        rec["status"] = line.get("status") or DEFAULT_STATUS
        rec["status_label"] = status_label(line.get("status"))
        out.append(rec)
    return out


# ---------------------------------------------------------------- workbook


class _Formats:
    def __init__(self, wb: Workbook) -> None:
        border = {"border": 1, "valign": "vcenter"}
        self.head = wb.add_format(
            {
                "bold": True,
                "text_wrap": True,
                "align": "center",
                "bg_color": "#DDEBF7",
                **border,
            }
        )
        self.text = wb.add_format({"num_format": "@", **border})
        self.wrap = wb.add_format({"num_format": "@", "text_wrap": True, **border})
        self.count = wb.add_format({"num_format": "0", **border})
        self.money = wb.add_format({"num_format": "#,##0.00", **border})
        self.pending = wb.add_format({"num_format": "@", "font_color": "#C00000", **border})
        self.approved = wb.add_format({"num_format": "@", "font_color": "#007A33", **border})
        sub = {"bold": True, "bg_color": "#F2F2F2", **border}
        self.sub_text = wb.add_format({"num_format": "@", **sub})
        self.sub_money = wb.add_format({"num_format": "#,##0.00", **sub})
        tot = {"bold": True, "bg_color": "#DDEBF7", **border}
        self.total_text = wb.add_format({"num_format": "@", **tot})
        self.total_money = wb.add_format({"num_format": "#,##0.00", **tot})
        self.total_count = wb.add_format({"num_format": "0", **tot})
        self.plain = wb.add_format({"text_wrap": True, "valign": "top"})


def _header(ws: Worksheet, row: int, headers: Sequence[str], fmt: Format) -> None:
    ws.set_row(row, 30)
    for j, h in enumerate(headers):
        ws.write_string(row, j, h, fmt)


def _text(ws: Worksheet, row: int, col: int, value: object, fmt: Format) -> None:
    """A string cell, or a blank (formatted) cell when there is nothing to show."""
    if value is None or value == "":
        ws.write_blank(row, col, None, fmt)
    else:
        ws.write_string(row, col, str(value), fmt)


def _fill_row(ws: Worksheet, row: int, ncols: int, fmt: Format) -> None:
    for j in range(ncols):
        ws.write_blank(row, j, None, fmt)


def write_payment_sheet(
    sheet: PaymentSheet, path: str | Path, units_names: dict[str, str] | None = None
) -> None:
    """Write the payment workbook.  ``units_names`` maps unit codes to names
    (default: the lines' ``name``, then the code)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    try:
        f = _Formats(wb)
        names = _names(sheet, units_names)
        title = f"{sheet.period.label_zh}{sheet.rulebook.model.name}经费发放表"
        _write_detail(wb, sheet, names, f, title)
        _write_funders(wb, sheet, names, f, title)
        _write_about(wb, sheet, f)
    finally:
        wb.close()


def _print_setup(ws: Worksheet, title: str, header_rows: int = 0) -> None:
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0, header_rows)
    ws.set_header(f"&C&14&B{title.replace('&', '&&')}")
    ws.set_footer("&C第 &P 页，共 &N 页")


def _write_detail(
    wb: Workbook, sheet: PaymentSheet, names: dict[str, str], f: _Formats, title: str
) -> None:
    rb = sheet.rulebook
    ws = wb.add_worksheet(DETAIL_SHEET)
    for j, w in enumerate(DETAIL_WIDTHS):
        ws.set_column(j, j, w)
    _header(ws, 0, DETAIL_HEADERS, f.head)
    ws.freeze_panes(1, 1)
    _print_setup(ws, title)
    ncols = len(DETAIL_HEADERS)

    row = 0
    grand = 0
    for unit, lines in _grouped(sheet):
        name = names.get(unit, unit)
        subtotal = 0
        for line in lines:
            row += 1
            fen = _amount(line)
            subtotal += fen
            status = line.get("status") or DEFAULT_STATUS
            rate = line.get("rate_fen")
            count = line.get("count")
            is_rank = line.get("basis_variable") == RANK
            ws.write_string(row, 0, name, f.text)
            ws.write_string(row, 1, period_label(line.get("period")), f.text)
            ws.write_string(row, 2, str(line.get("label") or line.get("code") or ""), f.text)
            ws.write_string(row, 3, str(line.get("payee_label") or line.get("payee") or ""), f.text)
            ws.write_string(
                row, 4, str(line.get("funder_label") or line.get("funder") or ""), f.text
            )
            ws.write_string(row, 5, basis_text(rb, line), f.wrap)
            ws.write_string(row, 6, str(line.get("basis") or ""), f.wrap)
            if is_rank:
                ws.write_number(row, 7, 1, f.count)  # one reward, whatever the rank
            elif count is None:
                ws.write_blank(row, 7, None, f.count)
            else:
                ws.write_number(row, 7, int(count), f.count)
            if rate is None:
                ws.write_blank(row, 8, None, f.money)
            else:
                ws.write_number(row, 8, fen_value(int(rate)), f.money)
            ws.write_number(row, AMOUNT_COL, fen_value(fen), f.money)
            sfmt = f.approved if status == APPROVED else f.pending
            ws.write_string(row, 10, status_label(status), sfmt)
            _text(ws, row, 11, line.get("reviewed_by"), f.text)
            _text(ws, row, 12, line.get("approved_by"), f.text)
        grand += subtotal
        row += 1
        _fill_row(ws, row, ncols, f.sub_text)
        ws.write_string(row, 0, f"{name} {SUBTOTAL}", f.sub_text)
        ws.write_string(row, 2, f"共{len(lines)}笔", f.sub_text)
        ws.write_number(row, AMOUNT_COL, fen_value(subtotal), f.sub_money)
    row += 1
    _fill_row(ws, row, ncols, f.total_text)
    ws.write_string(row, 0, TOTAL, f.total_text)
    ws.write_string(row, 2, f"共{sheet.lines.height}笔", f.total_text)
    ws.write_number(row, AMOUNT_COL, fen_value(grand), f.total_money)


def _write_funders(
    wb: Workbook, sheet: PaymentSheet, names: dict[str, str], f: _Formats, title: str
) -> None:
    ws = wb.add_worksheet(FUNDERS_SHEET)
    funders = _funders(sheet)
    ws.set_column(0, 0, 22)
    ws.set_column(1, max(len(FUNDER_HEADERS), len(funders) + 2), 16)
    _print_setup(ws, title)

    # per funder: lines, total, approved, not approved (integer fen)
    count: dict[str, int] = {code: 0 for code, _ in funders}
    total: dict[str, int] = {code: 0 for code, _ in funders}
    approved: dict[str, int] = {code: 0 for code, _ in funders}
    by_unit: dict[str, dict[str, int]] = {}
    for unit, lines in _grouped(sheet):
        per = by_unit.setdefault(unit, {code: 0 for code, _ in funders})
        for line in lines:
            code = line.get("funder")
            fen = _amount(line)
            key = str(code)
            count[key] = count.get(key, 0) + 1
            total[key] = total.get(key, 0) + fen
            per[key] = per.get(key, 0) + fen
            if (line.get("status") or DEFAULT_STATUS) == APPROVED:
                approved[key] = approved.get(key, 0) + fen

    _header(ws, 0, FUNDER_HEADERS, f.head)
    row = 0
    for code, label in funders:
        row += 1
        ws.write_string(row, 0, label, f.text)
        ws.write_number(row, 1, count[code], f.count)
        ws.write_number(row, 2, fen_value(total[code]), f.money)
        ws.write_number(row, 3, fen_value(approved[code]), f.money)
        ws.write_number(row, 4, fen_value(total[code] - approved[code]), f.money)
    row += 1
    grand = sum(total.values())
    grand_approved = sum(approved.values())
    ws.write_string(row, 0, TOTAL, f.total_text)
    ws.write_number(row, 1, sum(count.values()), f.total_count)
    ws.write_number(row, 2, fen_value(grand), f.total_money)
    ws.write_number(row, 3, fen_value(grand_approved), f.total_money)
    ws.write_number(row, 4, fen_value(grand - grand_approved), f.total_money)

    # every unit's amount per funder
    row += 2
    ws.write_string(row, 0, "各单位分资金来源汇总", wb.add_format({"bold": True}))
    row += 1
    _header(ws, row, ["单位", *(label for _, label in funders), TOTAL], f.head)
    for unit, per in by_unit.items():
        row += 1
        ws.write_string(row, 0, names.get(unit, unit), f.text)
        for j, (code, _) in enumerate(funders, start=1):
            ws.write_number(row, j, fen_value(per.get(code, 0)), f.money)
        ws.write_number(row, len(funders) + 1, fen_value(sum(per.values())), f.money)
    row += 1
    ws.write_string(row, 0, TOTAL, f.total_text)
    for j, (code, _) in enumerate(funders, start=1):
        ws.write_number(row, j, fen_value(total[code]), f.total_money)
    ws.write_number(row, len(funders) + 1, fen_value(grand), f.total_money)


def _write_about(wb: Workbook, sheet: PaymentSheet, f: _Formats) -> None:
    rb = sheet.rulebook
    m = rb.model
    ws = wb.add_worksheet(ABOUT_SHEET)
    ws.set_column(0, 0, 16)
    ws.set_column(1, 1, 80)
    ws.write_string(0, 0, "项目", f.head)
    ws.write_string(0, 1, "内容", f.head)
    lines = sheet.lines
    pending = lines.filter(pl.col("status").fill_null(DEFAULT_STATUS) != APPROVED)
    pending_fen = int(pending["amount_fen"].sum()) if pending.height else 0
    rows = [
        ("考核方案", m.name),
        ("方案代码", m.code),
        ("版本", m.version),
        ("SHA-256", rb.sha256),
        ("规则文件", str(rb.file)),
        ("期间", f"{sheet.period}（{sheet.period.label_zh}）"),
        ("明细笔数", str(lines.height)),
        ("合计金额", f"{yuan_text(sheet.total() if lines.height else 0)}元"),
        ("其中未审批", f"{yuan_text(pending_fen)}元（{pending.height}笔）"),
        ("资金来源", "、".join(label for _, label in _funders(sheet))),
        ("发放规定", RELEASE_RULE),
        ("状态说明", STATUS_NOTE),
        ("金额说明", MONEY_RULE),
    ]
    for i, (k, v) in enumerate(rows, start=1):
        ws.write_string(i, 0, k, f.plain)
        ws.write_string(i, 1, v, f.plain)
