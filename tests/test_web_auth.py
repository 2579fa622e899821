"""Signing in and out through the pages: cookie flags, CSRF, local redirects only,
throttling, rehash, disabled users; the account page (password, language, API
tokens) and the administrator's user management."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import func, select, update

from kaohe.auth.login import MAX_ADDRESS_FAILURES, MAX_USER_FAILURES
from kaohe.auth.passwords import verify_password
from kaohe.auth.sessions import SESSION_COOKIE, create_api_token
from kaohe.auth.users import user_by_name
from kaohe.store.db import transaction
from kaohe.store.models import ApiToken, AuditEntry, LoginAttempt, User, UserSession
from kaohe.web.app import create_app
from tests.conftest import TEST_USERS
from tests.web import Client

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@pytest.fixture
def app(db_url: str) -> FastAPI:
    return create_app(db_url)


@pytest.fixture
def client(app: FastAPI) -> Client:
    return Client(app)


def login(
    app: FastAPI,
    username: str,
    password: str,
    *,
    ip: str = "127.0.0.1",
    base: str = "http://testserver",
    next: str | None = None,
    csrf: bool = True,
) -> httpx.Response:
    """A browser's sign-in from ``ip``: GET /login (pre-session cookie), then POST the form."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=base) as c:
            page = await c.get("/login")
            m = CSRF_META.search(page.text)
            assert m
            data = {"username": username, "password": password}
            if csrf:
                data["csrf_token"] = m.group(1)
            if next is not None:
                data["next"] = next
            return await c.post("/login", data=data)

    return asyncio.run(go())


def session_cookie(r: httpx.Response) -> str | None:
    for header in r.headers.get_list("set-cookie"):
        if header.startswith(f"{SESSION_COOKIE}="):
            return header
    return None


def attempts(app: FastAPI, **where: object) -> list[LoginAttempt]:
    with transaction(app.state.sessions) as s:
        stmt = select(LoginAttempt).order_by(LoginAttempt.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(LoginAttempt, k) == v)
        return list(s.scalars(stmt))


def audit_actions(app: FastAPI, key: str) -> list[str]:
    with transaction(app.state.sessions) as s:
        return list(
            s.scalars(
                select(AuditEntry.action).where(AuditEntry.key == key).order_by(AuditEntry.id)
            )
        )


def client_with_cookie(app: FastAPI, cookie_header: str) -> Client:
    c = Client(app)
    value = cookie_header.split(";", 1)[0].split("=", 1)[1]
    c.cookies.set(SESSION_COOKIE, value, domain="testserver.local")
    return c


def raw_post(client: Client, path: str, data: dict[str, str]) -> httpx.Response:
    """POST a form with the client's cookies and nothing added (no automatic CSRF)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=client.cookies
        ) as c:
            return await c.post(path, data=data)

    return asyncio.run(go())


# --- login page and signing in ------------------------------------------------------


def test_login_page_is_chinese_with_csrf(client: Client) -> None:
    r = client.get("/login?next=/account")
    assert r.status_code == 200
    assert 'lang="zh-CN"' in r.text and "用户名" in r.text and "密码" in r.text
    assert 'name="csrf_token"' in r.text
    assert 'name="next" value="/account"' in r.text


def test_login_page_in_english(client: Client) -> None:
    client.get("/lang/en")
    r = client.get("/login")
    assert "Username" in r.text and "Password" in r.text and "用户名" not in r.text


def test_pages_redirect_the_public_to_login(client: Client) -> None:
    for path in ("/account", "/admin/users"):
        r = client.get(path)
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next={path}"


def test_sign_in_sets_a_safe_session_cookie_and_redirects_to_next(app: FastAPI) -> None:
    r = login(app, "reporter_v0000", "report-pass-1", next="/account")
    assert r.status_code == 303 and r.headers["location"] == "/account"
    cookie = session_cookie(r)
    assert cookie is not None
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # plain HTTP here
    c = client_with_cookie(app, cookie)
    page = c.get("/account")
    assert page.status_code == 200 and "reporter_v0000" in page.text
    assert c.get("/api/me").json()["username"] == "reporter_v0000"
    ok = attempts(app, username="reporter_v0000")
    assert [a.ok for a in ok] == [True] and ok[0].ip == "127.0.0.1"


def test_session_cookie_is_secure_over_https(app: FastAPI) -> None:
    r = login(app, "reporter_v0000", "report-pass-1", base="https://testserver")
    assert r.status_code == 303
    cookie = session_cookie(r)
    assert cookie is not None and "secure" in cookie.lower()


def test_pre_session_csrf_cookie_flags(app: FastAPI) -> None:
    for base, secure in (("http://testserver", False), ("https://testserver", True)):

        async def go(base: str = base) -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base) as c:
                return await c.get("/login")

        r = asyncio.run(go())
        cookies = [h.lower() for h in r.headers.get_list("set-cookie")]
        csrf = [h for h in cookies if h.startswith("kaohe_csrf=")]
        assert len(csrf) == 1
        assert "httponly" in csrf[0] and "samesite=lax" in csrf[0]
        assert ("secure" in csrf[0]) is secure


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", ""],
)
def test_sign_in_never_redirects_off_site(app: FastAPI, target: str) -> None:
    r = login(app, "viewer", "viewer-pass-1", next=target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_wrong_password_is_refused_and_recorded(app: FastAPI) -> None:
    r = login(app, "reporter_v0000", "wrong-pass-1")
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text
    assert session_cookie(r) is None
    assert [a.ok for a in attempts(app, username="reporter_v0000")] == [False]


def test_unknown_user_gets_the_same_answer(app: FastAPI) -> None:
    r = login(app, "nobody", "whatever-1")
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    assert len(attempts(app, username="nobody")) == 1


def test_sign_in_without_csrf_token_is_refused(app: FastAPI) -> None:
    r = login(app, "reporter_v0000", "report-pass-1", csrf=False)
    assert r.status_code == 403
    assert session_cookie(r) is None
    assert attempts(app) == []


def test_throttling_by_username(app: FastAPI) -> None:
    for _ in range(MAX_USER_FAILURES):
        assert login(app, "reporter_v0000", "wrong-pass-1").status_code == 401
    # now even the right password is refused, without being checked
    r = login(app, "reporter_v0000", "report-pass-1")
    assert r.status_code == 429
    assert "登录失败次数过多" in r.text and "15 分钟" in r.text
    assert session_cookie(r) is None
    rows = attempts(app, username="reporter_v0000")
    assert len(rows) == MAX_USER_FAILURES + 1 and not any(a.ok for a in rows)
    # another user from the same address is not affected
    assert login(app, "reporter_v0001", "report-pass-2").status_code == 303
    # another address is refused too: the limit is per username
    assert login(app, "reporter_v0000", "report-pass-1", ip="10.1.1.1").status_code == 429


def test_throttling_ends_after_the_window(app: FastAPI) -> None:
    for _ in range(MAX_USER_FAILURES):
        login(app, "reporter_v0000", "wrong-pass-1")
    assert login(app, "reporter_v0000", "report-pass-1").status_code == 429
    with transaction(app.state.sessions) as s:
        s.execute(update(LoginAttempt).values(at=LoginAttempt.at - dt.timedelta(minutes=16)))
    assert login(app, "reporter_v0000", "report-pass-1").status_code == 303


def test_success_resets_the_username_count(app: FastAPI) -> None:
    for _ in range(MAX_USER_FAILURES - 1):
        login(app, "reporter_v0000", "wrong-pass-1")
    assert login(app, "reporter_v0000", "report-pass-1").status_code == 303
    for _ in range(MAX_USER_FAILURES - 1):
        login(app, "reporter_v0000", "wrong-pass-1")
    assert login(app, "reporter_v0000", "report-pass-1").status_code == 303


def test_throttling_by_client_address(app: FastAPI) -> None:
    for i in range(MAX_ADDRESS_FAILURES):
        assert login(app, f"guess{i}", "wrong-pass-1", ip="10.9.9.9").status_code == 401
    r = login(app, "viewer", "viewer-pass-1", ip="10.9.9.9")
    assert r.status_code == 429 and "登录失败次数过多" in r.text
    # the same user from another address signs in
    assert login(app, "viewer", "viewer-pass-1", ip="10.9.9.10").status_code == 303


def test_password_is_rehashed_when_parameters_change(app: FastAPI) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    with transaction(app.state.sessions) as s:
        user_by_name(s, "viewer").password_hash = weak.hash("viewer-pass-1")
    assert login(app, "viewer", "viewer-pass-1").status_code == 303
    with transaction(app.state.sessions) as s:
        stored = user_by_name(s, "viewer").password_hash
    assert "t=1," not in stored and "m=8192" not in stored
    assert verify_password(stored, "viewer-pass-1")


def test_disabled_user_cannot_sign_in_and_loses_sessions_and_tokens(app: FastAPI) -> None:
    browser = Client(app)
    browser.sign_in_as("reporter_v0000")
    assert browser.get("/account").status_code == 200
    with transaction(app.state.sessions) as s:
        secret, _ = create_api_token(s, user_by_name(s, "reporter_v0000"), "sync")
    integration = Client(app)
    integration.token = secret
    assert integration.get("/api/me").status_code == 200

    admin = Client(app)
    admin.sign_in_as("admin")
    assert admin.post("/admin/users/reporter_v0000/disable", data={}).status_code == 200

    assert browser.get("/account").status_code == 303  # to the login page
    assert integration.get("/api/me").status_code == 401
    r = login(app, "reporter_v0000", "report-pass-1")
    assert r.status_code == 401 and session_cookie(r) is None
    with transaction(app.state.sessions) as s:
        user = user_by_name(s, "reporter_v0000")
        assert not user.active
        assert s.scalar(select(func.count()).where(UserSession.user_id == user.id)) == 0
        assert all(t.revoked_at is not None for t in s.scalars(select(ApiToken)))


# --- signing out ---------------------------------------------------------------------


def test_logout_needs_the_csrf_token(client: Client, app: FastAPI) -> None:
    client.sign_in_as("reporter_v0000")
    assert raw_post(client, "/logout", {}).status_code == 403
    assert raw_post(client, "/logout", {"csrf_token": "wrong"}).status_code == 403
    r = client.request("POST", "/logout", headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    assert client.get("/account").status_code == 200  # still signed in


def test_logout_ends_the_session(client: Client, app: FastAPI) -> None:
    client.sign_in_as("reporter_v0000")
    r = client.post("/logout", data={})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert any(
        h.startswith(f"{SESSION_COOKIE}=") and "max-age=0" in h.lower()
        for h in r.headers.get_list("set-cookie")
    )
    with transaction(app.state.sessions) as s:
        assert s.scalar(select(func.count()).select_from(UserSession)) == 0


def test_logout_ends_the_session_server_side_even_if_the_cookie_is_kept(app: FastAPI) -> None:
    r = login(app, "reporter_v0000", "report-pass-1")
    cookie = session_cookie(r)
    assert cookie
    c = client_with_cookie(app, cookie)
    c.refresh_csrf()
    stolen = c.cookies.get(SESSION_COOKIE)
    assert c.post("/logout", data={}).status_code == 303
    replay = Client(app)
    replay.cookies.set(SESSION_COOKIE, stolen or "", domain="testserver.local")
    assert replay.get("/account").status_code == 303


# --- the account page ------------------------------------------------------------------


def test_account_page_shows_profile(client: Client) -> None:
    client.sign_in_as("reporter_v0000")
    r = client.get("/account")
    assert r.status_code == 200
    assert "村（社区）填报员" in r.text and "V0000" in r.text
    assert 'action="/account/password"' in r.text and 'action="/account/tokens"' in r.text


def test_account_forms_refuse_missing_or_wrong_csrf(client: Client, app: FastAPI) -> None:
    client.sign_in_as("reporter_v0000")
    forms = {
        "/account/password": {
            "old_password": "report-pass-1",
            "new_password": "new-pass-123",
            "new_password2": "new-pass-123",
        },
        "/account/language": {"language": "en"},
        "/account/tokens": {"name": "evil"},
    }
    for path, data in forms.items():
        for token in (None, "wrong-token"):
            body = dict(data)
            if token is not None:
                body["csrf_token"] = token
            assert raw_post(client, path, body).status_code == 403, (path, token)
    with transaction(app.state.sessions) as s:
        user = user_by_name(s, "reporter_v0000")
        assert verify_password(user.password_hash, "report-pass-1")
        assert user.language == "zh"
        assert s.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_password_change_ends_other_sessions(client: Client, app: FastAPI) -> None:
    other = Client(app)
    other.sign_in_as("reporter_v0000")
    client.sign_in_as("reporter_v0000")
    r = client.post(
        "/account/password",
        data={
            "old_password": "report-pass-1",
            "new_password": "brand-new-pass-7",
            "new_password2": "brand-new-pass-7",
        },
    )
    assert r.status_code == 200 and "密码已修改" in r.text
    assert client.get("/account").status_code == 200  # this session goes on
    assert other.get("/account").status_code == 303  # the other one ended
    assert login(app, "reporter_v0000", "report-pass-1").status_code == 401
    assert login(app, "reporter_v0000", "brand-new-pass-7").status_code == 303
    assert audit_actions(app, "reporter_v0000") == ["user.add", "user.passwd"]


@pytest.mark.parametrize(
    ("old", "new", "new2", "message"),
    [
        ("wrong-pass-1", "brand-new-pass-7", "brand-new-pass-7", "原密码不正确"),
        ("report-pass-1", "brand-new-pass-7", "brand-new-pass-8", "两次输入的新密码不一致"),
        ("report-pass-1", "short1", "short1", "密码至少 10 个字符"),
        ("report-pass-1", "onlyletterspassword", "onlyletterspassword", "字母和数字"),
    ],
)
def test_password_change_refusals(
    client: Client, app: FastAPI, old: str, new: str, new2: str, message: str
) -> None:
    other = Client(app)
    other.sign_in_as("reporter_v0000")
    client.sign_in_as("reporter_v0000")
    r = client.post(
        "/account/password",
        data={"old_password": old, "new_password": new, "new_password2": new2},
    )
    assert r.status_code == 400 and message in r.text
    assert other.get("/account").status_code == 200
    with transaction(app.state.sessions) as s:
        assert verify_password(user_by_name(s, "reporter_v0000").password_hash, "report-pass-1")
    assert audit_actions(app, "reporter_v0000") == ["user.add"]


def test_language_preference(client: Client, app: FastAPI) -> None:
    client.sign_in_as("viewer")
    r = client.post("/account/language", data={"language": "en"})
    assert r.status_code == 303
    assert client.cookies.get("lang") == "en"
    assert "My account" in client.get("/account").text
    with transaction(app.state.sessions) as s:
        assert user_by_name(s, "viewer").language == "en"
    # the preference follows the user to a browser without the cookie
    fresh = Client(app)
    fresh.sign_in_as("viewer")
    assert 'lang="en"' in fresh.get("/account").text
    assert client.post("/account/language", data={"language": "fr"}).status_code == 400


def test_api_tokens_from_the_account_page(client: Client, app: FastAPI) -> None:
    client.sign_in_as("reporter_v0000")
    r = client.post("/account/tokens", data={"name": "村级台账同步"})
    assert r.status_code == 200
    m = re.search(r'<code class="secret">(kh_[^<]+)</code>', r.text)
    assert m, "the new secret is shown once"
    secret = m.group(1)
    page = client.get("/account")
    assert secret not in page.text and "村级台账同步" in page.text and secret[:8] in page.text

    integration = Client(app)
    integration.token = secret
    assert integration.get("/api/me").json()["username"] == "reporter_v0000"

    with transaction(app.state.sessions) as s:
        token_id = s.scalar(select(ApiToken.id))
        assert s.scalar(select(ApiToken.token_hash)) != secret  # only a digest is stored
    # someone else cannot revoke it
    stranger = Client(app)
    stranger.sign_in_as("reporter_v0001")
    assert stranger.post(f"/account/tokens/{token_id}/revoke", data={}).status_code == 404
    assert integration.get("/api/me").status_code == 200

    r = client.post(f"/account/tokens/{token_id}/revoke", data={})
    assert r.status_code == 200 and "令牌已撤销" in r.text
    assert integration.get("/api/me").status_code == 401
    assert audit_actions(app, "reporter_v0000") == ["user.add", "token.create", "token.revoke"]


def test_token_needs_a_name(client: Client) -> None:
    client.sign_in_as("reporter_v0000")
    r = client.post("/account/tokens", data={"name": "  "})
    assert r.status_code == 400 and "令牌名称" in r.text


# --- user management ----------------------------------------------------------------


@pytest.mark.parametrize("username", ["assessor_t000", "reporter_v0000", "viewer"])
def test_user_management_is_for_administrators_only(
    client: Client, app: FastAPI, username: str
) -> None:
    client.sign_in_as(username)
    assert client.get("/admin/users").status_code == 403
    r = client.post(
        "/admin/users",
        data={"username": "sneaky", "role": "admin", "password": "sneaky-pass-1"},
    )
    assert r.status_code == 403
    assert client.post("/admin/users/admin/disable", data={}).status_code == 403
    assert (
        client.post("/admin/users/admin/password", data={"password": "taken-over-1"}).status_code
        == 403
    )
    with transaction(app.state.sessions) as s:
        assert s.scalar(select(User).where(User.username == "sneaky")) is None
        admin = user_by_name(s, "admin")
        assert admin.active and verify_password(admin.password_hash, "admin-pass-1")


def test_admin_lists_users(client: Client) -> None:
    client.sign_in_as("admin")
    r = client.get("/admin/users")
    assert r.status_code == 200
    for name in TEST_USERS:
        assert name in r.text
    assert "城关镇 (T000)" in r.text and "村（社区）填报员" in r.text


def test_admin_adds_a_reporter(client: Client, app: FastAPI) -> None:
    client.sign_in_as("admin")
    r = client.post(
        "/admin/users",
        data={
            "username": "wang_v0002",
            "display_name": "王芳",
            "role": "reporter",
            "unit": "V0002",
            "password": "first-pass-12",
        },
    )
    assert r.status_code == 200 and "已添加用户 wang_v0002" in r.text
    assert login(app, "wang_v0002", "first-pass-12").status_code == 303
    with transaction(app.state.sessions) as s:
        user = user_by_name(s, "wang_v0002")
        assert user.role == "reporter" and user.unit is not None and user.unit.code == "V0002"
        entry = s.scalar(select(AuditEntry).where(AuditEntry.key == "wang_v0002"))
        assert entry is not None and entry.action == "user.add"
        assert entry.user_id == user_by_name(s, "admin").id


@pytest.mark.parametrize(
    ("role", "unit", "message"),
    [
        ("reporter", "", "须指定所属单位"),
        ("reporter", "T000", "须属于 village/community"),
        ("assessor", "V0000", "须属于 township/street"),
        ("assessor", "NOPE", "NOPE"),
        ("root", "", "未知角色"),
    ],
)
def test_admin_add_refusals(
    client: Client, app: FastAPI, role: str, unit: str, message: str
) -> None:
    client.sign_in_as("admin")
    r = client.post(
        "/admin/users",
        data={"username": "new_user", "role": role, "unit": unit, "password": "first-pass-12"},
    )
    assert r.status_code in (400, 404) and message in r.text
    assert 'value="new_user"' in r.text or r.status_code == 404  # the form keeps its values
    with transaction(app.state.sessions) as s:
        assert s.scalar(select(User).where(User.username == "new_user")) is None


def test_admin_add_refuses_weak_password_and_duplicates(client: Client) -> None:
    client.sign_in_as("admin")
    r = client.post(
        "/admin/users", data={"username": "x_user", "role": "viewer", "password": "123456"}
    )
    assert r.status_code == 400 and "密码至少" in r.text
    r = client.post(
        "/admin/users", data={"username": "viewer", "role": "viewer", "password": "first-pass-12"}
    )
    assert r.status_code == 400 and "已存在" in r.text


def test_admin_disables_and_enables(client: Client, app: FastAPI) -> None:
    client.sign_in_as("admin")
    r = client.post("/admin/users/reporter_v0001/disable", data={})
    assert r.status_code == 200 and "已停用用户 reporter_v0001" in r.text
    assert login(app, "reporter_v0001", "report-pass-2").status_code == 401
    r = client.post("/admin/users/reporter_v0001/enable", data={})
    assert r.status_code == 200
    assert login(app, "reporter_v0001", "report-pass-2").status_code == 303
    assert audit_actions(app, "reporter_v0001") == ["user.add", "user.disable", "user.enable"]


def test_admin_cannot_disable_itself(client: Client, app: FastAPI) -> None:
    client.sign_in_as("admin")
    r = client.post("/admin/users/admin/disable", data={})
    assert r.status_code == 400 and "不能停用自己的账户" in r.text
    with transaction(app.state.sessions) as s:
        assert user_by_name(s, "admin").active


def test_admin_resets_a_password(client: Client, app: FastAPI) -> None:
    victim = Client(app)
    victim.sign_in_as("reporter_v0010")
    client.sign_in_as("admin")
    r = client.post("/admin/users/reporter_v0010/password", data={"password": ""})
    assert r.status_code == 200
    m = re.search(r'<code class="secret">([^<]+)</code>', r.text)
    assert m
    new = m.group(1)
    assert victim.get("/account").status_code == 303  # sessions ended
    assert login(app, "reporter_v0010", "report-pass-3").status_code == 401
    assert login(app, "reporter_v0010", new).status_code == 303
    r = client.post("/admin/users/reporter_v0010/password", data={"password": "typed-pass-99"})
    assert r.status_code == 200 and "typed-pass-99" not in r.text
    assert login(app, "reporter_v0010", "typed-pass-99").status_code == 303
    assert audit_actions(app, "reporter_v0010").count("user.passwd") == 2


def test_unknown_user_is_404(client: Client) -> None:
    client.sign_in_as("admin")
    assert client.post("/admin/users/ghost/disable", data={}).status_code == 404


def test_every_auth_template_string_has_an_english_entry() -> None:
    import json
    from pathlib import Path

    web = Path(__file__).parents[1] / "src" / "kaohe" / "web"
    catalog: dict[str, str] = {}
    for path in (web / "locales").glob("*.json"):
        catalog.update(json.loads(path.read_text(encoding="utf-8")))
    strings: set[str] = set()
    for path in (web / "templates" / "auth").glob("*.html"):
        strings |= set(re.findall(r"""_\(\s*["']([^"']+)["']""", path.read_text(encoding="utf-8")))
    routes = (web / "routes_auth.py").read_text(encoding="utf-8")
    strings |= set(re.findall(r'message="([^"]+)"', routes))
    assert len(strings) > 40
    missing = sorted(s for s in strings if s not in catalog)
    assert not missing, missing


def test_account_and_users_pages_in_english(client: Client) -> None:
    client.sign_in_as("admin")
    client.get("/lang/en")
    page = client.get("/account").text
    assert "My account" in page and "Change password" in page and "Personal API tokens" in page
    page = client.get("/admin/users").text
    assert "Add a user" in page and "County administrator" in page
    assert not re.search(
        r"[\u4e00-\u9fff]{2,}",
        re.sub(r"<option.*?</option>|<td>.*?</td>", "", page, flags=re.S)
        .split("<main>")[1]
        .split("</main>")[0],
    )


def test_auth_catalog_agrees_with_the_other_catalogs() -> None:
    """The catalogs are merged into one: a Chinese string translated differently in
    another area's file would silently change the auth pages (or theirs)."""
    import json
    from pathlib import Path

    locales = Path(__file__).parents[1] / "src" / "kaohe" / "web" / "locales"
    auth = json.loads((locales / "auth.json").read_text(encoding="utf-8"))
    clashes = []
    for path in locales.glob("*.json"):
        if path.name == "auth.json":
            continue
        other = json.loads(path.read_text(encoding="utf-8"))
        clashes += [(path.name, k) for k in auth if k in other and other[k] != auth[k]]
    assert not clashes, clashes
