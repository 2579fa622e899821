"""The results JSON API: tokens, publications, appeals, payments, public results, OpenAPI."""

from __future__ import annotations

import pytest

from kaohe.store.db import transaction
from kaohe.web.app import create_app
from kaohe.workflow.publish import group_by_code
from kaohe.workflow.scoring import score_group
from tests.web import Client


@pytest.fixture
def app(db_url: str):  # type: ignore[no-untyped-def]
    return create_app(db_url)


def signed(app, user: str) -> Client:  # type: ignore[no-untyped-def]
    c = Client(app)
    c.sign_in_as(user)
    return c


def test_ranking_json_matches_the_engine(app) -> None:  # type: ignore[no-untyped-def]
    data = signed(app, "viewer").get("/api/results/T001/2022").json()
    with transaction(app.state.sessions) as s:
        t = score_group(s, group_by_code(s, "T001"), "2022").table
    assert [r["unit"] for r in data["rows"]] == t["unit"].to_list()
    assert [r["rank"] for r in data["rows"]] == t["rank"].to_list()
    assert data["state"] == "draft" and data["previous_period"] == "2021"
    # no 2021 data: no rank change
    assert all(r["rank_change"] is None for r in data["rows"])


def test_publish_api_versions_and_changes(app) -> None:  # type: ignore[no-untyped-def]
    c = signed(app, "assessor_st01")
    r = c.post("/api/publications/ST01/2022-03", json={"appeal_days": 5, "note": "三月"})
    assert r.status_code == 200
    body = r.json()
    assert body["publication"]["version"] == 1 and body["previous_version"] is None
    assert body["publication"]["appeal_days"] == 5
    r = c.post("/api/publications/ST01/2022-03", json={})
    assert r.json()["publication"]["version"] == 2 and r.json()["changes"] == []
    pubs = c.get("/api/publications").json()
    assert [(p["period"], p["version"]) for p in pubs] == [("2022-03", 2)]
    # other groups' users do not see it; bad input is a clear 422/404
    assert signed(app, "assessor_t000").get("/api/publications").json() == []
    assert c.post("/api/publications/ST01/2022-03", json={"appeal_days": -2}).status_code == 422
    r = c.post("/api/publications/ST01/2022-13", json={})
    assert r.status_code == 404 and "2022-13" in r.json()["detail"]
    assert signed(app, "assessor_t000").post("/api/publications/ST01/2022-03").status_code == 403


def test_appeals_api(app) -> None:  # type: ignore[no-untyped-def]
    rep = signed(app, "reporter_c01")
    r = rep.post("/api/appeals", json={"unit": "C01", "period": "2022-02", "text": "有误"})
    assert r.status_code == 400 and "尚未公布" in r.json()["detail"]
    signed(app, "assessor_st01").post("/api/publications/ST01/2022-02", json={})
    r = rep.post("/api/appeals", json={"unit": "C02", "period": "2022-02", "text": "有误"})
    assert r.status_code == 403
    r = rep.post("/api/appeals", json={"unit": "C01", "period": "2022-02", "text": "有误"})
    assert r.status_code == 201
    aid = r.json()["id"]
    assert rep.post(f"/api/appeals/{aid}/answer", json={"answer": "x"}).status_code == 403
    r = signed(app, "assessor_st01").post(f"/api/appeals/{aid}/answer", json={"answer": "已核"})
    assert r.status_code == 200 and r.json()["state"] == "answered"
    assert rep.get("/api/appeals").json()[0]["answer"] == "已核"


def test_payments_api_order_and_token(app) -> None:  # type: ignore[no-untyped-def]
    from kaohe.auth.sessions import create_api_token
    from kaohe.auth.users import user_by_name

    with transaction(app.state.sessions) as s:
        token = create_api_token(s, user_by_name(s, "assessor_st01"), "test")[0]
    deputy = Client(app)
    deputy.token = token
    r = deputy.post("/api/payments/ST01/2022-01/C03/approve")
    assert r.status_code == 400 and "审核" in r.json()["detail"]
    director = signed(app, "admin")  # an admin may sign for any unit
    r = director.post("/api/payments/ST01/2022-01/C03/review")
    assert r.status_code == 200
    c03 = next(u for u in r.json()["units"] if u["unit"] == "C03")
    assert c03["state"] == "reviewed"
    r = deputy.post("/api/payments/ST01/2022-01/C03/approve")
    assert r.status_code == 200
    c03 = next(u for u in r.json()["units"] if u["unit"] == "C03")
    assert c03["state"] == "approved" and c03["lines"][0]["approved_by"] == "assessor_st01"


def test_public_api_and_openapi(app) -> None:  # type: ignore[no-untyped-def]
    public = Client(app)
    assert public.get("/api/public/results/ST01/2022Q1").status_code == 404
    signed(app, "assessor_st01").post("/api/publications/ST01/2022Q1", json={})
    data = public.get("/api/public/results/ST01/2022Q1").json()
    assert data["state"] == "published" and len(data["rows"]) == 11
    assert data["changes"] == [] and data["changed_since_publication"] is None
    unit = public.get("/api/public/results/ST01/2022Q1/C05").json()
    assert unit["published"]["unit"] == "C05" and unit["live"] is None
    assert public.get("/api/public/results/ST01/2022Q1/V0000").status_code == 404
    paths = public.get("/openapi.json").json()["paths"]
    for p in (
        "/api/results/{group}/{period}",
        "/api/results/{group}/{period}/{unit}",
        "/api/publications/{group}/{period}",
        "/api/appeals",
        "/api/appeals/{appeal_id}/answer",
        "/api/payments/{group}/{period}",
        "/api/public/results/{group}/{period}",
    ):
        assert p in paths, p
