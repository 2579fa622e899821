"""Browser tests of the results pages: charts drawn by the local ECharts, sorting."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser_harness import LiveServer, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_ranking_sorts_and_draws_the_heat_map(live_server: LiveServer, page: Page) -> None:
    sign_in(page.context, live_server, "assessor_t000")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto("/results/T000/2022T2")
    expect(page.locator("#heatmap canvas")).to_have_count(1)
    first = page.locator("#ranking tbody tr").first
    expect(first.locator("td").first).to_have_text("1")
    screenshot(page, "results-ranking")
    page.locator("#ranking th", has_text="名次").first.click()  # ascending
    page.locator("#ranking th", has_text="名次").first.click()  # descending
    expect(page.locator("#ranking tbody tr").first.locator("td").first).not_to_have_text("1")
    assert all(u.startswith(live_server.url) for u in requests), "no request leaves the app"


def test_unit_page_draws_the_trend(live_server: LiveServer, page: Page) -> None:
    sign_in(page.context, live_server, "reporter_v0000")
    page.goto("/results/T000/2022/V0000")
    expect(page.locator("#trend canvas")).to_have_count(1)
    expect(page.locator("#item-A1")).to_be_visible()
    screenshot(page, "results-unit")
