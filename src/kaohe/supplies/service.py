"""Locations, products, the point registry, who may do what, and the reports
(near-expiry, monthly issue, replenishment, reconciliation).

Roles (spec: county station, township office, point keeper) on the app's roles:

- the **county station** is ``admin`` (county level): receives stock, and may do
  everything else anywhere;
- a **township/street office** is the ``assessor`` of that township/street:
  transfers from its office (to its points, or back), adjusts and clears
  expired stock, counts at its office, registers its points and their keepers;
- a **point keeper** is any user linked to the point in ``supply_keeper``:
  records the point's issues and physical counts;
- ``viewer`` reads (its unit's subtree, or everything); reporters read the
  points they keep.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kaohe.auth.permissions import Forbidden, scope_ids
from kaohe.errors import KaoheError
from kaohe.store.models import AuditEntry, OrgUnit, User
from kaohe.supplies.ledger import LedgerError, stock_as_of, today
from kaohe.supplies.models import (
    LOCATION_KINDS,
    POINT_TYPES,
    PRODUCT_FORMS,
    SupplyEvent,
    SupplyKeeper,
    SupplyLocation,
    SupplyLot,
    SupplyMovement,
    SupplyPointStatus,
    SupplyProduct,
)
from kaohe.workflow.units import NotFound, unit_by_code

POINT_TYPE_LABELS = {
    "counter": "人工发放点",
    "cabinet": "自助发放柜",
    "hospital": "医疗机构",
    "service_centre": "政务服务中心",
    "employer": "用工单位",
    "community": "村（社区）",
}
FORM_LABELS = {
    "condom": "避孕套",
    "oral_pill": "口服避孕药",
    "emergency_pill": "紧急避孕药",
    "iud": "宫内节育器",
    "other": "其他",
}
KIND_LABELS = {
    "receive": "入库",
    "transfer": "调拨",
    "issue": "发放",
    "adjust": "调整",
    "count": "盘点",
    "reversal": "冲销",
}
REASON_LABELS = {
    "expired": "过期销毁",
    "damaged": "破损",
    "lost": "丢失",
    "found": "盘盈/找回",
    "count": "盘点差异",
    "opening": "期初盘点",
    "purchase": "采购",
    "allocation": "上级调拨",
}
LOCATION_KIND_LABELS = {"station": "县服务站", "office": "乡镇（街道）", "point": "发放点"}


# ---------------------------------------------------------------------------
# lookups


def location_by_code(session: Session, code: str) -> SupplyLocation:
    loc = session.scalar(select(SupplyLocation).where(SupplyLocation.code == code))
    if loc is None:
        raise NotFound(f"没有地点 '{code}' (no supplies location '{code}')")
    return loc


def product_by_code(session: Session, code: str) -> SupplyProduct:
    p = session.scalar(select(SupplyProduct).where(SupplyProduct.code == code))
    if p is None:
        raise NotFound(f"没有药具 '{code}' (no product '{code}')")
    return p


def lot_of(session: Session, product: SupplyProduct, number: str) -> SupplyLot:
    lot = session.scalar(
        select(SupplyLot).where(SupplyLot.product_id == product.id, SupplyLot.number == number)
    )
    if lot is None:
        raise NotFound(f"{product.name} 没有批号 '{number}' (no such lot)")
    return lot


def products(session: Session) -> list[SupplyProduct]:
    return list(
        session.scalars(select(SupplyProduct).order_by(SupplyProduct.sort, SupplyProduct.code))
    )


def locations(session: Session, ids: Iterable[int] | None = None) -> list[SupplyLocation]:
    q = select(SupplyLocation).order_by(SupplyLocation.sort, SupplyLocation.code)
    if ids is not None:
        q = q.where(SupplyLocation.id.in_(list(ids)))
    return list(session.scalars(q))


def station(session: Session) -> SupplyLocation | None:
    return session.scalar(select(SupplyLocation).where(SupplyLocation.kind == "station"))


def office_of(session: Session, unit: OrgUnit) -> SupplyLocation | None:
    return session.scalar(
        select(SupplyLocation).where(
            SupplyLocation.kind == "office", SupplyLocation.org_unit_id == unit.id
        )
    )


# ---------------------------------------------------------------------------
# registry


def add_product(
    session: Session, code: str, name: str, form: str, unit: str, pack_size: int = 1, sort: int = 0
) -> SupplyProduct:
    if form not in PRODUCT_FORMS:
        raise KaoheError(f"未知剂型 '{form}' (use one of {', '.join(PRODUCT_FORMS)})")
    if pack_size < 1:
        raise KaoheError("包装数量必须 ≥ 1 (pack size must be ≥ 1)")
    if session.scalar(select(SupplyProduct.id).where(SupplyProduct.code == code)) is not None:
        raise KaoheError(f"药具编码 '{code}' 已存在 (product code exists)")
    p = SupplyProduct(code=code, name=name, form=form, unit=unit, pack_size=pack_size, sort=sort)
    session.add(p)
    session.flush()
    return p


def add_location(
    session: Session,
    code: str,
    name: str,
    kind: str,
    *,
    org_unit: OrgUnit,
    parent: SupplyLocation | None = None,
    village: OrgUnit | None = None,
    point_type: str | None = None,
    address: str = "",
    hours: str = "",
    phone: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    opened_on: dt.date | None = None,
    by: User | None = None,
    sort: int = 0,
) -> SupplyLocation:
    if kind not in LOCATION_KINDS:
        raise KaoheError(f"未知地点类别 '{kind}'")
    if session.scalar(select(SupplyLocation.id).where(SupplyLocation.code == code)) is not None:
        raise KaoheError(f"地点编码 '{code}' 已存在 (location code exists)")
    if kind == "point":
        if point_type not in POINT_TYPES:
            raise KaoheError(f"未知发放点类型 '{point_type}' (use one of {', '.join(POINT_TYPES)})")
        if parent is None or parent.kind != "office":
            raise KaoheError("发放点必须属于一个乡镇（街道） (a point belongs to an office)")
    if (latitude is None) != (longitude is None):
        raise KaoheError("经纬度须同时填写 (give both latitude and longitude)")
    if latitude is not None and not (-90 <= latitude <= 90 and -180 <= (longitude or 0) <= 180):
        raise KaoheError("经纬度超出范围 (latitude/longitude out of range)")
    loc = SupplyLocation(
        code=code,
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        org_unit_id=org_unit.id,
        village_id=village.id if village else None,
        point_type=point_type,
        address=address,
        hours=hours,
        phone=phone,
        latitude=latitude,
        longitude=longitude,
        is_open=True,
        sort=sort,
    )
    session.add(loc)
    session.flush()
    if kind == "point":
        session.add(
            SupplyPointStatus(
                location_id=loc.id,
                day=opened_on or today(),
                is_open=True,
                reason="设立",
                recorded_by_id=by.id if by else None,
            )
        )
    session.add(
        AuditEntry(
            user_id=by.id if by else None,
            action="supplies.location.add",
            unit_id=org_unit.id,
            key=code,
            new=name,
        )
    )
    session.flush()
    return loc


def set_point_status(
    session: Session,
    point: SupplyLocation,
    is_open: bool,
    day: dt.date,
    reason: str,
    *,
    by: User | None = None,
) -> SupplyPointStatus:
    """Open or close a point (网点增减登记): appended to its history with date and reason."""
    if point.kind != "point":
        raise KaoheError(f"{point.code} 不是发放点 (not a distribution point)")
    if point.is_open == is_open:
        raise KaoheError(
            f"{point.name} 已经是{'开放' if is_open else '关闭'}状态 (already {'open' if is_open else 'closed'})"
        )
    if not reason.strip():
        raise KaoheError("请填写原因 (a reason is required)")
    last = session.scalar(
        select(func.max(SupplyPointStatus.day)).where(SupplyPointStatus.location_id == point.id)
    )
    if last is not None and day < last:
        raise KaoheError(f"日期早于上次登记 {last.isoformat()} (date before the last change)")
    row = SupplyPointStatus(
        location_id=point.id,
        day=day,
        is_open=is_open,
        reason=reason.strip(),
        recorded_by_id=by.id if by else None,
    )
    session.add(row)
    point.is_open = is_open
    session.add(
        AuditEntry(
            user_id=by.id if by else None,
            action="supplies.point.open" if is_open else "supplies.point.close",
            unit_id=point.org_unit_id,
            key=point.code,
            old="closed" if is_open else "open",
            new="open" if is_open else "closed",
            reason=reason,
        )
    )
    session.flush()
    return row


def point_history(session: Session, point: SupplyLocation) -> list[SupplyPointStatus]:
    return list(
        session.scalars(
            select(SupplyPointStatus)
            .where(SupplyPointStatus.location_id == point.id)
            .order_by(SupplyPointStatus.day, SupplyPointStatus.id)
        )
    )


def add_keeper(
    session: Session, user: User, point: SupplyLocation, *, by: User | None = None
) -> None:
    if point.kind != "point":
        raise KaoheError(f"{point.code} 不是发放点 (not a distribution point)")
    exists = session.scalar(
        select(SupplyKeeper.id).where(
            SupplyKeeper.user_id == user.id, SupplyKeeper.location_id == point.id
        )
    )
    if exists is None:
        session.add(SupplyKeeper(user_id=user.id, location_id=point.id))
        session.add(
            AuditEntry(
                user_id=by.id if by else None,
                action="supplies.keeper.add",
                unit_id=point.org_unit_id,
                key=point.code,
                new=user.username,
            )
        )
        session.flush()


def keepers_of(session: Session, point: SupplyLocation) -> list[User]:
    return [
        k.user
        for k in session.scalars(select(SupplyKeeper).where(SupplyKeeper.location_id == point.id))
    ]


# ---------------------------------------------------------------------------
# access


def kept_ids(session: Session, user: User) -> set[int]:
    return set(
        session.scalars(select(SupplyKeeper.location_id).where(SupplyKeeper.user_id == user.id))
    )


def readable_ids(session: Session, user: User) -> set[int] | None:
    """Location ids ``user`` may read (None: all)."""
    kept = kept_ids(session, user)
    if user.role == "reporter":
        return kept
    scope = scope_ids(session, user)
    if scope is None:
        return None
    return kept | set(
        session.scalars(select(SupplyLocation.id).where(SupplyLocation.org_unit_id.in_(scope)))
    )


def can_manage(session: Session, user: User | None, loc: SupplyLocation) -> bool:
    """County station (admin) anywhere; a township office (assessor) its office and points."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    if user.role != "assessor" or loc.kind == "station":
        return False
    scope = scope_ids(session, user)
    return scope is not None and loc.org_unit_id in scope


def can_keep(session: Session, user: User | None, loc: SupplyLocation) -> bool:
    """Record issues and counts at ``loc``: its keeper, or the county station."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    if user.role == "viewer":
        return False
    return loc.kind == "point" and loc.id in kept_ids(session, user)


def require_receive(user: User | None, loc: SupplyLocation) -> None:
    if user is None or user.role != "admin":
        raise Forbidden("只有县服务站可以入库 (only the county station receives)")
    if loc.kind != "station":
        raise LedgerError("入库只能登记在县服务站 (receipts are recorded at the county station)")


def require_manage(session: Session, user: User | None, loc: SupplyLocation) -> None:
    if not can_manage(session, user, loc):
        raise Forbidden(f"无权管理 {loc.name} (not your office)")


def require_keep(session: Session, user: User | None, loc: SupplyLocation) -> None:
    if not can_keep(session, user, loc):
        raise Forbidden(f"只有 {loc.name} 的管理员可以登记发放和盘点 (not this point's keeper)")


def require_read_location(session: Session, user: User, loc: SupplyLocation) -> None:
    ids = readable_ids(session, user)
    if ids is not None and loc.id not in ids:
        raise Forbidden()


def count_allowed(session: Session, user: User | None, loc: SupplyLocation) -> bool:
    """Points are counted by their keeper; offices and the station by their managers."""
    if loc.kind == "point":
        return can_keep(session, user, loc)
    return can_manage(session, user, loc)


# ---------------------------------------------------------------------------
# reports


@dataclass
class StockLine:
    location: SupplyLocation
    product: SupplyProduct
    lot: SupplyLot
    qty: int


def stock_lines(
    session: Session, day: dt.date, location_ids: Iterable[int] | None = None
) -> list[StockLine]:
    rows = stock_as_of(session, day, location_ids)
    locs = {loc.id: loc for loc in locations(session)}
    prods = {p.id: p for p in products(session)}
    lots = {
        lt.id: lt
        for lt in session.scalars(
            select(SupplyLot).where(SupplyLot.id.in_({r.lot_id for r in rows}))
        )
    }
    out = [StockLine(locs[r.location_id], prods[r.product_id], lots[r.lot_id], r.qty) for r in rows]
    out.sort(
        key=lambda s: (
            s.location.sort,
            s.location.code,
            s.product.sort,
            s.product.code,
            s.lot.expiry,
            s.lot.number,
        )
    )
    return out


def add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    last = [
        31,
        29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    return dt.date(year, month, min(day.day, last))


def parse_within(text: str) -> int:
    """'6m' → 6 months, '1y' → 12, '6' → 6."""
    t = text.strip().lower()
    try:
        if t.endswith("y"):
            n = int(t[:-1]) * 12
        elif t.endswith("m"):
            n = int(t[:-1])
        else:
            n = int(t)
    except ValueError:
        raise KaoheError(f"无法识别的期限 '{text}'（例如 6m、1y） (use e.g. 6m or 1y)") from None
    if n < 0:
        raise KaoheError(f"期限不能为负 '{text}'")
    return n


def expiring(
    session: Session, day: dt.date, within_months: int, location_ids: Iterable[int] | None = None
) -> tuple[list[StockLine], list[StockLine]]:
    """(near-expiry, expired) stock on ``day``: near-expiry lots expire on ``day`` or
    within ``within_months`` months; expired lots expired before ``day``."""
    horizon = add_months(day, within_months)
    lines = stock_lines(session, day, location_ids)
    near = [s for s in lines if s.qty > 0 and day <= s.lot.expiry <= horizon]
    gone = [s for s in lines if s.qty > 0 and s.lot.expiry < day]
    near.sort(key=lambda s: (s.lot.expiry, s.location.code))
    gone.sort(key=lambda s: (s.location.code, s.lot.expiry))
    return near, gone


def monthly_issue(
    session: Session, year: int, location_ids: Iterable[int] | None = None
) -> dict[tuple[int, int], list[int]]:
    """(location id, product id) -> 12 monthly issued quantities (net of reversals)."""
    m = SupplyMovement
    month = func.extract("month", m.day)
    q = (
        select(m.location_id, m.product_id, month, func.sum(m.qty))
        .where(m.kind == "issue", m.day >= dt.date(year, 1, 1), m.day <= dt.date(year, 12, 31))
        .group_by(m.location_id, m.product_id, month)
    )
    if location_ids is not None:
        q = q.where(m.location_id.in_(list(location_ids)))
    out: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0] * 12)
    for loc, prod, mon, qty in session.execute(q):
        out[(loc, prod)][int(mon) - 1] = -int(qty)
    return dict(out)


@dataclass
class Suggestion:
    location: SupplyLocation
    product: SupplyProduct
    avg_monthly: float
    max_stock: float
    on_hand: int
    suggested: int


def replenishment(
    session: Session,
    day: dt.date,
    *,
    window_months: int = 6,
    months_of_stock: float = 2.0,
    location_ids: Iterable[int] | None = None,
) -> list[Suggestion]:
    """Per open point and product: average monthly issue over the ``window_months``
    months before ``day`` (through ``day``); max stock = average × ``months_of_stock``;
    suggested = max(0, ⌈max stock − usable on hand⌉) (expired lots are not on hand)."""
    if window_months < 1:
        raise KaoheError("统计月数须 ≥ 1 (window must be ≥ 1 month)")
    if months_of_stock < 0:
        raise KaoheError("储备月数不能为负 (months of stock must be ≥ 0)")
    pts = [p for p in locations(session, location_ids) if p.kind == "point" and p.is_open]
    ids = [p.id for p in pts]
    start = add_months(day, -window_months)
    m = SupplyMovement
    issued = {
        (loc, prod): -int(q)
        for loc, prod, q in session.execute(
            select(m.location_id, m.product_id, func.sum(m.qty))
            .where(m.kind == "issue", m.day > start, m.day <= day, m.location_id.in_(ids))
            .group_by(m.location_id, m.product_id)
        )
    }
    on_hand: dict[tuple[int, int], int] = defaultdict(int)
    for s in stock_lines(session, day, ids):
        if s.lot.expiry >= day:
            on_hand[(s.location.id, s.product.id)] += s.qty
    out = []
    for p in pts:
        for prod in products(session):
            avg = issued.get((p.id, prod.id), 0) / window_months
            if avg == 0 and on_hand.get((p.id, prod.id), 0) == 0:
                continue
            mx = avg * months_of_stock
            have = on_hand.get((p.id, prod.id), 0)
            out.append(Suggestion(p, prod, avg, mx, have, max(0, math.ceil(mx - have - 1e-9))))
    return out


@dataclass
class CountLine:
    event: SupplyEvent
    location: SupplyLocation
    lot: SupplyLot
    book: int
    counted: int


def reconciliation(
    session: Session, location_ids: Iterable[int] | None = None
) -> tuple[list[CountLine], float | None]:
    """Every counted lot of every physical count (not reversed; opening counts left out):
    book vs. counted, and the share of counted lots with no difference (信息统计准确率)."""
    reversed_ids = select(SupplyEvent.reverses_id).where(SupplyEvent.reverses_id.is_not(None))
    q = (
        select(SupplyMovement, SupplyEvent)
        .join(SupplyEvent, SupplyEvent.id == SupplyMovement.event_id)
        .where(
            SupplyEvent.kind == "count",
            SupplyEvent.reason == "count",
            SupplyEvent.id.not_in(reversed_ids),
        )
        .order_by(SupplyEvent.day.desc(), SupplyEvent.id.desc(), SupplyMovement.id)
    )
    if location_ids is not None:
        q = q.where(SupplyMovement.location_id.in_(list(location_ids)))
    locs = {loc.id: loc for loc in locations(session)}
    lines = []
    for mv, ev in session.execute(q):
        counted = mv.counted if mv.counted is not None else 0
        lines.append(CountLine(ev, locs[mv.location_id], mv.lot, counted - mv.qty, counted))
    share = sum(1 for ln in lines if ln.book == ln.counted) / len(lines) if lines else None
    return lines, share


def events(
    session: Session, location_ids: Iterable[int] | None = None, limit: int = 200
) -> list[SupplyEvent]:
    q = select(SupplyEvent).order_by(SupplyEvent.day.desc(), SupplyEvent.id.desc()).limit(limit)
    if location_ids is not None:
        ids = list(location_ids)
        q = q.where(SupplyEvent.location_id.in_(ids) | SupplyEvent.counterpart_id.in_(ids))
    return list(session.scalars(q))


def township_units(session: Session) -> list[OrgUnit]:
    """Org units that have a supplies office, in order."""
    return list(
        session.scalars(
            select(OrgUnit)
            .join(SupplyLocation, SupplyLocation.org_unit_id == OrgUnit.id)
            .where(SupplyLocation.kind == "office")
            .order_by(OrgUnit.sort, OrgUnit.code)
        )
    )


__all__ = ["unit_by_code"]
