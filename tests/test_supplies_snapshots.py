"""Monthly closing balances (snapshots) of the supplies ledger: balances as of any
date read from the snapshots equal the replayed sum of the movements, for random
histories with back-dated events and reversals; months are closed as time passes
and, on an existing ledger, on the first write after the upgrade."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from kaohe.supplies import ledger as lg
from kaohe.supplies.models import SupplyClosedMonth, SupplyMonthBalance
from tests.supplies_helpers import make_setup

D = dt.date


@pytest.fixture
def su(db):  # type: ignore[no-untyped-def]
    return make_setup(db)


def replayed_as_of(db, day: dt.date) -> dict[tuple[int, int], int]:  # type: ignore[no-untyped-def]
    out = {}
    for key, path in lg.replay(db).items():
        days = [d for d in path if d <= day]
        if days and path[max(days)] != 0:
            out[key] = path[max(days)]
    return out


def month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first day of every month from ``first``'s to ``last``'s."""
    out = [first.replace(day=1)]
    while out[-1] < last.replace(day=1):
        out.append((out[-1].replace(day=28) + dt.timedelta(days=4)).replace(day=1))
    return out


def check_snapshots(db) -> None:  # type: ignore[no-untyped-def]
    """Every closed month's rows equal the replayed closing balances (zero rows aside)."""
    last = lg.closed_through(db)
    assert last is not None
    rows: dict[dt.date, dict[tuple[int, int], int]] = {}
    for loc, lot, month, qty in db.execute(
        select(
            SupplyMonthBalance.location_id,
            SupplyMonthBalance.lot_id,
            SupplyMonthBalance.month,
            SupplyMonthBalance.qty,
        )
    ):
        assert month <= last, "no snapshot of a month not yet closed"
        if qty:
            rows.setdefault(month, {})[(loc, lot)] = qty
    for month in month_ends(D(2023, 1, 1), last):
        end = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        assert rows.get(month, {}) == replayed_as_of(db, end), month


OPS = st.lists(
    st.tuples(
        st.sampled_from(["receive", "transfer", "issue", "adjust", "count", "reverse"]),
        st.integers(0, 500),  # days back from today: most events are back-dated
        st.integers(1, 40),  # quantity
        st.integers(0, 5),  # location / lot selector
    ),
    min_size=1,
    max_size=20,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, probes=st.lists(st.integers(-5, 520), min_size=3, max_size=8))
def test_as_of_from_snapshots_equals_the_replay(db, su, ops, probes) -> None:  # type: ignore[no-untyped-def]
    t = lg.today()
    sp = db.begin_nested()
    lots = [
        lg.get_or_create_lot(db, su.condom, "A", t - dt.timedelta(days=200)),
        lg.get_or_create_lot(db, su.condom, "B", t + dt.timedelta(days=400)),
        lg.get_or_create_lot(db, su.pill, "C", t + dt.timedelta(days=900)),
    ]
    locs = [su.station, su.o0, su.p00]
    done = []
    lg.lock_locations(db, [])  # as the pages do: the months are closed outside each attempt
    try:
        for kind, back, qty, sel in ops:
            day = t - dt.timedelta(days=back)
            loc, lt = locs[sel % 3], lots[sel % 3]
            try:
                with db.begin_nested():
                    if kind == "receive":
                        done.append(lg.receive(db, su.station, day, [(lt, qty * 3)]))
                    elif kind == "transfer":
                        done.append(lg.transfer(db, loc, locs[(sel + 1) % 3], day, lt.product, qty))
                    elif kind == "issue":
                        done.append(lg.issue(db, loc, day, lt.product, qty))
                    elif kind == "adjust":
                        reason = ["lost", "damaged", "found"][sel % 3]
                        done.append(lg.adjust(db, loc, day, lt, qty, reason))
                    elif kind == "count":
                        done.append(lg.count(db, loc, day, [(lt, qty % 7)]))
                    elif done:
                        done.append(lg.reverse(db, done[sel % len(done)]))
            except lg.LedgerError:
                pass
        check_snapshots(db)
        for off in probes:
            day = t - dt.timedelta(days=off)
            got = {(r.location_id, r.lot_id): r.qty for r in lg.stock_as_of(db, day)}
            assert got == replayed_as_of(db, day), day
            # and for a subset of locations
            got = {(r.location_id, r.lot_id): r.qty for r in lg.stock_as_of(db, day, [su.p00.id])}
            want = {k: v for k, v in replayed_as_of(db, day).items() if k[0] == su.p00.id}
            assert got == want, day
    finally:
        sp.rollback()


def test_months_close_as_time_passes_and_on_an_existing_ledger(db, su, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = [D(2024, 3, 15)]
    monkeypatch.setattr(lg, "today", lambda: clock[0])
    a = lg.get_or_create_lot(db, su.condom, "A", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 10), [(a, 100)])
    assert lg.closed_through(db) == D(2024, 2, 1)  # the first write closed January, February
    lg.transfer(db, su.station, su.o0, D(2024, 3, 1), su.condom, 30)
    lg.issue(db, su.station, D(2024, 2, 20), su.condom, 5)  # back-dated into a closed month
    check_snapshots(db)
    # time passes: the first write of June closes March to May
    clock[0] = D(2024, 6, 2)
    lg.issue(db, su.o0, D(2024, 6, 1), su.condom, 4)
    assert lg.closed_through(db) == D(2024, 5, 1)
    check_snapshots(db)
    assert {(r.location_id, r.qty) for r in lg.stock_as_of(db, D(2024, 4, 30))} == {
        (su.station.id, 65),
        (su.o0.id, 30),
    }
    # an existing ledger without snapshots (as after the upgrade): reads sum the
    # movements; the next write closes every month from the first movement
    db.execute(delete(SupplyMonthBalance))
    db.execute(delete(SupplyClosedMonth))
    db.commit()  # the upgrade is a transaction of its own (a writer's lock is per transaction)
    assert lg.closed_through(db) is None
    assert {(r.location_id, r.qty) for r in lg.stock_as_of(db, D(2024, 2, 29))} == {
        (su.station.id, 95)
    }
    lg.adjust(db, su.o0, D(2024, 6, 2), a, 1, "found")
    assert lg.closed_through(db) == D(2024, 5, 1)
    check_snapshots(db)


def test_a_back_dated_event_moves_every_later_closed_month(db, su, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(lg, "today", lambda: D(2024, 8, 10))
    a = lg.get_or_create_lot(db, su.condom, "A", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 5, 1), [(a, 50)])
    r = lg.receive(db, su.station, D(2024, 2, 10), [(a, 7)])  # before the first movement
    months = dict(
        db.execute(
            select(SupplyMonthBalance.month, SupplyMonthBalance.qty).where(
                SupplyMonthBalance.location_id == su.station.id
            )
        ).all()
    )
    assert months == {
        D(2024, 2, 1): 7,
        D(2024, 3, 1): 7,
        D(2024, 4, 1): 7,
        D(2024, 5, 1): 57,
        D(2024, 6, 1): 57,
        D(2024, 7, 1): 57,
    }
    lg.reverse(db, r, day=D(2024, 6, 15))
    check_snapshots(db)
    assert [x.qty for x in lg.stock_as_of(db, D(2024, 6, 14))] == [57]
    assert [x.qty for x in lg.stock_as_of(db, D(2024, 6, 15))] == [50]


def test_months_closed_in_a_savepoint_that_rolls_back_are_closed_again(db, su, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = [D(2024, 3, 15)]
    monkeypatch.setattr(lg, "today", lambda: clock[0])
    a = lg.get_or_create_lot(db, su.condom, "A", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 10), [(a, 100)])
    db.commit()
    assert lg.closed_through(db) == D(2024, 2, 1)
    clock[0] = D(2024, 5, 2)  # March and April are due
    with pytest.raises(lg.LedgerError), db.begin_nested():
        lg.issue(db, su.station, D(2024, 5, 1), su.condom, 1000)  # closes them, then refused
    # the closing went with the savepoint; the lock taken in it is gone too
    assert lg.closed_through(db) == D(2024, 2, 1)
    lg.issue(db, su.station, D(2024, 4, 20), su.condom, 5)  # back-dated into April
    assert lg.closed_through(db) == D(2024, 4, 1)
    check_snapshots(db)
    assert [x.qty for x in lg.stock_as_of(db, D(2024, 4, 30))] == [95]
