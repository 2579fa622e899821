"""The JSON API of users and access: /api/me, /api/tokens, /api/users."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from kaohe.auth.sessions import create_api_token
from kaohe.auth.users import user_by_name
from kaohe.store.db import transaction
from kaohe.store.models import AuditEntry, User
from kaohe.web.app import create_app
from tests.conftest import TEST_USERS
from tests.web import Client


@pytest.fixture
def app(db_url: str) -> FastAPI:
    return create_app(db_url)


def token_client(app: FastAPI, username: str, name: str = "test") -> Client:
    with transaction(app.state.sessions) as s:
        secret, _ = create_api_token(s, user_by_name(s, username), name)
    c = Client(app)
    c.token = secret
    return c


def session_client(app: FastAPI, username: str) -> Client:
    c = Client(app)
    c.sign_in_as(username)
    return c


def test_me_needs_a_user(app: FastAPI) -> None:
    r = Client(app).get("/api/me")
    assert r.status_code == 401 and "请先登录" in r.json()["detail"]


def test_me_with_a_token(app: FastAPI) -> None:
    r = token_client(app, "reporter_v0000").get("/api/me")
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "reporter_v0000" and body["role"] == "reporter"
    assert body["unit"] == {"code": "V0000", "name": body["unit"]["name"], "level": "village"}
    assert body["via_token"] is True and body["active"] is True
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert "password_hash" not in body


def test_me_with_a_session(app: FastAPI) -> None:
    body = session_client(app, "assessor_st01").get("/api/me").json()
    assert body["via_token"] is False and body["unit"]["level"] == "street"


def test_an_unknown_token_is_401(app: FastAPI) -> None:
    c = Client(app)
    c.token = "kh_not-a-real-token"
    assert c.get("/api/me").status_code == 401


def test_tokens_create_list_revoke(app: FastAPI) -> None:
    c = session_client(app, "reporter_v0000")
    r = c.post("/api/tokens", json={"name": "报表同步"})
    assert r.status_code == 201
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("kh_") and created["prefix"] == secret[:8]
    listed = c.get("/api/tokens").json()
    assert [t["name"] for t in listed] == ["报表同步"]
    assert "secret" not in listed[0] and listed[0]["revoked_at"] is None

    integration = Client(app)
    integration.token = secret
    assert integration.get("/api/me").status_code == 200
    assert integration.get("/api/tokens").json()[0]["last_used_at"] is not None

    assert c.delete(f"/api/tokens/{created['id']}").status_code == 204
    assert integration.get("/api/me").status_code == 401
    assert c.get("/api/tokens").json()[0]["revoked_at"] is not None


def test_a_token_cannot_mint_tokens(app: FastAPI) -> None:
    c = token_client(app, "reporter_v0000")
    r = c.post("/api/tokens", json={"name": "more"})
    assert r.status_code == 403
    assert len(c.get("/api/tokens").json()) == 1


def test_tokens_are_private(app: FastAPI) -> None:
    owner = session_client(app, "reporter_v0000")
    token_id = owner.post("/api/tokens", json={"name": "mine"}).json()["id"]
    other = token_client(app, "reporter_v0001")
    assert [t["name"] for t in other.get("/api/tokens").json()] == ["test"]
    assert other.delete(f"/api/tokens/{token_id}").status_code == 404
    assert owner.get("/api/tokens").json()[0]["revoked_at"] is None


def test_token_post_needs_csrf_with_a_session(app: FastAPI) -> None:
    c = session_client(app, "reporter_v0000")
    r = c.post("/api/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    assert c.get("/api/tokens").json() == []


def test_token_name_is_validated(app: FastAPI) -> None:
    c = session_client(app, "reporter_v0000")
    assert c.post("/api/tokens", json={"name": ""}).status_code == 422
    assert c.post("/api/tokens", json={"name": "   "}).status_code == 400


@pytest.mark.parametrize("username", ["assessor_t000", "reporter_v0000", "viewer"])
def test_users_api_is_for_administrators(app: FastAPI, username: str) -> None:
    c = token_client(app, username)
    assert c.get("/api/users").status_code == 403
    body = {"username": "sneaky", "password": "sneaky-pass-1", "role": "admin"}
    assert c.post("/api/users", json=body).status_code == 403
    assert c.post("/api/users/admin/disable").status_code == 403
    with transaction(app.state.sessions) as s:
        assert s.scalar(select(User).where(User.username == "sneaky")) is None
        assert user_by_name(s, "admin").active


def test_users_api_public_is_401(app: FastAPI) -> None:
    c = Client(app)
    assert c.get("/api/users").status_code == 401


def test_admin_lists_users(app: FastAPI) -> None:
    r = token_client(app, "admin").get("/api/users")
    assert r.status_code == 200
    users = {u["username"]: u for u in r.json()}
    assert set(users) == set(TEST_USERS)
    assert users["assessor_t001"]["unit"]["code"] == "T001"
    assert users["viewer"]["unit"] is None


def test_admin_adds_and_disables(app: FastAPI) -> None:
    admin = token_client(app, "admin")
    r = admin.post(
        "/api/users",
        json={
            "username": "zhao_c02",
            "password": "first-pass-12",
            "role": "reporter",
            "unit": "C02",
            "display_name": "赵敏",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["unit"]["code"] == "C02" and r.json()["display_name"] == "赵敏"
    new = token_client(app, "zhao_c02")
    assert new.get("/api/me").status_code == 200

    r = admin.post("/api/users/zhao_c02/disable")
    assert r.status_code == 200 and r.json()["active"] is False
    assert new.get("/api/me").status_code == 401
    r = admin.post("/api/users/zhao_c02/enable")
    assert r.status_code == 200 and r.json()["active"] is True
    assert new.get("/api/me").status_code == 401  # tokens stay revoked
    with transaction(app.state.sessions) as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.key == "zhao_c02")))
    assert actions == ["user.add", "user.disable", "user.enable"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"role": "reporter", "unit": "T000"}, 400, "village or community"),
        ({"role": "assessor"}, 400, "needs a unit"),
        ({"role": "viewer", "unit": "NOPE"}, 404, "NOPE"),
        ({"role": "viewer", "password": "short"}, 400, "at least 10"),
        ({"role": "viewer", "username": "admin"}, 400, "already exists"),
        ({"role": "viewer", "username": "bad name!"}, 400, "invalid username"),
        ({"role": "root"}, 422, ""),
    ],
)
def test_admin_add_refusals(app: FastAPI, body: dict[str, str], status: int, message: str) -> None:
    admin = token_client(app, "admin")
    payload = {"username": "new_user", "password": "first-pass-12", **body}
    r = admin.post("/api/users", json=payload)
    assert r.status_code == status, r.text
    assert message in str(r.json()["detail"])
    with transaction(app.state.sessions) as s:
        assert s.scalar(select(User).where(User.username == "new_user")) is None


def test_admin_cannot_disable_itself(app: FastAPI) -> None:
    admin = token_client(app, "admin")
    r = admin.post("/api/users/admin/disable")
    assert r.status_code == 400
    assert admin.get("/api/me").status_code == 200


def test_openapi_documents_the_models(app: FastAPI) -> None:
    spec = Client(app).get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/me", "/api/tokens", "/api/tokens/{token_id}", "/api/users"):
        assert path in paths, path
    assert "/api/users/{username}/disable" in paths
    schemas = spec["components"]["schemas"]
    assert {"MeOut", "TokenOut", "TokenCreated", "UserOut", "UserIn"} <= set(schemas)
    ok = paths["/api/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/MeOut")
    assert "/login" not in paths and "/account" not in paths  # pages stay out of the API docs
