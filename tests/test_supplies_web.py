"""The supplies pages, the public finder, the JSON API and the Excel imports over
HTTP: Chinese first, role rules on the server, refused events shown with the
reason and nothing written."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from kaohe.store.db import transaction
from kaohe.supplies import ledger as lg
from kaohe.supplies.models import SupplyBalance, SupplyEvent, SupplyLocation
from kaohe.web.app import create_app
from tests.supplies_helpers import make_setup
from tests.web import Client


@pytest.fixture
def app(db_url: str):  # type: ignore[no-untyped-def]
    app = create_app(db_url)
    with transaction(app.state.sessions) as s:
        su = make_setup(s)
        a = lg.get_or_create_lot(s, su.condom, "A", dt.date(2030, 1, 1))
        old = lg.get_or_create_lot(s, su.pill, "OLD", dt.date(2024, 6, 30))
        lg.receive(s, su.station, dt.date(2024, 1, 2), [(a, 500), (old, 40)])
        lg.transfer(s, su.station, su.o0, dt.date(2024, 1, 3), su.condom, 200)
        lg.transfer(s, su.o0, su.p00, dt.date(2024, 1, 4), su.condom, 100)
        lg.transfer(s, su.station, su.o0, dt.date(2024, 1, 5), su.pill, 10)
    yield app
    app.state.engine.dispose()


def client(app, user: str | None = None) -> Client:  # type: ignore[no-untyped-def]
    c = Client(app)
    if user:
        c.sign_in_as(user)
    return c


def balance(app, code: str) -> int:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        loc = s.scalar(select(SupplyLocation).where(SupplyLocation.code == code))
        return int(
            s.scalar(select(func.sum(SupplyBalance.qty)).where(SupplyBalance.location_id == loc.id))
            or 0
        )


def n_events(app) -> int:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        return int(s.scalar(select(func.count(SupplyEvent.id))))


def test_pages_render_in_chinese_for_the_county(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "admin")
    for path, text in [
        ("/supplies", "避孕药具管理"),
        ("/supplies/stock?as_of=2024-01-04", "一村发放点"),
        ("/supplies/receive", "入库登记"),
        ("/supplies/transfer", "调拨登记"),
        ("/supplies/issue", "发放登记"),
        ("/supplies/count", "盘点"),
        ("/supplies/adjust", "库存调整"),
        ("/supplies/expiring", "近效期"),
        ("/supplies/monthly?year=2024", "月度发放"),
        ("/supplies/replenish", "补货建议"),
        ("/supplies/reconciliation", "信息统计准确率"),
        ("/supplies/points", "发放点登记"),
        ("/supplies/points/P00", "开放/关闭记录"),
        ("/supplies/events", "S-202401-0001"),
        ("/supplies/import", "期初库存盘点"),
    ]:
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert text in r.text, path
        assert 'lang="zh-CN"' in r.text


def test_stock_as_of_a_date(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "admin")
    r = c.get("/supplies/stock?as_of=2024-01-03&location=P00")
    assert "无库存" in r.text
    r = c.get("/supplies/stock?as_of=2024-01-04&location=P00")
    assert ">100 只<" in r.text
    r = c.get("/api/supplies/stock?as_of=2024-01-03")
    rows = r.json()["stock"]
    assert {
        "location": "O0",
        "product": "C",
        "lot": "A",
        "expiry": "2030-01-01",
        "qty": 200,
    } in rows


def test_signed_out_users_are_sent_to_login(app) -> None:  # type: ignore[no-untyped-def]
    r = client(app).get("/supplies/stock")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert client(app).get("/api/supplies/stock").status_code == 401


def test_keeper_issues_fefo_at_own_point_only(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "reporter_v0000")
    r = c.post(
        "/supplies/issue", data={"location": "P00", "product": "C", "qty": "7", "day": "2024-02-01"}
    )
    assert r.status_code == 303, r.text[:300]
    assert balance(app, "P00") == 93
    # not the keeper of P01, and no transfers for a keeper
    r = c.post(
        "/supplies/issue", data={"location": "P01", "product": "C", "qty": "1", "day": "2024-02-01"}
    )
    assert r.status_code == 403
    r = c.post(
        "/supplies/transfer", data={"location": "P00", "dest": "O0", "product": "C", "qty": "1"}
    )
    assert r.status_code == 403
    # a reporter who keeps nothing cannot issue
    r = client(app, "reporter_v0001").post(
        "/supplies/issue", data={"location": "P00", "product": "C", "qty": "1"}
    )
    assert r.status_code == 403
    # the keeper reads its own point, not others
    assert c.get("/supplies/points/P00").status_code == 200
    assert c.get("/supplies/points/P10").status_code == 403


def test_refused_issue_shows_reason_and_writes_nothing(app) -> None:  # type: ignore[no-untyped-def]
    before = n_events(app)
    c = client(app, "reporter_v0000")
    r = c.post(
        "/supplies/issue",
        data={"location": "P00", "product": "C", "qty": "101", "day": "2024-02-01"},
    )
    assert r.status_code == 400 and "不足" in r.text and 'id="form-error"' in r.text
    assert n_events(app) == before and balance(app, "P00") == 100
    # back-dated: before the point had any stock
    r = c.post(
        "/supplies/issue", data={"location": "P00", "product": "C", "qty": "1", "day": "2024-01-03"}
    )
    assert r.status_code == 400 and n_events(app) == before


def test_township_office_transfers_and_clears_but_does_not_receive(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    r = c.post(
        "/supplies/transfer",
        data={"location": "O0", "dest": "P01", "product": "C", "qty": "30", "day": "2024-02-01"},
    )
    assert r.status_code == 303 and balance(app, "P01") == 30
    # not from another township's office, nor into another township
    assert (
        c.post(
            "/supplies/transfer", data={"location": "O1", "dest": "P10", "product": "C", "qty": "1"}
        ).status_code
        == 403
    )
    assert (
        c.post(
            "/supplies/transfer", data={"location": "O0", "dest": "P10", "product": "C", "qty": "1"}
        ).status_code
        == 403
    )
    # only the county station receives
    r = c.post(
        "/supplies/receive",
        data={"location": "S", "product": "C", "lot": "Z", "expiry": "2030-01-01", "qty": "5"},
    )
    assert r.status_code == 403
    assert c.get("/supplies/receive").status_code == 403
    # clear expired stock at its office in one step
    r = c.get("/supplies/expiring?as_of=2024-07-01")
    assert "OLD" in r.text and 'id="clear-O0"' in r.text and 'id="clear-S"' not in r.text
    r = c.post("/supplies/clear-expired", data={"location": "O0", "day": "2024-07-01"})
    assert r.status_code == 303
    with transaction(app.state.sessions) as s:
        ev = s.scalar(select(SupplyEvent).where(SupplyEvent.reason == "expired"))
        assert ev is not None and [ln.qty for ln in ev.lines] == [-10]


def test_county_receives_and_viewer_only_reads(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "admin")
    r = c.post(
        "/supplies/receive",
        data={
            "location": "S",
            "product": "E",
            "lot": "E1",
            "expiry": "2029-05-01",
            "qty": "25",
            "day": "2024-03-01",
            "source": "allocation",
        },
    )
    assert r.status_code == 303 and "S-202403-0001" in r.headers["location"]
    v = client(app, "viewer")
    assert v.get("/supplies/stock").status_code == 200
    assert (
        v.post("/supplies/issue", data={"location": "P00", "product": "C", "qty": "1"}).status_code
        == 403
    )
    assert v.post("/supplies/clear-expired", data={"location": "O0"}).status_code == 403
    assert v.get("/supplies/issue").status_code == 403


def test_reversal_over_http(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    with transaction(app.state.sessions) as s:
        ev = s.scalar(select(SupplyEvent).where(SupplyEvent.doc_no == "O0-202401-0001"))
        eid = ev.id
    r = c.post(f"/supplies/events/{eid}/reverse", data={"note": "录错"})
    assert r.status_code == 303
    assert balance(app, "P00") == 0 and balance(app, "O0") == 210
    assert c.post(f"/supplies/events/{eid}/reverse", data={}).status_code == 400
    assert "已冲销" in c.get("/supplies/events").text
    # another township's assessor may not reverse it
    with transaction(app.state.sessions) as s:
        eid2 = s.scalar(select(SupplyEvent.id).where(SupplyEvent.doc_no == "S-202401-0002"))
    assert (
        client(app, "assessor_t001").post(f"/supplies/events/{eid2}/reverse", data={}).status_code
        == 403
    )


def test_count_form_records_book_and_counted(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "reporter_v0000")
    page = c.get("/supplies/count?location=P00")
    assert page.status_code == 200 and 'id="counted-A"' in page.text
    with transaction(app.state.sessions) as s:
        lot_id = s.scalar(select(SupplyBalance.lot_id).where(SupplyBalance.qty == 100))
    r = c.post(
        "/supplies/count", data={"location": "P00", "day": "2024-02-01", f"counted:{lot_id}": "97"}
    )
    assert r.status_code == 303
    assert balance(app, "P00") == 97
    r = client(app, "admin").get("/supplies/reconciliation")
    assert "0.0%" in r.text and ">100<" in r.text and ">97<" in r.text


def test_point_registry_open_close_history(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "assessor_t000")
    r = c.post(
        "/supplies/points",
        data={
            "code": "P02",
            "name": "三村发放点",
            "office": "O0",
            "point_type": "community",
            "address": "三村",
            "latitude": "31.55",
            "longitude": "117.25",
            "opened": "2024-01-01",
        },
    )
    assert r.status_code == 303
    r = c.post(
        "/supplies/points/P02/status",
        data={"action": "close", "reason": "村委会搬迁", "day": "2024-05-01"},
    )
    assert r.status_code == 303
    page = c.get("/supplies/points/P02").text
    assert "村委会搬迁" in page and "2024-05-01" in page and "设立" in page
    assert "三村发放点" not in client(app).get("/points").text  # closed points are not public
    assert (
        c.post("/supplies/points/P10/status", data={"action": "close", "reason": "x"}).status_code
        == 403
    )
    assert (
        c.post(
            "/supplies/points",
            data={"code": "P99", "name": "x", "office": "O1", "point_type": "cabinet"},
        ).status_code
        == 403
    )


def test_public_finder_without_login(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app)
    r = c.get("/points")
    assert r.status_code == 200 and 'lang="zh-CN"' in r.text
    for element in (
        'id="points-filter"',
        'id="points-table"',
        'id="points-map"',
        "echarts-5.6.0.min.js",
    ):
        assert element in r.text
    assert "一村发放点" in r.text and "金寨卫生院" in r.text and "一村村委会" in r.text
    assert (
        "tile" not in r.text.lower()
        and "http://" not in r.text.split("<main>")[1].split("</main>")[0]
    )
    r = c.get("/points?township=T001")
    assert "金寨卫生院" in r.text and "一村发放点" not in r.text
    r = c.get("/points?q=广场")
    assert "二村自助柜" in r.text and "金寨卫生院" not in r.text
    r = c.get("/points?type=cabinet")
    assert "二村自助柜" in r.text and "一村发放点" not in r.text
    assert "库存" not in c.get("/points").text.split("<main>")[1]  # no stock figures in public


def test_public_points_json_and_csv(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app)
    doc = c.get("/api/public/points").json()
    assert doc["count"] == 3
    p = next(x for x in doc["points"] if x["code"] == "P00")
    assert p["type"] == "counter" and p["type_label"] == "人工发放点" and p["latitude"] == 31.5
    assert p["township"] == "城关镇" and p["hours"] == "8:00-17:00" and p["phone"] == "0551-1"
    assert c.get("/api/public/points?township=T001").json()["count"] == 1
    r = c.get("/api/public/points?format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert {row["code"] for row in rows} == {"P00", "P01", "P10"}
    assert c.get("/api/public/points.csv?type=hospital").text.count("\n") == 2


def xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_import_points_all_or_nothing_with_row_and_column(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "admin")
    head = ["编码", "名称", "乡镇", "类型", "地址", "开放时间", "电话", "纬度", "经度"]
    bad = xlsx(
        [
            head,
            ["N1", "新一点", "T000", "自助发放柜", "某路", "全天", "", 31.1, 117.1],
            ["N2", "新二点", "T999", "cabinet", "", "", "", "abc", 117.0],
        ]
    )
    r = c.post(
        "/supplies/import/points", files={"file": ("p.xlsx", bad)}, data={"csrf_token": c.csrf}
    )
    assert r.status_code == 400
    assert "第 3 行" in r.text and "乡镇" in r.text and "纬度" in r.text
    assert "N1" not in client(app).get("/api/public/points").text
    good = xlsx([head, ["N1", "新一点", "T000", "自助发放柜", "某路", "全天", "", 31.1, 117.1]])
    r = c.post(
        "/supplies/import/points", files={"file": ("p.xlsx", good)}, data={"csrf_token": c.csrf}
    )
    assert r.status_code == 200 and 'id="import-ok"' in r.text
    assert "新一点" in client(app).get("/api/public/points").text


def test_import_stock_count(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app, "admin")
    head = ["地点", "药具", "批号", "有效期", "数量"]
    bad = xlsx([head, ["P10", "C", "B7", "2031-01-01", 12], ["P10", "X", "B8", "2031-01-01", -1]])
    r = c.post(
        "/supplies/import/stock",
        files={"file": ("s.xlsx", bad)},
        data={"csrf_token": c.csrf, "day": "2024-01-10"},
    )
    assert r.status_code == 400 and "药具" in r.text and "数量" in r.text
    assert balance(app, "P10") == 0
    good = xlsx([head, ["P10", "C", "B7", "2031-01-01", 12], ["P10", "E", "B8", "2031-01-01", 3]])
    r = c.post(
        "/supplies/import/stock",
        files={"file": ("s.xlsx", good)},
        data={"csrf_token": c.csrf, "day": "2024-01-10"},
    )
    assert r.status_code == 200, r.text[:500]
    assert balance(app, "P10") == 15
    # an assessor may not import counts for another township
    r = client(app, "assessor_t000").post(
        "/supplies/import/stock",
        files={"file": ("s.xlsx", good)},
        data={"csrf_token": c.csrf, "day": "2024-01-11"},
    )
    assert r.status_code in (400, 403)


def test_english_catalog_covers_the_pages(app) -> None:  # type: ignore[no-untyped-def]
    c = client(app)
    c.get("/lang/en?next=/points")
    r = c.get("/points")
    assert "Find a free contraceptive distribution point" in r.text


def test_api_issue_with_a_keepers_token(app) -> None:  # type: ignore[no-untyped-def]
    from kaohe.auth.sessions import create_api_token
    from kaohe.auth.users import user_by_name

    with transaction(app.state.sessions) as s:
        token, _ = create_api_token(s, user_by_name(s, "reporter_v0000"), "cabinet")
        other, _ = create_api_token(s, user_by_name(s, "reporter_v0001"), "none kept")
    c = Client(app)
    auth = {"Authorization": f"Bearer {token}"}
    body = {"location": "P00", "product": "C", "qty": 7, "day": "2024-02-01"}
    r = c.post("/api/supplies/issue", json=body, headers=auth)
    assert r.status_code == 200, r.text[:300]
    assert r.json() == {"doc_no": "P00-202402-0001", "lines": [{"lot": "A", "qty": -7}]}
    r = c.post("/api/supplies/issue", json={**body, "day": None}, headers=auth)  # today
    assert r.status_code == 200 and r.json()["lines"] == [{"lot": "A", "qty": -7}]
    assert balance(app, "P00") == 86
    before = n_events(app)
    # more than the point holds: refused whole, with the reason; nothing written
    r = c.post("/api/supplies/issue", json={**body, "qty": 87}, headers=auth)
    assert r.status_code == 400 and "不足" in r.text
    # a back-dated issue that would break a later balance (before the point's stock)
    r = c.post("/api/supplies/issue", json={**body, "day": "2024-01-03"}, headers=auth)
    assert r.status_code == 400
    # another point, another keeper's token, no token
    assert (
        c.post("/api/supplies/issue", json={**body, "location": "P01"}, headers=auth).status_code
        == 403
    )
    other_auth = {"Authorization": f"Bearer {other}"}
    assert c.post("/api/supplies/issue", json=body, headers=other_auth).status_code == 403
    assert c.post("/api/supplies/issue", json=body).status_code == 401
    assert n_events(app) == before and balance(app, "P00") == 86
