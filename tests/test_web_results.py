"""Results pages: ranking, rank changes, unit explanations, publication banner,
appeals, payments, downloads and the public pages."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select

from kaohe.rulebook.loader import load_rulebook
from kaohe.store.db import transaction
from kaohe.store.models import Publication
from kaohe.web.app import create_app
from kaohe.workflow.publish import group_by_code
from kaohe.workflow.scoring import score_group
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


def row_of(html: str, unit: str) -> str:
    m = re.search(rf'<tr class="band-[a-d]" data-unit="{unit}">(.*?)</tr>', html, re.S)
    assert m, f"no ranking row for {unit}"
    return m.group(1)


def ranks(app, group: str, period: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        t = score_group(s, group_by_code(s, group), period).table
        return dict(zip(t["unit"].to_list(), t["rank"].to_list(), strict=True))


def test_ranking_page_shows_ranks_bands_and_rank_changes(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    r = c.get("/results/T000/2022T2")
    assert r.status_code == 200
    assert 'data-state="draft"' in r.text
    assert "/static/vendor/echarts-5.6.0.min.js" in r.text and "cdn" not in r.text.lower()
    assert 'id="heatmap"' in r.text
    t1, t2 = ranks(app, "T000", "2022T1"), ranks(app, "T000", "2022T2")
    moved = 0
    for unit, now in t2.items():
        row = row_of(r.text, unit)
        assert f'data-value="{now}"' in row
        change = t1[unit] - now  # hand computation: earlier rank minus current rank
        if change > 0:
            assert f"↑{change}" in row
            moved += 1
        elif change < 0:
            assert f"↓{-change}" in row
            moved += 1
        else:
            assert "↑" not in row and "↓" not in row
    assert moved > 0  # the demo data does move units between T1 and T2
    # T1 is the first period of the year: no arrows at all
    first = c.get("/results/T000/2022T1").text
    assert "↑" not in first and "↓" not in first


def test_colour_bands_follow_share_of_maximum_points(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "admin")
    data = c.get("/api/results/ST01/2022-03").json()
    assert data["max_points"] > 0
    for row in data["rows"]:
        share = row["total"] / data["max_points"]
        expected = (
            "band-a"
            if share >= 0.9
            else "band-b"
            if share >= 0.8
            else "band-c"
            if share >= 0.6
            else "band-d"
        )
        assert row["band"] == expected, row["unit"]


def test_publish_banner_and_republish_diff(app, db_url: str) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    r = c.post("/results/T000/2022/publish", data={"appeal_days": "7", "note": "首次公布"})
    assert r.status_code == 200 and "已公布第 1 版" in r.text
    page = c.get("/results/T000/2022").text
    assert 'data-state="published"' in page and "changed-banner" not in page
    rows = c.get("/api/results/T000/2022").json()["rows"]
    published_total = next(x["total"] for x in rows if x["unit"] == "V0000")
    assert f'data-value="{published_total}"' in row_of(page, "V0000")
    with transaction(app.state.sessions) as s:
        change_value(s, "V0000", "2022", "org_score", 0.0)
    page = c.get("/results/T000/2022").text
    assert 'id="changed-banner"' in page
    assert 'class="diff-row" data-unit="V0000"' in page
    # the public still sees the frozen figure
    public = client(app).get("/api/public/results/T000/2022").json()
    frozen = next(x for x in public["rows"] if x["unit"] == "V0000")
    assert frozen["total"] == published_total
    live = next(x for x in c.get("/api/results/T000/2022").json()["rows"] if x["unit"] == "V0000")
    assert live["total"] < frozen["total"]
    # republish: version 2 and the diff
    r = c.post("/results/T000/2022/publish", data={"appeal_days": "7", "note": "更正"})
    assert "已公布第 2 版" in r.text and 'data-unit="V0000"' in r.text
    assert "changed-banner" not in c.get("/results/T000/2022").text
    public = client(app).get("/api/public/results/T000/2022").json()
    assert public["publication"]["version"] == 2
    assert next(x for x in public["rows"] if x["unit"] == "V0000")["total"] == live["total"]


def test_unit_page_explains_every_item_with_source_and_clause(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "reporter_v0000")
    r = c.get("/results/T000/2022/V0000")
    assert r.status_code == 200
    api = c.get("/api/results/T000/2022/V0000").json()
    expl = api["explanation"]
    assert expl["unit"] == "V0000" and expl["steps"]  # the year: rank after each tertial
    for item in expl["items"]:
        assert f'id="item-{item["code"]}"' in r.text
        assert item["source"] and item["source"][:10] in r.text
    # the terms add up: items + adjustments + rank bonus = total
    total = expl["items_total"] + expl["adjustments_total"] + expl["rank_bonus"]
    assert abs(total - expl["total"]) < 0.02
    # the rank matches the group's ranking
    assert expl["rank"] == ranks(app, "T000", "2022")["V0000"]
    assert api["trend"]["periods"] == ["2022T1", "2022T2", "2022T3"]
    assert api["trend"]["rank"] == [ranks(app, "T000", p)["V0000"] for p in api["trend"]["periods"]]
    assert 'id="trend"' in r.text


def test_community_unit_page_has_flags_and_outcomes(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_st01")
    api = c.get("/api/results/ST01/2022-03/C01").json()
    assert [f["code"] for f in api["explanation"]["flags"]] == [
        "meets_standard",
        "complaint",
        "p1_met",
    ]
    assert api["trend"]["periods"][0] == "2022-01" and len(api["trend"]["periods"]) == 12


def test_reporter_sees_only_own_unit_and_published_ranking(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "reporter_v0000")
    assert c.get("/results/T000/2022T1/V0001").status_code == 403
    assert c.get("/api/results/T000/2022T1/V0001").status_code == 403
    assert c.get("/results/T001/2022T1").status_code == 403
    assert c.get("/downloads/T000/2022T1/report.xlsx").status_code == 403
    # its group's ranking: nothing before publication, the frozen figures after
    api = c.get("/api/results/T000/2022T1").json()
    assert api["state"] == "draft" and api["rows"] == []
    client(app, "assessor_t000").post("/api/publications/T000/2022T1", json={})
    api = c.get("/api/results/T000/2022T1").json()
    assert api["state"] == "published" and len(api["rows"]) == 10


def test_public_sees_published_results_only(app) -> None:  # type: ignore[no-untyped-def]
    public = client(app)
    assert public.get("/public/T000/2022").status_code == 404
    assert public.get("/api/public/results/T000/2022").status_code == 404
    assert public.get("/public/T000/2022/V0000").status_code == 404
    assert public.get("/results/T000/2022").status_code == 303  # login
    assert public.get("/api/results/T000/2022").status_code == 401
    client(app, "assessor_t000").post("/api/publications/T000/2022", json={})
    r = public.get("/public")
    assert "/public/T000/2022" in r.text and "/public/T000/2022T1" not in r.text
    page = public.get("/public/T000/2022")
    assert page.status_code == 200 and "/public/T000/2022/V0000" in page.text
    assert "/publish" not in page.text and "/downloads/" not in page.text
    unit = public.get("/public/T000/2022/V0000")
    assert unit.status_code == 200 and 'id="published-total"' in unit.text
    assert public.get("/public/T000/2022T1").status_code == 404
    # after a data change the public unit page shows the frozen figures, no live trace
    with transaction(app.state.sessions) as s:
        change_value(s, "V0000", "2022", "org_score", 0.0)
    data = public.get("/api/public/results/T000/2022/V0000").json()
    assert data["live"] is None and data["explanation"] is None
    assert data["published"]["unit"] == "V0000"


def test_appeal_from_the_unit_page_and_answer(app) -> None:  # type: ignore[no-untyped-def]
    assessor = client(app, "assessor_t000")
    assessor.post("/api/publications/T000/2022T3", json={"appeal_days": 3})
    rep = client(app, "reporter_v0000")
    page = rep.get("/results/T000/2022T3/V0000").text
    assert 'id="appeal-form"' in page
    r = rep.post("/results/T000/2022T3/V0000/appeal", data={"text": "E2 计分有误"})
    assert r.status_code == 303
    listed = rep.get("/api/appeals").json()
    assert len(listed) == 1 and listed[0]["text"] == "E2 计分有误" and listed[0]["state"] == "open"
    # another village's reporter does not see it
    assert client(app, "reporter_v0001").get("/api/appeals").json() == []
    appeals_page = assessor.get("/appeals").text
    assert "E2 计分有误" in appeals_page and f"/appeals/{listed[0]['id']}/answer" in appeals_page
    r = assessor.post(f"/appeals/{listed[0]['id']}/answer", data={"answer": "已复核"})
    assert r.status_code == 303
    assert "已复核" in rep.get("/results/T000/2022T3/V0000").text
    # late: move the publication 4 days back; the window of 3 days has closed
    with transaction(app.state.sessions) as s:
        for pub in s.scalars(select(Publication)):
            pub.published_at = pub.published_at - dt.timedelta(days=4)
    assert 'id="appeal-form"' not in rep.get("/results/T000/2022T3/V0000").text
    r = rep.post("/results/T000/2022T3/V0000/appeal", data={"text": "again"})
    assert r.status_code == 400 and "申诉期已过" in r.text


def test_downloads_are_valid_files(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_st01")
    r = c.get("/downloads/ST01/2022-03/report.xlsx")
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    assert "排名" in wb.sheetnames
    cells = [str(v) for row in wb["排名"].iter_rows(values_only=True) for v in row if v]
    assert any("东关社区" in v for v in cells)

    r = c.get("/downloads/ST01/2022-03/notice.docx")
    assert r.status_code == 200
    doc = Document(io.BytesIO(r.content))
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "关于2022年3月" in text and "通报" in text
    table_text = " ".join(cell.text for t in doc.tables for row in t.rows for cell in row.cells)
    assert "东关社区" in table_text

    client(app, "reporter_c01").post("/payments/ST01/2022Q1/C01/review", data={})
    r = c.get("/downloads/ST01/2022Q1/payments.xlsx")
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    ws = wb["发放明细"]
    rows = [row for row in ws.iter_rows(values_only=True)]
    header = next(i for i, row in enumerate(rows) if row and row[0] == "单位")
    status = rows[header].index("状态")
    states = {str(row[0]): row[status] for row in rows[header + 1 :] if row and row[status]}
    assert any("东关社区" in k and v == "已审核待审批" for k, v in states.items())
    assert any("西关社区" in k and v == "待审核" for k, v in states.items())


def test_payments_page_review_then_approve(app) -> None:  # type: ignore[no-untyped-def]
    deputy = client(app, "assessor_st01")
    director = client(app, "reporter_c01")
    page = deputy.get("/payments/ST01/2022Q1").text
    assert 'id="unit-C01"' in page and "/payments/ST01/2022Q1/C01/approve" not in page
    # approval before review: refused
    r = deputy.post("/payments/ST01/2022Q1/C01/approve", data={})
    assert r.status_code == 400
    own = director.get("/payments/ST01/2022Q1").text
    assert 'id="unit-C01"' in own and 'id="unit-C02"' not in own  # own lines only
    assert "/payments/ST01/2022Q1/C01/review" in own
    assert director.post("/payments/ST01/2022Q1/C02/review", data={}).status_code == 403
    assert director.post("/payments/ST01/2022Q1/C01/review", data={}).status_code == 303
    api = deputy.get("/api/payments/ST01/2022Q1").json()
    c01 = next(u for u in api["units"] if u["unit"] == "C01")
    assert c01["state"] == "reviewed"
    assert "/payments/ST01/2022Q1/C01/approve" in deputy.get("/payments/ST01/2022Q1").text
    assert deputy.post("/payments/ST01/2022Q1/C01/approve", data={}).status_code == 303
    api = deputy.get("/api/payments/ST01/2022Q1").json()
    c01 = next(u for u in api["units"] if u["unit"] == "C01")
    assert c01["state"] == "approved"
    assert {x["status"] for x in c01["lines"]} == {"approved"}
    assert {u["state"] for u in api["units"] if u["unit"] != "C01"} == {"pending"}


def test_results_pages_in_english(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    c.get("/lang/en?next=/")
    page = c.get("/results/T000/2022T2").text
    assert "Draft (not published)" in page and "Rank change" in page
    assert "Trend over the year" in c.get("/results/T000/2022T2/V0000").text


def test_unapproved_data_is_flagged_before_publishing(app) -> None:  # type: ignore[no-untyped-def]
    from kaohe.store.models import Submission
    from kaohe.workflow.units import unit_by_code

    c = client(app, "assessor_t000")
    page = c.get("/results/T000/2022T1").text
    assert 'id="unapproved"' in page
    assert "V0000 2022年第1考核期 未提交" in page and " none" not in page
    with transaction(app.state.sessions) as s:
        for child in unit_by_code(s, "T000").children:
            for period in ("2022", "2022T1"):
                old = s.scalar(
                    select(Submission).where(
                        Submission.unit_id == child.id, Submission.period == period
                    )
                )
                if old is None:
                    s.add(Submission(unit_id=child.id, period=period, state="approved"))
                else:
                    old.state = "approved"
    assert 'id="unapproved"' not in c.get("/results/T000/2022T1").text
    # T2 reads the T2 rows too, which are not approved
    assert 'id="unapproved"' in c.get("/results/T000/2022T2").text


def test_heat_map_cells_are_item_score_over_points(app) -> None:  # type: ignore[no-untyped-def]
    import json

    c = client(app, "assessor_t000")
    page = c.get("/results/T000/2022").text
    m = re.search(r'<script type="application/json" id="heat-data">(.*?)</script>', page, re.S)
    assert m
    heat = json.loads(m.group(1))
    rows = c.get("/api/results/T000/2022").json()["rows"]
    assert heat["units"] == [r["name"] for r in rows]
    codes = [label.split(" ")[0] for label in heat["items"]]
    rb = load_rulebook("village-1000")
    points = {i.code: rb.points(i) for i in rb.model.items}
    cells = {(x, y): v for x, y, v in heat["data"]}
    for y, r in enumerate(rows):
        for x, code in enumerate(codes):
            if points.get(code):
                assert cells[(x, y)] == round(r["items"][code] / points[code], 4)  # type: ignore[operator]


def test_results_catalog_covers_the_pages_and_agrees_with_the_others() -> None:
    import json
    from pathlib import Path

    web = Path(__file__).parents[1] / "src" / "kaohe" / "web"
    locales = web / "locales"
    catalog: dict[str, str] = {}
    for path in locales.glob("*.json"):
        catalog.update(json.loads(path.read_text(encoding="utf-8")))
    ours = json.loads((locales / "results.json").read_text(encoding="utf-8"))
    sources = [*(web / "templates" / "results").glob("*.html"), web / "results_view.py"]
    strings = {
        m.group(2)
        for f in sources
        for m in re.finditer(r"""_\(\s*(["'])(.+?)\1""", f.read_text(encoding="utf-8"))
    }
    assert strings and not sorted(s for s in strings if s not in catalog)
    clashes = []
    for path in locales.glob("*.json"):
        if path.name != "results.json":
            other = json.loads(path.read_text(encoding="utf-8"))
            clashes += [(path.name, k) for k in ours if k in other and other[k] != ours[k]]
    assert not clashes, clashes
