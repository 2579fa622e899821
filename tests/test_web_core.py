"""The web skeleton: pages render in Chinese first, English on request, CSRF on
every unsafe request, the public sees no data-entry links."""

from __future__ import annotations

import pytest

from kaohe.web.app import create_app
from tests.web import Client


@pytest.fixture
def client(db_url: str) -> Client:
    return Client(create_app(db_url))


def test_home_is_chinese_and_lists_groups(client: Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert 'lang="zh-CN"' in r.text
    for name in ("城关镇", "金寨镇", "城关街道"):
        assert name in r.text
    assert "/data" not in r.text  # the public gets no data-entry link


def test_language_switch_sets_cookie(client: Client) -> None:
    r = client.get("/lang/en?next=/")
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert client.cookies.get("lang") == "en"
    assert 'lang="en"' in client.get("/").text


def test_language_switch_never_redirects_off_site(client: Client) -> None:
    r = client.get("/lang/en?next=//evil.example/")
    assert r.headers["location"] == "/"


def test_security_headers(client: Client) -> None:
    r = client.get("/")
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_echarts_and_htmx_are_served_locally(client: Client) -> None:
    for path in ("/static/vendor/echarts-5.6.0.min.js", "/static/vendor/htmx-2.0.11.min.js"):
        r = client.get(path)
        assert r.status_code == 200 and len(r.content) > 10_000
