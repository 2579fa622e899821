"""Browser tests (Playwright in Debian's chromium, see tests/browser_harness.py):
signing in as each role, the home page, switching the language, screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser_harness import LiveServer, log_in, screenshot, sign_in
from tests.conftest import TEST_USERS

pytestmark = pytest.mark.browser

ROLE_LABELS = {
    "admin": "县级管理员",
    "assessor": "乡镇（街道）考核员",
    "reporter": "村（社区）填报员",
    "viewer": "查看者",
}


@pytest.mark.parametrize("username", ["admin", "assessor_t000", "reporter_v0000", "viewer"])
def test_each_role_logs_in_and_sees_the_home_page(
    live_server: LiveServer, page: Page, username: str
) -> None:
    role = TEST_USERS[username][1]
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("header")).to_contain_text("登录")
    log_in(page, username)
    assert page.url.rstrip("/") == live_server.url
    who = page.locator("header .who")
    expect(who).to_contain_text(username)
    expect(who).to_contain_text(ROLE_LABELS[role])
    expect(page.locator("h1")).to_have_text("目标管理责任制考核")
    # the groups of the demo county are listed
    expect(page.locator("table.grid")).to_contain_text("城关镇")
    expect(page.locator("table.grid")).to_contain_text("城关街道")
    # only admins see user management; only the public sees the public links
    admin_link = page.locator("header nav a[href='/admin/users']")
    expect(admin_link).to_have_count(1 if role == "admin" else 0)
    expect(page.locator("header nav a[href='/points']")).to_have_count(0)


def test_a_wrong_password_stays_on_the_login_page(live_server: LiveServer, page: Page) -> None:
    page.goto("/login")
    page.fill("#username", "admin")
    page.fill("#password", "not-the-password-1")
    page.locator("form.login button").click()
    expect(page.locator("p.error")).to_contain_text("用户名或密码错误")
    expect(page.locator("header .who")).to_have_count(0)


def test_signing_out_returns_to_the_public(live_server: LiveServer, page: Page) -> None:
    log_in(page, "reporter_c01")
    page.locator("header form[action='/logout'] button").click()
    expect(page.locator("header a[href='/login']")).to_be_visible()
    expect(page.locator("header .who")).to_have_count(0)


def test_switching_language_and_back(live_server: LiveServer, page: Page, context) -> None:  # type: ignore[no-untyped-def]
    sign_in(context, live_server, "assessor_st01")
    page.goto("/")
    expect(page.locator("header .who")).to_contain_text("assessor_st01")
    page.locator("header a", has_text="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("header form[action='/logout'] button")).to_have_text("Sign out")
    assert page.url.rstrip("/") == live_server.url  # back on the page it came from
    # the choice is remembered (cookie) on the next page load
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.locator("header a", has_text="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("header form[action='/logout'] button")).to_have_text("退出")


def test_screenshot_of_the_home_page(live_server: LiveServer, page: Page) -> None:
    log_in(page, "admin")
    expect(page.locator("table.grid")).to_contain_text("城关镇")
    path = screenshot(page, "home")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    assert width == 1280 and len(data) > 10_000
