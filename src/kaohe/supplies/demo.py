"""The supplies part of the demo database: :func:`seed_supplies_demo`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kaohe.store.models import OrgUnit, User
from kaohe.supplies import service as sv
from kaohe.supplies.ledger import today
from kaohe.supplies.models import SupplyLocation
from kaohe.supplies.synth import generate
from kaohe.workflow.units import unit_by_code

PRODUCTS = [
    ("C01", "男用避孕套（中号）", "condom", "只", 10),
    ("C02", "男用避孕套（大号）", "condom", "只", 10),
    ("P01", "复方左炔诺孕酮片", "oral_pill", "板", 1),
    ("E01", "左炔诺孕酮片（紧急避孕）", "emergency_pill", "片", 1),
    ("I01", "宫形含铜节育器", "iud", "枚", 1),
    ("O01", "外用避孕凝胶", "other", "支", 1),
]
TYPES = ["counter", "cabinet", "community", "cabinet", "hospital", "service_centre", "employer"]
#: rough coordinates of the demo townships (the offline map draws them)
CENTRES = {"T000": (31.73, 116.52), "T001": (31.68, 116.63), "ST01": (31.76, 116.58)}


def seed_supplies_demo(session: Session, *, end: dt.date | None = None) -> dict[str, int]:
    """A county station, an office per township/street of the demo county, 3–5 points
    under each (cabinets among them, one closed), two years of movements ending
    ``end`` (default today) with some near-expiry lots, and every existing reporter
    of a point's village/community linked as its keeper.  Deterministic."""
    end = end or today()
    start = dt.date(end.year - 2, end.month, 1)
    county = unit_by_code(session, "X01")
    st = sv.add_location(session, "XZ", "县计划生育服务站", "station", org_unit=county,
                         address="县城人民路 1 号", hours="周一至周五 8:30-17:00", phone="0564-5550100")  # fmt: skip
    for i, (code, name, form, unit, pack) in enumerate(PRODUCTS):
        sv.add_product(session, code, name, form, unit, pack, sort=i)
    n = 0
    first_point = None
    for t_i, group in enumerate(county.children):
        office = sv.add_location(
            session, f"{group.code}-B", f"{group.name}计生办", "office", org_unit=group, parent=st,
            address=f"{group.name}政府大院", hours="周一至周五 8:30-17:00", phone=f"0564-55502{t_i:02d}",
            sort=t_i,
        )  # fmt: skip
        lat0, lon0 = CENTRES.get(group.code, (31.7 + 0.05 * t_i, 116.5 + 0.05 * t_i))
        kids: list[OrgUnit] = list(group.children)[:5]
        for k, village in enumerate(kids):
            ptype = TYPES[(n + k) % len(TYPES)]
            label = "自助发放柜" if ptype == "cabinet" else "免费发放点"
            has_xy = (n + k) % 5 != 4
            p = sv.add_location(
                session, f"{village.code}-D", f"{village.name}{label}", "point", org_unit=group,
                parent=office, village=village, point_type=ptype,
                address=f"{group.name}{village.name}村（居）委会旁",
                hours="全天 24 小时" if ptype == "cabinet" else "周一至周六 8:00-18:00",
                phone="" if ptype == "cabinet" else f"0564-556{n + k:04d}",
                latitude=round(lat0 + 0.012 * ((k % 3) - 1) + 0.004 * k, 5) if has_xy else None,
                longitude=round(lon0 + 0.015 * ((k // 3) - 0.5) + 0.003 * k, 5) if has_xy else None,
                opened_on=start, sort=k,
            )  # fmt: skip
            if first_point is None:
                first_point = p
            for user in session.scalars(
                select(User).where(User.role == "reporter", User.unit_id == village.id)
            ):
                sv.add_keeper(session, user, p)
        n += len(kids)
    counts = generate(
        session, start, end, seed=7, issue_every=1, monthly_issue=40,
        clear_expired_before=end - dt.timedelta(days=120),
    )  # fmt: skip
    # one point closed (after its history), with the reason on record
    closed = session.scalar(
        select(SupplyLocation)
        .where(SupplyLocation.kind == "point")
        .order_by(SupplyLocation.id.desc())
    )
    if closed is not None:
        sv.set_point_status(session, closed, False, end, "村委会搬迁，发放点撤销")
    return {**counts, "points": n}
