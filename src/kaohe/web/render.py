"""Jinja2 templates with the request's language, user, CSRF token and filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from kaohe.numbers import fmt2
from kaohe.web.deps import csrf_token, language
from kaohe.web.i18n import local_date, local_time, period_label, translator

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["num2"] = fmt2
templates.env.globals["ROLE_LABELS"] = {
    "admin": "县级管理员",
    "assessor": "乡镇（街道）考核员",
    "reporter": "村（社区）填报员",
    "viewer": "查看者",
}
templates.env.globals["STATE_LABELS"] = {
    "draft": "草稿",
    "submitted": "已提交",
    "returned": "已退回",
    "approved": "已审核（锁定）",
}


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    *,
    csrf: str | None = None,
) -> HTMLResponse:
    """``name`` rendered for the request.  ``csrf``: what to put where the CSRF token goes
    (a placeholder, for a page cached across requests and sessions), instead of the token."""
    lang = language(request)
    ctx: dict[str, Any] = {
        "user": getattr(request.state, "user", None),
        "lang": lang,
        "_": translator(lang),
        "csrf_token": csrf if csrf is not None else csrf_token(request),
        "time": lambda v: local_time(v, lang),
        "date": lambda v: local_date(v, lang),
        "period_label": lambda p: period_label(p, lang),
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
