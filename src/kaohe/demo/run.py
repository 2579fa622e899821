"""`make run` / `kaohe demo`: score the shipped demo county and show the result."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kaohe.numbers import fmt2

DEMO_PACKAGE = "kaohe.demo"


def demo_files() -> tuple[Path, Path]:
    base = resources.files(DEMO_PACKAGE)
    return Path(str(base / "village-demo.csv")), Path(str(base / "village-demo-units.csv"))


def run_demo(output_dir: Path, console: Console, period: str = "2022") -> Path:
    from kaohe.engine import score
    from kaohe.io.read import read_data
    from kaohe.io.units import read_units
    from kaohe.io.xlsx_report import write_xlsx_report
    from kaohe.rulebook.loader import load_rulebook

    data_path, units_path = demo_files()
    rb = load_rulebook("village-1000")
    org = read_units(units_path)
    ds = read_data(data_path, rb, org)
    result = score(rb, ds, period, org)
    names = org.name_of()
    console.print(f"[bold]{rb.model.name}[/] — {period}年度考核排名（演示数据 demo data）")
    for group, part in result.table.group_by("group", maintain_order=True):
        code = group[0]
        t = Table(title=f"{names.get(str(code), code)}（{code}）", title_justify="left")
        t.add_column("排名", justify="right")
        t.add_column("单位代码")
        t.add_column("村名")
        t.add_column("总分", justify="right")
        t.add_column("排名加分", justify="right")
        for row in part.iter_rows(named=True):
            t.add_row(
                str(row["rank"]),
                row["unit"],
                row["name"],
                fmt2(row["total"]),
                fmt2(row["rank_bonus"]),
            )
        console.print(t)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = output_dir / f"village-1000-{period}.xlsx"
    write_xlsx_report(result, report)
    console.print(f"报表已写出 report written: {report}")
    run_community_demo(output_dir, console)
    return report


def community_files() -> tuple[Path, Path]:
    base = resources.files(DEMO_PACKAGE)
    return Path(str(base / "community-demo.csv")), Path(str(base / "community-demo-units.csv"))


def run_community_demo(output_dir: Path, console: Console) -> list[Path]:
    """The street's March 2022 ranking with its lists; the March and Q1 notices; the Q1 payment sheet."""
    from kaohe.engine import score
    from kaohe.engine.payments import payment_sheet
    from kaohe.io.notice import build_notice, write_notice_docx
    from kaohe.io.payment_sheet import write_payment_sheet
    from kaohe.io.read import read_data
    from kaohe.io.units import read_units
    from kaohe.rulebook.loader import load_rulebook

    data_path, units_path = community_files()
    rb = load_rulebook("community-monthly")
    org = read_units(units_path)
    ds = read_data(data_path, rb, org)
    names = org.name_of()
    written: list[Path] = []
    march = score(rb, ds, "2022-03", org)
    labels: dict[str, list[str]] = {}
    for o in march.outcomes.iter_rows(named=True):
        labels.setdefault(o["unit"], []).append(o["label"])
    t = Table(title=f"{rb.model.name} — 2022年3月排名（演示数据 demo data）", title_justify="left")
    for col, just in [("排名", "right"), ("社区", "left"), ("总分", "right"), ("达标", "center")]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    t.add_column("通报")
    for row in march.table.iter_rows(named=True):
        note = "、".join(labels.get(row["unit"], []))
        if row["unit"] in march.placed:
            note = "、".join(filter(None, [note, "投诉属实，列入倒数3名"]))
        t.add_row(
            str(row["rank"]),
            f"{row['name']}（{row['unit']}）",
            fmt2(row["total"]),
            "是" if row["meets_standard"] else "否",
            note,
        )
    console.print(t)
    for period in ("2022-03", "2022Q1"):
        res = march if period == "2022-03" else score(rb, ds, period, org)
        path = output_dir / f"community-monthly-{period}.docx"
        write_notice_docx(build_notice(res, names, issuer="城关街道办事处"), path)
        written.append(path)
    sheet = payment_sheet(rb, ds, "2022Q1", org)
    pay = output_dir / "community-monthly-2022Q1-pay.xlsx"
    write_payment_sheet(sheet, pay, names)
    written.append(pay)
    totals = "、".join(
        f"{rb.model.funders.get(f, f)} {v / 100:,.2f}元"
        for f, v in sheet.totals_by_funder().items()
    )
    console.print(f"2022年第1季度发放明细：{sheet.lines.height} 笔，{totals}（均为待审核）")
    for p in written:
        console.print(f"已写出 written: {p}")
    return written
