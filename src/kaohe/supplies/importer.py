"""Excel imports: the distribution-point list and an initial stock count.

All-or-nothing: every row is checked first and every problem is reported with
its row and column (:class:`kaohe.errors.InputErrors`); only a clean file is
written, in one transaction."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.errors import InputError, InputErrors
from kaohe.store.models import OrgUnit, User
from kaohe.supplies import ledger
from kaohe.supplies import service as sv
from kaohe.supplies.models import POINT_TYPES, SupplyLocation, SupplyLot, SupplyProduct

POINT_COLUMNS = {
    "code": ("编码", "code"),
    "name": ("名称", "name"),
    "township": ("乡镇", "township"),
    "type": ("类型", "type"),
    "address": ("地址", "address"),
    "hours": ("开放时间", "hours"),
    "phone": ("电话", "phone"),
    "latitude": ("纬度", "latitude"),
    "longitude": ("经度", "longitude"),
    "village": ("村社区", "village"),
    "opened": ("设立日期", "opened"),
}
POINT_REQUIRED = ("code", "name", "township", "type")
STOCK_COLUMNS = {
    "location": ("地点", "location"),
    "product": ("药具", "product"),
    "lot": ("批号", "lot"),
    "expiry": ("有效期", "expiry"),
    "qty": ("数量", "quantity"),
}


def _rows(
    data: bytes, filename: str, columns: dict[str, tuple[str, str]], required: tuple[str, ...]
) -> tuple[list[tuple[int, dict[str, Any]]], list[InputError]]:
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:
        raise InputErrors(
            [InputError(f"不是有效的 Excel 文件 (not an .xlsx file): {e}", file=filename)]
        ) from None
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    header = next(it, None)
    if header is None:
        raise InputErrors([InputError("文件是空的 (empty file)", file=filename)])
    index: dict[str, int] = {}
    for i, h in enumerate(header):
        name = str(h or "").strip()
        for key, names in columns.items():
            if name in names or name.lower() == names[1]:
                index[key] = i
    missing = [columns[k][0] for k in required if k not in index]
    if missing:
        raise InputErrors(
            [
                InputError(f"缺少列 (missing column) '{m}'", file=filename, row=1, column=m)
                for m in missing
            ]
        )
    rows = []
    for n, values in enumerate(it, start=2):
        if values is None or all(v is None or str(v).strip() == "" for v in values):
            continue
        rows.append((n, {k: (values[i] if i < len(values) else None) for k, i in index.items()}))
    return rows, []


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(_text(v))


def import_points(
    session: Session, data: bytes, filename: str = "points.xlsx", *, by: User | None = None
) -> int:
    """Add the points of an Excel list (columns 编码, 名称, 乡镇, 类型, 地址, 开放时间, 电话,
    纬度, 经度, 村社区, 设立日期).  Returns how many were added."""
    rows, errors = _rows(data, filename, POINT_COLUMNS, POINT_REQUIRED)
    labels = {v: k for k, v in sv.POINT_TYPE_LABELS.items()}
    seen: set[str] = set()
    plan = []

    def err(reason: str, row: int, key: str) -> None:
        errors.append(InputError(reason, file=filename, row=row, column=POINT_COLUMNS[key][0]))

    for n, r in rows:
        code, name = _text(r.get("code")), _text(r.get("name"))
        if not code:
            err("编码不能为空 (code is required)", n, "code")
        elif code in seen:
            err(f"编码 '{code}' 重复 (duplicate code)", n, "code")
        elif session.scalar(select(SupplyLocation.id).where(SupplyLocation.code == code)):
            err(f"编码 '{code}' 已存在 (code exists)", n, "code")
        seen.add(code)
        if not name:
            err("名称不能为空 (name is required)", n, "name")
        tcode = _text(r.get("township"))
        unit = session.scalar(select(OrgUnit).where(OrgUnit.code == tcode)) if tcode else None
        office = sv.office_of(session, unit) if unit is not None else None
        if office is None:
            err(
                f"没有乡镇（街道）药具管理点 '{tcode}' (no office for this township)", n, "township"
            )
        ptype = _text(r.get("type"))
        ptype = labels.get(ptype, ptype)
        if ptype not in POINT_TYPES:
            err(
                f"未知类型 '{ptype}' (use one of {', '.join(sv.POINT_TYPE_LABELS.values())})",
                n,
                "type",
            )
        coords: list[float | None] = []
        for key in ("latitude", "longitude"):
            v = r.get(key)
            if v is None or _text(v) == "":
                coords.append(None)
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                err(f"不是数字 '{_text(v)}' (not a number)", n, key)
                coords.append(None)
                continue
            lim = 90 if key == "latitude" else 180
            if not -lim <= f <= lim:
                err(f"超出范围 {f} (out of range)", n, key)
            coords.append(f)
        if (coords[0] is None) != (coords[1] is None):
            err("经纬度须同时填写 (give both latitude and longitude)", n, "longitude")
        vcode = _text(r.get("village"))
        village = session.scalar(select(OrgUnit).where(OrgUnit.code == vcode)) if vcode else None
        if vcode and village is None:
            err(f"没有村（社区） '{vcode}' (no such unit)", n, "village")
        opened: dt.date | None = None
        if _text(r.get("opened")):
            try:
                opened = _date(r.get("opened"))
            except ValueError:
                err(f"不是日期 '{_text(r.get('opened'))}' (use YYYY-MM-DD)", n, "opened")
        plan.append((code, name, unit, office, ptype, r, coords, village, opened))
    if errors:
        raise InputErrors(errors)
    for code, name, unit, office, ptype, r, coords, village, opened in plan:
        assert unit is not None
        sv.add_location(
            session, code, name, "point", org_unit=unit, parent=office, village=village,
            point_type=ptype, address=_text(r.get("address")), hours=_text(r.get("hours")),
            phone=_text(r.get("phone")), latitude=coords[0], longitude=coords[1],
            opened_on=opened, by=by,
        )  # fmt: skip
    return len(plan)


def import_stock_count(
    session: Session,
    data: bytes,
    day: dt.date,
    filename: str = "stock.xlsx",
    *,
    by: User | None = None,
    allowed: set[int] | None = None,
) -> int:
    """An initial stock count (columns 地点, 药具, 批号, 有效期, 数量): one opening count per
    location on ``day`` (sets the balances; left out of reconciliation).  ``allowed``:
    the location ids the user may count (None: all).  Returns how many lots were counted."""
    rows, errors = _rows(data, filename, STOCK_COLUMNS, tuple(STOCK_COLUMNS))
    plan: dict[int, list[tuple[SupplyProduct, str, dt.date, int, int]]] = {}
    locs: dict[int, SupplyLocation] = {}
    seen: set[tuple[str, str, str]] = set()

    def err(reason: str, row: int, key: str) -> None:
        errors.append(InputError(reason, file=filename, row=row, column=STOCK_COLUMNS[key][0]))

    if day > ledger.today():
        errors.append(InputError("盘点日期晚于今天 (date in the future)", file=filename))
    for n, r in rows:
        lcode, pcode, number = _text(r["location"]), _text(r["product"]), _text(r["lot"])
        loc = session.scalar(select(SupplyLocation).where(SupplyLocation.code == lcode))
        if loc is None:
            err(f"没有地点 '{lcode}' (no such location)", n, "location")
        elif allowed is not None and loc.id not in allowed:
            err(f"无权盘点 '{lcode}' (not allowed)", n, "location")
        prod = session.scalar(select(SupplyProduct).where(SupplyProduct.code == pcode))
        if prod is None:
            err(f"没有药具 '{pcode}' (no such product)", n, "product")
        if not number:
            err("批号不能为空 (lot is required)", n, "lot")
        try:
            expiry = _date(r["expiry"])
        except (ValueError, TypeError):
            err(f"不是日期 '{_text(r['expiry'])}' (use YYYY-MM-DD)", n, "expiry")
            expiry = None
        try:
            qty = int(_text(r["qty"]))
            if qty < 0:
                raise ValueError
        except ValueError:
            err(f"数量须为非负整数 '{_text(r['qty'])}' (a whole number ≥ 0)", n, "qty")
            qty = None
        if prod is not None and number and expiry is not None:
            old = session.scalar(
                select(SupplyLot).where(SupplyLot.product_id == prod.id, SupplyLot.number == number)
            )
            if old is not None and old.expiry != expiry:
                err(
                    f"批号 {number} 已登记有效期 {old.expiry.isoformat()} (expiry differs)",
                    n,
                    "expiry",
                )
        key = (lcode, pcode, number)
        if key in seen:
            err("同一地点、药具、批号重复 (duplicate row)", n, "lot")
        seen.add(key)
        if (
            loc is not None
            and prod is not None
            and number
            and expiry is not None
            and qty is not None
        ):
            locs[loc.id] = loc
            plan.setdefault(loc.id, []).append((prod, number, expiry, qty, n))
    if errors:
        raise InputErrors(errors)
    total = 0
    for loc_id, items in plan.items():
        counted = [
            (ledger.get_or_create_lot(session, p, num, exp), q) for p, num, exp, q, _ in items
        ]
        try:
            ledger.count(session, locs[loc_id], day, counted, reason="opening", by=by,
                         note="期初库存导入")  # fmt: skip
        except ledger.LedgerError as e:
            raise InputErrors([InputError(str(e), file=filename, row=items[0][4])]) from None
        total += len(counted)
    return total
