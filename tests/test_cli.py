"""The `kaohe` command line, run in-process with Typer's CliRunner (the acceptance contract)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from kaohe.cli import app

FIX = Path(__file__).parent / "fixtures"
V_DATA = FIX / "village-1000-example" / "data.csv"
V_UNITS = FIX / "village-1000-example" / "units.csv"
V_EXPECTED = json.loads((FIX / "village-1000-example" / "expected.json").read_text("utf-8"))
C_DATA = FIX / "community-monthly-example" / "data.csv"
C_UNITS = FIX / "community-monthly-example" / "units.csv"

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("period", ["2022", "2022T2"])
def test_score_json_matches_the_worked_example(period: str) -> None:
    code, out, _ = run(
        "score", "village-1000", "--data", V_DATA, "--units", V_UNITS, "--period", period
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["rulebook"] == "village-1000" and doc["period"] == period
    got = {r["unit"]: r for r in doc["results"]}
    for e in V_EXPECTED[period]:
        r = got[e["unit"]]
        assert (r["total"], r["rank"], r["group"], r["period"]) == (
            e["total"],
            e["rank"],
            e["group"],
            period,
        )
        assert r["items"] == e["items"]
        assert r["adjustments"] == e["adjustments"]
        assert r["rank_bonus"] == e.get("rank_bonus", 0.0)
        assert r["name"] == f"村{e['unit']}"


def test_score_csv_contract(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    code, _, _ = run(
        "score", "village-1000", "--data", V_DATA, "--units", V_UNITS, "--period", "2022",
        "--format", "csv", "--output", out,
    )  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert list(rows[0]) == [
        "unit",
        "name",
        "group",
        "total",
        "rank",
        *list(V_EXPECTED["2022"][0]["items"]),
    ]
    by_unit = {r["unit"]: r for r in rows}
    for e in V_EXPECTED["2022"]:
        assert float(by_unit[e["unit"]]["total"]) == e["total"]
        assert by_unit[e["unit"]]["rank"] == str(e["rank"])


def test_score_csv_file_and_standard_output_are_the_same_bytes(tmp_path: Path) -> None:
    # a file is written by Polars' streaming sink, standard output from the frame
    out = tmp_path / "r.csv"
    args = ("score", "village-1000", "--data", V_DATA, "--units", V_UNITS, "--period", "2022")
    code, _, _ = run(*args, "--format", "csv", "--output", out)
    assert code == 0
    code, text, _ = run(*args, "--format", "csv")
    assert code == 0
    assert out.read_text("utf-8") == text
    assert text.count("\n") == 1 + len(V_EXPECTED["2022"])


def test_score_xlsx_and_explain_sheet(tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    code, _, err = run(
        "score", "village-1000", "--data", V_DATA, "--units", V_UNITS, "--period", "2022",
        "-o", out, "--explain",
    )  # fmt: skip
    assert code == 0, err
    wb = load_workbook(out)
    assert {"排名", "分项得分", "得分说明"} <= set(wb.sheetnames)
    text = "\n".join(str(c.value) for c in wb["得分说明"]["A"] if c.value)
    assert "完成结扎任务" in text and "依据" in text


def test_score_json_explain_embeds_explanations() -> None:
    code, out, _ = run(
        "score",
        "village-1000",
        "--data",
        V_DATA,
        "--units",
        V_UNITS,
        "--period",
        "2022T2",
        "--explain",
    )
    assert code == 0
    doc = json.loads(out)
    for r in doc["results"]:
        assert r["explanation"]["unit"] == r["unit"]
        assert r["explanation"]["total"] == r["total"]


def test_explain_text_and_json() -> None:
    code, out, _ = run(
        "explain",
        "village-1000",
        "--data",
        V_DATA,
        "--units",
        V_UNITS,
        "--period",
        "2022",
        "--unit",
        "V001",
    )
    assert code == 0
    assert "完成结扎任务" in out and "总分 1155.28" in out
    code, out, _ = run(
        "explain", "village-1000", "--data", V_DATA, "--units", V_UNITS, "--period", "2022",
        "--unit", "V001", "--format", "json",
    )  # fmt: skip
    doc = json.loads(out)
    assert doc["total"] == 1155.28 and doc["rank"] == 1 and doc["rank_bonus"] == 6.0


def test_param_override_changes_the_result() -> None:
    args = ["score", "village-1000", "--data", V_DATA, "--units", V_UNITS, "--period", "2022T2"]
    base = {r["unit"]: r for r in json.loads(run(*args)[1])["results"]}
    code, out, _ = run(*args, "--param", "c1_period_points=30")
    assert code == 0
    changed = {r["unit"]: r for r in json.loads(out)["results"]}
    # two periods elapsed: each C1 period score gains 5 points
    assert changed["V001"]["items"]["C1"] == pytest.approx(base["V001"]["items"]["C1"] + 10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", FIX / "data" / "bad-non-numeric.csv"], "row"),
        (["--data", FIX / "data" / "bad-duplicate.csv"], "duplicate"),
        (["--data", FIX / "data" / "bad-period.csv"], "period"),
        (["--data", FIX / "data" / "bad-unknown-column.csv"], "unknown"),
        (["--data", FIX / "nope.csv"], "no such file"),
        (["--data", V_DATA, "--units", FIX / "data" / "units-bad.csv"], "units-bad.csv"),
        (["--data", V_DATA, "--param", "nonsense=1"], "unknown parameter"),
        (["--data", V_DATA, "--param", "c1_period_points"], "NAME=NUMBER"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(
    tmp_path: Path, args: list, message: str
) -> None:
    out = tmp_path / "out.json"
    code, _, err = run("score", "village-1000", "--period", "2022", "-o", out, *args)
    assert code == 2
    assert message in err
    assert not out.exists()


def test_bad_period_and_bad_rulebook() -> None:
    code, _, err = run("score", "village-1000", "--data", V_DATA, "--period", "2022-13")
    assert code == 2 and "not a period" in err
    code, _, err = run("score", "village-1000", "--data", V_DATA, "--period", "2022Q1")
    assert code == 2 and "does not fit" in err
    code, _, err = run("check", FIX / "rulebooks" / "broken" / "unknown_name.yaml")
    assert code == 2 and "line 11" in err and "dnoe" in err


def test_rulebooks_check_schema() -> None:
    code, out, _ = run("rulebooks")
    assert code == 0 and "village-1000" in out and "community-monthly" in out
    code, out, _ = run("check", "village-1000")
    assert code == 0 and "20 items (1000 points)" in out
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out)["title"] == "Rulebook"


def test_template_round_trip(tmp_path: Path) -> None:
    """The data-entry workbook, filled with the example's values, scores like the CSV."""
    tpl = tmp_path / "t.xlsx"
    code, _, err = run(
        "template", "village-1000", "--period", "2022", "--units", V_UNITS, "-o", tpl
    )
    assert code == 0, err
    wb = load_workbook(tpl)
    values = {(r["unit"], r["period"]): r for r in csv.DictReader(V_DATA.open(encoding="utf-8"))}
    for ws in wb.worksheets:
        header = [c.value for c in ws[1]]
        if not header or not any(h and "(" in str(h) for h in header):
            continue
        codes = [
            str(h).rsplit("(", 1)[-1].rstrip(")").strip() if h and "(" in str(h) else None
            for h in header
        ]
        ui, pi = header.index("单位代码"), header.index("期间")
        for row in ws.iter_rows(min_row=2):
            src = values.get((str(row[ui].value), str(row[pi].value)))
            if src is None:
                continue
            for cell, c in zip(row, codes, strict=False):
                if c in src and src[c] != "":
                    cell.value = float(src[c])
    filled = tmp_path / "filled.xlsx"
    wb.save(filled)
    a = json.loads(
        run("score", "village-1000", "--data", filled, "--units", V_UNITS, "--period", "2022")[1]
    )
    b = json.loads(
        run("score", "village-1000", "--data", V_DATA, "--units", V_UNITS, "--period", "2022")[1]
    )
    assert a["results"] == b["results"]


def test_community_score_pay_and_notice(tmp_path: Path) -> None:
    code, out, _ = run(
        "score", "community-monthly", "--data", C_DATA, "--units", C_UNITS, "--period", "2022Q1"
    )
    assert code == 0
    doc = json.loads(out)
    first = doc["results"][0]
    assert first["unit"] == "C07" and first["rank"] == 1 and first["meets_standard"] is True
    assert {"code": "reward", "label": "季度考核奖励", "kind": "reward", "amount": 2000.0,
            "payee": "community", "funder": "street"} in first["outcomes"]  # fmt: skip
    pay = tmp_path / "pay.xlsx"
    code, _, err = run(
        "pay",
        "community-monthly",
        "--data",
        C_DATA,
        "--units",
        C_UNITS,
        "--period",
        "2022Q1",
        "-o",
        pay,
    )
    assert code == 0, err
    assert {"发放明细", "资金来源汇总"} <= set(load_workbook(pay).sheetnames)
    pj = tmp_path / "pay.json"
    run(
        "pay",
        "community-monthly",
        "--data",
        C_DATA,
        "--units",
        C_UNITS,
        "--period",
        "2022Q1",
        "-o",
        pj,
    )
    pdoc = json.loads(pj.read_text("utf-8"))
    assert pdoc["total_fen"] == sum(line["amount_fen"] for line in pdoc["lines"])
    assert sum(pdoc["totals_by_funder_fen"].values()) == pdoc["total_fen"]
    for suffix in ("docx", "md"):
        note = tmp_path / f"notice.{suffix}"
        code, _, err = run(
            "notice", "community-monthly", "--data", C_DATA, "--units", C_UNITS, "--period", "2022-03",
            "-o", note, "--date", "2022-04-05",
        )  # fmt: skip
        assert code == 0, err
        assert note.stat().st_size > 0
    assert "通报表扬" in (tmp_path / "notice.md").read_text("utf-8")


def test_demo_runs(tmp_path: Path) -> None:
    code, out, err = run("demo", "--output-dir", tmp_path)
    assert code == 0, err
    assert (tmp_path / "village-1000-2022.xlsx").exists()
    assert (tmp_path / "community-monthly-2022Q1-pay.xlsx").exists()
    assert "排名" in out


# ---------------------------------------------------------------- counts: Int32, Float64 or XLSX


def _float_csv(src: Path, out: Path) -> Path:
    """``src`` with every whole number written with a decimal point (``3.0``), as pandas
    writes a float column."""
    import polars as pl

    frame = pl.read_csv(src, infer_schema_length=None)
    frame.with_columns(pl.col(pl.Int64).cast(pl.Float64)).write_csv(out)
    return out


def _workbook(src: Path, out: Path) -> Path:
    """``src`` as a one-sheet workbook of numbers (empty cells left empty)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    with src.open(encoding="utf-8") as fh:
        for i, row in enumerate(csv.reader(fh)):
            ws.append([c if i == 0 or j < 2 or c == "" else float(c) for j, c in enumerate(row)])
    wb.save(out)
    return out


@pytest.mark.parametrize(
    ("rulebook", "data", "units", "periods"),
    [
        ("village-1000", V_DATA, V_UNITS, ["2022", "2022T2"]),
        ("community-monthly", C_DATA, C_UNITS, ["2022-03", "2022Q1", "2022"]),
    ],
)
def test_scores_are_identical_whatever_the_numbers_were_read_as(
    tmp_path: Path, rulebook: str, data: Path, units: Path, periods: list[str]
) -> None:
    import polars as pl

    from kaohe.engine.evaluate import score
    from kaohe.io.read import read_data
    from kaohe.io.units import read_units
    from kaohe.rulebook.loader import load_rulebook

    inputs = {
        "int32": data,  # counts parsed as Int32
        "float64": _float_csv(data, tmp_path / "floats.csv"),  # '3.0': read again as Float64
        "xlsx": _workbook(data, tmp_path / "data.xlsx"),
    }
    rb = load_rulebook(rulebook)
    org = read_units(units)
    datasets = {k: read_data(f, rb, org) for k, f in inputs.items()}
    count = next(v for v, var in rb.variables.items() if var.integer)
    dtypes = {k: ds.frame.schema[count] for k, ds in datasets.items()}
    assert dtypes == {"int32": pl.Int32, "float64": pl.Float64, "xlsx": pl.Float64}
    for period in periods:
        # the engine's result tables, unrounded
        tables = {k: score(rb, ds, period, org).table for k, ds in datasets.items()}
        assert tables["float64"].equals(tables["int32"]), period
        assert tables["xlsx"].equals(tables["int32"]), period
        # and what `kaohe score` writes
        for fmt in ("csv", "json"):
            outputs = []
            for kind, f in inputs.items():
                out = tmp_path / f"{kind}-{period}.{fmt}"
                code, _, err = run(
                    "score", rulebook, "--data", f, "--units", units, "--period", period,
                    "--format", fmt, "-o", out,
                )  # fmt: skip
                assert code == 0, err
                outputs.append(out.read_bytes())
            assert outputs[0] == outputs[1] == outputs[2], (period, fmt)


def test_a_count_with_a_fraction_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    rows = list(csv.reader(V_DATA.open(encoding="utf-8")))
    col = rows[0].index("births_total")
    n = next(i for i, r in enumerate(rows) if r[1] == "2022T2")
    rows[n][col] = "2.5"
    data = tmp_path / "data.csv"
    with data.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    out = tmp_path / "out.csv"
    code, _, err = run(
        "score", "village-1000", "--data", data, "--units", V_UNITS, "--period", "2022",
        "--format", "csv", "-o", out,
    )  # fmt: skip
    assert code == 2
    assert (
        f"{data}, row {n + 1}, column 'births_total': '2.5' is not a whole number "
        "(births_total is a count, 例)"
    ) in " ".join(err.split())
    assert not out.exists()
    # the same file with the whole number scores
    rows[n][col] = "2"
    with data.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    code, _, err = run(
        "score", "village-1000", "--data", data, "--units", V_UNITS, "--period", "2022",
        "--format", "csv", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    assert out.exists()
