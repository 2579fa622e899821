"""The append-only stock ledger (shared/spec/supplies.md, "The ledger").

Every write goes through :func:`_post` after :func:`lock_locations`:

- the locations an event touches are locked first (PostgreSQL: ``SELECT … FOR
  UPDATE`` on their ``supply_location`` rows in id order; SQLite: the
  connection's transaction is made a write transaction with ``BEGIN
  IMMEDIATE``, SQLite's single writer), so concurrent events on one location
  are serialised and every check below reads committed, current data;
- the quantities are decided (FEFO picks lots first-expiry-first-out; expired
  lots are never issued);
- every line is checked against the *end-of-day* balances of its location and
  lot on its date and every later date: an event that would make any of them
  negative is rejected whole (:class:`NegativeStock` names the date and the
  balance that would break), nothing is written;
- the event gets the next document number of its location and month and its
  lines are appended; the current balances and an audit entry are written in
  the same transaction.

Dates are business dates (the day the stock moved), never in the future
(China Standard Time).  A lot is usable through its expiry date.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    String,
    bindparam,
    column,
    event,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from kaohe.errors import KaoheError
from kaohe.store.models import User, utcnow
from kaohe.supplies.models import (
    ADJUST_REASONS,
    RECEIVE_SOURCES,
    SupplyBalance,
    SupplyClosedMonth,
    SupplyEvent,
    SupplyLocation,
    SupplyLot,
    SupplyMonthBalance,
    SupplyMovement,
    SupplyProduct,
)

CST = dt.timezone(dt.timedelta(hours=8))


class LedgerError(KaoheError):
    """An event the ledger refuses (HTTP 400, CLI exit 2); nothing was written."""


class NegativeStock(LedgerError):
    """The event would make a balance negative on ``day`` (to ``balance``)."""

    def __init__(
        self, location: SupplyLocation, lot: SupplyLot, day: dt.date, balance: int
    ) -> None:
        self.location, self.lot, self.day, self.balance = location, lot, day, balance
        super().__init__(
            f"库存不足：{location.name}（{location.code}）批号 {lot.number} 在 {day.isoformat()} "
            f"的结存将变为 {balance}，登记被拒绝 (stock would go negative: {location.code} lot "
            f"{lot.number} on {day.isoformat()} would be {balance}; nothing recorded)"
        )


def today() -> dt.date:
    return dt.datetime.now(CST).date()


def is_expired(lot: SupplyLot, day: dt.date) -> bool:
    """A lot is usable through its expiry date; expired from the next day on."""
    return lot.expiry < day


# ---------------------------------------------------------------------------
# locking


#: PostgreSQL advisory lock between writers (shared) and closing a month (exclusive)
_PG_CLOSE_LOCK = 0x53555050  # "SUPP"

#: SQLite: one in-process queue per database file in front of ``BEGIN IMMEDIATE``
_QUEUES: dict[str, threading.Lock] = {}
_QUEUES_GUARD = threading.Lock()
_QUEUE_KEY = "kaohe.supplies.write_queue"


def _release_queue(_dbapi_connection: Any, record: Any) -> None:
    lock = record.info.pop(_QUEUE_KEY, None) if record is not None else None
    if lock is not None:
        lock.release()


def _release_queue_reset(dbapi_connection: Any, record: Any, _state: Any) -> None:
    _release_queue(dbapi_connection, record)


def _release_queue_invalidate(dbapi_connection: Any, record: Any, _exc: Any) -> None:
    _release_queue(dbapi_connection, record)


def _queue(engine: Engine) -> threading.Lock:
    key = str(engine.url)
    with _QUEUES_GUARD:
        lock = _QUEUES.setdefault(key, threading.Lock())
        if not event.contains(engine, "checkin", _release_queue):
            # the connection goes back to the pool right after its commit or rollback
            event.listen(engine, "checkin", _release_queue)
            event.listen(engine, "close", _release_queue)
            event.listen(engine, "reset", _release_queue_reset)
            event.listen(engine, "invalidate", _release_queue_invalidate)
    return lock


#: per transaction (and savepoint): the locations locked and the last closed month
_LOCKS_KEY = "kaohe.supplies.locks"


@dataclass
class _LockState:
    ids: set[int]
    #: the last closed month, once read under the lock (None: no month closed yet)
    closed: dt.date | None = None
    known: bool = False
    #: the month ``closed`` was checked against (the month before today then)
    target: dt.date | None = None

    def current(self, target: dt.date) -> bool:
        return self.known and self.target == target


def _lock_state(session: Session) -> _LockState | None:
    """The lock taken in this transaction or an enclosing one still in progress."""
    states = session.info.get(_LOCKS_KEY)
    if not states:
        return None
    tx = session.get_nested_transaction() or session.get_transaction()
    while tx is not None:
        st = states.get(tx)
        if st is not None and tx.is_active:
            return st
        tx = tx.parent
    return None


def _keep_state(session: Session, st: _LockState) -> None:
    tx = session.get_nested_transaction() or session.get_transaction()
    states = session.info.setdefault(_LOCKS_KEY, weakref.WeakKeyDictionary())
    states[tx] = st


#: PostgreSQL: read the last closed month and take the advisory lock in one round
#: trip: shared if the months are closed, else exclusive (the caller closes them)
_PG_CLOSE_OR_SHARE = text(
    "SELECT m.closed, CASE WHEN m.closed >= :target "
    f"THEN pg_advisory_xact_lock_shared({_PG_CLOSE_LOCK})::text "
    f"ELSE pg_advisory_xact_lock({_PG_CLOSE_LOCK})::text END "
    "FROM (SELECT max(month) AS closed FROM supply_closed_month) AS m"
).columns(column("closed", Date), column("lock", String))

_LOCATION_ROWS = (
    select(SupplyLocation.__table__.c.id)
    .where(SupplyLocation.__table__.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(SupplyLocation.__table__.c.id)
    .with_for_update()
)


def lock_locations(session: Session, ids: Iterable[int]) -> None:
    """Serialise writers on these locations until the transaction ends; close the
    months up to the previous one (monthly snapshots) if nobody has yet.

    Taken once per transaction: later calls (for the same or fewer locations) cost
    nothing."""
    _lock(session, ids)


def begin_write(session: Session) -> None:
    """Start a ledger write before a request's own reads and changes: SQLite takes its
    single writer lock now (queued in-process), so the request's pending changes (an
    API token's last use) are written under it rather than through SQLite's sleeping
    busy handler; PostgreSQL waits for a closing of months in progress.  The event's
    locations are locked later (:func:`lock_locations`)."""
    _lock(session, (), need_closed=False)


def _lock(session: Session, ids: Iterable[int], *, need_closed: bool = True) -> _LockState:
    """:func:`lock_locations`; with ``need_closed=False`` SQLite leaves reading the
    last closed month to the caller's next statement (see :func:`_note_closed`)."""
    wanted = set(ids)
    target = _prev_month(_month(today()))
    st = _lock_state(session)
    if st is not None and wanted <= st.ids and (st.current(target) or not need_closed):
        return st
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    if st is None:
        st = _LockState(set())
        if sqlite:
            raw = conn.connection.dbapi_connection
            # pysqlite opens its (deferred) transaction only before the first DML; the
            # reads before it ran outside any transaction.  Take the write lock now so
            # the checks below and the writes see one state (waits busy_timeout).
            if raw is not None and not raw.in_transaction:
                # Writers of this process queue on a lock first and are woken as soon
                # as the previous one has committed; SQLite's busy handler (for writers
                # of other processes) sleeps in growing steps of up to 100 ms instead.
                lock = _queue(conn.engine)
                if lock.acquire(timeout=10):
                    conn.connection.info[_QUEUE_KEY] = lock
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        _keep_state(session, st)
    # pending ORM changes (e.g. an API token's last use) go in under the write lock;
    # the checks and writes below are Core statements on the connection (no autoflush)
    session.flush()
    if not sqlite and not st.current(target):
        # closing months reads every location: wait for the writers in flight
        # (exclusive); a writer waits for a closing in progress (shared).  The
        # month read is current when shared was taken (closings never pass the
        # previous month); after exclusive, _close_months reads it again.
        closed = conn.execute(_PG_CLOSE_OR_SHARE, {"target": target}).scalar()
        if closed is None or closed < target:
            closed = _close_months(session)
        st.closed, st.known, st.target = closed, True, target
    if not sqlite:
        new = sorted(wanted - st.ids)
        if new:
            conn.execute(_LOCATION_ROWS, {"ids": new}).all()
    st.ids |= wanted
    if need_closed and not st.current(target):
        _note_closed(session, st, closed_through(session))
    return st


def _note_closed(session: Session, st: _LockState, closed: dt.date | None) -> None:
    """SQLite, under the write lock: the last closed month as read; close the months
    up to the previous one if that is short."""
    target = _prev_month(_month(today()))
    if closed is None or closed < target:
        closed = _close_months(session)
    st.closed, st.known, st.target = closed, True, target


# ---------------------------------------------------------------------------
# monthly snapshots


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _prev_month(month: dt.date) -> dt.date:
    return (month.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def closed_through(session: Session) -> dt.date | None:
    """The last month whose closing balances are in ``supply_month_balance`` (every
    month before it is there too), or None before the first write has closed any."""
    return session.scalar(select(func.max(SupplyClosedMonth.month)))


def _close_months(session: Session) -> dt.date | None:
    """Write the closing balances of every month after the last closed one up to the
    previous month (under the write lock: SQLite's single writer, PostgreSQL's
    exclusive advisory lock), each from the month before plus its movements; return
    the last closed month."""
    target = _prev_month(_month(today()))
    last = closed_through(session)
    if last is not None and last >= target:
        return last
    m, snap = SupplyMovement, SupplyMonthBalance
    if last is None:
        first = session.scalar(select(func.min(m.day)))
        month = target if first is None else min(_month(first), _next_month(target))
    else:
        month = _next_month(last)
    prev = last
    while month <= target:
        nxt = _next_month(month)
        parts = [
            select(m.location_id, m.lot_id, m.qty).where(m.day >= month, m.day < nxt),
        ]
        if prev is not None:
            parts.append(
                select(snap.location_id, snap.lot_id, snap.qty).where(
                    snap.month == prev, snap.qty != 0
                )
            )
        u = union_all(*parts).subquery()
        session.execute(
            insert(snap).from_select(
                ["location_id", "lot_id", "month", "qty"],
                select(u.c.location_id, u.c.lot_id, literal(month, Date), func.sum(u.c.qty))
                .group_by(u.c.location_id, u.c.lot_id)
                .having(func.sum(u.c.qty) != 0),
            )
        )
        prev, month = month, nxt
    session.execute(insert(SupplyClosedMonth).values(month=target, closed_at=utcnow()))
    return target


def _update_snapshots(
    session: Session, day: dt.date, sums: dict[tuple[int, int], int], last: dt.date | None
) -> None:
    """A back-dated event moves the closing balance of its month and every later
    closed month (up to ``last``, read under the lock) by its net quantity per key."""
    first = _month(day)
    if last is None or first > last:
        return
    snap = SupplyMonthBalance
    months = [first]
    while months[-1] < last:
        months.append(_next_month(months[-1]))
    for (loc, lot), qty in sums.items():
        if qty == 0:
            continue
        key = (snap.location_id == loc, snap.lot_id == lot, snap.month >= first)
        have = set(session.scalars(select(snap.month).where(*key)))
        if have:
            session.execute(
                update(snap).where(*key).values(qty=snap.qty + qty),
                execution_options={"synchronize_session": False},
            )
        missing = [
            {"location_id": loc, "lot_id": lot, "month": mo, "qty": qty}
            for mo in months
            if mo not in have
        ]
        if missing:
            session.execute(insert(snap), missing)


# ---------------------------------------------------------------------------
# balances


def current_balances(
    session: Session, location_id: int, product_id: int | None = None
) -> dict[int, int]:
    """lot id -> current balance (all movements) at a location."""
    q = select(SupplyBalance.lot_id, SupplyBalance.qty).where(
        SupplyBalance.location_id == location_id, SupplyBalance.qty != 0
    )
    if product_id is not None:
        q = q.where(SupplyBalance.product_id == product_id)
    return {lot: qty for lot, qty in session.execute(q)}


@dataclass
class Availability:
    """A key's end-of-day balance on ``day`` and the lowest end-of-day balance
    on ``day`` or any later date (what may still be taken on ``day``)."""

    at_day: int
    lowest: int
    #: (date, end-of-day balance) for ``day`` and every later date with movements
    path: list[tuple[dt.date, int]]


def availability(
    session: Session,
    location_id: int,
    lot_ids: Sequence[int],
    day: dt.date,
    now: dict[int, int] | None = None,
) -> dict[int, Availability]:
    """End-of-day balances of these lots at a location from ``day`` on: the current
    balances (``now``, read if not given) less the movements dated after ``day``."""
    if not lot_ids:
        return {}
    if now is None:
        now = {
            lot: qty
            for lot, qty in session.connection().execute(
                select(SupplyBalance.lot_id, SupplyBalance.qty).where(
                    SupplyBalance.location_id == location_id, SupplyBalance.lot_id.in_(lot_ids)
                )
            )
        }
    later: dict[int, list[tuple[dt.date, int]]] = defaultdict(list)
    for lot, d, qty in session.connection().execute(
        select(SupplyMovement.lot_id, SupplyMovement.day, func.sum(SupplyMovement.qty))
        .where(
            SupplyMovement.location_id == location_id,
            SupplyMovement.lot_id.in_(lot_ids),
            SupplyMovement.day > day,
        )
        .group_by(SupplyMovement.lot_id, SupplyMovement.day)
        .order_by(SupplyMovement.lot_id, SupplyMovement.day)
    ):
        later[lot].append((d, int(qty)))
    return _availability(now, later, lot_ids, day)


def _availability(
    now: dict[int, int],
    later: dict[int, list[tuple[dt.date, int]]],
    lot_ids: Sequence[int],
    day: dt.date,
) -> dict[int, Availability]:
    """From the current balances and the net movements per later date (in date order)."""
    out: dict[int, Availability] = {}
    for lot in lot_ids:
        steps = later.get(lot, [])
        bal = now.get(lot, 0) - sum(q for _, q in steps)
        path = [(day, bal)]
        for d, q in steps:
            bal += q
            path.append((d, bal))
        out[lot] = Availability(path[0][1], min(b for _, b in path), path)
    return out


# ---------------------------------------------------------------------------
# posting


@dataclass
class Line:
    """One line to post: a signed quantity of a lot at a location."""

    location: SupplyLocation
    lot_id: int
    product_id: int
    lot_number: str
    qty: int
    kind: str
    counted: int | None = None


def _line(
    location: SupplyLocation, lot: SupplyLot, qty: int, kind: str, counted: int | None = None
) -> Line:
    return Line(location, lot.id, lot.product_id, lot.number, qty, kind, counted)


def _check(
    session: Session,
    lines: Sequence[Line],
    day: dt.date,
    verified: frozenset[tuple[int, int]] = frozenset(),
    known: dict[tuple[int, int], Availability] | None = None,
) -> None:
    """Reject if any end-of-day balance on ``day`` or later would go negative.

    ``verified``: keys whose quantities were taken within their lowest later balance,
    read under this transaction's lock (FEFO picks): not read again; ``known``: keys
    whose availability was read under the lock already."""
    delta: dict[tuple[int, int], int] = defaultdict(int)
    objs: dict[tuple[int, int], SupplyLocation] = {}
    for ln in lines:
        key = (ln.location.id, ln.lot_id)
        delta[key] += ln.qty
        objs[key] = ln.location
    known = dict(known or {})
    by_loc: dict[int, list[int]] = defaultdict(list)
    for loc, lot in delta:
        if delta[(loc, lot)] < 0 and (loc, lot) not in verified and (loc, lot) not in known:
            by_loc[loc].append(lot)
    for loc, lots in by_loc.items():
        for lot, av in availability(session, loc, lots, day).items():
            known[(loc, lot)] = av
    for key, d in delta.items():
        if d >= 0 or key in verified:
            continue
        av = known[key]
        if av.lowest + d < 0:
            when, bal = next((w, b + d) for w, b in av.path if b + d < 0)
            lot_obj = session.get(SupplyLot, key[1])
            assert lot_obj is not None
            raise NegativeStock(objs[key], lot_obj, when, bal)


_T = SupplyEvent.metadata.tables
_EV, _MV, _BAL = _T["supply_event"], _T["supply_movement"], _T["supply_balance"]
_LOT, _CM, _AUDIT = _T["supply_lot"], _T["supply_closed_month"], _T["audit_entry"]
_INSERT_EVENT = insert(_EV)
_INSERT_MOVES = insert(_MV)
_INSERT_AUDIT = insert(_AUDIT)
_NEXT_SEQ = select(func.max(_EV.c.seq)).where(
    _EV.c.location_id == bindparam("loc"), _EV.c.month == bindparam("month")
)
_UPSERTS: dict[str, Any] = {}


def _upsert_balance(dialect: str) -> Any:
    """INSERT … ON CONFLICT (location, lot) DO UPDATE: add to the current balance."""
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        from sqlalchemy.dialects import postgresql, sqlite

        ins: Any = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(_BAL)
        stmt = ins.on_conflict_do_update(
            index_elements=[_BAL.c.location_id, _BAL.c.lot_id],
            set_={"qty": _BAL.c.qty + ins.excluded.qty},
        )
        _UPSERTS[dialect] = stmt
    return stmt


def _one_or_many(rows: list[dict[str, Any]]) -> Any:
    return rows[0] if len(rows) == 1 else rows


def _post(
    session: Session,
    *,
    kind: str,
    location: SupplyLocation,
    day: dt.date,
    lines: Sequence[Line],
    by: User | None,
    reason: str | None = None,
    counterpart: SupplyLocation | None = None,
    reverses: SupplyEvent | None = None,
    note: str = "",
    verified: frozenset[tuple[int, int]] = frozenset(),
    known: dict[tuple[int, int], Availability] | None = None,
    seq: int | None = None,
) -> SupplyEvent:
    """Check and append an event under the lock (taken by the caller): Core statements
    only — the event, its lines (one statement), the balances (one upsert), the
    snapshots of closed months (back-dated events only) and the audit entry.

    ``seq``: the next document number of the location and month if read under the
    lock already."""
    if not lines:
        raise LedgerError("没有可登记的数量 (nothing to record)")
    _check(session, lines, day, verified, known)
    st = _lock(session, {ln.location.id for ln in lines})
    conn = session.connection()
    month = f"{day:%Y-%m}"
    if seq is None:
        seq = int(conn.execute(_NEXT_SEQ, {"loc": location.id, "month": month}).scalar() or 0) + 1
    values: dict[str, Any] = {
        "doc_no": f"{location.code}-{day:%Y%m}-{seq:04d}",
        "location_id": location.id,
        "month": month,
        "seq": seq,
        "kind": kind,
        "day": day,
        "reason": reason,
        "counterpart_id": counterpart.id if counterpart else None,
        "reverses_id": reverses.id if reverses else None,
        "note": note,
        "created_at": utcnow(),
        "created_by_id": by.id if by else None,
    }
    key = conn.execute(_INSERT_EVENT, values).inserted_primary_key
    assert key is not None
    event_id = key[0]
    conn.execute(
        _INSERT_MOVES,
        _one_or_many(
            [
                {
                    "event_id": event_id,
                    "location_id": ln.location.id,
                    "product_id": ln.product_id,
                    "lot_id": ln.lot_id,
                    "day": day,
                    "kind": ln.kind,
                    "qty": ln.qty,
                    "counted": ln.counted,
                }
                for ln in lines
            ]
        ),
    )
    sums: dict[tuple[int, int], int] = defaultdict(int)
    product_of: dict[int, int] = {}
    for ln in lines:
        sums[(ln.location.id, ln.lot_id)] += ln.qty
        product_of[ln.lot_id] = ln.product_id
    conn.execute(
        _upsert_balance(conn.dialect.name),
        _one_or_many(
            [
                {"location_id": loc, "lot_id": lot, "product_id": product_of[lot], "qty": qty}
                for (loc, lot), qty in sums.items()
            ]
        ),
    )
    _update_snapshots(session, day, sums, st.closed)
    summary = "; ".join(f"{ln.location.code} {ln.lot_number} {ln.qty:+d}" for ln in lines)
    conn.execute(
        _INSERT_AUDIT,
        {
            "at": values["created_at"],
            "user_id": values["created_by_id"],
            "action": f"supplies.{kind}",
            "unit_id": location.org_unit_id,
            "period": month,
            "key": values["doc_no"],
            "old": None,
            "new": summary[:2000],
            "reason": note or reason,
        },
    )
    # the event as a persistent object without a flush or a read (its lines and
    # related rows load when asked for)
    event = SupplyEvent(id=event_id, **values)
    make_transient_to_detached(event)
    session.add(event)
    return event


def _check_day(day: dt.date) -> None:
    if day > today():
        raise LedgerError(f"日期 {day.isoformat()} 晚于今天 (date in the future)")


def _check_qty(qty: int) -> None:
    if qty <= 0:
        raise LedgerError(f"数量必须为正整数，收到 {qty} (quantity must be a positive integer)")


def get_or_create_lot(
    session: Session, product: SupplyProduct, number: str, expiry: dt.date | None
) -> SupplyLot:
    number = number.strip()
    if not number:
        raise LedgerError("批号不能为空 (lot number is required)")
    lot = session.scalar(
        select(SupplyLot).where(SupplyLot.product_id == product.id, SupplyLot.number == number)
    )
    if lot is None:
        if expiry is None:
            raise LedgerError(f"新批号 {number} 需要有效期 (a new lot needs an expiry date)")
        lot = SupplyLot(product_id=product.id, number=number, expiry=expiry)
        session.add(lot)
        session.flush()
    elif expiry is not None and expiry != lot.expiry:
        raise LedgerError(
            f"批号 {number} 已登记有效期 {lot.expiry.isoformat()}，与 {expiry.isoformat()} 不符 "
            "(lot already recorded with another expiry date)"
        )
    return lot


@dataclass(frozen=True)
class _LotInfo:
    id: int
    product_id: int
    number: str
    expiry: dt.date


def _stock_read(by_lot: bool) -> Any:
    """One statement under the lock: a location's held lots of a product (or the named
    lot) with their expiry, their net movements per later date, and a header row with
    the location's last document number of the month and the last closed month."""
    b, lt, m = _BAL, _LOT, _MV
    cond = b.c.lot_id == bindparam("lot") if by_lot else b.c.product_id == bindparam("product")
    held = (
        select(
            literal_column("0").label("k"),
            b.c.lot_id,
            b.c.qty,
            lt.c.expiry.label("day"),
            lt.c.number,
        )
        .select_from(b.join(lt, lt.c.id == b.c.lot_id))
        .where(b.c.location_id == bindparam("loc"), b.c.qty != 0, cond)
    )
    if by_lot:
        later_lots = m.c.lot_id == bindparam("lot")
    else:
        keys = select(b.c.lot_id).where(b.c.location_id == bindparam("loc"), b.c.qty != 0, cond)
        later_lots = m.c.lot_id.in_(keys.scalar_subquery())
    later = (
        select(literal_column("1"), m.c.lot_id, func.sum(m.c.qty), m.c.day, null())
        .where(m.c.location_id == bindparam("loc"), later_lots, m.c.day > bindparam("day"))
        .group_by(m.c.lot_id, m.c.day)
    )
    head = select(
        literal_column("2"),
        literal_column("0"),
        _NEXT_SEQ.scalar_subquery(),
        select(func.max(_CM.c.month)).scalar_subquery(),
        null(),
    )
    return union_all(held, later, head)


_READ_PRODUCT = _stock_read(False)
_READ_LOT = _stock_read(True)


@dataclass
class _Picked:
    lots: list[tuple[_LotInfo, int]]
    verified: frozenset[tuple[int, int]]
    known: dict[tuple[int, int], Availability]
    seq: int


def _pick(
    session: Session,
    location: SupplyLocation,
    product: SupplyProduct,
    qty: int,
    day: dt.date,
    lot: SupplyLot | None,
    *,
    allow_expired: bool = False,
) -> _Picked:
    """Lots and quantities to take on ``day``: the named lot, else FEFO (the keys whose
    later balances allow what is taken are ``verified``), read in one statement under
    the lock with the next document number of the location and ``day``'s month."""
    _check_qty(qty)
    if lot is not None:
        if lot.product_id != product.id:
            raise LedgerError(f"批号 {lot.number} 不属于 {product.name} (lot of another product)")
        if not allow_expired and is_expired(lot, day):
            raise LedgerError(
                f"批号 {lot.number} 已于 {lot.expiry.isoformat()} 过期，不能发出 "
                "(expired lots cannot be issued)"
            )
    st = _lock(session, [location.id], need_closed=False)
    params: dict[str, Any] = {"loc": location.id, "day": day, "month": f"{day:%Y-%m}"}
    if lot is not None:
        params["lot"] = lot.id
    else:
        params["product"] = product.id
    stmt = _READ_PRODUCT if lot is None else _READ_LOT
    held: dict[int, int] = {}
    infos: list[_LotInfo] = []
    later: dict[int, list[tuple[dt.date, int]]] = defaultdict(list)
    seq, closed = 1, None
    for k, lot_id, q, d, number in session.connection().execute(stmt, params):
        if k == 0:
            held[lot_id] = int(q)
            infos.append(_LotInfo(lot_id, product.id, number, d))
        elif k == 1:
            later[lot_id].append((d, int(q)))
        else:
            seq, closed = int(q or 0) + 1, d
    if not st.current(_prev_month(_month(today()))):
        _note_closed(session, st, closed)
    if lot is not None:
        av = _availability(held, later, [lot.id], day)
        return _Picked(
            [(_LotInfo(lot.id, lot.product_id, lot.number, lot.expiry), qty)],
            frozenset(),
            {(location.id, lot.id): av[lot.id]},
            seq,
        )
    lots = [lt for lt in infos if allow_expired or lt.expiry >= day]
    lots.sort(key=lambda lt: (lt.expiry, lt.number, lt.id))
    avail = _availability(held, later, [lt.id for lt in lots], day)
    picked: list[tuple[_LotInfo, int]] = []
    need = qty
    for lt in lots:
        take = min(need, max(0, avail[lt.id].lowest))
        if take > 0:
            picked.append((lt, take))
            need -= take
        if need == 0:
            return _Picked(picked, frozenset((location.id, lt.id) for lt, _ in picked), {}, seq)
    have = qty - need
    raise LedgerError(
        f"{location.name} 在 {day.isoformat()} 可用的未过期 {product.name} 只有 {have} "
        f"{product.unit}，不足 {qty} (only {have} usable in stock)"
    )


def _picked_lines(location: SupplyLocation, picked: _Picked, sign: int, kind: str) -> list[Line]:
    return [
        Line(location, lt.id, lt.product_id, lt.number, sign * q, kind) for lt, q in picked.lots
    ]


def receive(
    session: Session,
    location: SupplyLocation,
    day: dt.date,
    lines: Sequence[tuple[SupplyLot, int]],
    *,
    source: str = "purchase",
    by: User | None = None,
    note: str = "",
) -> SupplyEvent:
    """Stock coming into the ledger at the county station (purchase or allocation)."""
    _check_day(day)
    if source not in RECEIVE_SOURCES:
        raise LedgerError(f"未知来源 '{source}' (use one of {', '.join(RECEIVE_SOURCES)})")
    for _, q in lines:
        _check_qty(q)
    lock_locations(session, [location.id])
    return _post(
        session,
        kind="receive",
        location=location,
        day=day,
        lines=[_line(location, lot, q, "receive") for lot, q in lines],
        by=by,
        reason=source,
        note=note,
    )


def transfer(
    session: Session,
    source: SupplyLocation,
    dest: SupplyLocation,
    day: dt.date,
    product: SupplyProduct,
    qty: int,
    *,
    lot: SupplyLot | None = None,
    by: User | None = None,
    note: str = "",
) -> SupplyEvent:
    """Move stock between locations: debit and credit in one event (FEFO unless a lot is named)."""
    _check_day(day)
    if source.id == dest.id:
        raise LedgerError("调出和调入地点相同 (source and destination are the same)")
    if not dest.is_open:
        raise LedgerError(f"{dest.name} 已关闭，不能调入 (destination is closed)")
    _lock(session, [source.id, dest.id], need_closed=False)
    picked = _pick(session, source, product, qty, day, lot)
    lines = _picked_lines(source, picked, -1, "transfer_out")
    lines += _picked_lines(dest, picked, 1, "transfer_in")
    return _post(
        session,
        kind="transfer",
        location=source,
        day=day,
        lines=lines,
        by=by,
        counterpart=dest,
        note=note,
        verified=picked.verified,
        known=picked.known,
        seq=picked.seq,
    )


def issue(
    session: Session,
    location: SupplyLocation,
    day: dt.date,
    product: SupplyProduct,
    qty: int,
    *,
    lot: SupplyLot | None = None,
    by: User | None = None,
    note: str = "",
) -> SupplyEvent:
    """Free distribution (a count, no recipient): FEFO unless a lot is named; never expired lots."""
    _check_day(day)
    picked = _pick(session, location, product, qty, day, lot)  # locks the location
    return _post(
        session,
        kind="issue",
        location=location,
        day=day,
        lines=_picked_lines(location, picked, -1, "issue"),
        by=by,
        note=note,
        verified=picked.verified,
        known=picked.known,
        seq=picked.seq,
    )


def adjust(
    session: Session,
    location: SupplyLocation,
    day: dt.date,
    lot: SupplyLot,
    qty: int,
    reason: str,
    *,
    by: User | None = None,
    note: str = "",
) -> SupplyEvent:
    """Expired-and-destroyed, damaged or lost (stock out) or found (stock in): ``qty`` > 0."""
    _check_day(day)
    if reason not in ADJUST_REASONS:
        raise LedgerError(f"未知调整原因 '{reason}' (use one of {', '.join(ADJUST_REASONS)})")
    _check_qty(qty)
    lock_locations(session, [location.id])
    return _post(
        session,
        kind="adjust",
        location=location,
        day=day,
        lines=[_line(location, lot, ADJUST_REASONS[reason] * qty, "adjust")],
        by=by,
        reason=reason,
        note=note,
    )


def count(
    session: Session,
    location: SupplyLocation,
    day: dt.date,
    counted: Sequence[tuple[SupplyLot, int]],
    *,
    reason: str = "count",
    by: User | None = None,
    note: str = "",
) -> SupplyEvent:
    """A physical count sets the end-of-day balance of each counted lot on ``day``; the
    difference from the book is recorded as an adjustment line (reason ``count``;
    ``opening`` for an initial stock count, which reconciliation leaves out)."""
    _check_day(day)
    if reason not in ("count", "opening"):
        raise LedgerError(f"未知盘点类型 '{reason}'")
    for lot, c in counted:
        if c < 0:
            raise LedgerError(f"批号 {lot.number} 的盘点数不能为负数 (count must be ≥ 0)")
    if len({lot.id for lot, _ in counted}) != len(counted):
        raise LedgerError("同一批号盘点了两次 (a lot is counted twice)")
    lock_locations(session, [location.id])
    avail = availability(session, location.id, [lot.id for lot, _ in counted], day)
    lines = [
        _line(location, lot, c - avail[lot.id].at_day, "count", counted=c) for lot, c in counted
    ]
    return _post(
        session,
        kind="count",
        location=location,
        day=day,
        lines=lines,
        by=by,
        reason=reason,
        note=note,
    )


def expired_lots(
    session: Session, location: SupplyLocation, day: dt.date
) -> list[tuple[SupplyLot, int]]:
    """Lots expired on ``day`` with stock at the location on that day."""
    held = current_balances(session, location.id)
    lots = [
        lt
        for lt in session.scalars(select(SupplyLot).where(SupplyLot.id.in_(list(held))))
        if is_expired(lt, day)
    ]
    avail = availability(session, location.id, [lt.id for lt in lots], day, now=held)
    return [(lt, avail[lt.id].at_day) for lt in lots if avail[lt.id].at_day > 0]


def clear_expired(
    session: Session,
    location: SupplyLocation,
    day: dt.date,
    *,
    by: User | None = None,
    note: str = "",
) -> SupplyEvent | None:
    """One step: write off every expired lot held on ``day`` (adjust, reason ``expired``)."""
    _check_day(day)
    lock_locations(session, [location.id])
    found = expired_lots(session, location, day)
    if not found:
        return None
    return _post(
        session,
        kind="adjust",
        location=location,
        day=day,
        lines=[_line(location, lot, -q, "adjust") for lot, q in found],
        by=by,
        reason="expired",
        note=note or "清理过期药具",
    )


def reverse(
    session: Session,
    event: SupplyEvent,
    *,
    day: dt.date | None = None,
    by: User | None = None,
    note: str = "",
) -> SupplyEvent:
    """Correct an event by a reversal that references it (dated like the original unless
    ``day`` is given): every line negated.  Events are never edited or deleted."""
    if event.kind == "reversal":
        raise LedgerError(
            f"{event.doc_no} 本身是冲销单，不能再冲销 (a reversal cannot be reversed)"
        )
    day = day or event.day
    _check_day(day)
    if day < event.day:
        raise LedgerError("冲销日期不能早于原单据日期 (a reversal cannot predate the original)")
    lock_locations(session, {ln.location_id for ln in event.lines})
    done = session.scalar(select(SupplyEvent.doc_no).where(SupplyEvent.reverses_id == event.id))
    if done is not None:
        raise LedgerError(f"{event.doc_no} 已被 {done} 冲销 (already reversed)")
    locs = {
        loc.id: loc
        for loc in session.scalars(
            select(SupplyLocation).where(
                SupplyLocation.id.in_({ln.location_id for ln in event.lines})
            )
        )
    }
    lines = [_line(locs[ln.location_id], ln.lot, -ln.qty, ln.kind) for ln in event.lines]
    return _post(
        session,
        kind="reversal",
        location=event.location,
        day=day,
        lines=lines,
        by=by,
        reason=event.kind,
        reverses=event,
        note=note or f"冲销 {event.doc_no}",
    )


# ---------------------------------------------------------------------------
# stock as of a date


@dataclass(frozen=True)
class StockRow:
    location_id: int
    product_id: int
    lot_id: int
    qty: int


def stock_as_of(
    session: Session, day: dt.date, location_ids: Iterable[int] | None = None
) -> list[StockRow]:
    """End-of-day balances on ``day`` (non-zero only), by location and lot.

    One statement from the nearest known state: the closing balances of the month
    before ``day`` plus the movements of its month up to ``day``, or those of its own
    month less the movements after ``day``; the current balances less the movements
    after ``day``; or the movements from the first.  At most half a month of
    movements is summed once the months are closed (see :func:`lock_locations`)."""
    locs = None if location_ids is None else sorted(set(location_ids))
    m, snap, b = SupplyMovement, SupplyMonthBalance, SupplyBalance
    first = session.scalar(select(func.min(m.day)))
    if first is None or day < first:
        return []
    last = closed_through(session)
    # (days of movements to sum, base, movements sign, movements after, up to)
    options: list[tuple[int, int, dt.date | None, int, dt.date | None, dt.date | None]] = [
        # current balances, backwards (reading every key ever held costs about a
        # month of movements: zero balances stay in ``supply_balance``)
        ((today() - day).days + 31, 0, None, -1, day, None),
        ((day - first).days + 1, 1, None, 1, None, day),  # from the first movement
    ]
    if last is not None:
        month = _month(day)
        prev = _prev_month(month)
        if prev <= last:  # closing of the month before, forwards
            options.append((day.day, 2, prev, 1, month - dt.timedelta(days=1), day))
        if month <= last:  # closing of the month, backwards
            end = _next_month(month) - dt.timedelta(days=1)
            options.append(((end - day).days, 3, month, -1, day, end))
    _, _, anchor, sign, after, upto = min(options)

    def only(q: Any, column: Any) -> Any:
        return q if locs is None else q.where(column.in_(locs))

    parts = []
    if anchor is not None:
        base = select(snap.location_id, snap.lot_id, snap.qty)
        parts.append(only(base.where(snap.month == anchor, snap.qty != 0), snap.location_id))
    elif sign < 0:
        base = select(b.location_id, b.lot_id, b.qty)
        parts.append(only(base.where(b.qty != 0), b.location_id))
    moves = select(m.location_id, m.lot_id, (m.qty if sign > 0 else -m.qty).label("qty"))
    if after is not None:
        moves = moves.where(m.day > after)
    if upto is not None:
        moves = moves.where(m.day <= upto)
    parts.append(only(moves, m.location_id))
    u = union_all(*parts).subquery()
    total = func.sum(u.c.qty)
    q = select(u.c.location_id, u.c.lot_id, total).group_by(u.c.location_id, u.c.lot_id)
    bal = {(loc, lot): int(qty) for loc, lot, qty in session.execute(q.having(total != 0))}
    products = dict(
        ((a, b) for a, b in session.execute(select(SupplyLot.id, SupplyLot.product_id)))
    )
    return [StockRow(loc, products[lot], lot, qty) for (loc, lot), qty in sorted(bal.items())]


def replay(session: Session) -> dict[tuple[int, int], dict[dt.date, int]]:
    """End-of-day balances of every (location, lot) on each date it moved, replayed
    from the movements in date order (the oracle of the tests)."""
    out: dict[tuple[int, int], dict[dt.date, int]] = defaultdict(dict)
    running: dict[tuple[int, int], int] = defaultdict(int)
    for loc, lot, d, qty in session.execute(
        select(
            SupplyMovement.location_id,
            SupplyMovement.lot_id,
            SupplyMovement.day,
            SupplyMovement.qty,
        ).order_by(SupplyMovement.day, SupplyMovement.id)
    ):
        running[(loc, lot)] += qty
        out[(loc, lot)][d] = running[(loc, lot)]
    return out


__all__ = [
    "LedgerError",
    "NegativeStock",
    "adjust",
    "availability",
    "begin_write",
    "clear_expired",
    "count",
    "expired_lots",
    "issue",
    "lock_locations",
    "receive",
    "replay",
    "reverse",
    "stock_as_of",
    "transfer",
]
