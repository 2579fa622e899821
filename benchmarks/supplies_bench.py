"""Supplies ledger benchmark (a script, not a test).

A county with 300 points (10 townships × 30), 20 products and 5 years of daily
events (every point issues every day; monthly top-ups; quarterly receipts and
counts), generated in bulk with :mod:`kaohe.supplies.synth`.  Measures

1. balances as of a date for the whole county (``stock_as_of``), at several
   dates (target ≤ 200 ms);
2. recording one event (an issue through the full ledger path: lock, FEFO,
   non-negative check over later dates, document number, balances, audit) with
   10 concurrent writers (target p95 ≤ 50 ms), two ways:

   - threads: 10 threads of this process, each in its own transaction through
     ``ledger.issue``, on distinct points and on one shared point;
   - http: 10 client processes, each a point's keeper with a personal API token,
     posting ``POST /api/supplies/issue`` to the app under uvicorn on loopback
     (``--workers``, default 2), distinct points; the latency is the client's
     (request, authentication, look-ups, the ledger, commit, response).

   Every writer records its events back to back (a closed loop: a writer's next
   event waits for its last), so the figures are those of 10 writers saturating
   the write path, not of 10 keepers typing.

    python benchmarks/supplies_bench.py [--database URL] [--points 300] [--years 5] [--reuse]
        [--only writers|http] [--workers 2] [--rounds 1]

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
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from kaohe.auth.sessions import create_api_token
from kaohe.auth.users import add_user
from kaohe.store.db import make_engine, session_factory, transaction, upgrade
from kaohe.store.models import OrgUnit, User
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
    with factory() as s:
        codes = [loc.code for loc in sv.locations(s, points[:1] if shared else [
            points[i * 7 % len(points)] for i in range(writers)])]  # fmt: skip
        pcode = s.get_one(SupplyProduct, pid).code
    # distinct points: enough for every event; one shared point: runs out half-way
    top_up(url, codes, pcode, per_writer + 5 if not shared else writers * per_writer // 2)
    times: list[float] = []
    refused = [0]
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
                with lock:
                    refused[0] += 1  # out of stock is a valid, measured outcome
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
    return summary(times, wall, refused=refused[0])


def summary(times: list[float], wall: float, **extra: float) -> dict[str, float]:
    times = sorted(times)
    return {
        "events": len(times),
        "p50 ms": times[len(times) // 2],
        "p95 ms": times[int(len(times) * 0.95) - 1],
        "max ms": times[-1],
        "events/s": len(times) / wall,
        **extra,
    }


def top_up(url: str, codes: list[str], product_code: str, qty: int) -> None:
    """Give these points ``qty`` of a fresh lot (received at the station today), so the
    measured issues succeed rather than being refused for want of stock."""
    engine = make_engine(url)
    with transaction(session_factory(engine)) as s:
        day = lg.today()
        product = sv.product_by_code(s, product_code)
        station = s.scalars(select(SupplyLocation).where(SupplyLocation.kind == "station")).one()
        lot = lg.get_or_create_lot(
            s, product, f"BENCH-{time.time_ns()}", day + dt.timedelta(days=700)
        )
        lg.receive(s, station, day, [(lot, qty * len(codes))])
        for code in codes:
            lg.transfer(s, station, sv.location_by_code(s, code), day, product, qty, lot=lot)
    engine.dispose()


def keepers(url: str, n: int) -> tuple[list[tuple[str, str]], str]:
    """n keepers (reporters of a village) of distinct points, each with a new API token:
    [(token, point code)] and the product code to issue."""
    engine = make_engine(url)
    out = []
    with transaction(session_factory(engine)) as s:
        points = list(
            s.scalars(
                select(SupplyLocation)
                .where(SupplyLocation.kind == "point")
                .order_by(SupplyLocation.id)
            )
        )
        product = s.scalars(select(SupplyProduct).order_by(SupplyProduct.id)).first()
        assert product is not None
        for i in range(n):
            point = points[(i * 7 + 3) % len(points)]
            name = f"bench_keeper_{i:02d}"
            user = s.scalar(select(User).where(User.username == name))
            if user is None:
                village = OrgUnit(
                    code=f"BV{i:02d}", name=f"基准村{i}", level="village",
                    parent_id=point.org_unit_id,
                )  # fmt: skip
                s.add(village)
                s.flush()
                user = add_user(
                    s, name, "bench-pass-1", "reporter", village.code, check_password=False
                )
                sv.add_keeper(s, user, point)
            token, _row = create_api_token(s, user, "bench")
            out.append((token, point.code))
        code = product.code
    top_up(url, [pt for _, pt in out], code, 100)
    engine.dispose()
    return out, code


def _client(
    base: str, token: str, point: str, product: str, n: int, start: Any, results: Any
) -> None:
    times: list[float] = []
    refused = errors = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        body = {"location": point, "product": product, "qty": 1}
        c.post("/api/supplies/issue", json=body)  # warm-up: connection, caches
        start.wait()
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.post("/api/supplies/issue", json=body)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code == 400:
                refused += 1
            elif r.status_code != 200:
                errors += 1
    results.put((times, refused, errors))


def bench_http(
    url: str, workers: int = 2, clients: int = 10, per_client: int = 30
) -> dict[str, float]:
    """10 client processes posting issues to the app under uvicorn (see the module doc)."""
    pairs, product = keepers(url, clients)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "kaohe.web.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--workers", str(workers)],
        env=dict(os.environ, KAOHE_DATABASE_URL=url),
    )  # fmt: skip
    try:
        end = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > end:
                raise SystemExit("uvicorn did not start")
            try:
                if httpx.get(base + "/points", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        ctx = mp.get_context("spawn")
        start = ctx.Barrier(clients + 1)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_client, args=(base, tok, pt, product, per_client, start, results))
            for tok, pt in pairs
        ]
        for p in procs:
            p.start()
        start.wait()
        t0 = time.perf_counter()
        got = [results.get(timeout=600) for _ in procs]
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    times = [t for ts, _, _ in got for t in ts]
    return summary(times, wall, refused=sum(r for _, r, _ in got), errors=sum(e for _, _, e in got))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", default=None)
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--products", type=int, default=20)
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--reuse", action="store_true", help="measure an existing database")
    ap.add_argument("--only", choices=("writers", "http"), help="only this writer benchmark")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn workers (http)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the writer benchmarks")
    a = ap.parse_args()
    url = a.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite'}"
    print(f"database: {url.split('@')[-1]}")
    if not a.reuse:
        t0 = time.perf_counter()
        counts = build(url, a.points, a.products, a.years)
        print(f"built in {time.perf_counter() - t0:.1f} s: {counts}")
    print(f"close months (first write after the load): {close_months(url):.0f} ms")
    if a.only is None:
        print("balances as of a date, whole county (median of 7):")
        for k, v in bench_as_of(url).items():
            print(f"  {k:45s} {v:8.1f} ms")

    def show(label: str, r: dict[str, float]) -> None:
        load = os.getloadavg()[0]
        print(
            f"{label}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()) + f" (load {load:.1f})"
        )

    for _ in range(a.rounds):
        if a.only in (None, "writers"):
            for shared in (False, True):
                label = "one shared point" if shared else "distinct points"
                show(f"10 writer threads, {label}", bench_writers(url, shared))
        if a.only in (None, "http"):
            show(
                f"10 HTTP client processes, {a.workers} uvicorn workers, distinct points",
                bench_http(url, a.workers),
            )


if __name__ == "__main__":
    main()
