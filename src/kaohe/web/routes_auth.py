"""Signing in and out, the user's own account (password, language, API tokens) and
the administrator's user management (/admin/users).

Every unsafe request here passes the app-wide CSRF check (``deps.check_csrf``):
the login form carries the pre-session token, the others the session's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from kaohe.auth.login import LoginFailed, LoginThrottled, authenticate
from kaohe.auth.permissions import require_admin
from kaohe.auth.sessions import (
    SESSION_COOKIE,
    SESSION_HOURS,
    api_tokens,
    create_session,
    end_session,
)
from kaohe.auth.users import (
    LANGUAGES,
    UserError,
    add_user,
    change_own_password,
    disable_user,
    enable_user,
    list_users,
    new_api_token,
    random_password,
    revoke_token,
    set_language,
    set_password,
    user_by_name,
)
from kaohe.errors import KaoheError
from kaohe.store.models import ROLES, User
from kaohe.web.deps import CurrentUser, Db, SignedIn
from kaohe.web.render import render
from kaohe.workflow.units import all_units

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else "/" (no open redirects)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c in target for c in "\r\n\t\\")
    ):
        return "/"
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_HOURS * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# --- signing in and out -------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, user: CurrentUser, next: str = "/") -> Response:
    return render(request, "auth/login.html", {"next": safe_next(next), "username": ""})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    db: Db,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = safe_next(next)
    ctx: dict[str, Any] = {"next": target, "username": username}
    try:
        user = authenticate(db, username, password, client_address(request))
    except LoginThrottled as e:
        ctx["error"] = e
        ctx["error_minutes"] = e.minutes
        return render(request, "auth/login.html", ctx, 429)
    except LoginFailed as e:
        ctx["error"] = e
        return render(request, "auth/login.html", ctx, 401)
    # a new session (never reuse one the browser brought along)
    end_session(db, request.cookies.get(SESSION_COOKIE))
    token, _row = create_session(db, user)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, token)
    return response


@router.post("/logout")
def logout(request: Request, db: Db) -> Response:
    end_session(db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


# --- the user's own account ----------------------------------------------------------


def _account(
    request: Request, db: Session, user: User, status: int = 200, **extra: Any
) -> Response:
    ctx: dict[str, Any] = {
        "me": user,
        "tokens": api_tokens(db, user),
        "languages": LANGUAGES,
    }
    ctx.update(extra)
    return render(request, "auth/account.html", ctx, status)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, db: Db, user: SignedIn) -> Response:
    return _account(request, db, user)


@router.post("/account/password", response_class=HTMLResponse)
def account_password(
    request: Request,
    db: Db,
    user: SignedIn,
    old_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
    new_password2: Annotated[str, Form()] = "",
) -> Response:
    try:
        if new_password != new_password2:
            raise UserError("两次输入的新密码不一致 (the new passwords do not match)")
        with db.begin_nested():
            change_own_password(
                db,
                user,
                old_password,
                new_password,
                keep_session=request.cookies.get(SESSION_COOKIE),
            )
    except KaoheError as e:
        return _account(request, db, user, 400, password_error=str(e))
    return _account(request, db, user, message="密码已修改，其他设备上的登录已退出。")


@router.post("/account/language")
def account_language(
    request: Request, db: Db, user: SignedIn, language: Annotated[str, Form()] = "zh"
) -> Response:
    try:
        with db.begin_nested():
            set_language(db, user, language)
    except KaoheError as e:
        return _account(request, db, user, 400, error=str(e))
    response = RedirectResponse("/account", status_code=303)
    response.set_cookie("lang", language, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/account/tokens", response_class=HTMLResponse)
def account_token_create(
    request: Request, db: Db, user: SignedIn, name: Annotated[str, Form()] = ""
) -> Response:
    try:
        with db.begin_nested():
            secret, row = new_api_token(db, user, name)
    except KaoheError as e:
        return _account(request, db, user, 400, token_error=str(e))
    return _account(request, db, user, new_secret=secret, new_token=row)


@router.post("/account/tokens/{token_id}/revoke", response_class=HTMLResponse)
def account_token_revoke(request: Request, db: Db, user: SignedIn, token_id: int) -> Response:
    revoke_token(db, user, token_id)
    return _account(request, db, user, message="令牌已撤销。")


# --- user management (administrators) -----------------------------------------------


def _users_page(request: Request, db: Session, status: int = 200, **extra: Any) -> Response:
    units: list[Any] = []  # each group (township/street) followed by its children
    for group in all_units(db):
        if group.level in ("township", "street"):
            units += [group, *group.children]
    ctx: dict[str, Any] = {
        "users": list_users(db),
        "units": units,
        "roles": ROLES,
        "form": {},
    }
    ctx.update(extra)
    return render(request, "auth/users.html", ctx, status)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, db: Db, user: SignedIn) -> Response:
    require_admin(user)
    return _users_page(request, db)


@router.post("/admin/users", response_class=HTMLResponse)
def users_add(
    request: Request,
    db: Db,
    user: SignedIn,
    username: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    unit: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    require_admin(user)
    form = {"username": username, "display_name": display_name, "role": role, "unit": unit}
    try:
        with db.begin_nested():
            added = add_user(
                db,
                username,
                password,
                role,
                unit or None,
                display_name=display_name,
                by=user,
            )
    except KaoheError as e:
        return _users_page(request, db, 400, add_error=str(e), form=form)
    return _users_page(
        request, db, message="已添加用户 {name}。", message_args={"name": added.username}
    )


@router.post("/admin/users/{username}/disable", response_class=HTMLResponse)
def users_disable(request: Request, db: Db, user: SignedIn, username: str) -> Response:
    require_admin(user)
    target = user_by_name(db, username)
    try:
        with db.begin_nested():
            disable_user(db, target, by=user)
    except KaoheError as e:
        return _users_page(request, db, 400, error=str(e))
    return _users_page(
        request, db, message="已停用用户 {name}。", message_args={"name": target.username}
    )


@router.post("/admin/users/{username}/enable", response_class=HTMLResponse)
def users_enable(request: Request, db: Db, user: SignedIn, username: str) -> Response:
    require_admin(user)
    target = user_by_name(db, username)
    enable_user(db, target, by=user)
    return _users_page(
        request, db, message="已启用用户 {name}。", message_args={"name": target.username}
    )


@router.post("/admin/users/{username}/password", response_class=HTMLResponse)
def users_password(
    request: Request,
    db: Db,
    user: SignedIn,
    username: str,
    password: Annotated[str, Form()] = "",
) -> Response:
    """Reset a user's password: the one typed, or (left empty) a random one shown once."""
    require_admin(user)
    target = user_by_name(db, username)
    generated = not password
    new = password or random_password()
    keep = request.cookies.get(SESSION_COOKIE) if target.id == user.id else None
    try:
        with db.begin_nested():
            set_password(db, target, new, by=user, keep_session=keep, reason="reset by admin")
    except KaoheError as e:
        return _users_page(request, db, 400, error=str(e))
    return _users_page(
        request,
        db,
        message="已重置用户 {name} 的密码。",
        message_args={"name": target.username},
        new_password=new if generated else None,
        new_password_for=target.username,
    )
