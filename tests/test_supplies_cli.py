"""`kaohe supplies report` and `kaohe supplies expiring` on a seeded database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from openpyxl import load_workbook
from typer.testing import CliRunner

from kaohe.cli import app
from kaohe.store.db import session_factory, transaction
from kaohe.supplies import ledger as lg
from tests.supplies_helpers import make_setup

runner = CliRunner()


def seed(engine) -> None:  # type: ignore[no-untyped-def]
    with transaction(session_factory(engine)) as s:
        su = make_setup(s)
        a = lg.get_or_create_lot(s, su.condom, "A", dt.date(2030, 1, 1))
        b = lg.get_or_create_lot(s, su.pill, "B", dt.date(2024, 5, 31))
        lg.receive(s, su.station, dt.date(2024, 1, 2), [(a, 500), (b, 40)])
        lg.transfer(s, su.station, su.p00, dt.date(2024, 2, 1), su.condom, 120)


def test_report_writes_stock_as_of_a_date(engine, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(engine)
    out = tmp_path / "stock.xlsx"
    r = runner.invoke(
        app, ["supplies", "report", "--as-of", "2024-01-31", "-o", str(out), "--database", db_url]
    )
    assert r.exit_code == 0, r.output
    rows = list(load_workbook(out)["库存"].iter_rows(min_row=4, values_only=True))
    assert [(x[0], x[6], x[8]) for x in rows] == [("S", "A", 500), ("S", "B", 40)]
    r = runner.invoke(
        app, ["supplies", "report", "--as-of", "2024-02-01", "-o", str(out), "--database", db_url]
    )
    rows = list(load_workbook(out)["库存"].iter_rows(min_row=4, values_only=True))
    assert ("P00", "A", 120) in [(x[0], x[6], x[8]) for x in rows]


def test_expiring_lists_near_and_expired(engine, db_url: str) -> None:  # type: ignore[no-untyped-def]
    seed(engine)
    r = runner.invoke(
        app,
        [
            "supplies",
            "expiring",
            "--within",
            "6m",
            "--as-of",
            "2024-03-01",
            "--json",
            "--database",
            db_url,
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["within_months"] == 6
    assert [(x["status"], x["lot"], x["qty"]) for x in doc["lots"]] == [("near", "B", 40)]
    r = runner.invoke(
        app,
        [
            "supplies",
            "expiring",
            "--within",
            "1y",
            "--as-of",
            "2024-06-01",
            "--json",
            "--database",
            db_url,
        ],
    )
    assert [(x["status"], x["lot"]) for x in json.loads(r.stdout)["lots"]] == [("expired", "B")]
    r = runner.invoke(app, ["supplies", "expiring", "--as-of", "2024-03-01", "--database", db_url])
    assert r.exit_code == 0 and "紧急避孕药" in r.stdout


def test_bad_arguments_exit_2(db_url: str, tmp_path: Path) -> None:
    r = runner.invoke(app, ["supplies", "expiring", "--within", "six", "--database", db_url])
    assert r.exit_code == 2 and "6m" in r.stderr
    r = runner.invoke(
        app,
        [
            "supplies",
            "report",
            "--as-of",
            "2024-13-01",
            "-o",
            str(tmp_path / "x.xlsx"),
            "--database",
            db_url,
        ],
    )
    assert r.exit_code == 2 and "--as-of" in r.stderr
