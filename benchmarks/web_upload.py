"""Benchmark: uploading a 10,000-row data workbook through the web app (dry run + apply).

A township with 2,500 villages (village-1000: a year row and three tertial rows
each, 10,000 rows, ~470,000 cells) in a fresh SQLite database (or
``--database-url``).  The workbook is the township's pre-filled template for
2022; before uploading it, the store is changed so that the upload

- ``update``: changes 10 % of the values (the rest are unchanged), or
- ``insert``: finds an empty store and inserts every value.

Timed, through the HTTP routes (in-process ASGI client): the upload with its
dry-run preview (read, validate, diff, stash) and the confirm (re-plan, bulk
write of values and audit entries, commit).  Target (issue 4): ≤ 5 s.

    python3 -m uv run --frozen python benchmarks/web_upload.py [--villages 2500] [--scenario update]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import delete, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.web import Client

from kaohe.auth.users import add_user
from kaohe.demo.synth import synth_village
from kaohe.io.dataset import OrgUnits
from kaohe.io.read import read_data
from kaohe.rulebook.loader import load_rulebook
from kaohe.store.db import make_engine, session_factory, transaction, upgrade
from kaohe.store.models import DataValue
from kaohe.web.app import create_app
from kaohe.workflow.excel import template_bytes
from kaohe.workflow.load import add_unit, load_dataset, load_org_units
from kaohe.workflow.rulebooks import store_rulebook
from kaohe.workflow.units import unit_by_code


def setup(url: str, villages: int, tmp: Path) -> bytes:
    engine = make_engine(url)
    upgrade(engine)
    data, units = synth_village(villages, 1)
    csv_data, csv_units = tmp / "data.csv", tmp / "units.csv"
    data.write_csv(csv_data)
    units.write_csv(csv_units)
    rb = load_rulebook("village-1000")
    org = OrgUnits(units, file=str(csv_units))
    with transaction(session_factory(engine)) as s:
        county = add_unit(s, "X01", "示范县", "county")
        store_rulebook(s, "village-1000")
        load_org_units(s, org, under=county, rulebook="village-1000")
        load_dataset(s, read_data(csv_data, rb, org))
        add_user(s, "bench", "bench-pass-123", "admin", None, check_password=False)
    with transaction(session_factory(engine)) as s:
        group = unit_by_code(s, units["code"][0])
        t = time.perf_counter()
        body = template_bytes(s, group, "2022")
        print(f"template download: {time.perf_counter() - t:.2f} s, {len(body) / 1e6:.1f} MB")
    engine.dispose()
    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--villages", type=int, default=2500)
    ap.add_argument("--scenario", choices=("update", "insert"), default="update")
    ap.add_argument("--database-url", default=None, help="an empty database (default: temp SQLite)")
    ap.add_argument("--save-workbook", type=Path, default=None, help="also save the template here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite'}"
        workbook = setup(url, args.villages, tmp)
        if args.save_workbook:
            args.save_workbook.write_bytes(workbook)
        engine = make_engine(url)
        with transaction(session_factory(engine)) as s:
            if args.scenario == "insert":
                s.execute(delete(DataValue))
            else:
                s.execute(text("UPDATE data_value SET value = value + 1 WHERE id % 10 = 0"))
        app = create_app(engine=engine)
        c = Client(app)
        c.sign_in_as("bench")
        t0 = time.perf_counter()
        r = c.post(
            "/data/group/T000/2022/upload",
            files={"file": ("bench.xlsx", workbook, "application/octet-stream")},
        )
        t1 = time.perf_counter()
        assert r.status_code == 200, r.text[-2000:]
        token = re.search(r'name="token" value="([^"]+)"', r.text)
        fp = re.search(r'name="fingerprint" value="([^"]+)"', r.text)
        n = re.search(r"将修改 (\d+) 个数值", r.text)
        assert token and fp and n, "no confirm form in the preview"
        t2 = time.perf_counter()
        r = c.post(
            "/data/group/T000/2022/upload/confirm",
            data={"token": token.group(1), "fingerprint": fp.group(1)},
        )
        t3 = time.perf_counter()
        assert r.status_code == 303, r.text[-2000:]
        rows = 4 * args.villages
        print(
            f"{args.scenario}: {rows} rows, {int(n.group(1))} values changed\n"
            f"  upload + dry-run preview: {t1 - t0:.2f} s\n"
            f"  confirm (apply + audit):  {t3 - t2:.2f} s\n"
            f"  total:                    {t1 - t0 + t3 - t2:.2f} s  (target ≤ 5 s)"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
