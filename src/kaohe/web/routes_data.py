"""Data-entry pages: the units a user may enter (/data), the entry form of a unit and
period, the review queue (/review), the audit log (/audit) and the Excel round trip
of a group's data (template download, upload with a dry-run preview, confirm).

Every route checks access on the server (:mod:`kaohe.auth.permissions`); the work
is done by :mod:`kaohe.workflow.data`, :mod:`~kaohe.workflow.submissions`,
:mod:`~kaohe.workflow.excel` and :mod:`~kaohe.workflow.audit`.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from kaohe.auth.permissions import (
    Forbidden,
    can_review,
    can_write,
    require_read,
    require_write,
    scope_ids,
)
from kaohe.store.models import OrgUnit, User
from kaohe.web.deps import Db, SignedIn
from kaohe.web.i18n import CST
from kaohe.web.render import render
from kaohe.workflow import audit, excel, submissions
from kaohe.workflow.data import (
    DataError,
    Locked,
    UnitContext,
    apply_plan,
    context,
    data_periods,
    entry_form,
    latest_year,
    set_values,
)
from kaohe.workflow.scoring import rulebook_of
from kaohe.workflow.submissions import TransitionError
from kaohe.workflow.units import NotFound, groups, unit_by_code

router = APIRouter()

#: largest accepted upload
MAX_UPLOAD = 50 * 1024 * 1024


def _this_year() -> int:
    return dt.datetime.now(CST).year


def _safe_next(url: str | None, default: str) -> str:
    if url and url.startswith("/") and not url.startswith("//"):
        return url
    return default


# ====================================================================== /data


def _entry_units(db: Session, user: User) -> list[dict[str, Any]]:
    """Sections per group: the group's units the user may enter (or read), in order."""
    scope = scope_ids(db, user)
    sections = []
    for g in groups(db):
        members: list[OrgUnit] = list(g.children)
        try:
            ctx_unit = context(db, members[0]) if members else None
            ctx_group: UnitContext | None = context(db, g)
        except NotFound:
            continue
        rows: list[tuple[OrgUnit, UnitContext]] = []
        if ctx_group is not None and data_periods(ctx_group, 2000):
            rows.append((g, ctx_group))
        if ctx_unit is not None:
            rows.extend((u, UnitContext(u, g, ctx_unit.rb, "unit")) for u in members)
        rows = [(u, c) for u, c in rows if scope is None or u.id in scope]
        if rows:
            sections.append({"group": g, "rows": rows})
    return sections


@router.get("/data", response_class=HTMLResponse, include_in_schema=False)
def data_index(request: Request, db: Db, user: SignedIn, year: int | None = None) -> Response:
    sections = _entry_units(db, user)
    if year is None:
        ids = [u.id for s in sections for u, _ in s["rows"]]
        year = latest_year(db, ids) or _this_year()
    view = []
    for sec in sections:
        g: OrgUnit = sec["group"]
        periods: list[str] = []
        for _, ctx in sec["rows"]:
            for q in data_periods(ctx, year):
                if str(q) not in periods:
                    periods.append(str(q))
        periods.sort(key=lambda s: (len(s) > 4, s))
        st = submissions.states(db, [u.id for u, _ in sec["rows"]], periods)
        rows = []
        for u, ctx in sec["rows"]:
            own = {str(q) for q in data_periods(ctx, year)}
            cells = []
            for p in periods:
                sub = st.get((u.id, p))
                cells.append(
                    {"period": p, "applies": p in own, "state": sub.state if sub else "draft"}
                )
            rows.append({"unit": u, "cells": cells})
        view.append(
            {
                "group": g,
                "periods": periods,
                "rows": rows,
                "excel": can_write(db, user, g),
                "excel_periods": [str(year), *[p for p in periods if len(p) > 4]],
            }
        )
    return render(
        request,
        "data/index.html",
        {
            "sections": view,
            "year": year,
            "imported": request.query_params.get("imported"),
        },
    )


# ====================================================================== entry form


def _form_page(
    request: Request,
    db: Session,
    user: User,
    unit: OrgUnit,
    period: str,
    *,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    message: str | None = None,
    status: int = 200,
    reason: str = "",
) -> Response:
    form = entry_form(db, user, unit, period)
    for f in form.fields:
        if errors and f.code in errors:
            f.error = errors[f.code]
        if raw is not None and f.code in raw:
            f.raw = raw[f.code]
    ctx = {
        "form": form,
        "can_submit": can_write(db, user, unit) and form.state in ("draft", "returned"),
        "can_review": can_review(db, user, unit),
        "message": message,
        "saved": request.query_params.get("saved"),
        "done": request.query_params.get("done"),
        "reason": reason,
        "errors": errors or {},
    }
    return render(request, "data/form.html", ctx, status)


@router.get("/data/{unit}/{period}", response_class=HTMLResponse, include_in_schema=False)
def data_form(request: Request, db: Db, user: SignedIn, unit: str, period: str) -> Response:
    u = unit_by_code(db, unit)
    require_read(db, user, u)
    return _form_page(request, db, user, u, period)


@router.post("/data/{unit}/{period}", response_class=HTMLResponse, include_in_schema=False)
async def data_save(request: Request, db: Db, user: SignedIn, unit: str, period: str) -> Response:
    u = unit_by_code(db, unit)
    require_write(db, user, u)
    form = await request.form()
    values = {
        k[2:]: str(v) for k, v in form.multi_items() if k.startswith("v_") and isinstance(v, str)
    }
    reason = str(form.get("reason") or "")
    try:
        changes = set_values(db, user, u, period, values, reason)
    except DataError as e:
        return _form_page(
            request, db, user, u, period, errors=e.errors, raw=values, status=422, reason=reason
        )
    except Locked as e:
        return _form_page(request, db, user, u, period, message=str(e), status=409)
    return RedirectResponse(f"/data/{quote(u.code)}/{quote(period)}?saved={len(changes)}", 303)


@router.get("/data/{unit}/{period}/check", response_class=HTMLResponse, include_in_schema=False)
def data_check(request: Request, db: Db, user: SignedIn, unit: str, period: str) -> Response:
    """Inline validation of one field (HTMX): an error message, or nothing."""
    from kaohe.workflow.data import check_value, data_period, variables_for

    u = unit_by_code(db, unit)
    require_read(db, user, u)
    ctx = context(db, u)
    p = data_period(ctx, period)
    allowed = set(variables_for(ctx.rb, ctx.level, p.kind))
    for key, raw in request.query_params.items():
        if key.startswith("v_") and key[2:] in allowed:
            _, problem = check_value(ctx.rb.variables[key[2:]], raw)
            if problem:
                return HTMLResponse(f'<span class="error">{_escape(problem)}</span>')
    return HTMLResponse("")


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def _transition(
    request: Request, db: Session, user: User, unit: str, period: str, action: str
) -> Response:
    u = unit_by_code(db, unit)
    require_read(db, user, u)
    form = await request.form()
    text = str(form.get("text") or "")
    try:
        submissions.transition(db, user, u, period, action, text)
    except TransitionError as e:
        return _form_page(request, db, user, u, period, message=str(e), status=409)
    default = f"/data/{quote(u.code)}/{quote(period)}?done={action}"
    nxt = form.get("next")
    return RedirectResponse(_safe_next(nxt if isinstance(nxt, str) else None, default), 303)


@router.post("/data/{unit}/{period}/submit", include_in_schema=False)
async def data_submit(request: Request, db: Db, user: SignedIn, unit: str, period: str) -> Response:
    return await _transition(request, db, user, unit, period, "submit")


@router.post("/data/{unit}/{period}/return", include_in_schema=False)
async def data_return(request: Request, db: Db, user: SignedIn, unit: str, period: str) -> Response:
    return await _transition(request, db, user, unit, period, "return")


@router.post("/data/{unit}/{period}/approve", include_in_schema=False)
async def data_approve(
    request: Request, db: Db, user: SignedIn, unit: str, period: str
) -> Response:
    return await _transition(request, db, user, unit, period, "approve")


@router.post("/data/{unit}/{period}/reopen", include_in_schema=False)
async def data_reopen(request: Request, db: Db, user: SignedIn, unit: str, period: str) -> Response:
    return await _transition(request, db, user, unit, period, "reopen")


# ====================================================================== review


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review(request: Request, db: Db, user: SignedIn) -> Response:
    if user.role not in ("admin", "assessor"):
        raise Forbidden()
    return render(
        request,
        "data/review.html",
        {
            "submitted": submissions.queue(db, user, "submitted"),
            "returned": submissions.queue(db, user, "returned", limit=100),
            "approved": submissions.queue(db, user, "approved", limit=100),
        },
    )


# ====================================================================== audit


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
def audit_log(
    request: Request,
    db: Db,
    user: SignedIn,
    unit: str | None = None,
    period: str | None = None,
    action: str | None = None,
    page: int = 1,
) -> Response:
    u = None
    if unit:
        u = unit_by_code(db, unit.strip())
        require_read(db, user, u)
    size = 100
    page = max(page, 1)
    result = audit.entries(
        db,
        user,
        unit=u,
        period=(period or "").strip() or None,
        action=action or None,
        limit=size,
        offset=(page - 1) * size,
    )
    return render(
        request,
        "data/audit.html",
        {
            "result": result,
            "unit": u,
            "unit_code": unit or "",
            "period": period or "",
            "action": action or "",
            "actions": sorted(set(audit.ACTION_LABELS) | set(audit.actions_in_use(db))),
            "labels": audit.ACTION_LABELS,
            "page": page,
            "pages": max((result.total + size - 1) // size, 1),
        },
    )


# ====================================================================== Excel round trip


def _group(db: Session, code: str) -> OrgUnit:
    g = unit_by_code(db, code)
    if g.rulebook is None:
        raise NotFound(f"'{code}' 不是考核单位（乡镇或街道）(not an assessing group)")
    return g


@router.get("/data/group/{group}/{period}/template.xlsx", include_in_schema=False)
def group_template(db: Db, user: SignedIn, group: str, period: str) -> Response:
    g = _group(db, group)
    require_read(db, user, g)
    body = excel.template_bytes(db, g, period)
    name = excel.template_filename(g, period)
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@router.get(
    "/data/group/{group}/{period}/upload", response_class=HTMLResponse, include_in_schema=False
)
def group_upload_form(
    request: Request, db: Db, user: SignedIn, group: str, period: str
) -> Response:
    g = _group(db, group)
    require_write(db, user, g)
    excel.group_period(rulebook_of(db, g)[1], period)
    return render(request, "data/upload.html", {"group": g, "period": period})


@router.post(
    "/data/group/{group}/{period}/upload", response_class=HTMLResponse, include_in_schema=False
)
async def group_upload(
    request: Request,
    db: Db,
    user: SignedIn,
    group: str,
    period: str,
    file: Annotated[UploadFile, File()],
) -> Response:
    g = _group(db, group)
    require_write(db, user, g)
    filename = Path(file.filename or "upload.xlsx").name
    suffix = Path(filename).suffix.lower()
    if suffix not in (".xlsx", ".xlsm", ".csv"):
        raise HTTPException(400, f"请上传 .xlsx 文件 (upload an .xlsx workbook, not '{suffix}')")
    body = await file.read(MAX_UPLOAD + 1)
    if len(body) > MAX_UPLOAD:
        raise HTTPException(413, "文件过大 (file too large)")
    with tempfile.TemporaryDirectory(prefix="kaohe-up-") as d:
        path = Path(d) / f"upload{suffix}"
        path.write_bytes(body)
        preview = excel.preview_upload(db, user, g, period, path, filename)
    token = None
    if preview.ok and preview.n_changes and preview.given is not None:
        token = excel.stash(preview.given, user, g, period, filename, preview.plan)
    return render(
        request,
        "data/preview.html",
        _preview_ctx(preview, token),
        200 if preview.ok else 422,
    )


def _preview_ctx(preview: excel.UploadPreview, token: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "p": preview,
        "token": token,
        "fingerprint": preview.plan.fingerprint() if preview.plan is not None else "",
        "max_listed": excel.MAX_LISTED,
        **extra,
    }


@router.post(
    "/data/group/{group}/{period}/upload/confirm",
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def group_upload_confirm(
    request: Request,
    db: Db,
    user: SignedIn,
    group: str,
    period: str,
    token: Annotated[str, Form()],
    fingerprint: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    g = _group(db, group)
    require_write(db, user, g)
    given, filename = excel.load_stash(token, user, g, period)
    rb = rulebook_of(db, g)[1]
    preview = excel.UploadPreview(g, excel.group_period(rb, period), filename)
    # the previewed diff is reused while the stored values are unchanged (store stamp)
    preview = excel.plan_preview(db, user, preview, given, excel.load_plan(token))
    plan = preview.plan
    assert plan is not None
    if not preview.ok or plan.fingerprint() != fingerprint:
        notice = "预览之后数据已发生变化，请核对下面的新预览后再确认。"
        new_token = excel.stash(given, user, g, period, filename, plan) if preview.ok else None
        excel.drop_stash(token)
        return render(
            request,
            "data/preview.html",
            _preview_ctx(preview, new_token, notice=notice),
            409,
        )
    why = reason.strip() or f"Excel 导入：{filename}"
    n = apply_plan(db, user, plan, why)
    excel.drop_stash(token)
    year = preview.period.year
    return RedirectResponse(f"/data?year={year}&imported={n}", 303)
