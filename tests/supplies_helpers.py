"""A small supplies set-up on the seeded test database (shared by the supplies tests).

Station S (county X01) → offices O0 (T000), O1 (T001) → points P00, P01 (T000), P10 (T001);
products C (condoms) and E (emergency pills); reporter_v0000 keeps P00."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from kaohe.auth.users import user_by_name
from kaohe.supplies import service as sv
from kaohe.supplies.models import SupplyLocation, SupplyProduct
from kaohe.workflow.units import unit_by_code


@dataclass
class Setup:
    station: SupplyLocation
    o0: SupplyLocation
    o1: SupplyLocation
    p00: SupplyLocation
    p01: SupplyLocation
    p10: SupplyLocation
    condom: SupplyProduct
    pill: SupplyProduct


def make_setup(s: Session) -> Setup:
    x01, t0, t1 = (unit_by_code(s, c) for c in ("X01", "T000", "T001"))
    st = sv.add_location(s, "S", "县计划生育服务站", "station", org_unit=x01)
    o0 = sv.add_location(s, "O0", "城关镇计生办", "office", org_unit=t0, parent=st)
    o1 = sv.add_location(s, "O1", "金寨镇计生办", "office", org_unit=t1, parent=st)
    kw = {"opened_on": dt.date(2020, 1, 1)}
    p00 = sv.add_location(
        s, "P00", "一村发放点", "point", org_unit=t0, parent=o0, point_type="counter",
        village=unit_by_code(s, "V0000"), address="一村村委会", hours="8:00-17:00",
        phone="0551-1", latitude=31.5, longitude=117.2, **kw,
    )  # fmt: skip
    p01 = sv.add_location(
        s, "P01", "二村自助柜", "point", org_unit=t0, parent=o0, point_type="cabinet",
        address="二村广场", hours="全天", **kw,
    )  # fmt: skip
    p10 = sv.add_location(
        s, "P10", "金寨卫生院", "point", org_unit=t1, parent=o1, point_type="hospital",
        address="金寨街1号", phone="0551-2", latitude=31.6, longitude=117.4, **kw,
    )  # fmt: skip
    c = sv.add_product(s, "C", "避孕套", "condom", "只", 10)
    e = sv.add_product(s, "E", "紧急避孕药", "emergency_pill", "片", 1)
    sv.add_keeper(s, user_by_name(s, "reporter_v0000"), p00)
    s.flush()
    return Setup(st, o0, o1, p00, p01, p10, c, e)
