"""Confirming an Excel upload: the previewed diff is reused only while the stored
values are unchanged (store stamp); any change in between — to a previewed value, to
a value the upload leaves as it is, by the app or by a bare SQL update, a new or a
cleared value, a lock — gives the 409 re-preview and writes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from kaohe.store.db import transaction
from kaohe.store.models import DataValue, OrgUnit, User
from kaohe.workflow import data as data_module
from kaohe.workflow.data import set_values
from tests.test_web_data import _cell, _download, _upload, app, client_for, stored
from tests.web import Client

__all__ = ["app"]


def _preview(c: Client) -> tuple[str, str]:
    wb = _download(c, "T000", "2022T1")
    cell = _cell(wb, "期间数据", "V0001", "2022T1", "births_total")
    cell.value = (cell.value or 0) + 7
    r = _upload(c, "T000", "2022T1", wb)
    assert r.status_code == 200 and "将修改 1 个数值" in r.text
    token = re.search(r'name="token" value="([^"]+)"', r.text)
    fp = re.search(r'name="fingerprint" value="([^"]+)"', r.text)
    assert token and fp
    return token.group(1), fp.group(1)


def _confirm(c: Client, token: str, fp: str):  # type: ignore[no-untyped-def]
    return c.post(
        "/data/group/T000/2022T1/upload/confirm", data={"token": token, "fingerprint": fp}
    )


def test_unchanged_store_reuses_the_previewed_diff(app, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "assessor_t000")
    before = stored(app, "V0001", "2022T1", "births_total") or 0
    token, fp = _preview(c)

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("stored values read again although nothing changed")

    monkeypatch.setattr(data_module, "existing_frame", no_read)
    r = _confirm(c, token, fp)
    assert r.status_code == 303 and "imported=1" in r.headers["location"]
    assert stored(app, "V0001", "2022T1", "births_total") == before + 7
    # one audit entry for the value: who, old → new
    log = c.get("/audit?unit=V0001&action=data.set").text
    assert f"{before + 7:g}" in log and "assessor_t000" in log


def _app_change(unit: str, period: str, variable: str, value: float | None):  # type: ignore[no-untyped-def]
    def change(s: Session) -> None:
        u = s.scalars(select(OrgUnit).where(OrgUnit.code == unit)).one()
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        set_values(s, admin, u, period, {variable: value})

    return change


def _sql(statement: str):  # type: ignore[no-untyped-def]
    def change(s: Session) -> None:
        s.execute(text(statement))

    return change


def _approve(s: Session) -> None:
    from kaohe.store.models import Submission

    u = s.scalars(select(OrgUnit).where(OrgUnit.code == "V0001")).one()
    sub = s.scalars(
        select(Submission).where(Submission.unit_id == u.id, Submission.period == "2022T1")
    ).one_or_none()
    if sub is None:
        s.add(Submission(unit_id=u.id, period="2022T1", state="approved"))
    else:
        sub.state = "approved"


@pytest.mark.parametrize(
    "change",
    [
        # the previewed value itself, through the app
        _app_change("V0001", "2022T1", "births_total", 1234),
        # a value the upload leaves unchanged, through the app
        _app_change("V0002", "2022T1", "births_total", 4321),
        # a value cleared through the app (the upload gives it again: a new insert)
        _app_change("V0002", "2022T1", "births_total", None),
        # a bare SQL update that does not touch updated_at
        _sql(
            "UPDATE data_value SET value = value + 1 WHERE period = '2022T1' AND "
            "variable = 'births_late' AND unit_id = (SELECT id FROM org_unit WHERE code = 'V0003')"
        ),
    ],
    ids=["previewed-value", "unchanged-value", "cleared-value", "bare-sql"],
)
def test_a_change_after_the_preview_is_shown_again(
    app,  # type: ignore[no-untyped-def]
    change: Callable[[Session], None],
) -> None:
    c = client_for(app, "assessor_t000")
    token, fp = _preview(c)
    with transaction(app.state.sessions) as s:
        change(s)
        snapshot = sorted(
            (u, p, v, x)
            for u, p, v, x in s.execute(
                select(DataValue.unit_id, DataValue.period, DataValue.variable, DataValue.value)
            )
        )
    r = _confirm(c, token, fp)
    assert r.status_code == 409 and "预览之后数据已发生变化" in r.text
    with transaction(app.state.sessions) as s:
        after = sorted(
            (u, p, v, x)
            for u, p, v, x in s.execute(
                select(DataValue.unit_id, DataValue.period, DataValue.variable, DataValue.value)
            )
        )
    assert after == snapshot  # nothing written


def test_a_lock_after_the_preview_is_a_conflict(app) -> None:  # type: ignore[no-untyped-def]
    c = client_for(app, "assessor_t000")
    before = stored(app, "V0001", "2022T1", "births_total")
    token, fp = _preview(c)
    with transaction(app.state.sessions) as s:
        _approve(s)
    r = _confirm(c, token, fp)
    assert r.status_code == 409 and "锁定" in r.text
    assert stored(app, "V0001", "2022T1", "births_total") == before
