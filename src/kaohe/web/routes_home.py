"""The home page: what the signed-in user can do; the public sees published results."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaohe.web.deps import CurrentUser, Db
from kaohe.web.i18n import LANGS
from kaohe.web.render import render
from kaohe.workflow.units import groups

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, db: Db, user: CurrentUser) -> Response:
    return render(request, "home.html", {"groups": groups(db)})


@router.get("/lang/{lang}", include_in_schema=False)
def set_language(request: Request, lang: str, next: str = "/") -> Response:
    """Switch the UI language (zh / en); remembered in a cookie."""
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    if lang in LANGS:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response
