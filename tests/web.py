"""In-process HTTP client for the web tests: httpx's ASGI transport, sync API.

client = Client(app)
client.sign_in_as("reporter_v0000")        # a session made directly in the store
r = client.get("/data")
r = client.post("/data/V0000/2022T1", data={...})   # CSRF token added to forms
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from fastapi import FastAPI

from kaohe.auth.sessions import SESSION_COOKIE, create_session
from kaohe.auth.users import user_by_name
from kaohe.store.db import transaction

BASE = "http://testserver"


class Client:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.cookies = httpx.Cookies()
        self.csrf: str | None = None
        self.token: str | None = None  # API token: sent as Authorization: Bearer

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url=BASE, cookies=self.cookies
            ) as c:
                r = await c.request(method, url, **kwargs)
                self.cookies = c.cookies
                return r

        headers = dict(kwargs.pop("headers", None) or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if method.upper() in ("POST", "PUT", "PATCH", "DELETE") and not self.token:
            if self.csrf is None:
                self.refresh_csrf()
            if "data" in kwargs and isinstance(kwargs["data"], dict) and "files" not in kwargs:
                kwargs["data"] = {"csrf_token": self.csrf, **kwargs["data"]}
            else:
                headers.setdefault("X-CSRF-Token", self.csrf or "")
        kwargs["headers"] = headers
        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def refresh_csrf(self) -> str:
        """Read the CSRF token from a page's <meta name="csrf-token">."""
        page = asyncio.run(self._get_plain("/"))
        m = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
        assert m, "no csrf-token meta on the home page"
        self.csrf = m.group(1)
        return self.csrf

    async def _get_plain(self, url: str) -> str:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=BASE, cookies=self.cookies
        ) as c:
            r = await c.get(url)
            self.cookies = c.cookies
            return r.text

    def sign_in_as(self, username: str) -> None:
        """Start a session for ``username`` directly in the store (no login form)."""
        with transaction(self.app.state.sessions) as s:
            token, row = create_session(s, user_by_name(s, username))
            self.csrf = row.csrf_token
        self.cookies.set(SESSION_COOKIE, token, domain="testserver.local")
