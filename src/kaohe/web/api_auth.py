"""JSON API of users and access: who am I, my API tokens, and (administrators) users.

Authenticate with a personal API token (``Authorization: Bearer kh_…``) or a
browser session (then send ``X-CSRF-Token`` on unsafe requests)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from kaohe.auth.permissions import Forbidden, require_admin
from kaohe.auth.sessions import api_tokens
from kaohe.auth.users import (
    add_user,
    disable_user,
    enable_user,
    list_users,
    new_api_token,
    revoke_token,
    user_by_name,
)
from kaohe.store.models import ApiToken, OrgUnit, User
from kaohe.web.deps import Db, SignedIn

router = APIRouter(prefix="/api", tags=["users and access 用户与权限"])

Role = Literal["admin", "assessor", "reporter", "viewer"]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Stored naive UTC → aware UTC (serialised with +00:00)."""
    return value.replace(tzinfo=dt.UTC) if value is not None else None


class UnitRef(BaseModel):
    code: str
    name: str
    level: str

    @classmethod
    def of(cls, unit: OrgUnit | None) -> UnitRef | None:
        return cls(code=unit.code, name=unit.name, level=unit.level) if unit else None


class UserOut(BaseModel):
    username: str
    display_name: str
    role: Role
    unit: UnitRef | None = Field(description="a reporter's own unit, an assessor's group")
    active: bool
    language: str
    created_at: dt.datetime
    password_changed_at: dt.datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            unit=UnitRef.of(user.unit),
            active=user.active,
            language=user.language,
            created_at=_utc(user.created_at),
            password_changed_at=_utc(user.password_changed_at),
        )


class MeOut(UserOut):
    via_token: bool = Field(description="true when this request used an API token")


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the secret's first characters, to recognise it")
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenOut:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            created_at=_utc(row.created_at),
            last_used_at=_utc(row.last_used_at),
            revoked_at=_utc(row.revoked_at),
        )


class TokenCreated(TokenOut):
    secret: str = Field(description="the token: shown only in this answer, never again")


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="what the token is for")


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1000)
    role: Role
    unit: str | None = Field(
        None,
        description="unit code: a village/community for reporters, a township/street for assessors",
    )
    display_name: str = Field("", max_length=200)


@router.get("/me", response_model=MeOut, summary="The signed-in user")
def me(request: Request, user: SignedIn) -> MeOut:
    out = UserOut.of(user)
    return MeOut(**out.model_dump(), via_token=bool(getattr(request.state, "via_token", False)))


@router.get("/tokens", response_model=list[TokenOut], summary="My API tokens")
def tokens(db: Db, user: SignedIn) -> list[TokenOut]:
    return [TokenOut.of(t) for t in api_tokens(db, user)]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    summary="Create an API token (browser session only; the secret is shown once)",
)
def token_create(request: Request, db: Db, user: SignedIn, body: TokenIn) -> TokenCreated:
    if getattr(request.state, "via_token", False):
        raise Forbidden("不能用 API 令牌创建新令牌 (API tokens cannot create tokens: sign in)")
    secret, row = new_api_token(db, user, body.name)
    return TokenCreated(**TokenOut.of(row).model_dump(), secret=secret)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke one of my API tokens")
def token_revoke(db: Db, user: SignedIn, token_id: int) -> Response:
    revoke_token(db, user, token_id)
    return Response(status_code=204)


@router.get("/users", response_model=list[UserOut], summary="Every user (administrators)")
def users(db: Db, user: SignedIn) -> list[UserOut]:
    require_admin(user)
    return [UserOut.of(u) for u in list_users(db)]


@router.post(
    "/users", response_model=UserOut, status_code=201, summary="Add a user (administrators)"
)
def user_add(db: Db, user: SignedIn, body: Annotated[UserIn, Body()]) -> UserOut:
    require_admin(user)
    added = add_user(
        db,
        body.username,
        body.password,
        body.role,
        body.unit or None,
        display_name=body.display_name,
        by=user,
    )
    return UserOut.of(added)


@router.post(
    "/users/{username}/disable",
    response_model=UserOut,
    summary="Disable a user: sessions end, API tokens are revoked (administrators)",
)
def user_disable(db: Db, user: SignedIn, username: str) -> UserOut:
    require_admin(user)
    target = user_by_name(db, username)
    disable_user(db, target, by=user)
    return UserOut.of(target)


@router.post(
    "/users/{username}/enable", response_model=UserOut, summary="Enable a user (administrators)"
)
def user_enable(db: Db, user: SignedIn, username: str) -> UserOut:
    require_admin(user)
    target = user_by_name(db, username)
    enable_user(db, target, by=user)
    return UserOut.of(target)
