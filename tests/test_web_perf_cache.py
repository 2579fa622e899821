"""The results pages are served from a cache of rendered pages: every change that a
page shows (data, publication, user role, sign-out, another process's writes, the
appeal window closing) must show on the very next request, and cached pages must
never carry another session's CSRF token or another user's rights."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import pytest
from sqlalchemy import select, update

from kaohe.store.db import transaction
from kaohe.store.models import DataValue, Publication, User
from kaohe.web import routes_results
from kaohe.web.app import create_app
from kaohe.workflow.publish import change_stamp, group_by_code
from kaohe.workflow.scoring import score_group
from kaohe.workflow.units import unit_by_code
from tests.test_workflow_publish import change_value
from tests.web import Client


@pytest.fixture
def app(db_url: str):  # type: ignore[no-untyped-def]
    return create_app(db_url)


def client(app, user: str | None = None) -> Client:  # type: ignore[no-untyped-def]
    c = Client(app)
    if user:
        c.sign_in_as(user)
    return c


def total_cell(html: str, unit: str) -> str:
    m = re.search(
        rf'<tr class="band-[a-d]" data-unit="{unit}">.*?</td>.*?</td>'
        r'<td data-value="([^"]+)" class="num">',
        html,
        re.S,
    )
    assert m, f"no ranking row for {unit}"
    return m.group(1)


def live_total(app, unit: str, period: str = "2022") -> float:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        t = score_group(s, group_by_code(s, "T000"), period).table
        return float(t.filter(t["unit"] == unit)["total"][0])


def csrf_of(html: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert m
    return m.group(1)


def test_ranking_page_is_served_again_from_the_cache(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    first = c.get("/results/T000/2022")
    assert first.status_code == 200
    n = len(routes_results._PAGES)
    assert n >= 1
    second = c.get("/results/T000/2022")
    assert second.status_code == 200 and second.text == first.text
    assert len(routes_results._PAGES) == n  # a hit, not a new entry


def test_a_data_change_in_this_process_shows_on_the_next_request(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    before = c.get("/results/T000/2022").text
    unit_before = c.get("/results/T000/2022/V0000").text
    with transaction(app.state.sessions) as s:
        change_value(s, "V0000", "2022", "org_score", 0.0)
    after = c.get("/results/T000/2022").text
    assert total_cell(after, "V0000") != total_cell(before, "V0000")
    assert float(total_cell(after, "V0000")) == pytest.approx(live_total(app, "V0000"), abs=0.006)
    unit_after = c.get("/results/T000/2022/V0000").text
    assert unit_after != unit_before


def test_a_write_by_another_process_shows_on_the_next_request(app, db_url: str) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    before = c.get("/results/T000/2022").text
    # another process (as another server worker or a CLI import would): no write hook
    # of this process sees it, only the database does
    script = (
        "import sqlalchemy, sys\n"
        "e = sqlalchemy.create_engine(sys.argv[1])\n"
        "with e.begin() as c:\n"
        "    c.execute(sqlalchemy.text(\"UPDATE data_value SET value = 0 WHERE period = '2022' "
        "AND variable = 'org_score' AND unit_id = (SELECT id FROM org_unit WHERE code = 'V0000')\"))\n"
    )
    url = app.state.engine.url.render_as_string(hide_password=False)
    subprocess.run([sys.executable, "-c", script, url], check=True)
    after = c.get("/results/T000/2022").text
    assert total_cell(after, "V0000") != total_cell(before, "V0000")
    assert float(total_cell(after, "V0000")) == pytest.approx(live_total(app, "V0000"), abs=0.006)


def test_publishing_shows_on_the_next_request(app) -> None:  # type: ignore[no-untyped-def]
    assessor = client(app, "assessor_t000")
    reporter = client(app, "reporter_v0000")
    assert 'data-state="draft"' in assessor.get("/results/T000/2022").text
    assert reporter.get("/results/T000/2022").status_code in (200, 404)
    before = reporter.get("/results/T000/2022/V0000").text
    r = assessor.post("/results/T000/2022/publish", data={"appeal_days": "7", "note": "x"})
    assert r.status_code == 200
    page = assessor.get("/results/T000/2022").text
    assert 'data-state="published"' in page and "v1" in page
    after = reporter.get("/results/T000/2022/V0000").text
    assert after != before and 'id="published-total"' in after
    assert 'id="appeal-form"' in after  # the window is open


def test_the_appeal_form_goes_when_the_window_closes(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assessor = client(app, "assessor_t000")
    assessor.post("/results/T000/2022/publish", data={"appeal_days": "3", "note": ""})
    reporter = client(app, "reporter_v0000")
    assert 'id="appeal-form"' in reporter.get("/results/T000/2022/V0000").text
    with transaction(app.state.sessions) as s:
        pub = s.scalar(select(Publication).where(Publication.period == "2022"))
        assert pub is not None
        later = pub.published_at + dt.timedelta(days=3, seconds=1)
    # nothing is written: only the clock moves past the deadline
    monkeypatch.setattr(routes_results, "utcnow", lambda: later)
    monkeypatch.setattr("kaohe.workflow.appeals.utcnow", lambda: later)
    page = reporter.get("/results/T000/2022/V0000").text
    assert 'id="appeal-form"' not in page


def test_a_role_change_and_a_disabled_user_take_effect_at_once(app) -> None:  # type: ignore[no-untyped-def]
    viewer = client(app, "viewer")
    r = viewer.get("/results/T000/2022")
    assert r.status_code == 200 and 'action="/results/T000/2022/publish"' not in r.text
    with transaction(app.state.sessions) as s:
        u = s.scalar(select(User).where(User.username == "viewer"))
        assert u is not None
        u.role, u.unit_id = "assessor", unit_by_code(s, "T001").id
    r = viewer.get("/results/T000/2022")
    assert r.status_code == 403  # an assessor of T001 may not read T000
    assert viewer.get("/results/T000/2022/V0000").status_code == 403
    with transaction(app.state.sessions) as s:
        u = s.scalar(select(User).where(User.username == "viewer"))
        assert u is not None
        u.active = False
    r = viewer.get("/results/T001/2022")
    assert r.status_code in (303, 307) or "/login" in str(r.headers.get("location", ""))


def test_sign_out_ends_the_cached_pages_at_once(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    assert c.get("/results/T000/2022").status_code == 200
    assert c.get("/results/T000/2022/V0000").status_code == 200
    assert c.post("/logout").status_code in (200, 303)
    for path in ("/results/T000/2022", "/results/T000/2022/V0000"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_each_session_gets_its_own_csrf_token_and_its_own_rights(app) -> None:  # type: ignore[no-untyped-def]
    a = client(app, "assessor_t000")
    b = client(app, "assessor_t000")  # the same user, another session
    pa, pb = a.get("/results/T000/2022").text, b.get("/results/T000/2022").text
    assert csrf_of(pa) == a.csrf and csrf_of(pb) == b.csrf and a.csrf != b.csrf
    assert routes_results._CSRF_SLOT not in pa + pb
    assert pa.count(a.csrf or "?") >= 3  # meta, hx-headers, the sign-out and publish forms
    # the cached page still works for posting with its token
    r = b.post("/results/T000/2022/publish", data={"appeal_days": "7", "note": ""})
    assert r.status_code == 200
    # a viewer (no publishing) after the assessor: not the assessor's page
    v = client(app, "viewer").get("/results/T000/2022").text
    assert 'action="/results/T000/2022/publish"' not in v
    assert "assessor_t000" not in v
    # the public gets the published figures, no signed-in header
    pub = client(app).get("/public/T000/2022").text
    assert 'action="/logout"' not in pub


def test_language_is_part_of_the_key(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    zh = c.get("/results/T000/2022").text
    c.cookies.set("lang", "en", domain="testserver.local")
    en = c.get("/results/T000/2022").text
    assert 'lang="zh-CN"' in zh and 'lang="en"' in en


def test_change_stamp_moves_with_commits_only(app) -> None:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        a = change_stamp(s)
        b = change_stamp(s)
        assert a == b  # reads change nothing
    with transaction(app.state.sessions) as s:
        s.execute(
            update(DataValue)
            .where(DataValue.id == s.scalar(select(DataValue.id).limit(1)))
            .values(value=DataValue.value)
        )
    with transaction(app.state.sessions) as s:
        assert change_stamp(s) != b


def test_the_shortcut_explanation_equals_explain_unit(db) -> None:  # type: ignore[no-untyped-def]
    """The unit page explains with the group's values read once; it must give exactly
    what the engine's explain_unit gives (ranks given, and its ranks when not)."""
    from kaohe.engine.explain import _add_outcomes, explain_unit
    from kaohe.periods import parse_period
    from kaohe.web import results_view as rv
    from kaohe.workflow.publish import fingerprint, live_result, periods_of, rulebook_for

    checked = 0
    for code in ("T000", "ST01"):
        g = group_by_code(db, code)
        version, rb = rulebook_for(db, g)
        for per in periods_of(db, g):
            p = parse_period(per)
            fp = fingerprint(db, g, p.year)
            result, _ = live_result(db, g, p, fp)
            inputs = rv._cached_inputs(db, g, p.year, fp, version.id)
            for c in g.children:
                ranks = rv._ranks_of(db, g, rb, result, p, c.code, fp)
                mine = rv._explain_one(inputs, p, c.code, ranks)
                engine = explain_unit(inputs.rulebook, inputs.dataset, inputs.units, p, c.code)
                _add_outcomes(rb, mine, result, c.code)
                assert mine.total == engine.total and mine.rank == engine.rank, (per, c.code)
                assert mine.items == engine.items and mine.steps == engine.steps
                assert mine.adjustments == engine.adjustments
                checked += 1
    assert checked >= 20
