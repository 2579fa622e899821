"""Results pages: rankings, unit explanations, publication, appeals, payments, downloads,
and the public pages (published results only, no login)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaohe.auth.permissions import Forbidden, can_read, can_review
from kaohe.io.notice import build_notice, write_notice_docx
from kaohe.io.payment_sheet import payment_sheet_rows, write_payment_sheet, yuan_text
from kaohe.io.xlsx_report import write_xlsx_report
from kaohe.store.models import OrgUnit, User, utcnow
from kaohe.web.deps import CurrentUser, Db, SignedIn, csrf_token, language
from kaohe.web.render import render
from kaohe.web.results_view import (
    FULL,
    PUBLISHED,
    group_mode,
    ranking,
    ranking_html,
    unit_mode,
    unit_view,
    visible_groups,
)
from kaohe.workflow.appeals import (
    answer_appeal,
    appeal_by_id,
    appeal_deadline,
    appeal_open,
    file_appeal,
    visible_appeals,
)
from kaohe.workflow.payments import approve, can_sign_approve, can_sign_review, review, sheet_for
from kaohe.workflow.publish import (
    change_stamp,
    check_period,
    db_key,
    group_by_code,
    live_result,
    periods_of,
    publication_history,
    publications,
    publish,
    published,
    unapproved,
)
from kaohe.workflow.units import groups, org_units_for_group, unit_by_code

router = APIRouter(include_in_schema=False)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _json(value: Any) -> str:
    """JSON for a <script type="application/json"> block (no '</' can close it)."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


# ---------------------------------------------------------------- index


@router.get("/results", response_class=HTMLResponse)
def results_index(request: Request, db: Db, user: SignedIn) -> Response:
    rows = []
    for g in visible_groups(db, user, groups(db)):
        mode = group_mode(db, user, g)
        periods = []
        for p in periods_of(db, g):
            pub = published(db, g, p)
            if mode == PUBLISHED and pub is None:
                continue
            periods.append({"period": p, "publication": pub})
        rows.append({"group": g, "periods": periods, "mode": mode})
    return render(request, "results/index.html", {"rows": rows})


# ---------------------------------------------------------------- ranking


# ---------------------------------------------------------------- rendered pages (cached)

#: what stands for the CSRF token in a cached page (replaced by the request's own token)
_CSRF_SLOT = "kaohe-csrf-slot-" + secrets.token_hex(16)
_CSRF_SLOT_BYTES = _CSRF_SLOT.encode()
#: (database, path, access mode, user id, language) -> (change stamp, expires (naive UTC)
#: or None, the page's bytes split at the CSRF token)
_PAGES: OrderedDict[tuple[Any, ...], tuple[tuple[int, int], dt.datetime | None, list[bytes]]] = (
    OrderedDict()
)
_PAGES_LOCK = threading.Lock()
PAGE_CACHE_SIZE = 512


def _page_key(request: Request, db: Db, user: User | None, mode: str) -> tuple[Any, ...]:
    """A rendered page is reused only for the same path, access mode, user (its name,
    role and rights are in the page) and language, while nothing was committed."""
    return (
        db_key(db),
        request.url.path,
        mode,
        None if user is None else user.id,
        language(request),
    )


def _cached_page(request: Request, key: tuple[Any, ...], stamp: tuple[int, int]) -> Response | None:
    with _PAGES_LOCK:
        hit = _PAGES.get(key)
        if hit is not None:
            _PAGES.move_to_end(key)
    if hit is None or hit[0] != stamp or (hit[1] is not None and utcnow() >= hit[1]):
        return None
    return _page_response(request, hit[2])


def _page_response(request: Request, parts: list[bytes]) -> Response:
    token = csrf_token(request).encode()
    return HTMLResponse(token.join(parts))


def _render_cached(
    request: Request,
    key: tuple[Any, ...],
    stamp: tuple[int, int],
    name: str,
    context: dict[str, Any],
    expires: dt.datetime | None = None,
) -> Response:
    """Render ``name`` with a placeholder for the CSRF token, keep it under ``key`` for
    ``stamp`` (until ``expires``), and answer with the request's own token filled in."""
    body = bytes(render(request, name, context, csrf=_CSRF_SLOT).body)
    parts = body.split(_CSRF_SLOT_BYTES)
    with _PAGES_LOCK:
        _PAGES[key] = (stamp, expires, parts)
        _PAGES.move_to_end(key)
        while len(_PAGES) > PAGE_CACHE_SIZE:
            _PAGES.popitem(last=False)
    return _page_response(request, parts)


def clear_page_cache() -> None:
    with _PAGES_LOCK:
        _PAGES.clear()


def _ranking_page(
    request: Request, db: Db, user: User | None, group: str, period: str, public: bool
) -> Response:
    stamp = change_stamp(db)  # before anything the page shows is read
    g = group_by_code(db, group)
    mode = PUBLISHED if public else group_mode(db, user, g)  # access: checked every time
    key = _page_key(request, db, user, mode)
    cached = _cached_page(request, key, stamp)
    if cached is not None:
        return cached
    view = ranking(db, user, g, period, mode)
    if public and view.publication is None:
        from kaohe.workflow.units import NotFound

        raise NotFound(f"{g.name}{view.period.label_zh}的考核结果尚未公布 (not published)")
    history = publication_history(db, g, str(view.period)) if mode == FULL else []
    base = "/public" if public else "/results"
    table_html, heat_json = ranking_html(view, base, language(request)) if view.rows else ("", "")
    return _render_cached(
        request,
        key,
        stamp,
        "results/group.html",
        {
            "view": view,
            "group": g,
            "public": public,
            "base": base,
            "can_publish": (can_pub := (not public) and can_review(db, user, g)),
            "unapproved": unapproved(db, g, view.period) if can_pub else [],
            "history": history,
            "periods": periods_of(db, g),
            "table_html": table_html,
            "heat_json": heat_json,
            "is_street": any(c.level == "community" for c in g.children),
        },
    )


@router.get("/results/{group}/{period}", response_class=HTMLResponse)
def group_page(request: Request, db: Db, user: SignedIn, group: str, period: str) -> Response:
    return _ranking_page(request, db, user, group, period, public=False)


@router.post("/results/{group}/{period}/publish")
def publish_page(
    request: Request,
    db: Db,
    user: SignedIn,
    group: str,
    period: str,
    appeal_days: Annotated[int, Form()] = 7,
    note: Annotated[str, Form()] = "",
) -> Response:
    g = group_by_code(db, group)
    out = publish(db, user, g, period, appeal_days, note)
    return render(
        request,
        "results/published.html",
        {"group": g, "out": out, "period": str(out.publication.period)},
    )


# ---------------------------------------------------------------- unit page


def _unit_page(
    request: Request,
    db: Db,
    user: User | None,
    group: str,
    period: str,
    unit: str,
    public: bool,
) -> Response:
    stamp = change_stamp(db)  # before anything the page shows is read
    g = group_by_code(db, group)
    u = unit_by_code(db, unit)
    mode = PUBLISHED if public else unit_mode(db, user, g, u)  # access: checked every time
    if public and u.parent_id != g.id:
        from kaohe.workflow.units import NotFound

        raise NotFound(f"unit '{u.code}' is not assessed by {g.code}")
    key = _page_key(request, db, user, mode)
    cached = _cached_page(request, key, stamp)
    if cached is not None:
        return cached
    view = unit_view(db, user, g, u, period, mode)
    appeals = [] if public or user is None else visible_appeals(db, user, unit=u, period=period)
    pub = view.publication
    may_appeal = (
        not public
        and user is not None
        and user.role == "reporter"
        and user.unit_id == u.id
        and pub is not None
        and appeal_open(pub)
    )
    deadline = appeal_deadline(pub) if pub is not None else None
    return _render_cached(
        request,
        key,
        stamp,
        "results/unit.html",
        {
            "view": view,
            "group": g,
            "unit": u,
            "public": public,
            "base": "/public" if public else "/results",
            "appeals": appeals,
            "may_appeal": may_appeal,
            "deadline": deadline,
            "can_answer": (not public) and can_review(db, user, g),
            "trend_json": _json(view.trend),
            "flag_labels": {c: f.label for c, f in view.rulebook.model.flags.items()}
            if view.rulebook
            else {},
        },
        # the appeal form (and the "window closed" note) change when the window closes
        expires=deadline if deadline is not None and utcnow() <= deadline else None,
    )


@router.get("/results/{group}/{period}/{unit}", response_class=HTMLResponse)
def unit_page(
    request: Request, db: Db, user: SignedIn, group: str, period: str, unit: str
) -> Response:
    return _unit_page(request, db, user, group, period, unit, public=False)


# ---------------------------------------------------------------- downloads


def _download_group(db: Db, user: User, group: str, period: str) -> OrgUnit:
    g = group_by_code(db, group)
    if group_mode(db, user, g) != FULL:
        raise Forbidden()
    check_period(db, g, period)
    return g


def _file_response(data: bytes, media: str, filename: str) -> Response:
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


def _write_temp(suffix: str, writer: Any) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"out{suffix}"
        writer(path)
        return path.read_bytes()


@router.get("/downloads/{group}/{period}/report.xlsx")
def download_report(db: Db, user: SignedIn, group: str, period: str) -> Response:
    g = _download_group(db, user, group, period)
    p = check_period(db, g, period)
    result, _ = live_result(db, g, p)
    units = org_units_for_group(g)
    data = _write_temp(".xlsx", lambda path: write_xlsx_report(result, path, units=units))
    return _file_response(data, XLSX, f"{g.name}-{p}-考核结果.xlsx")


@router.get("/downloads/{group}/{period}/notice.docx")
def download_notice(db: Db, user: SignedIn, group: str, period: str) -> Response:
    g = _download_group(db, user, group, period)
    p = check_period(db, g, period)
    result, _ = live_result(db, g, p)
    names = {g.code: g.name, **{c.code: c.name for c in g.children}}
    village = any(c.level == "village" for c in g.children)
    notice = build_notice(
        result,
        names,
        issuer=g.name,
        addressee="各村民委员会" if village else None,
        unit_header="村" if village else None,
    )
    data = _write_temp(".docx", lambda path: write_notice_docx(notice, path))
    return _file_response(data, DOCX, f"{g.name}-{p}-通报.docx")


@router.get("/downloads/{group}/{period}/payments.xlsx")
def download_payments(db: Db, user: SignedIn, group: str, period: str) -> Response:
    g = _download_group(db, user, group, period)
    p = check_period(db, g, period)
    sheet = sheet_for(db, g, p)
    names = {g.code: g.name, **{c.code: c.name for c in g.children}}
    data = _write_temp(".xlsx", lambda path: write_payment_sheet(sheet, path, names))
    return _file_response(data, XLSX, f"{g.name}-{p}-经费发放表.xlsx")


# ---------------------------------------------------------------- payments


def payments_context(db: Db, user: User, group: str, period: str) -> dict[str, Any]:
    g = group_by_code(db, group)
    own_only = user.role == "reporter"
    if own_only:
        if user.unit is None or user.unit.parent_id != g.id:
            raise Forbidden()
    elif not can_read(db, user, g):
        raise Forbidden()
    p = check_period(db, g, period)
    sheet = sheet_for(db, g, p)
    names = {g.code: g.name, **{c.code: c.name for c in g.children}}
    rows = payment_sheet_rows(sheet, names)
    if own_only:
        rows = [r for r in rows if r["unit"] == user.unit.code]  # type: ignore[union-attr]
    units: dict[str, dict[str, Any]] = {}
    for r in rows:
        u = units.setdefault(
            r["unit"],
            {"unit": r["unit"], "name": r["name"], "lines": [], "fen": 0, "statuses": set()},
        )
        u["lines"].append(r)
        u["fen"] += int(r["amount_fen"] or 0)
        u["statuses"].add(r["status"])
    by_code = {g.code: g, **{c.code: c for c in g.children}}
    for code, u in units.items():
        st = u["statuses"]
        u["state"] = (
            "approved" if st == {"approved"} else "pending" if "pending" in st else "reviewed"
        )
        u["yuan"] = yuan_text(u["fen"])
        u["can_review"] = "pending" in st and can_sign_review(db, user, g, by_code[code])
        u["can_approve"] = (
            "pending" not in st and st != {"approved"} and can_sign_approve(db, user, g)
        )
        u["statuses"] = sorted(st)
    return {
        "group": g,
        "period": p,
        "units": list(units.values()),
        "total": yuan_text(sum(u["fen"] for u in units.values())),
        "own_only": own_only,
    }


@router.get("/payments/{group}/{period}", response_class=HTMLResponse)
def payments_page(request: Request, db: Db, user: SignedIn, group: str, period: str) -> Response:
    return render(request, "results/payments.html", payments_context(db, user, group, period))


@router.post("/payments/{group}/{period}/{unit}/{action}")
def payments_sign(
    request: Request, db: Db, user: SignedIn, group: str, period: str, unit: str, action: str
) -> Response:
    g = group_by_code(db, group)
    if action == "review":
        review(db, user, g, period, unit)
    elif action == "approve":
        approve(db, user, g, period, unit)
    else:
        from kaohe.workflow.units import NotFound

        raise NotFound(f"unknown action '{action}' (review or approve)")
    return RedirectResponse(f"/payments/{g.code}/{period}", status_code=303)


# ---------------------------------------------------------------- appeals


@router.get("/appeals", response_class=HTMLResponse)
def appeals_page(request: Request, db: Db, user: SignedIn) -> Response:
    items = visible_appeals(db, user)
    return render(
        request,
        "results/appeals.html",
        {
            "appeals": items,
            "can_answer": {a.id: can_review(db, user, a.publication.group) for a in items},
        },
    )


@router.post("/results/{group}/{period}/{unit}/appeal")
def appeal_post(
    request: Request,
    db: Db,
    user: SignedIn,
    group: str,
    period: str,
    unit: str,
    text: Annotated[str, Form()] = "",
) -> Response:
    g = group_by_code(db, group)
    u = unit_by_code(db, unit)
    unit_mode(db, user, g, u)
    file_appeal(db, user, u, period, text)
    return RedirectResponse(f"/results/{g.code}/{period}/{u.code}#appeals", status_code=303)


@router.post("/appeals/{appeal_id}/answer")
def appeal_answer_post(
    request: Request,
    db: Db,
    user: SignedIn,
    appeal_id: int,
    answer: Annotated[str, Form()] = "",
) -> Response:
    answer_appeal(db, user, appeal_id, answer)
    a = appeal_by_id(db, appeal_id)
    return RedirectResponse(f"/appeals#appeal-{a.id}", status_code=303)


# ---------------------------------------------------------------- public


@router.get("/public", response_class=HTMLResponse)
def public_index(request: Request, db: Db, user: CurrentUser) -> Response:
    return render(request, "results/public.html", {"publications": publications(db)})


@router.get("/public/{group}/{period}", response_class=HTMLResponse)
def public_group(request: Request, db: Db, user: CurrentUser, group: str, period: str) -> Response:
    return _ranking_page(request, db, None, group, period, public=True)


@router.get("/public/{group}/{period}/{unit}", response_class=HTMLResponse)
def public_unit(
    request: Request, db: Db, user: CurrentUser, group: str, period: str, unit: str
) -> Response:
    return _unit_page(request, db, None, group, period, unit, public=True)
