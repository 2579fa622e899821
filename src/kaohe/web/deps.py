"""Request dependencies: database session, current user, CSRF, language."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from kaohe.auth.sessions import SESSION_COOKIE, session_for, user_for_token
from kaohe.store.models import User
from kaohe.web.i18n import DEFAULT_LANG, LANGS

CSRF_COOKIE = "kaohe_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    factory = request.app.state.sessions
    with factory() as session, session.begin():
        yield session


# scope="function": commit before the response is sent (FastAPI's default, "request",
# commits after it is sent: a browser following a redirect could miss the change,
# and a failed commit would follow a success page).
Db = Annotated[Session, Depends(get_db, scope="function")]


class LoginRequired(Exception):
    """Raised by page routes for the public: app.py turns it into a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def current_user(request: Request, db: Db) -> User | None:
    """The signed-in user (session cookie) or the API token's user; None for the public."""
    if hasattr(request.state, "user"):
        return request.state.user
    user: User | None = None
    request.state.csrf = None
    request.state.via_token = False
    bearer = _bearer(request)
    if bearer is not None:
        user = user_for_token(db, bearer)
        if user is None:
            raise HTTPException(401, "无效的 API 令牌 (invalid API token)")
        request.state.via_token = True
    else:
        row = session_for(db, request.cookies.get(SESSION_COOKIE))
        if row is not None:
            user = row.user
            request.state.csrf = row.csrf_token
    request.state.user = user
    return user


CurrentUser = Annotated[User | None, Depends(current_user)]


def reload_user(request: Request) -> None:
    """After the request's transaction was rolled back (an error page), the signed-in
    user's attributes are expired and its session closed: reload it in a short session
    so the error page can still show who is signed in."""
    from sqlalchemy import inspect

    user = getattr(request.state, "user", None)
    if user is None:
        return
    state = inspect(user)
    if not (state.expired_attributes or state.detached) or state.identity is None:
        return
    with request.app.state.sessions() as s:
        request.state.user = s.get(User, state.identity[0])


async def require_user(request: Request, user: CurrentUser) -> User:
    """A signed-in user; pages redirect to the login page, the API answers 401.
    (async: no I/O here, so no hop to the thread pool.)"""
    if user is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(401, "请先登录 (not signed in)")
        raise LoginRequired(request.url.path)
    return user


SignedIn = Annotated[User, Depends(require_user)]


def csrf_token(request: Request) -> str:
    """The token forms must send back: the session's, or (signed out) the pre-session cookie's."""
    if getattr(request.state, "csrf", None):
        return str(request.state.csrf)
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request.state.new_csrf = token  # set as a cookie by the middleware in app.py
    return token


async def check_csrf(request: Request, db: Db) -> None:
    """Every unsafe request made with a cookie must carry the CSRF token (form field
    ``csrf_token`` or header ``X-CSRF-Token``); API-token requests are exempt."""
    if request.method not in UNSAFE:
        return
    user = current_user(request, db)
    if getattr(request.state, "via_token", False):
        return
    expected = request.state.csrf if user is not None else request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise HTTPException(403, "CSRF 校验失败，请刷新页面后重试 (CSRF check failed)")


def language(request: Request) -> str:
    lang = request.cookies.get("lang")
    if lang in LANGS:
        return lang
    user = getattr(request.state, "user", None)
    if user is not None and user.language in LANGS:
        return str(user.language)
    return DEFAULT_LANG
