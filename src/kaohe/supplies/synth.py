"""Synthetic ledger history, written in bulk (the demo and the benchmark).

The history is simulated in memory in date order with the ledger's own rules
(FEFO, expired lots never issued or moved, stock never negative, documents
numbered per location and month) and inserted with executemany; the current
balances are written from the simulation.  Deterministic for a given seed.

Shape: the county station receives a lot of every product each quarter (every
fourth lot with a short shelf life, so there are near-expiry and expired
lots); on the first of each month expired stock is cleared and the offices and
their points are topped up (station → office → point transfers); every
``issue_every`` days each open point issues one product; each quarter end the
points are counted (a few with a small difference)."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from kaohe.store.models import utcnow
from kaohe.supplies.models import (
    SupplyBalance,
    SupplyEvent,
    SupplyLocation,
    SupplyLot,
    SupplyMovement,
    SupplyProduct,
)


@dataclass
class _Sim:
    rng: random.Random
    next_event: int
    next_move: int
    events: list[dict[str, Any]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)
    bal: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    seq: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    lots: dict[int, list[SupplyLot]] = field(default_factory=lambda: defaultdict(list))
    held: dict[tuple[int, int], set[int]] = field(default_factory=lambda: defaultdict(set))

    def event(self, loc: SupplyLocation, kind: str, day: dt.date, lines: Sequence[tuple[int, SupplyLot, int, str, int | None]],
              reason: str | None = None, counterpart: int | None = None) -> None:  # fmt: skip
        month = f"{day:%Y-%m}"
        self.seq[(loc.id, month)] += 1
        s = self.seq[(loc.id, month)]
        eid = self.next_event
        self.next_event += 1
        self.events.append(
            {"id": eid, "doc_no": f"{loc.code}-{day:%Y%m}-{s:04d}", "location_id": loc.id, "month": month,
             "seq": s, "kind": kind, "day": day, "reason": reason, "counterpart_id": counterpart,
             "reverses_id": None, "note": "", "created_at": utcnow(), "created_by_id": None}
        )  # fmt: skip
        for loc_id, lot, qty, mkind, counted in lines:
            self.moves.append(
                {"id": self.next_move, "event_id": eid, "location_id": loc_id, "product_id": lot.product_id,
                 "lot_id": lot.id, "day": day, "kind": mkind, "qty": qty, "counted": counted}
            )  # fmt: skip
            self.next_move += 1
            self.bal[(loc_id, lot.id)] += qty
            if self.bal[(loc_id, lot.id)]:
                self.held[(loc_id, lot.product_id)].add(lot.id)
            else:
                self.held[(loc_id, lot.product_id)].discard(lot.id)

    def usable(self, loc_id: int, product_id: int, day: dt.date) -> list[tuple[SupplyLot, int]]:
        ids = self.held[(loc_id, product_id)]
        lots = [lt for lt in self.lots[product_id] if lt.id in ids and lt.expiry >= day]
        lots.sort(key=lambda lt: (lt.expiry, lt.number))
        return [(lt, self.bal[(loc_id, lt.id)]) for lt in lots if self.bal[(loc_id, lt.id)] > 0]

    def take(
        self, loc_id: int, product_id: int, qty: int, day: dt.date
    ) -> list[tuple[SupplyLot, int]]:
        out = []
        for lt, have in self.usable(loc_id, product_id, day):
            q = min(have, qty)
            out.append((lt, q))
            qty -= q
            if qty == 0:
                break
        return out


def generate(
    session: Session,
    start: dt.date,
    end: dt.date,
    *,
    seed: int = 1,
    issue_every: int = 1,
    monthly_issue: int = 30,
    clear_expired_before: dt.date | None = None,
) -> dict[str, int]:
    """Simulate and insert the history from ``start`` to ``end`` over every location
    and product in the store.  Returns counts of what was written."""
    rng = random.Random(seed)
    locs = list(session.scalars(select(SupplyLocation).order_by(SupplyLocation.id)))
    station = next(loc for loc in locs if loc.kind == "station")
    offices = [loc for loc in locs if loc.kind == "office"]
    points = {o.id: [p for p in locs if p.parent_id == o.id and p.kind == "point"] for o in offices}
    prods = list(session.scalars(select(SupplyProduct).order_by(SupplyProduct.id)))
    n_points = sum(len(v) for v in points.values())
    sim = _Sim(
        rng,
        int(session.scalar(select(func.max(SupplyEvent.id))) or 0) + 1,
        int(session.scalar(select(func.max(SupplyMovement.id))) or 0) + 1,
    )
    weights = [max(1, len(prods) - i) for i in range(len(prods))]
    per_point = {p.id: monthly_issue * weights[i] // max(weights) for i, p in enumerate(prods)}
    closing = clear_expired_before or end
    lot_no = 0
    day = start
    while day <= end:
        if (day.day == 1 and day.month % 3 == 1) or day == start:
            # quarterly receipt at the station: a new lot per product
            lines: list[tuple[int, SupplyLot, int, str, int | None]] = []
            for p in prods:
                lot_no += 1
                short = lot_no % 4 == 0
                expiry = day + dt.timedelta(days=300 if short else 900)
                lot = SupplyLot(
                    product_id=p.id, number=f"{p.code}-{day:%y%m}-{lot_no:04d}", expiry=expiry
                )
                session.add(lot)
                session.flush()
                sim.lots[p.id].append(lot)
                lines.append(
                    (
                        station.id,
                        lot,
                        int(per_point[p.id] * n_points * 3 * 1.3) + 10,
                        "receive",
                        None,
                    )
                )
            sim.event(station, "receive", day, lines, reason="purchase")
        if day.day == 1:
            if day < closing:
                for loc in [station, *offices, *(p for v in points.values() for p in v)]:
                    gone = [
                        (loc.id, lt, -sim.bal[(loc.id, lt.id)], "adjust", None)
                        for p in prods
                        for lt in sim.lots[p.id]
                        if lt.id in sim.held[(loc.id, p.id)]
                        and lt.expiry < day
                        and sim.bal[(loc.id, lt.id)] > 0
                    ]
                    if gone:
                        sim.event(loc, "adjust", day, gone, reason="expired")
            for o in offices:
                for p in prods:
                    open_pts = [pt for pt in points[o.id] if pt.is_open]
                    need = {
                        pt.id: max(
                            0,
                            int(per_point[p.id] * 1.5)
                            - sum(q for _, q in sim.usable(pt.id, p.id, day)),
                        )
                        for pt in open_pts
                    }
                    want = sum(need.values())
                    have = sum(q for _, q in sim.usable(o.id, p.id, day))
                    if want > have:
                        got = sim.take(station.id, p.id, want - have, day)
                        if got:
                            sim.event(station, "transfer", day,
                                      [(station.id, lt, -q, "transfer_out", None) for lt, q in got]
                                      + [(o.id, lt, q, "transfer_in", None) for lt, q in got],
                                      counterpart=o.id)  # fmt: skip
                    for pt in open_pts:
                        if need[pt.id] <= 0:
                            continue
                        got = sim.take(o.id, p.id, need[pt.id], day)
                        if got:
                            sim.event(o, "transfer", day,
                                      [(o.id, lt, -q, "transfer_out", None) for lt, q in got]
                                      + [(pt.id, lt, q, "transfer_in", None) for lt, q in got],
                                      counterpart=pt.id)  # fmt: skip
        if (day - start).days % issue_every == 0:
            for o in offices:
                for pt in points[o.id]:
                    if not pt.is_open:
                        continue
                    p = rng.choices(prods, weights)[0]
                    mean = (
                        per_point[p.id]
                        * issue_every
                        / 30
                        * len(prods)
                        / (sum(weights) / max(weights))
                    )
                    qty = max(1, int(rng.uniform(0.3, 1.7) * mean))
                    got = sim.take(pt.id, p.id, qty, day)
                    if got:
                        sim.event(
                            pt, "issue", day, [(pt.id, lt, -q, "issue", None) for lt, q in got]
                        )
        nxt = day + dt.timedelta(days=1)
        if nxt.day == 1 and day.month % 3 == 0:
            for o in offices:
                for pt in points[o.id]:
                    lines = []
                    for p in prods:
                        for lt, have in sim.usable(pt.id, p.id, day):
                            diff = -rng.randint(1, min(2, have)) if rng.random() < 0.08 else 0
                            lines.append((pt.id, lt, diff, "count", have + diff))
                    if lines:
                        sim.event(pt, "count", day, lines, reason="count")
        day = nxt
    if sim.events:
        session.execute(insert(SupplyEvent), sim.events)
        session.execute(insert(SupplyMovement), sim.moves)
        if session.get_bind().dialect.name == "postgresql":
            # the ids were given: move the sequences past them for later writes
            for table in ("supply_event", "supply_movement"):
                session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                    )
                )
    keys = [(k, v) for k, v in sim.bal.items()]
    product_of = {lt.id: lt.product_id for v in sim.lots.values() for lt in v}
    existing = {(b.location_id, b.lot_id): b for b in session.scalars(select(SupplyBalance))}
    new_rows = []
    for (loc_id, lot_id), qty in keys:
        if (loc_id, lot_id) in existing:
            existing[(loc_id, lot_id)].qty += qty
        else:
            new_rows.append(
                {
                    "location_id": loc_id,
                    "lot_id": lot_id,
                    "product_id": product_of[lot_id],
                    "qty": qty,
                }
            )
    if new_rows:
        session.execute(insert(SupplyBalance), new_rows)
    session.flush()
    return {"events": len(sim.events), "movements": len(sim.moves), "lots": lot_no}
