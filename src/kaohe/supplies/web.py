"""The supplies pages (``/supplies/…``), the public finder of distribution points
(``/points``, ``/api/public/points``, no login) and the JSON API (``/api/supplies/…``).

Every route checks access on the server with :mod:`kaohe.supplies.service`;
writes run in the request's transaction after the ledger's location lock, inside
a savepoint, so a refused event leaves nothing behind and the form is shown
again with the reason."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from kaohe.auth.permissions import Forbidden
from kaohe.auth.users import user_by_name
from kaohe.errors import InputErrors, KaoheError
from kaohe.store.models import OrgUnit, User
from kaohe.supplies import ledger
from kaohe.supplies import service as sv
from kaohe.supplies.importer import import_points, import_stock_count
from kaohe.supplies.models import ADJUST_REASONS, POINT_TYPES, SupplyEvent, SupplyLocation
from kaohe.web.deps import Db, SignedIn
from kaohe.web.render import render

router = APIRouter()

LABELS = {
    "POINT_TYPE_LABELS": sv.POINT_TYPE_LABELS,
    "FORM_LABELS": sv.FORM_LABELS,
    "KIND_LABELS": sv.KIND_LABELS,
    "REASON_LABELS": sv.REASON_LABELS,
    "LOCATION_KIND_LABELS": sv.LOCATION_KIND_LABELS,
}


def _page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    return render(request, f"supplies/{name}", {**LABELS, **ctx}, status)


def _day(value: str | None, field: str = "日期") -> dt.date:
    if not value:
        return ledger.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise KaoheError(f"{field}格式应为 YYYY-MM-DD，收到 '{value}' (bad date)") from None


def _int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise KaoheError(f"{field}须为整数，收到 '{value}' (not a whole number)") from None


def _readable(db: Session, user: User) -> list[SupplyLocation]:
    ids = sv.readable_ids(db, user)
    return sv.locations(db, ids)


def _attempt(db: Session, lock: list[int], fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """Run a write after taking the ledger lock, in a savepoint: (result, error message)."""
    ledger.lock_locations(db, lock)
    try:
        with db.begin_nested():
            return fn(), None
    except KaoheError as e:
        return None, str(e)


# ---------------------------------------------------------------------------
# overview and stock


@router.get("/supplies", response_class=HTMLResponse, include_in_schema=False)
def overview(request: Request, db: Db, user: SignedIn) -> Response:
    locs = _readable(db, user)
    ids = [loc.id for loc in locs]
    day = ledger.today()
    near, gone = sv.expiring(db, day, 6, ids)
    pts = [loc for loc in locs if loc.kind == "point"]
    return _page(
        request,
        "index.html",
        {
            "locations": locs,
            "points_open": sum(1 for p in pts if p.is_open),
            "points_closed": sum(1 for p in pts if not p.is_open),
            "near": len(near),
            "expired": len(gone),
            "recent": sv.events(db, ids if sv.readable_ids(db, user) is not None else None, 10),
            "can_receive": user.role == "admin",
        },
    )


@router.get("/supplies/stock", response_class=HTMLResponse, include_in_schema=False)
def stock_page(
    request: Request,
    db: Db,
    user: SignedIn,
    as_of: str | None = None,
    location: str | None = None,
    product: str | None = None,
) -> Response:
    day = _day(as_of)
    locs = _readable(db, user)
    ids = [loc.id for loc in locs]
    if location:
        loc = sv.location_by_code(db, location)
        sv.require_read_location(db, user, loc)
        ids = [loc.id]
    lines = sv.stock_lines(db, day, ids)
    if product:
        lines = [s for s in lines if s.product.code == product]
    totals: dict[tuple[str, str], int] = {}
    for s in lines:
        totals[(s.location.code, s.product.code)] = (
            totals.get((s.location.code, s.product.code), 0) + s.qty
        )
    return _page(
        request,
        "stock.html",
        {
            "day": day,
            "lines": lines,
            "totals": totals,
            "locations": locs,
            "products": sv.products(db),
            "location": location or "",
            "product": product or "",
        },
    )


# ---------------------------------------------------------------------------
# the forms

FORM_KINDS = ("receive", "transfer", "issue", "adjust", "count")


def _form_ctx(db: Session, user: User, kind: str) -> dict[str, Any]:
    locs = _readable(db, user)
    if kind == "receive":
        allowed = [loc for loc in locs if loc.kind == "station" and user.role == "admin"]
    elif kind == "issue":
        allowed = [
            loc
            for loc in locs
            if loc.kind == "point" and loc.is_open and sv.can_keep(db, user, loc)
        ]
    elif kind == "count":
        allowed = [loc for loc in locs if sv.count_allowed(db, user, loc)]
    else:
        allowed = [loc for loc in locs if sv.can_manage(db, user, loc)]
    dests = [loc for loc in locs if loc.is_open] if kind == "transfer" else []
    return {
        "kind": kind,
        "allowed": allowed,
        "dests": dests,
        "products": sv.products(db),
        "today": ledger.today(),
        "reasons": [r for r in ADJUST_REASONS if r != "expired"] + ["expired"],
        "sources": ["purchase", "allocation"],
    }


def form_page(request: Request, db: Db, user: SignedIn, location: str | None = None) -> Response:
    """The receive, transfer, issue, adjust and count forms (``/supplies/<kind>``)."""
    kind = request.url.path.rstrip("/").rsplit("/", 1)[1]
    ctx = _form_ctx(db, user, kind)
    if not ctx["allowed"]:
        raise Forbidden("您没有可登记的地点 (no location you may record at)")
    if kind == "count":
        loc = sv.location_by_code(db, location) if location else ctx["allowed"][0]
        if loc not in ctx["allowed"]:
            raise Forbidden()
        ctx["selected"] = loc
        ctx["book"] = sv.stock_lines(db, ledger.today(), [loc.id])
    return _page(request, "form.html", ctx)


for _kind in FORM_KINDS:
    router.add_api_route(
        f"/supplies/{_kind}", form_page, methods=["GET"], response_class=HTMLResponse,
        include_in_schema=False,
    )  # fmt: skip


def _done(
    request: Request, db: Session, user: User, kind: str, result: Any, error: str | None
) -> Response:
    if error is not None:
        ctx = _form_ctx(db, user, kind)
        if kind == "count":
            ctx["selected"] = ctx["allowed"][0] if ctx["allowed"] else None
            ctx["book"] = (
                sv.stock_lines(db, ledger.today(), [ctx["selected"].id]) if ctx["selected"] else []
            )
        return _page(request, "form.html", {**ctx, "error": error}, 400)
    if result is None:
        return RedirectResponse("/supplies/events?msg=none", status_code=303)
    return RedirectResponse(f"/supplies/events?doc={result.doc_no}", status_code=303)


@router.post("/supplies/receive", include_in_schema=False)
def receive_post(
    request: Request,
    db: Db,
    user: SignedIn,
    location: Annotated[str, Form()],
    product: Annotated[str, Form()],
    lot: Annotated[str, Form()],
    expiry: Annotated[str, Form()],
    qty: Annotated[str, Form()],
    day: Annotated[str, Form()] = "",
    source: Annotated[str, Form()] = "purchase",
    note: Annotated[str, Form()] = "",
) -> Response:
    loc = sv.location_by_code(db, location)
    sv.require_receive(user, loc)

    def go() -> SupplyEvent:
        p = sv.product_by_code(db, product)
        lt = ledger.get_or_create_lot(db, p, lot, _day(expiry, "有效期"))
        return ledger.receive(
            db, loc, _day(day), [(lt, _int(qty, "数量"))], source=source, by=user, note=note
        )

    return _done(request, db, user, "receive", *_attempt(db, [loc.id], go))


@router.post("/supplies/transfer", include_in_schema=False)
def transfer_post(
    request: Request,
    db: Db,
    user: SignedIn,
    location: Annotated[str, Form()],
    dest: Annotated[str, Form()],
    product: Annotated[str, Form()],
    qty: Annotated[str, Form()],
    lot: Annotated[str, Form()] = "",
    day: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    src, dst = sv.location_by_code(db, location), sv.location_by_code(db, dest)
    sv.require_manage(db, user, src)
    if user.role != "admin":
        sv.require_manage(db, user, dst)

    def go() -> SupplyEvent:
        p = sv.product_by_code(db, product)
        lt = sv.lot_of(db, p, lot) if lot.strip() else None
        return ledger.transfer(
            db, src, dst, _day(day), p, _int(qty, "数量"), lot=lt, by=user, note=note
        )

    return _done(request, db, user, "transfer", *_attempt(db, [src.id, dst.id], go))


@router.post("/supplies/issue", include_in_schema=False)
def issue_post(
    request: Request,
    db: Db,
    user: SignedIn,
    location: Annotated[str, Form()],
    product: Annotated[str, Form()],
    qty: Annotated[str, Form()],
    lot: Annotated[str, Form()] = "",
    day: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    loc = sv.location_by_code(db, location)
    sv.require_keep(db, user, loc)
    if loc.kind != "point":
        raise Forbidden("发放只在发放点登记 (issues are recorded at distribution points)")

    def go() -> SupplyEvent:
        p = sv.product_by_code(db, product)
        lt = sv.lot_of(db, p, lot) if lot.strip() else None
        return ledger.issue(db, loc, _day(day), p, _int(qty, "数量"), lot=lt, by=user, note=note)

    return _done(request, db, user, "issue", *_attempt(db, [loc.id], go))


@router.post("/supplies/adjust", include_in_schema=False)
def adjust_post(
    request: Request,
    db: Db,
    user: SignedIn,
    location: Annotated[str, Form()],
    product: Annotated[str, Form()],
    lot: Annotated[str, Form()],
    qty: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    day: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    loc = sv.location_by_code(db, location)
    sv.require_manage(db, user, loc)

    def go() -> SupplyEvent:
        p = sv.product_by_code(db, product)
        return ledger.adjust(
            db, loc, _day(day), sv.lot_of(db, p, lot), _int(qty, "数量"), reason, by=user, note=note
        )

    return _done(request, db, user, "adjust", *_attempt(db, [loc.id], go))


@router.post("/supplies/count", include_in_schema=False)
async def count_post(request: Request, db: Db, user: SignedIn) -> Response:
    form = await request.form()
    # the ledger blocks (its write lock): off the event loop, like the sync routes
    return await run_in_threadpool(_count_post, request, db, user, form)


def _count_post(request: Request, db: Session, user: User, form: FormData) -> Response:
    loc = sv.location_by_code(db, str(form.get("location", "")))
    if not sv.count_allowed(db, user, loc):
        raise Forbidden("无权盘点该地点 (not allowed to count here)")
    day_s = str(form.get("day", ""))
    note = str(form.get("note", ""))
    entries = []
    for key, value in form.multi_items():
        if key.startswith("counted:") and str(value).strip() != "":
            entries.append((int(key.split(":", 1)[1]), str(value)))

    def go() -> SupplyEvent:
        from kaohe.supplies.models import SupplyLot

        counted = []
        for lot_id, v in entries:
            lt = db.get(SupplyLot, lot_id)
            if lt is None:
                raise KaoheError(f"没有批次 {lot_id}")
            counted.append((lt, _int(v, "盘点数")))
        if not counted:
            raise KaoheError("请至少填写一个批号的盘点数 (enter at least one count)")
        return ledger.count(db, loc, _day(day_s), counted, by=user, note=note)

    return _done(request, db, user, "count", *_attempt(db, [loc.id], go))


# ---------------------------------------------------------------------------
# lists and reports


@router.get("/supplies/events", response_class=HTMLResponse, include_in_schema=False)
def events_page(
    request: Request, db: Db, user: SignedIn, doc: str | None = None, msg: str | None = None
) -> Response:
    ids = sv.readable_ids(db, user)
    evs = sv.events(db, ids, 300)
    reversed_ids = set(
        db.scalars(select(SupplyEvent.reverses_id).where(SupplyEvent.reverses_id.is_not(None)))
    )
    return _page(
        request,
        "events.html",
        {
            "events": evs,
            "doc": doc,
            "msg": msg,
            "reversed": reversed_ids,
            "can_reverse": {e.id for e in evs if sv.can_manage(db, user, e.location)},
        },
    )


@router.post("/supplies/events/{event_id}/reverse", include_in_schema=False)
def reverse_post(
    request: Request, event_id: int, db: Db, user: SignedIn, note: Annotated[str, Form()] = ""
) -> Response:
    ev = db.get(SupplyEvent, event_id)
    if ev is None:
        from kaohe.workflow.units import NotFound

        raise NotFound(f"没有单据 {event_id}")
    sv.require_manage(db, user, ev.location)
    result, error = _attempt(
        db, [ln.location_id for ln in ev.lines], lambda: ledger.reverse(db, ev, by=user, note=note)
    )
    if error is not None:
        raise KaoheError(error)
    return RedirectResponse(f"/supplies/events?doc={result.doc_no}", status_code=303)


@router.get("/supplies/expiring", response_class=HTMLResponse, include_in_schema=False)
def expiring_page(
    request: Request, db: Db, user: SignedIn, within: str = "6", as_of: str | None = None
) -> Response:
    day = _day(as_of)
    months = sv.parse_within(within)
    locs = _readable(db, user)
    near, gone = sv.expiring(db, day, months, [loc.id for loc in locs])
    clearable = sorted({s.location.code for s in gone if sv.can_manage(db, user, s.location)})
    return _page(
        request,
        "expiring.html",
        {"day": day, "months": months, "near": near, "gone": gone, "clearable": clearable},
    )


@router.post("/supplies/clear-expired", include_in_schema=False)
def clear_post(
    request: Request,
    db: Db,
    user: SignedIn,
    location: Annotated[str, Form()],
    day: Annotated[str, Form()] = "",
) -> Response:
    loc = sv.location_by_code(db, location)
    sv.require_manage(db, user, loc)
    result, error = _attempt(
        db, [loc.id], lambda: ledger.clear_expired(db, loc, _day(day), by=user)
    )
    if error is not None:
        raise KaoheError(error)
    if result is None:
        return RedirectResponse("/supplies/expiring?cleared=0", status_code=303)
    return RedirectResponse(f"/supplies/events?doc={result.doc_no}", status_code=303)


@router.get("/supplies/monthly", response_class=HTMLResponse, include_in_schema=False)
def monthly_page(request: Request, db: Db, user: SignedIn, year: int | None = None) -> Response:
    y = year or ledger.today().year
    locs = [loc for loc in _readable(db, user) if loc.kind == "point"]
    data = sv.monthly_issue(db, y, [loc.id for loc in locs])
    prods = sv.products(db)
    rows = [(loc, p, data[(loc.id, p.id)]) for loc in locs for p in prods if (loc.id, p.id) in data]
    return _page(request, "monthly.html", {"year": y, "rows": rows})


@router.get("/supplies/replenish", response_class=HTMLResponse, include_in_schema=False)
def replenish_page(
    request: Request,
    db: Db,
    user: SignedIn,
    window: int = 6,
    months: float = 2.0,
    as_of: str | None = None,
) -> Response:
    day = _day(as_of)
    ids = [loc.id for loc in _readable(db, user)]
    rows = sv.replenishment(db, day, window_months=window, months_of_stock=months, location_ids=ids)
    return _page(
        request, "replenish.html", {"rows": rows, "window": window, "months": months, "day": day}
    )


@router.get("/supplies/reconciliation", response_class=HTMLResponse, include_in_schema=False)
def reconciliation_page(request: Request, db: Db, user: SignedIn) -> Response:
    lines, share = sv.reconciliation(db, sv.readable_ids(db, user))
    return _page(request, "reconciliation.html", {"lines": lines, "share": share})


# ---------------------------------------------------------------------------
# the point registry


@router.get("/supplies/points", response_class=HTMLResponse, include_in_schema=False)
def registry_page(request: Request, db: Db, user: SignedIn) -> Response:
    locs = _readable(db, user)
    offices = [loc for loc in locs if loc.kind == "office" and sv.can_manage(db, user, loc)]
    return _page(
        request,
        "points.html",
        {
            "points": [loc for loc in locs if loc.kind == "point"],
            "offices": offices,
            "types": POINT_TYPES,
        },
    )


@router.post("/supplies/points", include_in_schema=False)
def registry_add(
    request: Request,
    db: Db,
    user: SignedIn,
    code: Annotated[str, Form()],
    name: Annotated[str, Form()],
    office: Annotated[str, Form()],
    point_type: Annotated[str, Form()],
    address: Annotated[str, Form()] = "",
    hours: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    latitude: Annotated[str, Form()] = "",
    longitude: Annotated[str, Form()] = "",
    opened: Annotated[str, Form()] = "",
) -> Response:
    parent = sv.location_by_code(db, office)
    sv.require_manage(db, user, parent)
    if parent.kind != "office":
        raise KaoheError("请选择乡镇（街道） (choose an office)")

    def num(v: str, field: str) -> float | None:
        try:
            return float(v) if v.strip() else None
        except ValueError:
            raise KaoheError(f"{field}不是数字 '{v}' (not a number)") from None

    sv.add_location(
        db, code.strip(), name.strip(), "point", org_unit=parent.org_unit, parent=parent,
        point_type=point_type, address=address, hours=hours, phone=phone,
        latitude=num(latitude, "纬度"), longitude=num(longitude, "经度"),
        opened_on=_day(opened), by=user,
    )  # fmt: skip
    return RedirectResponse(f"/supplies/points/{code.strip()}", status_code=303)


@router.get("/supplies/points/{code}", response_class=HTMLResponse, include_in_schema=False)
def point_page(request: Request, code: str, db: Db, user: SignedIn) -> Response:
    loc = sv.location_by_code(db, code)
    sv.require_read_location(db, user, loc)
    return _page(
        request,
        "point.html",
        {
            "p": loc,
            "history": sv.point_history(db, loc),
            "keepers": sv.keepers_of(db, loc),
            "stock": sv.stock_lines(db, ledger.today(), [loc.id]),
            "can_manage": sv.can_manage(db, user, loc),
            "today": ledger.today(),
        },
    )


@router.post("/supplies/points/{code}/status", include_in_schema=False)
def point_status(
    request: Request,
    code: str,
    db: Db,
    user: SignedIn,
    action: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
    day: Annotated[str, Form()] = "",
) -> Response:
    loc = sv.location_by_code(db, code)
    sv.require_manage(db, user, loc)
    sv.set_point_status(db, loc, action == "open", _day(day), reason, by=user)
    return RedirectResponse(f"/supplies/points/{code}", status_code=303)


@router.post("/supplies/points/{code}/keepers", include_in_schema=False)
def point_keeper(
    request: Request, code: str, db: Db, user: SignedIn, username: Annotated[str, Form()]
) -> Response:
    loc = sv.location_by_code(db, code)
    sv.require_manage(db, user, loc)
    sv.add_keeper(db, user_by_name(db, username.strip()), loc, by=user)
    return RedirectResponse(f"/supplies/points/{code}", status_code=303)


# ---------------------------------------------------------------------------
# imports


@router.get("/supplies/import", response_class=HTMLResponse, include_in_schema=False)
def import_page(request: Request, db: Db, user: SignedIn) -> Response:
    if user.role not in ("admin", "assessor"):
        raise Forbidden()
    return _page(request, "import.html", {"today": ledger.today()})


@router.post("/supplies/import/{what}", include_in_schema=False)
def import_post(
    request: Request,
    what: str,
    db: Db,
    user: SignedIn,
    file: Annotated[UploadFile, File()],
    day: Annotated[str, Form()] = "",
) -> Response:
    if user.role not in ("admin", "assessor"):
        raise Forbidden()
    data = file.file.read()
    name = file.filename or "upload.xlsx"
    try:
        if what == "points":
            if user.role != "admin":
                _check_point_file_scope(db, user, data, name)
            with db.begin_nested():
                n = import_points(db, data, name, by=user)
        elif what == "stock":
            allowed = None
            if user.role != "admin":
                allowed = {loc.id for loc in sv.locations(db) if sv.can_manage(db, user, loc)}
            ledger.lock_locations(db, [loc.id for loc in sv.locations(db)])
            with db.begin_nested():
                n = import_stock_count(db, data, _day(day), name, by=user, allowed=allowed)
        else:
            from kaohe.workflow.units import NotFound

            raise NotFound(f"没有导入类型 '{what}'")
    except InputErrors as e:
        return _page(
            request, "import.html", {"today": ledger.today(), "errors": e.errors, "what": what}, 400
        )
    return _page(request, "import.html", {"today": ledger.today(), "imported": n, "what": what})


def _check_point_file_scope(db: Session, user: User, data: bytes, name: str) -> None:
    """An office may only import points of its own township (checked per row by the importer
    when the township exists; here: every township named must be in the user's scope)."""
    from kaohe.auth.permissions import scope_ids
    from kaohe.supplies.importer import POINT_COLUMNS, POINT_REQUIRED, _rows, _text

    rows, _ = _rows(data, name, POINT_COLUMNS, POINT_REQUIRED)
    scope = scope_ids(db, user) or set()
    from kaohe.errors import InputError

    errors = []
    for n, r in rows:
        code = _text(r.get("township"))
        unit = db.scalar(select(OrgUnit).where(OrgUnit.code == code))
        if unit is not None and unit.id not in scope:
            errors.append(
                InputError(
                    f"无权为 '{code}' 登记发放点 (not your township)",
                    file=name,
                    row=n,
                    column="乡镇",
                )
            )
    if errors:
        raise InputErrors(errors)


# ---------------------------------------------------------------------------
# the public finder (no login)


def _public_points(
    db: Session, township: str | None, q: str | None, type_: str | None
) -> list[dict[str, Any]]:
    stmt = (
        select(SupplyLocation, OrgUnit)
        .join(OrgUnit, OrgUnit.id == SupplyLocation.org_unit_id)
        .where(SupplyLocation.kind == "point", SupplyLocation.is_open.is_(True))
        .order_by(OrgUnit.sort, OrgUnit.code, SupplyLocation.sort, SupplyLocation.code)
    )
    if township:
        stmt = stmt.where(OrgUnit.code == township)
    if type_:
        stmt = stmt.where(SupplyLocation.point_type == type_)
    out = []
    needle = (q or "").strip().lower()
    for p, unit in db.execute(stmt):
        row = {
            "code": p.code,
            "name": p.name,
            "type": p.point_type,
            "type_label": sv.POINT_TYPE_LABELS.get(p.point_type or "", ""),
            "township_code": unit.code,
            "township": unit.name,
            "address": p.address,
            "hours": p.hours,
            "phone": p.phone,
            "latitude": p.latitude,
            "longitude": p.longitude,
        }
        if needle and not any(
            needle in str(row[k]).lower()
            for k in ("name", "address", "township", "type_label", "phone")
        ):
            continue
        out.append(row)
    return out


@router.get("/points", response_class=HTMLResponse, include_in_schema=False)
def public_points(
    request: Request,
    db: Db,
    township: str | None = None,
    q: str | None = None,
    type: str | None = None,
) -> Response:
    rows = _public_points(db, township or None, q, type or None)
    mapped = [r for r in rows if r["latitude"] is not None]
    return _page(
        request,
        "public.html",
        {
            "rows": rows,
            "townships": sv.township_units(db),
            "types": POINT_TYPES,
            "township": township or "",
            "q": q or "",
            "type": type or "",
            "map_json": json.dumps(mapped, ensure_ascii=False).replace("</", "<\\/"),
        },
    )


CSV_FIELDS = ["code", "name", "type", "type_label", "township_code", "township", "address", "hours",
              "phone", "latitude", "longitude"]  # fmt: skip


@router.get("/api/public/points", tags=["public"])
def api_public_points(
    db: Db,
    township: Annotated[str | None, Query(description="township/street code, e.g. T000")] = None,
    q: Annotated[
        str | None, Query(description="keyword in name, address, township, type, phone")
    ] = None,
    type: Annotated[str | None, Query(description=f"one of {', '.join(POINT_TYPES)}")] = None,
    format: Annotated[str, Query(description="json or csv")] = "json",
) -> Response:
    """Open distribution points (no login), as JSON or CSV for other sites to embed."""
    rows = _public_points(db, township or None, q, type or None)
    if format == "csv":
        return _csv(rows)
    if format != "json":
        return JSONResponse({"detail": "format must be json or csv"}, status_code=400)
    return JSONResponse(
        {"count": len(rows), "points": rows},
        headers={"Access-Control-Allow-Origin": "*"},
    )


@router.get("/api/public/points.csv", tags=["public"])
def api_public_points_csv(
    db: Db, township: str | None = None, q: str | None = None, type: str | None = None
) -> Response:
    """The same list as CSV (UTF-8 with BOM, opens in Excel)."""
    return _csv(_public_points(db, township or None, q, type or None))


def _csv(rows: list[dict[str, Any]]) -> Response:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS})
    return Response(
        "\ufeff" + buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="points.csv"',
            "Access-Control-Allow-Origin": "*",
        },
    )


# ---------------------------------------------------------------------------
# JSON API (signed in or API token)


@router.get("/api/supplies/stock", tags=["supplies"])
def api_stock(db: Db, user: SignedIn, as_of: str | None = None, location: str | None = None) -> Any:
    """Stock on hand by location, product and lot at the end of ``as_of`` (default today)."""
    day = _day(as_of)
    ids = [loc.id for loc in _readable(db, user)]
    if location:
        loc = sv.location_by_code(db, location)
        sv.require_read_location(db, user, loc)
        ids = [loc.id]
    return {
        "as_of": day.isoformat(),
        "stock": [
            {
                "location": s.location.code,
                "product": s.product.code,
                "lot": s.lot.number,
                "expiry": s.lot.expiry.isoformat(),
                "qty": s.qty,
            }
            for s in sv.stock_lines(db, day, ids)
        ],
    }


@router.get("/api/supplies/expiring", tags=["supplies"])
def api_expiring(db: Db, user: SignedIn, within: str = "6m", as_of: str | None = None) -> Any:
    """Near-expiry (within ``within``, e.g. 6m) and expired stock at the end of ``as_of``."""
    day = _day(as_of)
    near, gone = sv.expiring(
        db, day, sv.parse_within(within), [loc.id for loc in _readable(db, user)]
    )

    def rows(lines: list[sv.StockLine]) -> list[dict[str, Any]]:
        return [
            {"location": s.location.code, "product": s.product.code, "lot": s.lot.number,
             "expiry": s.lot.expiry.isoformat(), "qty": s.qty}
            for s in lines
        ]  # fmt: skip

    return {"as_of": day.isoformat(), "near_expiry": rows(near), "expired": rows(gone)}


@router.post("/api/supplies/issue", tags=["supplies"])
def api_issue(db: Db, user: SignedIn, body: Annotated[dict[str, Any], Body()]) -> Any:
    """Record an issue: ``{"location": "P00", "product": "C", "qty": 10, "day": "2026-01-05", "lot": null}``.

    A sync route (the thread pool): the ledger's write lock blocks, never on the event loop."""
    ledger.begin_write(db)  # before the look-ups flush the token's last use (SQLite)
    loc = sv.location_by_code(db, str(body.get("location", "")))
    sv.require_keep(db, user, loc)
    p = sv.product_by_code(db, str(body.get("product", "")))
    lot = sv.lot_of(db, p, str(body["lot"])) if body.get("lot") else None
    ev = ledger.issue(  # locks the location
        db, loc, _day(body.get("day")), p, _int(str(body.get("qty", "")), "数量"), lot=lot, by=user
    )
    return {
        "doc_no": ev.doc_no,
        "lines": [{"lot": ln.lot.number, "qty": ln.qty} for ln in ev.lines],
    }
