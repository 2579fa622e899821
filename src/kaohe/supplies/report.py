"""The stock report workbook (``kaohe supplies report``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import xlsxwriter
from sqlalchemy.orm import Session

from kaohe.supplies import service as sv


def write_stock_report(session: Session, day: dt.date, path: Path) -> int:
    """Sheets 库存 (stock by location, product and lot at the end of ``day``) and
    近效期 (held lots expiring within 6 months or expired).  Returns the stock rows."""
    lines = sv.stock_lines(session, day)
    near, gone = sv.expiring(session, day, 6)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    bold = wb.add_format({"bold": True})
    head = [
        "地点编码",
        "地点",
        "类别",
        "乡镇（街道）",
        "药具编码",
        "药具",
        "批号",
        "有效期至",
        "结存",
        "单位",
    ]
    ws = wb.add_worksheet("库存")
    ws.write(0, 0, f"避孕药具库存，截至 {day.isoformat()}", bold)
    ws.write_row(2, 0, head, bold)
    for i, s in enumerate(lines, start=3):
        ws.write_row(
            i,
            0,
            [
                s.location.code,
                s.location.name,
                sv.LOCATION_KIND_LABELS[s.location.kind],
                s.location.org_unit.name,
                s.product.code,
                s.product.name,
                s.lot.number,
                s.lot.expiry.isoformat(),
                s.qty,
                s.product.unit,
            ],
        )
    ws.set_column(0, 9, 14)
    ws2 = wb.add_worksheet("近效期")
    ws2.write_row(0, 0, ["状态", "地点编码", "地点", "药具", "批号", "有效期至", "结存"], bold)
    for i, (status, s) in enumerate(
        [("已过期", s) for s in gone] + [("近效期", s) for s in near], 1
    ):
        ws2.write_row(
            i,
            0,
            [status, s.location.code, s.location.name, s.product.name, s.lot.number,
             s.lot.expiry.isoformat(), s.qty],
        )  # fmt: skip
    ws2.set_column(0, 6, 14)
    wb.close()
    return len(lines)
