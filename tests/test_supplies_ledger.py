"""The supplies ledger against the spec: append-only events, FEFO, expired lots never
issued, reversals, back-dated events, document numbers, stock as of any date,
and Hypothesis properties (balances never negative and equal to the replay; a
rejected event changes nothing)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from kaohe.store.models import AuditEntry
from kaohe.supplies import ledger as lg
from kaohe.supplies import service as sv
from kaohe.supplies.models import (
    SupplyBalance,
    SupplyEvent,
    SupplyMonthBalance,
    SupplyMovement,
)
from tests.supplies_helpers import make_setup

D = dt.date


@pytest.fixture
def su(db):  # type: ignore[no-untyped-def]
    return make_setup(db)


def bal(db, loc, lot, day=None) -> int:  # type: ignore[no-untyped-def]
    rows = lg.stock_as_of(db, day or lg.today(), [loc.id])
    return sum(r.qty for r in rows if r.lot_id == lot.id)


def lot(db, product, number, expiry):  # type: ignore[no-untyped-def]
    return lg.get_or_create_lot(db, product, number, expiry)


def test_receive_transfer_issue_balances_and_document_numbers(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    e1 = lg.receive(db, su.station, D(2024, 3, 1), [(a, 1000)])
    e2 = lg.transfer(db, su.station, su.o0, D(2024, 3, 2), su.condom, 300)
    e3 = lg.transfer(db, su.o0, su.p00, D(2024, 3, 5), su.condom, 100)
    e4 = lg.issue(db, su.p00, D(2024, 3, 6), su.condom, 30)
    assert [e1.doc_no, e2.doc_no] == ["S-202403-0001", "S-202403-0002"]
    assert e3.doc_no == "O0-202403-0001" and e4.doc_no == "P00-202403-0001"
    e5 = lg.issue(db, su.p00, D(2024, 4, 1), su.condom, 5)
    assert e5.doc_no == "P00-202404-0001"  # numbered per location and month
    assert bal(db, su.station, a) == 700
    assert bal(db, su.o0, a) == 200
    assert bal(db, su.p00, a) == 65
    assert bal(db, su.p00, a, D(2024, 3, 5)) == 100  # as of a date
    assert bal(db, su.p00, a, D(2024, 3, 4)) == 0
    # transfer: one event, a debit and a credit
    assert sorted(m.qty for m in e3.lines) == [-100, 100]
    assert (
        db.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action.like("supplies.%")))
        >= 5
    )


def test_fefo_picks_first_expiry_and_skips_expired(db, su) -> None:  # type: ignore[no-untyped-def]
    late = lot(db, su.condom, "LATE", D(2030, 1, 1))
    early = lot(db, su.condom, "EARLY", D(2027, 1, 1))
    old = lot(db, su.condom, "OLD", D(2024, 1, 31))
    lg.receive(db, su.station, D(2024, 1, 2), [(late, 50), (early, 30), (old, 40)])
    ev = lg.issue(db, su.station, D(2024, 2, 1), su.condom, 45)
    got = {ln.lot.number: -ln.qty for ln in ev.lines}
    assert got == {"EARLY": 30, "LATE": 15}  # OLD expired on 2024-01-31: never issued
    with pytest.raises(lg.LedgerError, match="过期"):
        lg.issue(db, su.station, D(2024, 2, 1), su.condom, 1, lot=old)
    # before its expiry the old lot comes first
    ev2 = lg.issue(db, su.station, D(2024, 1, 31), su.condom, 10)
    assert {ln.lot.number: -ln.qty for ln in ev2.lines} == {"OLD": 10}
    # a named lot is taken as named
    ev3 = lg.issue(db, su.station, D(2024, 2, 2), su.condom, 5, lot=late)
    assert [ln.lot.number for ln in ev3.lines] == ["LATE"]


def test_issue_more_than_usable_is_rejected_whole(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 2), [(a, 10)])
    n = db.scalar(select(func.count(SupplyEvent.id)))
    with pytest.raises(lg.LedgerError, match="不足"):
        lg.issue(db, su.station, D(2024, 1, 3), su.condom, 11)
    assert db.scalar(select(func.count(SupplyEvent.id))) == n
    assert bal(db, su.station, a) == 10


def test_back_dated_event_that_breaks_a_later_balance_is_rejected(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 1), [(a, 10)])
    lg.issue(db, su.station, D(2024, 3, 1), su.condom, 8, lot=a)
    # on 2024-02-01 there are 10, but taking 5 then would make 2024-03-01 negative (-3)
    with pytest.raises(lg.NegativeStock) as err:
        lg.adjust(db, su.station, D(2024, 2, 1), a, 5, "lost")
    assert err.value.day == D(2024, 3, 1) and err.value.balance == -3
    assert "2024-03-01" in str(err.value) and "-3" in str(err.value)
    # FEFO on a back date only offers what later dates can spare
    with pytest.raises(lg.LedgerError, match="只有 2"):
        lg.issue(db, su.station, D(2024, 2, 1), su.condom, 3)
    lg.issue(db, su.station, D(2024, 2, 1), su.condom, 2)
    assert bal(db, su.station, a) == 0
    assert bal(db, su.station, a, D(2024, 2, 15)) == 8


def test_reversal_references_the_original_and_restores_balances(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 1), [(a, 100)])
    t = lg.transfer(db, su.station, su.o1, D(2024, 1, 5), su.condom, 40)
    r = lg.reverse(db, t)
    assert r.kind == "reversal" and r.reverses_id == t.id and r.day == t.day
    assert bal(db, su.station, a) == 100 and bal(db, su.o1, a) == 0
    # the original is still there, unchanged
    assert db.get(SupplyEvent, t.id).kind == "transfer"
    assert (
        db.scalar(select(func.count(SupplyMovement.id)).where(SupplyMovement.event_id == t.id)) == 2
    )
    with pytest.raises(lg.LedgerError, match="已被"):
        lg.reverse(db, t)
    with pytest.raises(lg.LedgerError, match="不能再冲销"):
        lg.reverse(db, r)


def test_reversing_a_receipt_already_passed_on_is_rejected(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    rec = lg.receive(db, su.station, D(2024, 1, 1), [(a, 100)])
    lg.transfer(db, su.station, su.o0, D(2024, 1, 5), su.condom, 60)
    with pytest.raises(lg.NegativeStock) as err:
        lg.reverse(db, rec)
    assert err.value.balance == -60 and err.value.day == D(2024, 1, 5)


def test_count_sets_the_balance_and_records_the_difference(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    b = lot(db, su.condom, "B", D(2031, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 1), [(a, 100), (b, 20)])
    ev = lg.count(db, su.station, D(2024, 2, 1), [(a, 97), (b, 20)])
    assert sorted((ln.qty, ln.counted) for ln in ev.lines) == [(-3, 97), (0, 20)]
    assert bal(db, su.station, a) == 97
    lines, share = sv.reconciliation(db)
    assert [(ln.book, ln.counted) for ln in lines] == [(100, 97), (20, 20)]
    assert share == 0.5


def test_clear_expired_writes_off_expired_lots_in_one_step(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2024, 1, 31))
    b = lot(db, su.pill, "B", D(2024, 1, 15))
    c = lot(db, su.condom, "C", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 1), [(a, 5), (b, 7), (c, 9)])
    near, gone = sv.expiring(db, D(2024, 1, 20), 6)
    assert {s.lot.number for s in gone} == {"B"} and {s.lot.number for s in near} == {"A"}
    ev = lg.clear_expired(db, su.station, D(2024, 2, 1))
    assert ev is not None and ev.reason == "expired"
    assert {ln.lot.number: ln.qty for ln in ev.lines} == {"A": -5, "B": -7}
    assert bal(db, su.station, c) == 9 and bal(db, su.station, a) == 0
    assert lg.clear_expired(db, su.station, D(2024, 2, 1)) is None


def test_future_dates_and_bad_quantities_are_refused(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    with pytest.raises(lg.LedgerError, match="晚于今天"):
        lg.receive(db, su.station, lg.today() + dt.timedelta(days=1), [(a, 1)])
    with pytest.raises(lg.LedgerError, match="正整数"):
        lg.receive(db, su.station, D(2024, 1, 1), [(a, 0)])
    with pytest.raises(lg.LedgerError, match="有效期"):
        lg.get_or_create_lot(db, su.condom, "A", D(2031, 1, 1))


def test_monthly_issue_and_replenishment(db, su) -> None:  # type: ignore[no-untyped-def]
    a = lot(db, su.condom, "A", D(2030, 1, 1))
    lg.receive(db, su.station, D(2024, 1, 1), [(a, 1000)])
    lg.transfer(db, su.station, su.p00, D(2024, 1, 2), su.condom, 200)
    i = lg.issue(db, su.p00, D(2024, 2, 10), su.condom, 30)
    lg.issue(db, su.p00, D(2024, 3, 10), su.condom, 60)
    lg.issue(db, su.p00, D(2024, 3, 11), su.condom, 7)
    lg.reverse(db, i)  # the February issue was wrong
    months = sv.monthly_issue(db, 2024)[(su.p00.id, su.condom.id)]
    assert months[:4] == [0, 0, 67, 0]
    s = {
        (x.location.code, x.product.code): x
        for x in sv.replenishment(db, D(2024, 3, 31), window_months=3, months_of_stock=4)
    }[("P00", "C")]
    # average 67 / 3 per month; max stock 4 × 22.33 = 89.33; on hand 200 - 67 = 133
    assert s.on_hand == 133 and s.suggested == 0 and abs(s.max_stock - 89.333) < 0.01
    s2 = {
        (x.location.code, x.product.code): x
        for x in sv.replenishment(db, D(2024, 3, 31), window_months=1, months_of_stock=3)
    }[("P00", "C")]
    assert s2.suggested == 3 * 67 - 133


# --- properties ----------------------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["receive", "transfer", "issue", "adjust", "count", "reverse", "clear"]),
        st.integers(0, 60),  # day offset
        st.integers(1, 40),  # quantity
        st.integers(0, 5),  # location / lot selector
    ),
    min_size=1,
    max_size=25,
)


def snapshot(db):  # type: ignore[no-untyped-def]
    return (
        db.scalar(select(func.count(SupplyEvent.id))),
        db.scalar(select(func.count(SupplyMovement.id))),
        sorted(
            tuple(r)
            for r in db.execute(
                select(SupplyBalance.location_id, SupplyBalance.lot_id, SupplyBalance.qty)
            )
        ),
        sorted(
            tuple(r)
            for r in db.execute(
                select(
                    SupplyMonthBalance.location_id,
                    SupplyMonthBalance.lot_id,
                    SupplyMonthBalance.month,
                    SupplyMonthBalance.qty,
                )
            )
        ),
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_any_sequence_keeps_balances_non_negative_and_equal_to_the_replay(db, su, ops) -> None:  # type: ignore[no-untyped-def]
    base = D(2024, 1, 1)
    sp = db.begin_nested()
    lots = [
        lot(db, su.condom, "A", D(2024, 1, 20)),
        lot(db, su.condom, "B", D(2024, 2, 10)),
        lot(db, su.pill, "C", D(2030, 1, 1)),
    ]
    locs = [su.station, su.o0, su.p00]
    done: list[SupplyEvent] = []
    try:
        for kind, off, qty, sel in ops:
            day = base + dt.timedelta(days=off)
            loc = locs[sel % 3]
            lt = lots[sel % 3]
            before = snapshot(db)
            try:
                with db.begin_nested():
                    if kind == "receive":
                        done.append(lg.receive(db, su.station, day, [(lt, qty)]))
                    elif kind == "transfer":
                        done.append(lg.transfer(db, loc, locs[(sel + 1) % 3], day, lt.product, qty))
                    elif kind == "issue":
                        done.append(lg.issue(db, loc, day, lt.product, qty))
                    elif kind == "adjust":
                        reason = ["lost", "damaged", "found"][sel % 3]
                        done.append(lg.adjust(db, loc, day, lt, qty, reason))
                    elif kind == "count":
                        done.append(lg.count(db, loc, day, [(lt, qty % 7)]))
                    elif kind == "reverse" and done:
                        done.append(lg.reverse(db, done[sel % len(done)]))
                    elif kind == "clear":
                        ev = lg.clear_expired(db, loc, day)
                        if ev is not None:
                            done.append(ev)
            except lg.LedgerError:
                assert snapshot(db) == before  # a rejected event changes nothing
            # invariants after every step
            replayed = lg.replay(db)
            for (loc_id, lot_id), path in replayed.items():
                assert all(b >= 0 for b in path.values()), (loc_id, lot_id, path)
                current = db.scalar(
                    select(SupplyBalance.qty).where(
                        SupplyBalance.location_id == loc_id, SupplyBalance.lot_id == lot_id
                    )
                )
                assert current == path[max(path)]
            # stock as of any date (forwards or backwards) equals the replay
            for probe in (
                base - dt.timedelta(days=1),
                base + dt.timedelta(days=17),
                base + dt.timedelta(days=45),
                lg.today(),
            ):
                got = {(r.location_id, r.lot_id): r.qty for r in lg.stock_as_of(db, probe)}
                want = {}
                for key, path in replayed.items():
                    days = [d for d in path if d <= probe]
                    if days and path[max(days)] != 0:
                        want[key] = path[max(days)]
                assert got == want, probe
    finally:
        sp.rollback()
        done.clear()
