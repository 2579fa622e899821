"""Browser-test harness: the real app served over HTTP, driven by Playwright in
Debian's chromium (``/usr/bin/chromium``, installed by ``make test``; never a
browser download).  Loaded for every test by ``pytest_plugins`` in conftest.py.

Fixtures
--------
``live_server``
    The app served by uvicorn in a background thread on a free loopback port,
    over a fresh copy of the seeded test database (``db_url``: the demo county
    and the users of ``conftest.TEST_USERS``; PostgreSQL under ``make test-pg``).
    ``live_server.url`` is the base URL, ``live_server.session()`` a
    transaction on its database (to arrange or check data directly).
``browser``
    A headless chromium, launched for the test and closed after it.
``context``
    A fresh browser context (cookies, zh-CN locale, 1280×900 viewport) whose
    ``base_url`` is the live server, so ``page.goto("/data")`` works.
``page``
    A page in that context.  Every test gets its own server, context and page.

Helpers
-------
``log_in(page, username)``
    Signs in through the login form with the ``TEST_USERS`` password and
    waits for the page after it; fails if the login page answers again.
``sign_in(context, live_server, username)``
    Sets a session cookie made directly in the store (no form; faster).
``screenshot(page, name)``
    Saves a full-page PNG ``<name>.png``: into ``docs/screenshots/`` when
    ``KAOHE_SCREENSHOTS`` is set (``make screenshots`` sets it), else into a
    temporary folder, so ordinary test runs leave the tree unchanged.

Example::

    from playwright.sync_api import Page, expect
    from tests.browser_harness import LiveServer, log_in, screenshot

    def test_reporter_enters_data(live_server: LiveServer, page: Page) -> None:
        log_in(page, "reporter_v0000")
        page.goto("/data")
        expect(page.locator("h1")).to_contain_text("数据填报")
        screenshot(page, "data-entry")

Tips: use ``expect(...)`` (it waits) rather than reading the DOM at once;
``page.on("dialog", lambda d: d.accept())`` before clicking a button with a
confirm(); the server runs in this process, so a failing route's traceback is
printed in the test's captured output.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("KAOHE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[1] / "docs" / "screenshots"
#: how long expect()/clicks wait before failing (ms): the machine may be busy
TIMEOUT_MS = 15_000


class LiveServer:
    """The app served by uvicorn in a thread of this process."""

    def __init__(self, db_url: str) -> None:
        import uvicorn

        from kaohe.web.app import create_app

        self.db_url = db_url
        self.app = create_app(db_url)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def session(self) -> AbstractContextManager[Any]:
        """A transaction on the server's database (committed on leaving the block)."""
        from kaohe.store.db import transaction

        return transaction(self.app.state.sessions)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.app.state.engine.dispose()


@pytest.fixture
def live_server(db_url: str) -> Iterator[LiveServer]:
    server = LiveServer(db_url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    # Per test, not per session: Playwright's sync API marks its event loop as the
    # thread's running loop, which would break asyncio.run() (tests/web.py Client)
    # in the other tests of the same process.  A launch costs about half a second.
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no chromium at {CHROMIUM}: `make test` installs Debian's chromium "
            "(apt-get install chromium); or set KAOHE_CHROMIUM"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    ctx = browser.new_context(
        base_url=live_server.url, locale="zh-CN", viewport={"width": 1280, "height": 900}
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    p = context.new_page()
    yield p
    p.close()


def log_in(page: Any, username: str, password: str | None = None) -> None:
    """Sign in through the login form (password from ``TEST_USERS`` by default)."""
    from playwright.sync_api import expect

    from tests.conftest import TEST_USERS

    if password is None:
        password = TEST_USERS[username][0]
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.locator("form.login button, form.login [type=submit]").first.click()
    expect(page.locator("header .who")).to_be_visible()
    assert "/login" not in page.url, f"still on the login page after signing in as {username}"


def sign_in(context: Any, server: LiveServer, username: str) -> None:
    """A session made directly in the store, set as the browser's cookie."""
    from kaohe.auth.sessions import SESSION_COOKIE, create_session
    from kaohe.auth.users import user_by_name

    with server.session() as s:
        token, _ = create_session(s, user_by_name(s, username))
    context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": server.url}])


def screenshot(page: Any, name: str) -> Path:
    """A full-page PNG of ``page`` named ``<name>.png`` (see the module docstring)."""
    target = os.environ.get("KAOHE_SCREENSHOTS")
    folder = (
        (SCREENSHOTS if target in ("1", "yes", "true") else Path(target))
        if target
        else Path(tempfile.gettempdir()) / "kaohe-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_page(browser: Any, server: LiveServer) -> Any:
    """A page in a new, signed-out context of its own (a second user working side by
    side with ``page``; closed with the browser)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    ctx = browser.new_context(
        base_url=server.url, locale="zh-CN", viewport={"width": 1280, "height": 900}
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    return ctx.new_page()


def screenshot_top(page: Any, name: str, height: int = 900) -> Path:
    """Like :func:`screenshot`, but only the top ``height`` pixels of the page (for
    long pages shown in the README)."""
    target = os.environ.get("KAOHE_SCREENSHOTS")
    folder = (
        (SCREENSHOTS if target in ("1", "yes", "true") else Path(target))
        if target
        else Path(tempfile.gettempdir()) / "kaohe-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    width = page.viewport_size["width"] if page.viewport_size else 1280
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
    )
    return path
