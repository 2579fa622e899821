"""The styled XLSX report of a :class:`~kaohe.engine.result.ScoreResult`.

Sheets:

- 排名: per rank group (分组/上级), 排名, 单位代码, 单位名称, 总分, 排名加分;
- 分项得分: every item score and adjustment per unit, headed ``code 中文名称``;
- 说明: rulebook name, code, version, SHA-256, period and how numbers are rounded.

Numbers are rounded half-up to 2 decimals (:func:`kaohe.numbers.round2`) and
shown with the number format ``0.00``.  A table longer than a worksheet allows
continues on sheets named ``排名 (2)``, ``排名 (3)``…
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook

from kaohe.engine.result import ScoreResult
from kaohe.io.dataset import OrgUnits
from kaohe.numbers import round2

RANKING_SHEET = "排名"
ITEMS_SHEET = "分项得分"
ABOUT_SHEET = "说明"

GROUP_HEADER = "分组/上级"
RANKING_HEADERS = [GROUP_HEADER, "排名", "单位代码", "单位名称", "总分", "排名加分"]

#: data rows per worksheet (Excel allows 1,048,576 rows including the header)
MAX_ROWS = 1_048_575
#: a null group (all units ranked together)
ALL_UNITS = "全部"


def rounded(series: pl.Series) -> pl.Series:
    """``round2`` of every value (computed once per distinct value); nulls stay null."""
    values = series.cast(pl.Float64)
    distinct = values.drop_nulls().unique()
    if distinct.len() == 0:
        return values
    new = pl.Series([round2(x) for x in distinct.to_list()], dtype=pl.Float64)
    return values.replace_strict(distinct, new, return_dtype=pl.Float64)


def _label_of(result: ScoreResult) -> dict[str, str]:
    """Header ``code 中文名称`` of every item and adjustment."""
    m = result.rulebook.model
    labels = {i.code: f"{i.code} {i.name}" for i in m.items}
    labels.update({a.code: f"{a.code} {a.label}" for a in m.adjustments})
    return labels


def _group_label(units: OrgUnits | None) -> dict[str, str]:
    if units is None:
        return {}
    return {code: f"{name}（{code}）" for code, name in units.name_of().items() if name != code}


class _Writer:
    """A table split over as many worksheets as it needs, with a frozen bold header."""

    def __init__(
        self,
        wb: Workbook,
        name: str,
        headers: Sequence[str],
        widths: Sequence[float],
        formats: Sequence[Format | None],
        head: Format,
        freeze_cols: int,
    ) -> None:
        self.wb, self.name, self.headers = wb, name, list(headers)
        self.widths, self.formats, self.head = widths, formats, head
        self.freeze_cols = freeze_cols
        self.sheets = 0
        self.row = 0
        self.ws: Any = None

    def _new_sheet(self) -> None:
        self._close_sheet()
        self.sheets += 1
        title = self.name if self.sheets == 1 else f"{self.name} ({self.sheets})"
        ws = self.wb.add_worksheet(title)
        ws.set_row(0, 32)
        for j, (h, w) in enumerate(zip(self.headers, self.widths, strict=True)):
            ws.write_string(0, j, h, self.head)
            ws.set_column(j, j, w, self.formats[j])
        ws.freeze_panes(1, self.freeze_cols)
        self.ws, self.row = ws, 0

    def _close_sheet(self) -> None:
        if self.ws is not None and self.row > 0:
            self.ws.autofilter(0, 0, self.row, len(self.headers) - 1)

    def write(self, rows: Iterator[Sequence[Any]]) -> None:
        self._new_sheet()
        for values in rows:
            if self.row >= MAX_ROWS:
                self._new_sheet()
            self.row += 1
            for j, v in enumerate(values):
                if v is None:
                    continue
                fmt = self.formats[j]
                if isinstance(v, str):
                    self.ws.write_string(self.row, j, v, fmt)
                else:
                    self.ws.write_number(self.row, j, v, fmt)
        self._close_sheet()


def write_xlsx_report(
    result: ScoreResult, path: str | Path, *, units: OrgUnits | None = None
) -> None:
    """Write the report workbook.  With ``units``, groups are shown as ``名称（代码）``."""
    t = result.table
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    try:
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
        num = wb.add_format({"num_format": "0.00"})
        integer = wb.add_format({"num_format": "0"})
        text = wb.add_format({"num_format": "@"})
        groups = _group_label(units)

        def group_text(g: object) -> str:
            return ALL_UNITS if g is None else groups.get(str(g), str(g))

        def nums(name: str) -> list[float | None]:
            if name not in t.columns:
                return [None] * t.height
            return rounded(t.get_column(name)).to_list()

        units_col = t.get_column("unit").cast(pl.String).to_list()
        names = (
            t.get_column("name").cast(pl.String).to_list()
            if "name" in t.columns
            else [None] * t.height
        )
        names = [n if n is not None else u for n, u in zip(names, units_col, strict=True)]
        group = (
            [group_text(g) for g in t.get_column("group").to_list()]
            if "group" in t.columns
            else [ALL_UNITS] * t.height
        )
        rank = t.get_column("rank").to_list() if "rank" in t.columns else [None] * t.height
        total = nums("total")
        bonus = nums("rank_bonus")

        ranking = _Writer(
            wb,
            RANKING_SHEET,
            RANKING_HEADERS,
            [18, 8, 14, 20, 12, 10],
            [text, integer, text, None, num, num],
            head,
            freeze_cols=0,
        )
        ranking.write(zip(group, rank, units_col, names, total, bonus, strict=True))

        labels = _label_of(result)
        codes = [*result.item_codes, *result.adjustment_codes]
        headers = ["单位代码", "单位名称", GROUP_HEADER, "排名", "总分"] + [
            labels.get(c, c) for c in codes
        ]
        columns = [nums(c) for c in codes]
        items = _Writer(
            wb,
            ITEMS_SHEET,
            headers,
            [14, 20, 18, 8, 12] + [16] * len(codes),
            [text, None, text, integer, num] + [num] * len(codes),
            head,
            freeze_cols=2,
        )
        items.write(
            (u, n, g, r, tot, *vals)
            for u, n, g, r, tot, *vals in zip(
                units_col, names, group, rank, total, *columns, strict=True
            )
        )
        _write_about(wb, result, head)
    finally:
        wb.close()


def _write_about(wb: Workbook, result: ScoreResult, head: Format) -> None:
    rb = result.rulebook
    m = rb.model
    ws = wb.add_worksheet(ABOUT_SHEET)
    ws.set_column(0, 0, 16)
    ws.set_column(1, 1, 80)
    ws.write_string(0, 0, "项目", head)
    ws.write_string(0, 1, "内容", head)
    rows = [
        ("考核方案", m.name),
        ("方案代码", m.code),
        ("版本", m.version),
        ("SHA-256", rb.sha256),
        ("规则文件", str(rb.file)),
        ("考核期", f"{result.period}（{result.period.label_zh}）"),
        ("单位数", str(result.table.height)),
        ("计分项目", "、".join(result.item_codes)),
        ("加分扣分", "、".join(result.adjustment_codes)),
        ("说明", "分数按四舍五入保留两位小数；计算过程不取整。"),
    ]
    for i, (k, v) in enumerate(rows, start=1):
        ws.write_string(i, 0, k)
        ws.write_string(i, 1, v)
