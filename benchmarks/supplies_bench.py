"""Supplies ledger benchmark (a script, not a test).

A county with 300 points (10 townships × 30), 20 products and 5 years of daily
events (every point issues every day; monthly top-ups; quarterly receipts and
counts), generated in bulk with :mod:`kaohe.supplies.synth`.  Measures

1. balances as of a date for the whole county (``stock_as_of``), at several
   dates (target ≤ 200 ms);
2. recording one event (an issue through the full ledger path: lock, FEFO,
   non-negative check over later dates, document number, balances, audit) with
   10 concurrent writers on distinct points and on one shared point (target
   p95 ≤ 50 ms).

    python benchmarks/supplies_bench.py [--database URL] [--points 300] [--years 5] [--reuse]

Default database: a fresh SQLite file in a temporary directory; with
``--database postgresql://…`` give an empty database (the script migrates it
and adds the county).  ``--reuse``: measure a database built before (migrated to
head first).  The bulk history has no monthly snapshots: the first write closes
every month (timed and printed as "close months"), as after the upgrade of a
running ledger.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kaohe.store.db import make_engine, session_factory, transaction, upgrade
from kaohe.store.models import OrgUnit
from kaohe.supplies import ledger as lg
from kaohe.supplies import service as sv
from kaohe.supplies.models import SupplyLocation, SupplyProduct
from kaohe.supplies.synth import generate


def build(url: str, n_points: int, n_products: int, years: int) -> dict[str, int]:
    engine = make_engine(url)
    upgrade(engine)
    end = lg.today() - dt.timedelta(days=1)
    start = dt.date(end.year - years, end.month, 1)
    with transaction(session_factory(engine)) as s:
        county = OrgUnit(code="BX", name="基准县", level="county")
        s.add(county)
        s.flush()
        st = sv.add_location(s, "BX-S", "县服务站", "station", org_unit=county)
        per = 30
        for t in range(max(1, n_points // per)):
            town = OrgUnit(
                code=f"BT{t:02d}", name=f"基准镇{t}", level="township", parent_id=county.id
            )
            s.add(town)
            s.flush()
            office = sv.add_location(
                s, f"BT{t:02d}-B", f"基准镇{t}计生办", "office", org_unit=town, parent=st
            )
            for k in range(per):
                sv.add_location(
                    s, f"BT{t:02d}-P{k:02d}", f"发放点{t}-{k}", "point", org_unit=town, parent=office,
                    point_type="cabinet" if k % 3 == 0 else "counter", opened_on=start,
                )  # fmt: skip
        for i in range(n_products):
            sv.add_product(
                s, f"BP{i:02d}", f"药具{i}", "condom" if i % 2 else "oral_pill", "只", 10, sort=i
            )
        t0 = time.perf_counter()
        counts = generate(s, start, end, seed=3, issue_every=1, monthly_issue=40)
        counts["generate_ms"] = int((time.perf_counter() - t0) * 1000)
    engine.dispose()
    return counts


def close_months(url: str) -> float:
    """The first write after the bulk load closes every month: its time in ms."""
    engine = make_engine(url)
    upgrade(engine)
    t0 = time.perf_counter()
    with transaction(session_factory(engine)) as s:
        lg.lock_locations(s, [])
    engine.dispose()
    return (time.perf_counter() - t0) * 1000


def bench_as_of(url: str, repeat: int = 7) -> dict[str, float]:
    engine = make_engine(url)
    factory = session_factory(engine)
    t = lg.today()
    mid = (t - dt.timedelta(days=425)).replace(day=15)  # 14 months back, mid-month
    out = {}
    for label, day in (
        ("today", t),
        ("1 year ago", t - dt.timedelta(days=365)),
        ("2.5 years ago (old worst: midpoint)", t - dt.timedelta(days=913)),
        ("4 years ago", t - dt.timedelta(days=4 * 365)),
        (f"{mid} (mid-month)", mid),
    ):
        times = []
        rows = 0
        for _ in range(repeat):
            with factory() as s:
                t0 = time.perf_counter()
                rows = len(lg.stock_as_of(s, day))
                times.append((time.perf_counter() - t0) * 1000)
        out[f"{label} ({rows} balances)"] = statistics.median(times)
    engine.dispose()
    return out


def bench_writers(
    url: str, shared: bool, writers: int = 10, per_writer: int = 30
) -> dict[str, float]:
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory() as s:
        points = [
            p.id
            for p in s.query(SupplyLocation).filter_by(kind="point").order_by(SupplyLocation.id)
        ]
        product = s.query(SupplyProduct).order_by(SupplyProduct.id).first()
        assert product is not None
        pid = product.id
    times: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers)
    day = lg.today()

    def run(i: int) -> None:
        point = points[0] if shared else points[i * 7 % len(points)]
        barrier.wait()
        for _ in range(per_writer):
            t0 = time.perf_counter()
            try:
                with transaction(factory) as s:
                    lg.issue(s, s.get(SupplyLocation, point), day, s.get(SupplyProduct, pid), 1)
            except lg.LedgerError:
                pass  # out of stock is a valid, measured outcome
            with lock:
                times.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    engine.dispose()
    times.sort()
    return {
        "events": len(times),
        "p50 ms": times[len(times) // 2],
        "p95 ms": times[int(len(times) * 0.95) - 1],
        "max ms": times[-1],
        "events/s": len(times) / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", default=None)
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--products", type=int, default=20)
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--reuse", action="store_true", help="measure an existing database")
    a = ap.parse_args()
    url = a.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite'}"
    print(f"database: {url.split('@')[-1]}")
    if not a.reuse:
        t0 = time.perf_counter()
        counts = build(url, a.points, a.products, a.years)
        print(f"built in {time.perf_counter() - t0:.1f} s: {counts}")
    print(f"close months (first write after the load): {close_months(url):.0f} ms")
    print("balances as of a date, whole county (median of 7):")
    for k, v in bench_as_of(url).items():
        print(f"  {k:45s} {v:8.1f} ms")
    for shared in (False, True):
        r = bench_writers(url, shared)
        label = "one shared point" if shared else "distinct points"
        print(f"10 concurrent writers, {label}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
