"""The data JSON API: units, values of a unit and period, submission transitions,
the audit log and the dataValueSets bulk import, with API tokens and sessions."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from kaohe.auth.sessions import create_api_token
from kaohe.auth.users import user_by_name
from kaohe.store.db import transaction
from kaohe.web.app import create_app
from tests.web import Client


@pytest.fixture
def app(db_url: str) -> FastAPI:
    return create_app(db_url)


def api(app: FastAPI, username: str) -> Client:
    """A client authenticated with a personal API token (no session, no CSRF)."""
    with transaction(app.state.sessions) as s:
        secret, _ = create_api_token(s, user_by_name(s, username), "test")
    c = Client(app)
    c.token = secret
    return c


def test_units_are_scoped(app: FastAPI) -> None:
    codes = {u["code"] for u in api(app, "reporter_v0000").get("/api/units").json()}
    assert codes == {"V0000"}
    t000 = {u["code"]: u for u in api(app, "assessor_t000").get("/api/units").json()}
    assert "T000" in t000 and "V0001" in t000 and "V0010" not in t000
    assert t000["T000"]["rulebook"] == "village-1000" and t000["V0001"]["parent"] == "T000"


def test_get_and_put_data(app: FastAPI) -> None:
    c = api(app, "reporter_v0000")
    r = c.get("/api/data/V0000/2022T2")
    assert r.status_code == 200
    body = r.json()
    assert body["previous_period"] == "2022T1" and body["state"] == "draft" and body["editable"]
    f = next(x for x in body["fields"] if x["variable"] == "births_total")
    assert f["label"] == "核实出生数" and f["unit"] == "例" and f["integer"] and f["required"]
    r = c.put("/api/data/V0000/2022T2", json={"values": {"births_total": 6}, "reason": "API 更正"})
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == [{"variable": "births_total", "old": f["value"], "new": 6.0}]
    fields = c.get("/api/data/V0000/2022T2").json()["fields"]
    assert next(x["value"] for x in fields if x["variable"] == "births_total") == 6
    r = c.put("/api/data/V0000/2022T2", json={"values": {"births_total": -1, "population": 3}})
    assert r.status_code == 422
    assert set(r.json()["detail"]["errors"]) == {"births_total", "population"}
    audit = c.get("/api/audit?unit=V0000&period=2022T2").json()
    assert audit["total"] == 1
    e = audit["entries"][0]
    assert (e["action"], e["key"], e["new"], e["reason"], e["user"]) == (
        "data.set",
        "births_total",
        "6",
        "API 更正",
        "reporter_v0000",
    )


def test_reporter_cannot_use_another_unit(app: FastAPI) -> None:
    c = api(app, "reporter_v0000")
    assert c.get("/api/data/V0001/2022T2").status_code == 403
    assert c.put("/api/data/V0001/2022T2", json={"values": {"births_total": 1}}).status_code == 403
    assert c.post("/api/submissions/V0001/2022T2/submit").status_code == 403
    assert c.get("/api/audit?unit=V0001").status_code == 403
    r = c.post(
        "/api/dataValueSets?dryRun=false",
        json={
            "dataValues": [
                {"unit": "V0001", "period": "2022T2", "variable": "births_total", "value": 1}
            ]
        },
    )
    assert r.json()["status"] == "ERROR"


def test_unknown_unit_and_period_are_404(app: FastAPI) -> None:
    c = api(app, "admin")
    assert c.get("/api/data/NOPE/2022T2").status_code == 404
    assert c.get("/api/data/V0000/2022-03").status_code == 404


def test_transitions_and_lock(app: FastAPI) -> None:
    rep = api(app, "reporter_v0000")
    ass = api(app, "assessor_t000")
    assert rep.post("/api/submissions/V0000/2022T2/approve").status_code == 403
    r = rep.post("/api/submissions/V0000/2022T2/submit")
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    assert (
        rep.put("/api/data/V0000/2022T2", json={"values": {"births_total": 1}}).status_code == 409
    )
    assert ass.post("/api/submissions/V0000/2022T2/return", json={}).status_code == 409
    r = ass.post("/api/submissions/V0000/2022T2/return", json={"comment": "补充说明"})
    assert r.json()["state"] == "returned" and r.json()["comment"] == "补充说明"
    rep.post("/api/submissions/V0000/2022T2/submit")
    assert ass.post("/api/submissions/V0000/2022T2/approve").json()["state"] == "approved"
    assert (
        ass.put("/api/data/V0000/2022T2", json={"values": {"births_total": 1}}).status_code == 409
    )
    assert ass.post("/api/submissions/V0000/2022T2/reopen", json={}).status_code == 409
    r = ass.post("/api/submissions/V0000/2022T2/reopen", json={"reason": "复核"})
    assert r.json()["state"] == "draft"
    actions = [e["action"] for e in ass.get("/api/audit?unit=V0000").json()["entries"]]
    assert actions[:5] == [
        "submission.reopen",
        "submission.approve",
        "submission.submit",
        "submission.return",
        "submission.submit",
    ]


def test_data_value_sets(app: FastAPI) -> None:
    c = api(app, "assessor_st01")
    good = [
        {"unit": "C01", "period": "2022-03", "variable": "ligations", "value": 3},
        {"unit": "ST01", "period": "2022-03", "variable": "street_cadres", "value": 4},
    ]
    bad = [
        *good,
        {"unit": "C01", "period": "2022-03", "variable": "ligations", "value": "x"},
        {"unit": "C01", "period": "2022T1", "variable": "ligations", "value": 1},
        {"unit": "C01", "period": "2022-03", "variable": "street_cadres", "value": 1},
        {"unit": "V0000", "period": "2022T1", "variable": "births_total", "value": 1},
    ]
    r = c.post("/api/dataValueSets?dryRun=false", json={"dataValues": bad})
    s = r.json()
    assert r.status_code == 200 and s["status"] == "ERROR" and not s["dryRun"]
    assert [x["index"] for x in s["conflicts"]] == [2, 3, 4, 5]
    assert all(x["reason"] for x in s["conflicts"])
    before = c.get("/api/data/C01/2022-03").json()
    ligations = next(f["value"] for f in before["fields"] if f["variable"] == "ligations")
    assert ligations != 3  # nothing written
    r = c.post("/api/dataValueSets", json={"dataValues": good})
    s = r.json()
    assert s["status"] == "OK" and s["dryRun"] and s["updated"] + s["imported"] == 2
    r = c.post("/api/dataValueSets?dryRun=false", json={"dataValues": good})
    assert r.json()["status"] == "OK"
    after = c.get("/api/data/C01/2022-03").json()
    assert next(f["value"] for f in after["fields"] if f["variable"] == "ligations") == 3
    again = c.post("/api/dataValueSets", json={"dataValues": good}).json()
    assert again["unchanged"] == 2 and again["updated"] == 0


def test_session_requests_need_csrf(app: FastAPI) -> None:
    c = Client(app)
    c.sign_in_as("reporter_v0000")
    c.csrf = "wrong"
    r = c.put("/api/data/V0000/2022T2", json={"values": {"births_total": 1}})
    assert r.status_code == 403


def test_openapi_documents_the_data_api(app: FastAPI) -> None:
    paths = Client(app).get("/openapi.json").json()["paths"]
    for p in (
        "/api/units",
        "/api/data/{unit}/{period}",
        "/api/submissions/{unit}/{period}/{action}",
        "/api/audit",
        "/api/dataValueSets",
    ):
        assert p in paths
    assert "put" in paths["/api/data/{unit}/{period}"]
