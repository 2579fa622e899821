"""The application factory: ``create_app()`` (``uvicorn kaohe.web.app:create_app --factory``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.datastructures import MutableHeaders
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

    app.add_middleware(SecurityHeaders)

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


class SecurityHeaders:
    """Security headers on every response, and the pre-session CSRF cookie when a page
    made one (``request.state.new_csrf``).  A plain ASGI middleware: Starlette's
    ``@app.middleware("http")`` costs a task and a stream per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                new = scope.get("state", {}).get("new_csrf")
                if new and not Request(scope).cookies.get(CSRF_COOKIE):
                    cookie = Response()
                    cookie.set_cookie(
                        CSRF_COOKIE,
                        new,
                        httponly=True,
                        samesite="lax",
                        secure=scope.get("scheme") == "https",
                    )
                    headers.append("set-cookie", cookie.headers["set-cookie"])
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` with several workers: the database from
    ``$KAOHE_DATABASE_URL``, demo mode from ``$KAOHE_DEMO``."""
    import os

    return create_app(demo=os.environ.get("KAOHE_DEMO") == "1")


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
