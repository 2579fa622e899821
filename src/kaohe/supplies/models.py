"""Tables of the supplies ledger (shared/spec/supplies.md), on the shared :class:`Base`.

Locations form a tree (county station → township/street office → distribution
points).  Every movement of stock is a :class:`SupplyEvent` (a numbered document)
with one or more :class:`SupplyMovement` lines (location × lot × signed
quantity); events are never edited or deleted, corrections are reversals.
:class:`SupplyBalance` holds the current balance per location and lot, kept in
step with the movements under the per-location write lock (it equals the sum of
all movements of that key; the tests replay the ledger to check it).
:class:`SupplyMonthBalance` holds the closing balance of every key at the end of
every closed month (a snapshot for reading balances as of any date), kept in step
by the same writers; :class:`SupplyClosedMonth` records how far it reaches.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kaohe.store.models import Base, OrgUnit, User, utcnow

#: location kinds, root to leaf
LOCATION_KINDS = ("station", "office", "point")
#: distribution point types
POINT_TYPES = ("counter", "cabinet", "hospital", "service_centre", "employer", "community")
#: product forms
PRODUCT_FORMS = ("condom", "oral_pill", "emergency_pill", "iud", "other")
#: event kinds
EVENT_KINDS = ("receive", "transfer", "issue", "adjust", "count", "reversal")
#: adjustment reasons and their sign
ADJUST_REASONS = {"expired": -1, "damaged": -1, "lost": -1, "found": 1}
#: where a receipt comes from (the county station's inflows)
RECEIVE_SOURCES = ("purchase", "allocation")


class SupplyLocation(Base):
    """The county station, a township/street office, or a distribution point."""

    __tablename__ = "supply_location"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # one of LOCATION_KINDS
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("supply_location.id"), index=True)
    #: the org unit whose staff manage it: the county (station) or the township/street
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    #: a point's village/community, if it sits in one
    village_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    point_type: Mapped[str | None] = mapped_column(String(16))  # one of POINT_TYPES
    address: Mapped[str] = mapped_column(String(300), default="")
    hours: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    sort: Mapped[int] = mapped_column(Integer, default=0)

    parent: Mapped[SupplyLocation | None] = relationship(remote_side=[id])
    org_unit: Mapped[OrgUnit] = relationship(foreign_keys=[org_unit_id])
    village: Mapped[OrgUnit | None] = relationship(foreign_keys=[village_id])


class SupplyPointStatus(Base):
    """The open/closed history of a distribution point (网点增减登记)."""

    __tablename__ = "supply_point_status"

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("supply_location.id"), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    is_open: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class SupplyKeeper(Base):
    """A user who keeps a distribution point: records its issues and counts."""

    __tablename__ = "supply_keeper"
    __table_args__ = (UniqueConstraint("user_id", "location_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    location_id: Mapped[int] = mapped_column(ForeignKey("supply_location.id"), index=True)

    user: Mapped[User] = relationship()
    location: Mapped[SupplyLocation] = relationship()


class SupplyProduct(Base):
    __tablename__ = "supply_product"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    form: Mapped[str] = mapped_column(String(16))  # one of PRODUCT_FORMS
    unit: Mapped[str] = mapped_column(String(16))  # unit of issue, e.g. 只, 板, 盒
    pack_size: Mapped[int] = mapped_column(Integer, default=1)
    sort: Mapped[int] = mapped_column(Integer, default=0)


class SupplyLot(Base):
    """A lot (batch) of a product: a number and an expiry date (usable through that day)."""

    __tablename__ = "supply_lot"
    __table_args__ = (UniqueConstraint("product_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("supply_product.id"))
    number: Mapped[str] = mapped_column(String(64))
    expiry: Mapped[dt.date] = mapped_column(Date)

    product: Mapped[SupplyProduct] = relationship()


class SupplyEvent(Base):
    """One document of the ledger, numbered per location and month: LOC-YYYYMM-NNNN."""

    __tablename__ = "supply_event"
    __table_args__ = (UniqueConstraint("location_id", "month", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    doc_no: Mapped[str] = mapped_column(String(100), unique=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("supply_location.id"))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM of ``day``
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # one of EVENT_KINDS
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    #: adjust: one of ADJUST_REASONS; count: "count" or "opening"; receive: its source
    reason: Mapped[str | None] = mapped_column(String(32))
    #: transfer: the receiving location
    counterpart_id: Mapped[int | None] = mapped_column(ForeignKey("supply_location.id"))
    #: reversal: the event it reverses (at most one reversal per event)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("supply_event.id"), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    location: Mapped[SupplyLocation] = relationship(foreign_keys=[location_id])
    counterpart: Mapped[SupplyLocation | None] = relationship(foreign_keys=[counterpart_id])
    created_by: Mapped[User | None] = relationship()
    lines: Mapped[list[SupplyMovement]] = relationship(
        back_populates="event", order_by="SupplyMovement.id"
    )


class SupplyMovement(Base):
    """One line of an event: a signed quantity of a lot at a location on a date.

    ``kind`` is the line's effect (receive, transfer_out, transfer_in, issue,
    adjust, count); a reversal's lines keep the kind of the line they undo, so
    sums by kind are net of reversals.  Count lines carry the counted quantity
    (the book quantity is ``counted - qty``)."""

    __tablename__ = "supply_movement"
    __table_args__ = (
        Index("ix_supply_movement_loc_lot_day", "location_id", "lot_id", "day"),
        Index("ix_supply_movement_day_cover", "day", "location_id", "lot_id", "qty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("supply_event.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("supply_location.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("supply_product.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("supply_lot.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    qty: Mapped[int] = mapped_column(Integer)
    counted: Mapped[int | None] = mapped_column(Integer)

    event: Mapped[SupplyEvent] = relationship(back_populates="lines")
    lot: Mapped[SupplyLot] = relationship()


class SupplyBalance(Base):
    """Current balance of a lot at a location (the sum of all its movements)."""

    __tablename__ = "supply_balance"
    __table_args__ = (UniqueConstraint("location_id", "lot_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("supply_location.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("supply_lot.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("supply_product.id"))
    qty: Mapped[int] = mapped_column(Integer, default=0)


class SupplyMonthBalance(Base):
    """Closing balance of a lot at a location at the end of a month: the sum of its
    movements dated on or before the month's last day.

    Rows exist for every closed month (see :class:`SupplyClosedMonth`) and every key
    whose closing balance that month is not zero (a row may hold 0 after a later
    correction).  ``month`` is the month's first day."""

    __tablename__ = "supply_month_balance"
    __table_args__ = (
        UniqueConstraint("location_id", "lot_id", "month"),
        Index("ix_supply_month_balance_month_cover", "month", "location_id", "lot_id", "qty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("supply_location.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("supply_lot.id"))
    month: Mapped[dt.date] = mapped_column(Date)
    qty: Mapped[int] = mapped_column(Integer)


class SupplyClosedMonth(Base):
    """A month whose closing balances are in :class:`SupplyMonthBalance` (the latest
    such month is how far the snapshots reach; every earlier month is there too)."""

    __tablename__ = "supply_closed_month"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    closed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
