"""The application factory: ``create_app()`` (``uvicorn kaohe.web.app:create_app --factory``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from kaohe import __version__
from kaohe.errors import KaoheError
from kaohe.store.db import make_engine, session_factory
from kaohe.web.deps import CSRF_COOKIE, LoginRequired, check_csrf, current_user, reload_user
from kaohe.web.render import render
from kaohe.workflow.units import NotFound

STATIC = Path(__file__).parent / "static"


def create_app(
    database_url: str | None = None, *, engine: Engine | None = None, demo: bool = False
) -> FastAPI:
    """The kaohe web app over ``database_url`` (default: ``$KAOHE_DATABASE_URL`` or ./kaohe.sqlite).

    The database must be migrated (``kaohe db upgrade``; ``make run`` does it)."""
    app = FastAPI(
        title="kaohe 考核",
        version=__version__,
        description="目标管理责任制考核 — JSON API.  Authenticate with a personal API token "
        "(`Authorization: Bearer kh_…`) or a browser session (then send `X-CSRF-Token`).",
        dependencies=[Depends(current_user), Depends(check_csrf)],
    )
    app.state.engine = engine if engine is not None else make_engine(database_url)
    app.state.sessions = session_factory(app.state.engine)
    app.state.demo = demo
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        new = getattr(request.state, "new_csrf", None)
        if new and not request.cookies.get(CSRF_COOKIE):
            response.set_cookie(
                CSRF_COOKIE,
                new,
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return await _error(request, 404, str(exc))

    @app.exception_handler(KaoheError)
    async def bad_input(request: Request, exc: KaoheError) -> Response:
        return await _error(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        return await _error(request, exc.status_code, str(exc.detail))

    for router in _routers():
        app.include_router(router)
    return app


async def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": message}, status_code=status)
    reload_user(request)
    return render(request, "error.html", {"status": status, "message": message}, status)


def _routers() -> list[Any]:
    from kaohe.supplies import web as supplies_web
    from kaohe.web import (
        api_auth,
        api_data,
        api_results,
        routes_auth,
        routes_data,
        routes_home,
        routes_results,
    )

    return [
        routes_home.router,
        routes_auth.router,
        routes_data.router,
        routes_results.router,
        api_auth.router,
        api_data.router,
        api_results.router,
        supplies_web.router,
    ]


__all__ = ["HTTPException", "create_app"]
