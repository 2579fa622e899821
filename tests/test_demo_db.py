"""The demo database of `make run` (kaohe.demo.serve / kaohe.demo.database): created
and seeded once, users of every role with random passwords kept in a 0600 file
and printed on every start, 2022 data in several workflow states."""

from __future__ import annotations

import stat
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from kaohe.auth.passwords import verify_password
from kaohe.demo.database import DEMO_USERS, RETURN_COMMENTS
from kaohe.demo.serve import PASSWORDS, DemoUser, prepare_demo
from kaohe.store.db import current_revisions, head_revisions, make_engine, session_factory
from kaohe.store.models import (
    Appeal,
    OrgUnit,
    PaymentApproval,
    Publication,
    Submission,
    User,
)

#: (folder, database URL, users) of the demo made once for this module
Demo = tuple[Path, str, list[DemoUser]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    folder = tmp_path_factory.mktemp("demo")
    url, users = prepare_demo(directory=folder)
    return folder, url, users


def test_first_run_creates_a_migrated_database_and_a_private_passwords_file(demo: Demo) -> None:
    folder, url, users = demo
    assert url.endswith(str(folder / "kaohe-demo.sqlite"))
    engine = make_engine(url)
    assert current_revisions(engine) == head_revisions()
    engine.dispose()
    pw = folder / PASSWORDS
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    assert {u.username for u in users} == {u[0] for u in DEMO_USERS}


def test_users_of_every_role_with_working_random_passwords(demo: Demo) -> None:
    _, url, users = demo
    assert {u.role for u in users} == {"admin", "assessor", "reporter", "viewer"}
    assert {u.unit for u in users if u.role == "assessor"} == {"T000", "T001", "ST01"}
    assert len({u.password for u in users}) == len(users)  # no shared password
    engine = make_engine(url)
    with session_factory(engine)() as s:
        for u in users:
            row = s.scalar(select(User).where(User.username == u.username))
            assert row is not None and row.role == u.role
            assert (row.unit.code if row.unit else None) == u.unit
            assert verify_password(row.password_hash, u.password), u.username
            assert len(u.password) >= 10
    engine.dispose()


def test_a_second_run_keeps_the_database_and_its_passwords(demo: Demo) -> None:
    folder, url, users = demo
    engine = make_engine(url)
    with session_factory(engine)() as s:
        before = s.scalar(select(func.count()).select_from(OrgUnit))
    url2, users2 = prepare_demo(directory=folder)
    with session_factory(engine)() as s:
        after = s.scalar(select(func.count()).select_from(OrgUnit))
    engine.dispose()
    assert url2 == url and after == before
    assert [(u.username, u.password) for u in users2] == [(u.username, u.password) for u in users]


def test_another_demo_gets_other_passwords(demo: Demo) -> None:
    from kaohe.demo.database import new_password

    # (a whole second seed is slow: the generator is what makes them differ)
    _, _, users = demo
    fresh = {new_password() for _ in range(50)}
    assert len(fresh) == 50
    assert not fresh & {u.password for u in users}


def test_2022_data_in_several_workflow_states(demo: Demo) -> None:
    _, url, _ = demo
    engine = make_engine(url)
    with session_factory(engine)() as s:
        rows = s.execute(
            select(OrgUnit.code, Submission.period, Submission.state, Submission.comment).join(
                OrgUnit, OrgUnit.id == Submission.unit_id
            )
        ).all()
    engine.dispose()
    village_t1 = Counter(r.state for r in rows if r.code.startswith("V") and r.period == "2022T1")
    assert village_t1["approved"] >= 14  # most villages
    assert village_t1["submitted"] >= 1 and village_t1["returned"] == 1 and village_t1["draft"] >= 1
    months = {r.period for r in rows if r.code.startswith("C")}
    assert months == {f"2022-{m:02d}" for m in range(1, 13)}
    street = Counter(r.state for r in rows if r.code.startswith("C"))
    assert {"approved", "submitted", "returned", "draft"} <= set(street)
    returned = [r for r in rows if r.state == "returned"]
    assert returned and all(r.comment for r in returned)
    assert {(r.code, r.period) for r in returned} == set(RETURN_COMMENTS)


def test_a_published_result_an_open_appeal_and_a_reviewed_payment(demo: Demo) -> None:
    _, url, _ = demo
    engine = make_engine(url)
    with session_factory(engine)() as s:
        pub = s.scalar(select(Publication))
        assert pub is not None and pub.group.code == "T000" and pub.period == "2022T1"
        appeal = s.scalar(select(Appeal))
        assert appeal is not None and appeal.state == "open" and appeal.unit.code == "V0001"
        pay = s.scalars(select(PaymentApproval)).all()
        assert pay and all(p.reviewed_by and not p.approved_by for p in pay)
    engine.dispose()


def test_serve_demo_prints_every_user_with_its_password(
    demo: Demo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    from kaohe.cli import app

    _, url, users = demo
    served: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: served.update(port=port))
    r = CliRunner().invoke(app, ["serve", "--demo", "--database", url], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.stderr
    assert served["port"] == 8000
    assert "http://127.0.0.1:8000" in r.stdout
    for u in users:
        line = next(line for line in r.stdout.splitlines() if f" {u.username} " in line)
        assert u.password in line and u.role in line


@pytest.mark.browser
def test_the_printed_passwords_sign_in_to_the_served_demo(demo: Demo, browser: object) -> None:
    """What `make run` promises: the app over the demo database, the printed
    passwords working in the login form."""
    from playwright.sync_api import expect

    from tests.browser_harness import LiveServer, log_in

    _, url, users = demo
    server = LiveServer(url)
    try:
        ctx = browser.new_context(base_url=server.url, locale="zh-CN")  # type: ignore[attr-defined]
        page = ctx.new_page()
        for u in users:
            if u.username not in ("admin", "reporter_v0001"):
                continue
            log_in(page, u.username, u.password)
            display = next(d[3] for d in DEMO_USERS if d[0] == u.username)
            expect(page.locator("header .who")).to_contain_text(display)
            page.locator("header form[action='/logout'] button").click()
            expect(page.locator("header a[href='/login']")).to_be_visible()
        ctx.close()
    finally:
        server.stop()
